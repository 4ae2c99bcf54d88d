"""Read manifests, XML and other files that a person names on the command line.

Every source is read to at most a bound, whatever it is: a regular file, standard input (``-``),
a FIFO or a character device (``/dev/zero`` never ends). A key given twice in one YAML mapping
(or a member twice in a JSON object) is refused, not taken last-wins as kubectl 1.32 takes it
(a second ``metadata:`` without the label would be a plain VM), and so is a number JSON cannot
carry (``.nan`` and ``.inf``, which kubectl refuses too, or an integer too long to read;
:mod:`kubevirt_cca.core.wire.jsontext`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from kubevirt_cca.core.wire.jsontext import (
    DuplicateMember,
    NotJSONValue,
    UnreadableJSON,
    check_values,
    checked_int,
    loads,
    read_int,
)
from kubevirt_cca.errors import CCAError, InputTooLarge, ManifestError

MAX_FILE_BYTES = 16 * 1024 * 1024
STDIN = "-"


def read_bytes(path: str, *, what: str, limit: int, error: type[CCAError]) -> bytes:
    """At most ``limit`` bytes of a file, or of standard input for ``-``; ``error`` naming
    ``what`` and ``path`` when it cannot be read or is larger."""
    try:
        if path == STDIN:
            data = _read_at_most(sys.stdin.buffer, limit)
        else:
            with Path(path).open("rb") as handle:
                data = _read_at_most(handle, limit)
    except FileNotFoundError as exc:
        raise error(f"{what} {path}: no such file") from exc
    except IsADirectoryError as exc:
        raise error(f"{what} {path}: is a directory, expected a file") from exc
    except OSError as exc:
        raise error(f"{what} {_name(path)}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise error(f"{what} {_name(path)}: larger than {_size(limit)}")
    return data


def read_text(path: str, *, limit: int = MAX_FILE_BYTES) -> str:
    """A file's UTF-8 text, or standard input's for ``-``, read to at most ``limit`` bytes
    from any kind of file; :class:`ManifestError` saying why not."""
    try:
        if path == STDIN:
            data = _read_at_most(sys.stdin.buffer, limit)
        else:
            with Path(path).open("rb") as handle:
                data = _read_at_most(handle, limit)
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ManifestError(f"{path}: is a directory, expected a file") from exc
    except OSError as exc:
        raise ManifestError(f"{_name(path)}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise InputTooLarge(f"{_name(path)}: larger than {_size(limit)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{_name(path)}: not UTF-8 text") from exc


def _read_at_most(handle: BinaryIO, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes (one more tells "larger"), however the source delivers them:
    a pipe or a terminal returns short reads, so read until the bound or the end."""
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = handle.read(min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _name(path: str) -> str:
    return "standard input" if path == STDIN else path


def _size(limit: int) -> str:
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit} bytes"


def load_manifest(path: str) -> dict[str, Any]:
    """The one Kubernetes object in a YAML or JSON file."""
    documents = load_documents(path)
    if len(documents) != 1:
        raise ManifestError(f"{path}: holds {len(documents)} objects; give a file with exactly one")
    return documents[0]


def load_documents(path: str) -> list[dict[str, Any]]:
    """Every non-empty object in a YAML (multi-document) or JSON file."""
    loaded = parse_documents(read_text(path), source=_name(path))
    documents: list[dict[str, Any]] = []
    for index, document in enumerate(loaded):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ManifestError(
                f"{_name(path)}: document {index + 1} is not a Kubernetes object (a mapping)"
            )
        documents.append(document)
    return documents


def parse_documents(text: str, *, source: str) -> list[Any]:
    """The documents of a YAML (multi-document) or JSON text, each checked to be JSON;
    :class:`ManifestError` naming ``source`` and the line or field when not."""
    if text.lstrip().startswith("{"):
        try:
            return [loads(text, unique_members=True)]
        except NotJSONValue as exc:
            raise ManifestError(f"{source}: {exc.reason}") from exc
        except DuplicateMember as exc:
            raise ManifestError(
                f"{source}: not valid JSON: {exc.reason}; give each field once "
                "(kubectl keeps only the last one, without a word)"
            ) from exc
        except UnreadableJSON as exc:
            where = f" (line {exc.line})" if exc.line else ""
            raise ManifestError(f"{source}: not valid JSON: {exc.reason}{where}") from exc
    try:
        documents = list(yaml.load_all(text, Loader=_ManifestLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise ManifestError(f"{source}: not valid YAML: {problem}{where}") from exc
    except RecursionError as exc:
        raise ManifestError(f"{source}: nested too deeply") from exc
    for index, document in enumerate(documents):
        try:
            check_values(document)
        except NotJSONValue as exc:
            which = f"document {index + 1}, " if len(documents) > 1 else ""
            raise ManifestError(f"{source}: {which}{exc.reason}") from exc
    return documents


class _ManifestLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter than kubectl: a key given twice in one mapping is an
    error (in the words of the YAML reader older kubectl versions used: ``mapping key "x"
    already defined at line N``), and an integer too long to read stands in as a marker that
    :func:`check_values` refuses with its field."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[tuple[str, Any], int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<" merge keys may be overridden by the mapping's own keys
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.get((type(key).__name__, key))
                first.setdefault((type(key).__name__, key), key_node.start_mark.line + 1)
            except TypeError:
                continue  # an unhashable key: SafeConstructor refuses it below
            if seen is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f'mapping key "{key}" already defined at line {seen}; give each key '
                    "once (kubectl keeps only the last one, without a word)",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        try:
            value = super().construct_yaml_int(node)
        except ValueError:
            return read_int(str(self.construct_scalar(node)).replace("_", ""))
        return checked_int(value)


_ManifestLoader.add_constructor("tag:yaml.org,2002:int", _ManifestLoader.construct_yaml_int)
