"""requirements/: every runtime dependency pinned with hashes, no download address, current with
pyproject.toml (docs/dependencies.md, "Hash-pinned requirements")."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPT = ROOT / "scripts" / "update_requirements.py"
EXIT_STALE, EXIT_UNRESOLVABLE = 1, 3


def _pins(name: str) -> dict[str, str]:
    """``requirements/NAME``: canonical name -> pinned version, checking the file's form."""
    text = (ROOT / "requirements" / name).read_text()
    assert "://" not in text, f"requirements/{name} records a download address"
    pins: dict[str, str] = {}
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        requirement, *options = entry.split(" --")
        assert options, f"{requirement}: no hash"
        assert all(re.fullmatch(r"hash=sha256:[0-9a-f]{64}", o.strip()) for o in options), (
            f"{requirement}: only --hash=sha256: options may follow a pin, got {options}"
        )
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)(\s*;.*)?", requirement.strip())
        assert match, f"{requirement!r} is not pinned with =="
        pins[canonicalize_name(match[1])] = match[2]
    return pins


RUNTIME = _pins("runtime.txt")


def test_every_direct_dependency_is_pinned_as_pyproject_pins_it() -> None:
    for line in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"pyproject.toml pins {line} exactly"
        assert RUNTIME.get(canonicalize_name(requirement.name)) == spec.version, line


def test_the_build_backend_is_pinned_with_hashes() -> None:
    build = _pins("build.txt")
    for line in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "=="
        assert build.get(canonicalize_name(requirement.name)) == spec.version, line
    assert canonicalize_name(PYPROJECT["build-system"]["build-backend"].split(".")[0]) in build


def _requires(name: str, extras: frozenset[str]) -> list[Requirement]:
    """What the installed ``name`` needs on this platform, with the ``extras`` asked of it."""
    found = [Requirement(r) for r in metadata.requires(name) or []]
    return [
        r
        for r in found
        if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in {"", *extras})
    ]


def test_the_pins_are_the_transitive_closure_of_pyproject_dependencies() -> None:
    """Walking the installed metadata from pyproject's dependencies (extras included) reaches
    exactly the pins: nothing missing (the image would lack it), nothing extra."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        todo += _requires(requirement.name, key[1])
    assert {name for name, _ in seen} == set(RUNTIME)


def test_the_pins_are_current_with_pyproject() -> None:
    """Re-resolve pyproject.toml with the committed pins as constraints: same file, or stale."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    if done.returncode == EXIT_UNRESOLVABLE:
        pytest.skip(
            "no package index reachable and uv's cache cannot resolve pyproject.toml; "
            f"the offline checks above still ran ({done.stderr.strip()[-200:]})"
        )
    assert done.returncode == 0, done.stdout + done.stderr
