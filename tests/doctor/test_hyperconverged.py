"""doctor on OpenShift / HCO (issue 23, item 4): a KubeVirt CR the HyperConverged operator owns
is named as such, and gates that are off get HCO's jsonpatch annotation instead of a
``kubectl patch`` HCO would revert.

The oracle for the annotation is an independent RFC 6902 implementation (``jsonpatch``): its
operations, applied to the KubeVirt CR as HCO does, give a CR on which doctor finds the gates on.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonpatch
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kubevirt_cca.cli.doctor import diagnose, expected_from_args
from kubevirt_cca.core.doctor import Check, Status
from tests.doctor.cluster import load, make_ca
from tests.doctor.scenarios import HCO_NAMESPACE, hco_cluster, hco_kubevirt

CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


@pytest.fixture(scope="module")
def ca() -> CA:
    return make_ca()


async def doctor(kmock: Any, objects: list[dict[str, Any]]) -> dict[str, Check]:
    import argparse

    load(kmock, objects)
    expected = expected_from_args(
        argparse.Namespace(namespace="kubevirt-cca", kubevirt_namespace=HCO_NAMESPACE)
    )
    checks = await diagnose(server=str(kmock.url), kubeconfig=None, expected=expected)
    return {check.name: check for check in checks}


def annotation(fix: str) -> list[dict[str, Any]]:
    found = re.match(
        r"kubectl annotate --overwrite -n kubevirt-hyperconverged hco kubevirt-hyperconverged "
        r"kubevirt\.kubevirt\.io/jsonpatch='(\[.*?\])' \(",
        fix,
    )
    assert found is not None, fix
    operations: list[dict[str, Any]] = json.loads(found.group(1))
    return operations


@pytest.mark.asyncio
async def test_the_kubevirt_check_names_the_hyperconverged_owner(kmock: Any, ca: CA) -> None:
    objects = hco_cluster(ca, hco_kubevirt(["CPUManager", "WorkloadEncryptionCCA", "Sidecar"]))
    checks = await doctor(kmock, objects)
    assert {c.status for c in checks.values()} == {Status.OK}, checks
    assert checks["KubeVirt"].details == (
        "managed by the HyperConverged operator: HyperConverged "
        "kubevirt-hyperconverged/kubevirt-hyperconverged (ownerReference to HyperConverged "
        "hco.kubevirt.io/v1beta1) reverts edits of this CR; change it through the HyperConverged "
        "CR (docs/install.md, 'On OpenShift / with HCO')",
    )


@pytest.mark.asyncio
async def test_gates_off_under_hco_get_the_jsonpatch_annotation(kmock: Any, ca: CA) -> None:
    cr = hco_kubevirt()
    checks = await doctor(kmock, hco_cluster(ca, cr))
    gates = checks["feature gates"]
    assert gates.status is Status.FAIL
    assert gates.fix == (
        "kubectl annotate --overwrite -n kubevirt-hyperconverged hco kubevirt-hyperconverged "
        "kubevirt.kubevirt.io/jsonpatch='["
        '{"op":"add","path":"/spec/configuration/developerConfiguration/featureGates/-",'
        '"value":"WorkloadEncryptionCCA"},'
        '{"op":"add","path":"/spec/configuration/developerConfiguration/featureGates/-",'
        '"value":"Sidecar"}]\' '
        "(HCO applies it to the KubeVirt CR it generates; --overwrite replaces an annotation "
        "already there, so put its operations in the list too: kubectl get hco -n "
        "kubevirt-hyperconverged kubevirt-hyperconverged -o jsonpath='{.metadata.annotations."
        "kubevirt\\.kubevirt\\.io/jsonpatch}'. HCO's documentation says a jsonpatch annotation "
        "makes the cluster unsupported; docs/install.md, 'On OpenShift / with HCO')"
    )
    assert "kubectl patch kubevirt" not in gates.fix


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("case", "cr"),
    [
        ("owner reference only", hco_kubevirt(labels=False)),
        ("labels only", hco_kubevirt(owner_reference=False)),
        ("one gate on", hco_kubevirt(["Snapshot", "Sidecar"])),
        (
            "a gate disabled",
            hco_kubevirt(
                ["Snapshot", "EnableCCA", "Sidecar"], disabled=["LiveMigration", "EnableCCA"]
            ),
        ),
        ("no featureGates list", hco_kubevirt([])),
    ],
)
async def test_the_annotation_turns_the_gates_on(
    kmock: Any, ca: CA, case: str, cr: dict[str, Any]
) -> None:
    """Applied to the CR as HCO applies it, the annotation's patch leaves doctor content."""
    if case == "no featureGates list":
        del cr["spec"]["configuration"]["developerConfiguration"]["featureGates"]
    before = await doctor(kmock, hco_cluster(ca, copy.deepcopy(cr)))
    fix = before["feature gates"].fix
    assert before["feature gates"].status is Status.FAIL and fix is not None
    patched = jsonpatch.apply_patch(copy.deepcopy(cr), annotation(fix))
    after = await doctor(kmock, hco_cluster(ca, patched))
    assert after["feature gates"].status is Status.OK, after["feature gates"]
    developer = patched["spec"]["configuration"]["developerConfiguration"]
    original = cr["spec"]["configuration"]["developerConfiguration"]
    # Nothing else changed: the gates that were there stay, in their order.
    kept = [g for g in original.get("featureGates", []) if g in developer["featureGates"]]
    assert kept == original.get("featureGates", [])
    if case == "a gate disabled":
        assert developer["disabledFeatureGates"] == ["LiveMigration"]


@pytest.mark.asyncio
async def test_a_plain_kubevirt_cr_keeps_the_kubectl_patch(kmock: Any, ca: CA) -> None:
    """The control: without HCO's marks the fix is the merge patch of the KubeVirt CR."""
    cr = hco_kubevirt(owner_reference=False, labels=False)
    checks = await doctor(kmock, hco_cluster(ca, cr))
    assert checks["KubeVirt"].details == ()
    fix = checks["feature gates"].fix
    assert fix is not None
    assert fix.startswith(
        f"kubectl patch kubevirt kubevirt-kubevirt-hyperconverged -n {HCO_NAMESPACE} --type merge"
    )


@pytest.mark.asyncio
async def test_unreadable_gates_under_hco_point_at_the_annotation(kmock: Any, ca: CA) -> None:
    """A gate that is not a string (a typo in a jsonpatch annotation's value): the fix is the
    annotation, not an edit of the CR HCO would revert."""
    cr = hco_kubevirt()
    cr["spec"]["configuration"]["developerConfiguration"]["featureGates"].append(7)
    gates = (await doctor(kmock, hco_cluster(ca, cr)))["feature gates"]
    assert gates.status is Status.FAIL
    assert gates.summary.startswith("unreadable: ")
    assert gates.fix == (
        "correct the kubevirt.kubevirt.io/jsonpatch annotation of HyperConverged "
        "kubevirt-hyperconverged/kubevirt-hyperconverged (an edit of the KubeVirt CR is "
        "reverted): featureGates and disabledFeatureGates are lists of gate names"
    )
