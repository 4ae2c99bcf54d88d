"""Shared test fixtures: where ../shared is, and whether libvirt's schema is installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"
KUBEVIRT_FIXTURES = SHARED / "fixtures" / "kubevirt"
LIBVIRT_SCHEMAS = Path("/usr/share/libvirt/schemas")


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test with a reason when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"../shared is absent ({path} not found); run with the shared fixtures beside "
            "the project to include this test"
        )
    return path


def shared_files(*parts: str, pattern: str) -> list[Path]:
    """Files under ../shared for parametrising at collection time (empty when absent)."""
    folder = SHARED.joinpath(*parts)
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


@pytest.fixture(scope="session")
def libvirt_schema_dir() -> Path:
    """libvirt's RNG schemas (Debian libvirt-clients); skip when not installed."""
    if not (LIBVIRT_SCHEMAS / "domain.rng").exists() or shutil.which("xmllint") is None:
        pytest.skip(
            "libvirt's RNG schema or xmllint is not installed "
            "(apt-get install libvirt-clients libxml2-utils; .ci/run does this)"
        )
    return LIBVIRT_SCHEMAS
