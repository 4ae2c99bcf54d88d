"""KubeVirt accepts what we admit: virt-api's own admission (``admit``) on our objects.

Every object kubevirt-cca's admission lets through — VMIs (mutated by us), VMs, VMI replica
sets, VM pools, and our Plugin object (deploy/plugin/) — goes through virt-api's mutating and
validating admission of both KubeVirt versions with the feature gates docs/install.md tells
admins to enable: ``WorkloadEncryptionCCA,Sidecar`` (sidecar mode) or
``WorkloadEncryptionCCA,Plugins`` (plugin mode). With a gate missing, the refusals are the ones
docs/admin.md and docs/plugins.md quote. ``admit`` costs ~3 s per start: one run per version
and gate set, all objects at once.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    PLUGINS_FEATURE_GATE,
    SIDECAR_FEATURE_GATE,
)
from kubevirt_cca.core.admission.gates import ClusterView, FeatureGates
from kubevirt_cca.core.admission.validate import validate_template
from tests.conftest import ROOT
from tests.peers.kubevirt.support import (
    PLUGIN_CLUSTER,
    SIDECAR_CLUSTER,
    VERSIONS,
    PeerBins,
    admitted_vmi,
    shape_manifests,
    vmi_from,
)

# Gates a shape needs for itself, nothing to do with CCA (vsock, downward metrics).
SHAPE_GATES = ("VSOCK", "DownwardMetrics")
SIDECAR_GATES = (CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE, *SHAPE_GATES)
PLUGIN_GATES = (CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE, *SHAPE_GATES)
NO_HOOK_GATE = (CCA_FEATURE_GATE, *SHAPE_GATES)
# What virt-api answers when our hook sidecar annotation meets a cluster without the Sidecar
# gate (quoted in docs/admin.md), and our Plugin object without the Plugins gate (plugins.md).
KUBEVIRT_SIDECAR_REFUSAL = (
    "sidecar feature gate is not enabled in kubevirt-config, invalid "
    "entry metadata.annotations.hooks.kubevirt.io/hookSidecars"
)
KUBEVIRT_PLUGINS_REFUSAL = "Plugins feature gate is not enabled"
TEMPLATE_SHAPES = ("example-vmi-cca", "multi-nic", "kernel-boot", "small-memory")


def _owners(name: str, vmi: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A VM, a VMI replica set and a VM pool whose template is ``vmi``."""
    template = {
        "metadata": {k: v for k, v in vmi["metadata"].items() if k in ("labels", "annotations")},
        "spec": copy.deepcopy(vmi["spec"]),
    }
    meta = {"name": name, "namespace": "peers"}
    selector = {"matchLabels": {"app": name}}
    labelled = copy.deepcopy(template)
    labelled["metadata"].setdefault("labels", {})["app"] = name
    return {
        f"vm-{name}": {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": meta,
            "spec": {"runStrategy": "Always", "template": template},
        },
        f"rs-{name}": {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstanceReplicaSet",
            "metadata": meta,
            "spec": {"replicas": 2, "selector": selector, "template": labelled},
        },
        f"pool-{name}": {
            "apiVersion": "pool.kubevirt.io/v1beta1",
            "kind": "VirtualMachinePool",
            "metadata": meta,
            "spec": {
                "replicas": 2,
                "selector": selector,
                "virtualMachineTemplate": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"runStrategy": "Always", "template": labelled},
                },
            },
        },
    }


def _plugin_object() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "deploy" / "plugin" / "plugin.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def objects() -> dict[str, dict[str, dict[str, Any]]]:
    """Gate set name -> file stem -> object, as our admission lets it through."""
    shapes = {name: vmi_from(m) for name, m in shape_manifests().items()}
    sidecar: dict[str, dict[str, Any]] = {}
    plugin: dict[str, dict[str, Any]] = {}
    for name, vmi in shapes.items():
        sidecar[f"vmi-{name}"] = admitted_vmi(vmi, SIDECAR_CLUSTER)
        plugin[f"vmi-{name}"] = admitted_vmi(vmi, PLUGIN_CLUSTER)
    for name in TEMPLATE_SHAPES:
        for stem, owner in _owners(name, shapes[name]).items():
            for cluster, into in ((SIDECAR_CLUSTER, sidecar), (PLUGIN_CLUSTER, plugin)):
                assert validate_template(owner, operation="CREATE", cluster=cluster) == []
                into[stem] = owner  # our webhook validates templates; it does not mutate them
    for manifest_name in ("vm-cca-params",):
        manifest = yaml.safe_load((ROOT / "examples" / f"{manifest_name}.yaml").read_text())
        sidecar[f"example-{manifest_name}"] = manifest
        plugin[f"example-{manifest_name}"] = manifest
    plugin["plugin-kubevirt-cca"] = _plugin_object()
    no_hook_gate = {
        stem: sidecar[stem]
        for stem in ("vmi-example-vmi-cca", "vmi-multi-nic", "vm-example-vmi-cca")
    }
    no_hook_gate["plugin-kubevirt-cca"] = _plugin_object()
    return {"sidecar": sidecar, "plugin": plugin, "no-hook-gate": no_hook_gate}


