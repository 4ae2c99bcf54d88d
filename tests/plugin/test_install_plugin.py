"""deploy/plugin/: the Plugin object an admin applies for the Plugins path is the one the code
builds, renders with kustomize offline, and is not part of deploy/ itself (the Plugin CRD exists
only on KubeVirt 1.9 and newer, so `kubectl apply -k deploy/` must not need it)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from kubevirt_cca.core.install.plugin_manifest import plugin_object
from tests.conftest import ROOT

PLUGIN_DIR = ROOT / "deploy" / "plugin"


def test_the_committed_plugin_object_is_the_built_one() -> None:
    [obj] = list(yaml.safe_load_all((PLUGIN_DIR / "plugin.yaml").read_text()))
    assert obj == plugin_object()
    kustomization = yaml.safe_load((PLUGIN_DIR / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["plugin.yaml"]


def test_deploy_itself_does_not_ship_the_plugin() -> None:
    kustomization = yaml.safe_load((ROOT / "deploy" / "kustomization.yaml").read_text())
    assert "plugin" not in kustomization["resources"]
    assert not any(r.startswith("plugin/") for r in kustomization["resources"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_it_offline() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(PLUGIN_DIR)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert list(yaml.safe_load_all(result.stdout)) == [plugin_object()]
