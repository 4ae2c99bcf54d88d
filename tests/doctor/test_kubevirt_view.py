"""doctor reads KubeVirt the way admission does (the webhook's builder of the cluster view).

Against kmock's Kubernetes emulator over real HTTP: a decoy KubeVirt CR in another namespace
does not change doctor's answer and is flagged; each name of the CCA gate is accepted and named;
a KubeVirt whose own VMI schema knows CCA is warned about; unreadable gates fail as admission
refuses.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kubevirt_cca.cli.doctor import diagnose, expected_from_args
from kubevirt_cca.constants import KUBEVIRT_VMI_CRD
from kubevirt_cca.core.doctor import Check, Status
from tests.conftest import shared_path
from tests.doctor.cluster import kubevirt, load, make_ca, ready_cluster
from tests.doctor.scenarios import replace

CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
Objects = list[dict[str, Any]]
pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="session")
def ca() -> CA:
    return make_ca()


async def doctor(
    kmock: Any, objects: Objects, *, kubevirt_namespace: str = "kubevirt"
) -> dict[str, Check]:
    load(kmock, objects)
    expected = expected_from_args(
        argparse.Namespace(namespace="kubevirt-cca", kubevirt_namespace=kubevirt_namespace)
    )
    checks = await diagnose(server=str(kmock.url), kubeconfig=None, expected=expected)
    return {check.name: check for check in checks}


def decoy(gates: list[str]) -> dict[str, Any]:
    """A KubeVirt CR elsewhere, created long before the real one."""
    cr = kubevirt(gates)
    cr["metadata"].update(
        name="decoy", namespace="not-kubevirt", creationTimestamp="2020-01-01T00:00:00Z"
    )
    return cr


async def test_a_decoy_cr_elsewhere_changes_nothing_and_is_flagged(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    replace(objects, kubevirt(["LiveMigration"]))  # KubeVirt's own CR: our gates off
    objects.append(decoy(["WorkloadEncryptionCCA", "Sidecar"]))
    checks = await doctor(kmock, objects)
    gates = checks["feature gates"]
    assert gates.status is Status.FAIL
    assert gates.summary.startswith("off: WorkloadEncryptionCCA, Sidecar")
    assert gates.fix is not None and "-n kubevirt " in gates.fix
    cr = checks["KubeVirt"]
    assert cr.status is Status.WARN
    assert cr.summary == "KubeVirt v1.8.0 (Deployed), KubeVirt CR kubevirt/kubevirt"
    assert cr.details == (
        "KubeVirt CR not-kubevirt/decoy is ignored: admission reads only kubevirt/kubevirt (the "
        "oldest in namespace kubevirt that is not being deleted), and so does KubeVirt",
    )


async def test_a_decoy_with_the_gates_off_does_not_fail_a_ready_cluster(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    objects.append(decoy(["LiveMigration"]))
    checks = await doctor(kmock, objects)
    assert checks["feature gates"].status is Status.OK
    assert checks["KubeVirt"].status is Status.WARN
    assert [n for n, c in checks.items() if c.status is not Status.OK] == ["KubeVirt"]


async def test_the_webhooks_namespace_wins_over_doctors_option(kmock: Any, ca: CA) -> None:
    """The webhook Deployment says where admission reads the CR; doctor follows it."""
    checks = await doctor(kmock, ready_cluster(ca), kubevirt_namespace="somewhere-else")
    assert checks["KubeVirt"].status is Status.OK
    assert checks["feature gates"].status is Status.OK


@pytest.mark.parametrize("name", ["EnableCCA", "EnableARMCCA"])
async def test_each_name_of_the_cca_gate_is_accepted_and_named(
    kmock: Any, ca: CA, name: str
) -> None:
    objects = ready_cluster(ca)
    replace(objects, kubevirt(["LiveMigration", name, "Sidecar"]))
    checks = await doctor(kmock, objects)
    gates = checks["feature gates"]
    assert gates.status is Status.OK
    assert gates.summary == f"WorkloadEncryptionCCA (as {name}) and Sidecar are on"


async def test_a_cca_gate_disabled_under_another_name_is_off(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    replace(objects, kubevirt(["EnableARMCCA", "Sidecar"], disabled=["WorkloadEncryptionCCA"]))
    gates = (await doctor(kmock, objects))["feature gates"]
    assert gates.status is Status.FAIL
    assert gates.details == ("WorkloadEncryptionCCA is listed in disabledFeatureGates",)
    assert gates.fix is not None
    assert '"featureGates":["EnableARMCCA","Sidecar"],"disabledFeatureGates":[]' in gates.fix


async def test_a_non_string_gate_fails_as_admission_refuses(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    replace(objects, kubevirt(["WorkloadEncryptionCCA", "Sidecar", 7]))  # type: ignore[list-item]
    gates = (await doctor(kmock, objects))["feature gates"]
    assert gates.status is Status.FAIL
    assert gates.summary.startswith(
        "unreadable: KubeVirt CR: spec.configuration."
        "developerConfiguration.featureGates is not a list of strings"
    )


def vmi_crd(*, native: bool) -> dict[str, Any]:
    """KubeVirt's VMI CRD with its real schema (../shared), optionally knowing CCA itself."""
    path = shared_path("fixtures", "kubevirt", "crd-schemas", "virtualmachineinstance.yaml")
    schema = copy.deepcopy(yaml.safe_load(path.read_text())["openAPIV3Schema"])
    if native:
        launch = schema["properties"]["spec"]["properties"]["domain"]["properties"][
            "launchSecurity"
        ]
        launch["properties"]["cca"] = {
            "type": "object",
            "properties": {"measurementAlgo": {"type": "string"}},
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": KUBEVIRT_VMI_CRD},
        "spec": {
            "group": "kubevirt.io",
            "names": {"kind": "VirtualMachineInstance", "plural": "virtualmachineinstances"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


@pytest.mark.parametrize("native", [False, True])
async def test_a_kubevirt_that_knows_cca_itself_is_warned_about(
    kmock: Any, ca: CA, native: bool
) -> None:
    objects = ready_cluster(ca)
    objects.append(vmi_crd(native=native))
    gates = (await doctor(kmock, objects))["feature gates"]
    if not native:
        assert gates.status is Status.OK and gates.details == ()
        return
    assert gates.status is Status.WARN
    assert gates.details == (
        f"KubeVirt's own VMI schema ({KUBEVIRT_VMI_CRD}, version v1) has "
        "spec.domain.launchSecurity.cca: this KubeVirt implements CCA itself, so with "
        "kubevirt-cca installed two implementations would act on one VM",
    )
    assert gates.fix is not None and "docs/admin.md" in gates.fix
