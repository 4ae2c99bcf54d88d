"""One version source: ``kubevirt_cca.__version__``; the package metadata and the default image
tag are read from it (docs/development.md, "One place per decision")."""

from __future__ import annotations

import importlib.metadata
import tomllib

from kubevirt_cca import __version__
from kubevirt_cca.constants import DEFAULT_HOOK_IMAGE
from tests.conftest import ROOT


def test_the_package_metadata_and_the_image_tag_carry_the_one_version() -> None:
    assert importlib.metadata.version("kubevirt-cca") == __version__
    assert f"kubevirt-cca:{__version__}" == DEFAULT_HOOK_IMAGE


def test_pyproject_writes_no_version_of_its_own() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "src/kubevirt_cca/__init__.py"
