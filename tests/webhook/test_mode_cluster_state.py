"""Mode selection end to end: the watch-fed cluster state against kmock's Kubernetes emulator
over real HTTP, with the Plugins gate turned on and off, Plugin objects created and deleted, and
integrationMode set and unset; every step judged by admission as the webhook would."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import aiohttp
import kmock
import pytest
from kmock import ResourceInfo

from kubevirt_cca.adapters.cluster_state import ClusterState
from kubevirt_cca.adapters.kube import async_client
from kubevirt_cca.constants import HOOK_SIDECARS_ANNOTATION, INTEGRATION_ANNOTATION
from kubevirt_cca.core.admission.admit import Verdict, admit
from kubevirt_cca.core.admission.reviews import parse_review
from kubevirt_cca.core.cluster.integration import IntegrationMode
from kubevirt_cca.core.install.plugin_manifest import plugin_object
from kubevirt_cca.core.vmi.webhook_table import Endpoint
from tests.admission.helpers import KUBEVIRT_CR, labelled, review
from tests.webhook.cluster import CONFIG_MAPS, KUBEVIRTS, VMI, eventually, forbidden

pytestmark = pytest.mark.asyncio

PLUGINS = "/apis/plugin.kubevirt.io/v1alpha1/plugins"
CONFIG = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "kubevirt-cca-config", "namespace": "kubevirt-cca"},
    "data": {"dialect": "qemu-commandline"},
}


def kubevirt(gates: list[str], version: str = "v1.10.0") -> dict[str, Any]:
    cr = copy.deepcopy(KUBEVIRT_CR)
    cr["spec"]["configuration"]["developerConfiguration"]["featureGates"] = gates
    cr["status"] = {"phase": "Deployed", "observedKubeVirtVersion": version}
    return cr


def mutate(state: ClusterState) -> Verdict:
    body = json.dumps(review(labelled(VMI))).encode()
    return admit(Endpoint.MUTATE_VMI, parse_review(body), state.view())


def causes(state: ClusterState) -> list[str]:
    return [c.message for c in mutate(state).causes]


def mode(state: ClusterState) -> IntegrationMode | None:
    decision = state.view().mode
    return decision.mode if decision is not None else None


def patch_ops(verdict: Verdict) -> list[dict[str, Any]]:
    raw = verdict.response.get("patch")
    return json.loads(base64.b64decode(raw)) if raw else []


def annotations_added(verdict: Verdict) -> set[str]:
    added: set[str] = set()
    for op in patch_ops(verdict):
        if op["path"] == "/metadata/annotations":
            added |= set(op["value"])
        elif op["path"].startswith("/metadata/annotations/"):
            added.add(op["path"].rsplit("/", 1)[1].replace("~1", "/"))
    return added


async def test_the_mode_follows_gates_plugins_and_config(
    kmock: kmock.KubernetesEmulator, state: ClusterState
) -> None:
    kmock.objects["kubevirt.io/v1/kubevirts", "kubevirt", "kubevirt"] = kubevirt(
        ["WorkloadEncryptionCCA", "Sidecar"]
    )
    await state.start()
    await eventually(lambda: state.ready)
    # 1. Sidecar on, Plugins off, integrationMode unset: auto resolves to sidecar.
    await eventually(lambda: mode(state) is IntegrationMode.SIDECAR)
    assert causes(state) == []
    assert HOOK_SIDECARS_ANNOTATION in annotations_added(mutate(state))
    async with aiohttp.ClientSession(base_url=str(kmock.url)) as http:
        # 2. Plugins on, Sidecar off: auto resolves to plugin, which lacks our Plugin object and
        #    the qemu-commandline dialect: CCA VMIs refused, saying both.
        await http.patch(
            f"{KUBEVIRTS}/kubevirt",
            json={
                "spec": {
                    "configuration": {
                        "developerConfiguration": {
                            "featureGates": ["WorkloadEncryptionCCA", "Plugins"]
                        }
                    }
                }
            },
        )
        await eventually(lambda: mode(state) is IntegrationMode.PLUGIN)
        refused = causes(state)
        assert any("needs dialect qemu-commandline" in m for m in refused), refused
        assert any("needs kubevirt-cca's Plugin object" in m for m in refused), refused
        # 3. The admin sets the dialect and applies deploy/plugin/: admitted through the plugin.
        await http.post(CONFIG_MAPS, json=CONFIG)
        response = await http.post(PLUGINS, json=plugin_object())
        assert response.status in (200, 201), await response.text()
        await eventually(lambda: causes(state) == [])
        added = annotations_added(mutate(state))
        assert INTEGRATION_ANNOTATION in added and HOOK_SIDECARS_ANNOTATION not in added
        # 4. integrationMode: sidecar with Plugins on and a Plugin object: the mixed state, and
        #    no Sidecar gate either; refused with both reasons.
        await http.patch(
            f"{CONFIG_MAPS}/kubevirt-cca-config",
            json={"data": {"integrationMode": "sidecar", "dialect": "vep"}},
        )
        await eventually(lambda: mode(state) is IntegrationMode.SIDECAR)
        refused = causes(state)
        assert any(m.startswith("Sidecar feature gate is not enabled") for m in refused)
        assert any(m.startswith("mixed state:") for m in refused), refused
        # 5. A value kubevirt-cca does not know: the ConfigMap is invalid, refused.
        await http.patch(
            f"{CONFIG_MAPS}/kubevirt-cca-config", json={"data": {"integrationMode": "plugins"}}
        )
        await eventually(
            lambda: any("integrationMode: unknown value 'plugins'" in m for m in causes(state))
        )
        # 6. integrationMode: plugin, the Plugin object deleted: refused again (fail closed).
        await http.patch(
            f"{CONFIG_MAPS}/kubevirt-cca-config",
            json={"data": {"integrationMode": "plugin", "dialect": "qemu-commandline"}},
        )
        await eventually(lambda: causes(state) == [])
        # 7. KubeVirt 1.9 keeps a plugin's <qemu:commandline>: plugin mode works there too.
        await http.patch(
            f"{KUBEVIRTS}/kubevirt", json={"status": {"observedKubeVirtVersion": "v1.9.2"}}
        )
        await eventually(lambda: state.view().kubevirt_version == "v1.9.2")
        assert causes(state) == []
        await http.delete(f"{PLUGINS}/kubevirt-cca")
        await eventually(
            lambda: any("needs kubevirt-cca's Plugin object" in m for m in causes(state))
        )


async def test_unlistable_plugins_fail_closed_where_they_matter(
    kmock: kmock.KubernetesEmulator, state: ClusterState
) -> None:
    kmock.objects["kubevirt.io/v1/kubevirts", "kubevirt", "kubevirt"] = kubevirt(
        ["WorkloadEncryptionCCA", "Sidecar", "Plugins"]
    )
    (
        kmock["list plugin.kubevirt.io/v1alpha1/plugins"]
        << 403
        << forbidden("plugins.plugin.kubevirt.io is forbidden")
    )
    await state.start()
    await eventually(lambda: state.ready)
    await eventually(lambda: state.view().gates is not None)
    assert state.view().plugin_names is None
    refused = causes(state)
    assert any(
        "cannot list KubeVirt's Plugin objects (the API server answered 403" in m for m in refused
    ), refused


async def test_a_kubevirt_without_the_plugin_crd_has_no_plugins(
    kmock: kmock.KubernetesEmulator,
) -> None:
    """KubeVirt before 1.9: no Plugin CRD (404). Sidecar mode works; nothing is refused."""
    kmock.resources["kubevirt.io/v1/kubevirts"] = ResourceInfo(kind="KubeVirt", namespaced=True)
    kmock.resources["kubevirt.io/v1/virtualmachineinstances"] = ResourceInfo(
        kind="VirtualMachineInstance", namespaced=True
    )
    kmock.resources["v1/configmaps"] = ResourceInfo(kind="ConfigMap", namespaced=True)
    kmock.objects["kubevirt.io/v1/kubevirts", "kubevirt", "kubevirt"] = kubevirt(
        ["WorkloadEncryptionCCA", "Sidecar"]
    )
    client = async_client(server=str(kmock.url))
    state = ClusterState(
        client, namespace="kubevirt-cca", kubevirt_namespace="kubevirt", retry_delay=0.1
    )
    try:
        await state.start()
        await eventually(lambda: state.ready)
        await eventually(lambda: state.view().gates is not None)
        assert state.view().plugin_names == frozenset()
        assert causes(state) == []
    finally:
        await state.stop()
        await client.close()
