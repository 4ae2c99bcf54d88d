"""doctor on the Plugins path (docs/plugins.md), against kmock over real HTTP: the active mode and
why, kubevirt-cca's Plugin object and its failure strategy, and the mixed state."""

from __future__ import annotations

import argparse
import copy
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kubevirt_cca.cli.doctor import diagnose, expected_from_args
from kubevirt_cca.core.doctor import Check, Status
from kubevirt_cca.core.install.plugin_manifest import plugin_object
from tests.doctor.cluster import find, kubevirt, load, make_ca, ready_cluster
from tests.doctor.scenarios import replace
from tests.webhook.cluster import forbidden

pytestmark = pytest.mark.asyncio

CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
Objects = list[dict[str, Any]]
FOREIGN = {
    "apiVersion": "plugin.kubevirt.io/v1alpha1",
    "kind": "Plugin",
    "metadata": {"name": "network-passt"},
    "spec": {"failureStrategy": "Ignore"},
}


@pytest.fixture(scope="module")
def ca() -> CA:
    return make_ca()


async def doctor(kmock: Any, objects: Objects) -> dict[str, Check]:
    load(kmock, objects)
    expected = expected_from_args(
        argparse.Namespace(namespace="kubevirt-cca", kubevirt_namespace="kubevirt")
    )
    checks = await diagnose(server=str(kmock.url), kubeconfig=None, expected=expected)
    return {check.name: check for check in checks}


def plugin_ready(
    ca: CA,
    *,
    plugin: dict[str, Any] | None = None,
    dialect: str = "qemu-commandline",
    version: str = "v1.10.0",
) -> Objects:
    """KubeVirt 1.10, Plugins on, Sidecar off, qemu-commandline, deploy/plugin/ applied."""
    objects = ready_cluster(ca)
    replace(objects, kubevirt(["WorkloadEncryptionCCA", "Plugins"], version=version))
    # the labeller asks the libvirt of the KubeVirt release that runs
    spec = find(objects, "DaemonSet")["spec"]["template"]["spec"]
    init = next(c for c in spec["initContainers"] if c["name"] == "domcapabilities")
    init["image"] = init["image"].rsplit(":", 1)[0] + ":" + version
    find(objects, "ConfigMap")["data"]["dialect"] = dialect
    objects.append(plugin if plugin is not None else plugin_object())
    return objects


async def test_a_plugin_mode_cluster_is_ready(kmock: Any, ca: CA) -> None:
    checks = await doctor(kmock, plugin_ready(ca))
    assert {n: c.status for n, c in checks.items() if c.status is not Status.OK} == {}
    assert checks["integration mode"].summary == "plugin (auto: KubeVirt's Plugins gate is on)"
    assert checks["feature gates"].summary == "WorkloadEncryptionCCA and Plugins are on"
    plugins = checks["KubeVirt plugins"]
    assert plugins.summary.startswith("kubevirt-cca's Plugin kubevirt-cca (failureStrategy Fail)")
    assert plugins.details == (
        "Plugin kubevirt-cca (kubevirt-cca's): failureStrategy Fail, 1 domain hook(s)",
    )


async def test_plugin_mode_without_our_plugin_object_fails(kmock: Any, ca: CA) -> None:
    objects = plugin_ready(ca)
    objects.remove(find(objects, "Plugin"))
    objects.append(FOREIGN)
    checks = await doctor(kmock, objects)
    plugins = checks["KubeVirt plugins"]
    assert plugins.status is Status.FAIL
    assert "kubevirt-cca's Plugin object kubevirt-cca is missing" in plugins.summary
    assert plugins.fix == "kubectl apply -k deploy/plugin/"
    assert plugins.details == ("Plugin network-passt: failureStrategy Ignore, 0 domain hook(s)",)


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (
            lambda p: p["spec"].update(failureStrategy="Ignore"),
            "spec.failureStrategy is 'Ignore', expected 'Fail'",
        ),
        (
            lambda p: p["spec"]["domainHooks"][0].update(failureStrategy="Ignore"),
            "the domain hook's failureStrategy is 'Ignore', expected 'Fail'",
        ),
        (
            lambda p: p["spec"]["domainHooks"][0]["sidecar"].update(
                socketPath="/var/run/kubevirt-plugin/x/x.sock"
            ),
            "no domain hook with sidecar.socketPath /var/run/kubevirt-plugin/kubevirt-cca/",
        ),
    ],
)
async def test_a_plugin_object_that_fails_open_fails(
    kmock: Any, ca: CA, change: Any, detail: str
) -> None:
    plugin = copy.deepcopy(plugin_object())
    change(plugin)
    checks = await doctor(kmock, plugin_ready(ca, plugin=plugin))
    check = checks["KubeVirt plugins"]
    assert check.status is Status.FAIL
    assert "does not fail closed" in check.summary
    assert any(d.startswith(detail) for d in check.details), check.details


