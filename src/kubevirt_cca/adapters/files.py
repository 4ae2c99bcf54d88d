"""Read manifests, XML and other files that a person names on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from kubevirt_cca.errors import CCAError, ManifestError

MAX_FILE_BYTES = 16 * 1024 * 1024


def read_bytes(path: str, *, what: str, limit: int, error: type[CCAError]) -> bytes:
    """At most ``limit`` bytes of a file; ``error`` naming ``what`` and ``path`` when it cannot
    be read or is larger."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError as exc:
        raise error(f"{what} {path}: no such file") from exc
    except IsADirectoryError as exc:
        raise error(f"{what} {path}: is a directory, expected a file") from exc
    except OSError as exc:
        raise error(f"{what} {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise error(f"{what} {path}: larger than {limit} bytes")
    return data


def read_text(path: str) -> str:
    """A file's text, or ``-`` for standard input; :class:`ManifestError` saying why not."""
    if path == "-":
        import sys

        return sys.stdin.read()
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ManifestError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ManifestError(f"{path}: is a directory, expected a file") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise ManifestError(f"{path}: {exc.strerror or exc}") from exc


def load_manifest(path: str) -> dict[str, Any]:
    """The one Kubernetes object in a YAML or JSON file."""
    documents = load_documents(path)
    if len(documents) != 1:
        raise ManifestError(f"{path}: holds {len(documents)} objects; give a file with exactly one")
    return documents[0]


def load_documents(path: str) -> list[dict[str, Any]]:
    """Every non-empty object in a YAML (multi-document) or JSON file."""
    text = read_text(path)
    try:
        if text.lstrip().startswith("{"):
            loaded: list[Any] = [json.loads(text)]
        else:
            loaded = list(yaml.safe_load_all(text))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise ManifestError(f"{path}: not valid YAML: {problem}{where}") from exc
    except RecursionError as exc:
        raise ManifestError(f"{path}: nested too deeply") from exc
    documents: list[dict[str, Any]] = []
    for index, document in enumerate(loaded):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ManifestError(
                f"{path}: document {index + 1} is not a Kubernetes object (a mapping)"
            )
        documents.append(document)
    return documents
