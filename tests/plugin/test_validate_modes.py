"""``kubevirt-cca validate`` honours the integration mode: --kubevirt-cr (the Plugins gate) and
--config (integrationMode, dialect)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.constants import HOOK_SIDECARS_ANNOTATION, INTEGRATION_ANNOTATION
from tests.admission.helpers import KUBEVIRT_CR, labelled, run, write

VMI = labelled(
    {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "realm", "namespace": "default"},
        "spec": {"domain": {"devices": {}, "resources": {}}},
    }
)


def cr(gates: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(KUBEVIRT_CR)
    out["spec"]["configuration"]["developerConfiguration"]["featureGates"] = gates
    return out


def config(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kubevirt-cca-config", "namespace": "kubevirt-cca"},
        "data": data,
    }


def validate(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    kubevirt_cr: dict[str, Any] | None = None,
    cca_config: dict[str, Any] | None = None,
) -> tuple[int, str, str]:
    """``validate`` over VMI, with the KubeVirt CR and the config written to files when given."""
    argv = ["validate", write(tmp_path, "vmi.yaml", VMI)]
    if kubevirt_cr is not None:
        argv += ["--kubevirt-cr", write(tmp_path, "kv.yaml", kubevirt_cr)]
    if cca_config is not None:
        argv += ["--config", write(tmp_path, "c.yaml", cca_config)]
    return run(capsys, *argv)


def test_plugins_gate_and_qemu_commandline_admit_through_the_plugin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = validate(
        tmp_path,
        capsys,
        kubevirt_cr=cr(["WorkloadEncryptionCCA", "Plugins"]),
        cca_config=config(dialect="qemu-commandline"),
    )
    assert code == 0, err
    annotations = yaml.safe_load(out)["metadata"]["annotations"]
    assert annotations[INTEGRATION_ANNOTATION] == "plugin"
    assert HOOK_SIDECARS_ANNOTATION not in annotations
    assert "integration mode plugin (auto: KubeVirt's Plugins gate is on)" in err
    assert "assuming kubevirt-cca's Plugin object (kubevirt-cca) is installed" in err


def test_plugins_gate_with_the_default_dialect_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = validate(
        tmp_path, capsys, kubevirt_cr=cr(["WorkloadEncryptionCCA", "Plugins"])
    )
    assert code == 1 and out == ""
    assert "integration mode plugin needs dialect qemu-commandline" in err


def test_sidecar_mode_by_config_keeps_the_hook_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = validate(
        tmp_path,
        capsys,
        kubevirt_cr=cr(["WorkloadEncryptionCCA", "Sidecar"]),
        cca_config=config(integrationMode="sidecar"),
    )
    assert code == 0, err
    annotations = yaml.safe_load(out)["metadata"]["annotations"]
    assert HOOK_SIDECARS_ANNOTATION in annotations and INTEGRATION_ANNOTATION not in annotations
    assert "integration mode sidecar (configured: integrationMode=sidecar)" in err


def test_plugin_mode_without_a_cr_assumes_the_plugins_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = validate(
        tmp_path, capsys, cca_config=config(integrationMode="plugin", dialect="qemu-commandline")
    )
    assert code == 0, err
    assert "assuming the WorkloadEncryptionCCA and Plugins feature gates are on" in err
    assert yaml.safe_load(out)["metadata"]["annotations"][INTEGRATION_ANNOTATION] == "plugin"


@pytest.mark.parametrize(
    ("obj", "phrase"),
    [
        (config(integrationMode="plugins"), "integrationMode: unknown value 'plugins'"),
        (config(dialect="x86"), "dialect"),
        (
            {"kind": "Secret", "metadata": {"name": "x"}},
            "expected the ConfigMap kubevirt-cca-config",
        ),
    ],
)
def test_bad_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], obj: dict[str, Any], phrase: str
) -> None:
    code, out, err = validate(tmp_path, capsys, cca_config=obj)
    assert code == 2 and out == ""
    assert err.startswith("kubevirt-cca validate: error: ") and phrase in err


def test_plugin_mode_on_kubevirt_1_9_is_admitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = cr(["WorkloadEncryptionCCA", "Plugins"])
    old["status"] = {"observedKubeVirtVersion": "v1.9.1"}
    code, out, err = validate(
        tmp_path, capsys, kubevirt_cr=old, cca_config=config(dialect="qemu-commandline")
    )
    assert code == 0, err
    assert "cca.kubevirt.io/integration: plugin" in out
