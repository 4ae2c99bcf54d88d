"""Helpers the install tests share: rendering with kubectl, the objects by key."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.core.install import object_key
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
DEPLOY_SELF_SIGNED = ROOT / "deploy-self-signed"

Key = tuple[str, str, str, str]


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize FOLDER`` (offline), or skip when kubectl is not installed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl is not installed: it renders deploy/ with its built-in kustomize "
            "(the development and CI machines have it)"
        )
    done = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {folder} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _blank_lines_folded(value: Any) -> Any:
    """The same value with runs of newlines in strings made one.

    PyYAML and kustomize's YAML parser disagree on one corner of folded scalars (``>-``): the
    line break before a more-indented line comes out as one newline or two. Only CEL text in
    the admission policies is written that way, where a newline is whitespace either way.
    """
    if isinstance(value, str):
        return re.sub(r"\n+", "\n", value)
    if isinstance(value, list):
        return [_blank_lines_folded(v) for v in value]
    if isinstance(value, dict):
        return {k: _blank_lines_folded(v) for k, v in value.items()}
    return value


def by_key(objects: Iterable[Mapping[str, Any]]) -> dict[Key, dict[str, Any]]:
    result: dict[Key, dict[str, Any]] = {}
    for obj in objects:
        key = object_key(obj)
        assert key not in result, f"two objects are {key}"
        result[key] = _blank_lines_folded(dict(obj))
    return result


def find(objects: Iterable[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [dict(o) for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]