GATES = {"sidecar": SIDECAR_GATES, "plugin": PLUGIN_GATES, "no-hook-gate": NO_HOOK_GATE}
Verdicts = dict[str, dict[str, Any]]


def _admit(bins: PeerBins, gates: tuple[str, ...], folder: Path) -> Verdicts:
    done = subprocess.run(
        [str(bins.api), "admit", "-arch", "arm64", "-feature-gates", ",".join(gates), str(folder)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode in (0, 1), f"admit {bins.version}: {done.stderr[-2000:]}"
    verdicts = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return {Path(v["file"]).stem: v for v in verdicts}


@pytest.fixture(scope="session")
def verdicts(
    peer_bins: dict[str, PeerBins], tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Verdicts]:
    """(version, gate set) -> file stem -> virt-api's verdict."""
    runs: list[tuple[str, str, Path]] = []
    for gate_set, objs in objects().items():
        folder = tmp_path_factory.mktemp(f"admit-{gate_set}")
        for stem, obj in objs.items():
            (folder / f"{stem}.json").write_text(json.dumps(obj))
        runs.extend((version, gate_set, folder) for version in VERSIONS)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {(v, g): pool.submit(_admit, peer_bins[v], GATES[g], f) for v, g, f in runs}
        return {key: future.result() for key, future in futures.items()}


def _describe(verdict: Mapping[str, Any]) -> str:
    return f"{verdict.get('stage')} {verdict.get('message')} {verdict.get('causes')}"


ALLOWED_CASES = [
    (v, g, s) for g in ("sidecar", "plugin") for s in sorted(objects()[g]) for v in VERSIONS
]


@pytest.mark.parametrize(
    ("version", "gate_set", "stem"),
    ALLOWED_CASES,
    ids=[f"{v}-{g}-{s}" for v, g, s in ALLOWED_CASES],
)
def test_kubevirt_admits_what_we_admit(
    version: str, gate_set: str, stem: str, verdicts: dict[tuple[str, str], Verdicts]
) -> None:
    verdict = verdicts[(version, gate_set)][stem]
    assert verdict.get("error") is None, verdict
    assert verdict["allowed"] is True, _describe(verdict)


@pytest.mark.parametrize("version", VERSIONS)
def test_without_the_sidecar_gate_kubevirt_refuses_our_vmis_as_documented(
    version: str, verdicts: dict[tuple[str, str], Verdicts]
) -> None:
    got = verdicts[(version, "no-hook-gate")]
    for stem in ("vmi-example-vmi-cca", "vmi-multi-nic"):
        assert got[stem]["allowed"] is False
        assert got[stem]["message"] == KUBEVIRT_SIDECAR_REFUSAL
        assert [c.get("field") for c in got[stem]["causes"]] == ["metadata.annotations"]
    # KubeVirt checks the gate only when a VMI is created: a VM passes. Our webhook is what
    # refuses it early (docs/admin.md), so the owner does not meet a VM that never starts.
    assert got["vm-example-vmi-cca"]["allowed"] is True
    cluster = ClusterView(gates=FeatureGates(enabled=frozenset({CCA_FEATURE_GATE})))
    ours = [
        v.message
        for v in validate_template(
            objects()["sidecar"]["vm-example-vmi-cca"], operation="CREATE", cluster=cluster
        )
    ]
    assert any(
        m.startswith("Sidecar feature gate is not enabled in kubevirt-config") for m in ours
    ), ours


@pytest.mark.parametrize("version", VERSIONS)
def test_without_the_plugins_gate_kubevirt_refuses_our_plugin_object(
    version: str, verdicts: dict[tuple[str, str], Verdicts]
) -> None:
    verdict = verdicts[(version, "no-hook-gate")]["plugin-kubevirt-cca"]
    assert verdict["allowed"] is False
    assert verdict["message"] == KUBEVIRT_PLUGINS_REFUSAL


def test_the_documented_refusals_are_quoted_in_the_docs() -> None:
    assert KUBEVIRT_SIDECAR_REFUSAL in (ROOT / "docs" / "admin.md").read_text()
    assert KUBEVIRT_PLUGINS_REFUSAL in (ROOT / "docs" / "plugins.md").read_text()