async def test_plugin_mode_with_the_vep_dialect_fails(kmock: Any, ca: CA) -> None:
    checks = await doctor(kmock, plugin_ready(ca, dialect="vep"))
    mode = checks["integration mode"]
    assert mode.status is Status.FAIL
    assert mode.summary.endswith("CCA VMIs are refused")
    assert any("needs dialect qemu-commandline" in d for d in mode.details)
    assert "integrationMode: sidecar" in (mode.fix or "")


async def test_the_mixed_state_before_kubevirt_1_10_fails(kmock: Any, ca: CA) -> None:
    """On 1.9 the rebuild drops the legacy hook's qemu:commandline: a plain VM; refused."""
    objects = ready_cluster(ca)
    replace(objects, kubevirt(["WorkloadEncryptionCCA", "Sidecar", "Plugins"], version="v1.9.0"))
    find(objects, "ConfigMap")["data"].update(integrationMode="sidecar", dialect="qemu-commandline")
    objects.append(FOREIGN)
    mode = (await doctor(kmock, objects))["integration mode"]
    assert mode.status is Status.FAIL
    assert any("this KubeVirt's version is 'v1.9.0'" in d for d in mode.details), mode.details


async def test_the_tolerated_mixed_state_warns(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    replace(objects, kubevirt(["WorkloadEncryptionCCA", "Sidecar", "Plugins"], version="v1.10.0"))
    data = find(objects, "ConfigMap")["data"]
    data.update(integrationMode="sidecar", dialect="qemu-commandline")
    objects.append(FOREIGN)
    checks = await doctor(kmock, objects)
    mode = checks["integration mode"]
    assert mode.status is Status.WARN
    assert mode.summary == "sidecar (configured: integrationMode=sidecar)"
    assert mode.details[0].startswith("mixed state:")
    assert "KubeVirt 1.10 and newer" in mode.details[0]
    assert checks["KubeVirt plugins"].status is Status.WARN


async def test_plugin_mode_on_kubevirt_1_9_is_ready(kmock: Any, ca: CA) -> None:
    """KubeVirt 1.9.0 keeps a plugin's <qemu:commandline>: the Plugins path carries a Realm."""
    checks = await doctor(kmock, plugin_ready(ca, version="v1.9.0"))
    mode = checks["integration mode"]
    assert mode.status is Status.OK, mode.details


async def test_configured_plugin_mode_without_the_gate_fails_the_gates(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    replace(objects, kubevirt(version="v1.10.0"))
    find(objects, "ConfigMap")["data"].update(integrationMode="plugin", dialect="qemu-commandline")
    objects.append(plugin_object())
    checks = await doctor(kmock, objects)
    gates = checks["feature gates"]
    assert gates.status is Status.FAIL
    assert gates.summary.startswith("off: Plugins")
    assert '"featureGates":["LiveMigration","WorkloadEncryptionCCA","Sidecar","Plugins"]' in (
        gates.fix or ""
    )
    # reported once, by the feature gates check
    assert checks["integration mode"].status is Status.OK


async def test_unlistable_plugins_with_the_gate_fail(kmock: Any, ca: CA) -> None:
    (
        kmock["list plugin.kubevirt.io/v1alpha1/plugins"]
        << 403
        << forbidden("plugins.plugin.kubevirt.io is forbidden")
    )
    objects = plugin_ready(ca)
    objects.remove(find(objects, "Plugin"))
    checks = await doctor(kmock, objects)
    mode = checks["integration mode"]
    assert mode.status is Status.FAIL
    assert any("cannot list KubeVirt Plugin objects" in d for d in mode.details)
