"""The watch-fed cluster state against kmock's Kubernetes emulator over real HTTP: feature gates
from the KubeVirt CR, kubevirt-cca-config, CCA VMIs for migrations, and failing closed when the
KubeVirt CR cannot be read. The last test runs the webhook over TLS on top of it."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import kmock
import pytest
from kmock import action
from prometheus_client import CollectorRegistry

from kubevirt_cca.adapters.cluster_state import ClusterState
from kubevirt_cca.adapters.webhook.server import WebhookApp, serve
from kubevirt_cca.adapters.webhook.tls import ReloadingTLS
from kubevirt_cca.constants import ENABLED_LABEL
from kubevirt_cca.core.admission.admit import admit
from kubevirt_cca.core.admission.reviews import parse_review
from kubevirt_cca.core.admission.validate import MIGRATION_REFUSAL
from kubevirt_cca.core.vmi.webhook_table import Endpoint
from tests.admission.helpers import KUBEVIRT_CR, labelled, review
from tests.webhook.cluster import CONFIG_MAPS, KUBEVIRTS, VMI, eventually, forbidden

pytestmark = pytest.mark.asyncio


def decide(cluster: ClusterState, obj: dict[str, Any]) -> list[str]:
    verdict = admit(Endpoint.MUTATE_VMI, parse_review(_json(review(obj))), cluster.view())
    return [c.message for c in verdict.causes]


def _json(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body).encode()


async def test_gates_and_config_follow_the_cluster(
    kmock: kmock.KubernetesEmulator, state: ClusterState
) -> None:
    await state.start()
    await eventually(lambda: state.ready)
    # No KubeVirt CR at all: CCA VMIs refused, saying why; plain VMIs still pass.
    messages = decide(state, labelled(VMI))
    assert len(messages) == 1 and "no KubeVirt CR found in namespace kubevirt" in messages[0]
    assert decide(state, VMI) == []
    async with aiohttp.ClientSession(base_url=str(kmock.url)) as http:
        cr = copy.deepcopy(KUBEVIRT_CR)
        cr["spec"]["configuration"]["developerConfiguration"]["featureGates"] = ["Sidecar"]
        await http.post(KUBEVIRTS, json=cr)
        await eventually(lambda: state.view().gates is not None)
        assert decide(state, labelled(VMI)) == [
            "WorkloadEncryptionCCA feature gate is not enabled in kubevirt-config"
        ]
        await http.patch(
            f"{KUBEVIRTS}/kubevirt",
            json={
                "spec": {
                    "configuration": {
                        "developerConfiguration": {
                            "featureGates": ["Sidecar", "WorkloadEncryptionCCA"]
                        }
                    }
                }
            },
        )
        await eventually(lambda: decide(state, labelled(VMI)) == [])
        # The ConfigMap's hook image reaches the patch.
        await http.post(
            CONFIG_MAPS,
            json={
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kubevirt-cca-config", "namespace": "kubevirt-cca"},
                "data": {"hookImage": "registry.example/kubevirt-cca:9", "dialect": "openeuler"},
            },
        )
        await eventually(lambda: state.view().hook_image == "registry.example/kubevirt-cca:9")
        assert state.view().settings.dialect.value == "openeuler"
        # The CR goes away: refused again (fail closed).
        await http.delete(f"{KUBEVIRTS}/kubevirt")
        await eventually(lambda: state.view().gates is None)
        assert "no KubeVirt CR" in decide(state, labelled(VMI))[0]


async def test_no_node_honouring_a_parameter_is_a_warning_until_one_does(
    kmock: kmock.KubernetesEmulator, state: ClusterState
) -> None:
    kmock.objects["kubevirt.io/v1/kubevirts", "kubevirt", "kubevirt"] = KUBEVIRT_CR
    plain_node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "arm-1", "labels": {"kubevirt.io/cca": "true"}},
    }
    kmock.objects["v1/nodes", None, "arm-1"] = plain_node
    await state.start()
    await eventually(lambda: state.ready)
    await eventually(lambda: state.view().cca_node_labels is not None)
    vmi = labelled(VMI)
    vmi["metadata"].setdefault("annotations", {})["cca.kubevirt.io/launch-security"] = (
        '{"measurementAlgo": "sha384"}'
    )

    def warnings() -> list[str]:
        verdict = admit(Endpoint.MUTATE_VMI, parse_review(_json(review(vmi))), state.view())
        assert verdict.response["allowed"]
        return verdict.response.get("warnings", [])

    [warning] = warnings()
    assert warning.startswith(
        "no node in this cluster honours measurementAlgo sha384 (libvirt) "
        "(node label cca.kubevirt.io/measurement-algo-sha384=true)"
    )
    assert "stays Pending" in warning
    async with aiohttp.ClientSession(base_url=str(kmock.url)) as http:
        await http.post(
            "/api/v1/nodes",
            json={
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": "arm-2",
                    "labels": {
                        "kubevirt.io/cca": "true",
                        "cca.kubevirt.io/measurement-algo-sha384": "true",
                    },
                },
            },
        )
        await eventually(lambda: warnings() == [])


async def test_unreadable_kubevirt_cr_fails_closed(
    kmock: kmock.KubernetesEmulator, state: ClusterState
) -> None:
    (
        kmock["list kubevirt.io/v1/kubevirts"]
        << 403
        << forbidden("kubevirts.kubevirt.io is forbidden")
    )
    await state.start()
    await eventually(lambda: state.ready)
    messages = decide(state, labelled(VMI))
    assert len(messages) == 1
    assert "the API server answered 403" in messages[0] and "fail closed" in messages[0]


async def test_migration_lookup(kmock: kmock.KubernetesEmulator, state: ClusterState) -> None:
    kmock.objects["kubevirt.io/v1/kubevirts", "kubevirt", "kubevirt"] = KUBEVIRT_CR
    cca = labelled(VMI)
    plain = copy.deepcopy(VMI)
    plain["metadata"]["name"] = "plain"
    kmock.objects["kubevirt.io/v1/virtualmachineinstances", "default", "realm"] = cca
    kmock.objects["kubevirt.io/v1/virtualmachineinstances", "default", "plain"] = plain
    await state.start()
    await eventually(lambda: state.ready)
    assert (await state.lookup_vmi("default", "realm")).vmi == cca
    assert len(kmock[action.FETCH]) == 0, "a cached CCA VMI needs no API call"
    looked = await state.lookup_vmi("default", "plain")
    assert looked.vmi is not None and ENABLED_LABEL not in looked.vmi["metadata"].get("labels", {})
    assert len(kmock[action.FETCH]) == 1, "a VMI not in the cache is fetched"
    assert (await state.lookup_vmi("default", "nothing")).vmi is None


async def test_webhook_over_tls_on_the_emulated_cluster(
    kmock: kmock.KubernetesEmulator, state: ClusterState, cert_files: tuple[Any, Any]
) -> None:
    import ssl

    kmock.objects["kubevirt.io/v1/kubevirts", "kubevirt", "kubevirt"] = KUBEVIRT_CR
    kmock.objects["kubevirt.io/v1/virtualmachineinstances", "default", "realm"] = labelled(VMI)
    await state.start()
    await eventually(lambda: state.ready)
    cert, key = cert_files
    app = WebhookApp(state, tls=ReloadingTLS(str(cert), str(key)), registry=CollectorRegistry())
    running = await serve(app, host="127.0.0.1", port=0, health_port=0)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        base = f"https://127.0.0.1:{running.https_port}"
        migration = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstanceMigration",
            "metadata": {"name": "m", "namespace": "default"},
            "spec": {"vmiName": "realm"},
        }
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/validate-migration", json=review(migration), ssl=context
            ) as response:
                answer = await response.json()
            assert answer["response"]["status"]["message"] == MIGRATION_REFUSAL
            async with http.post(
                f"{base}/mutate-vmi", json=review(labelled(VMI)), ssl=context
            ) as response:
                answer = await response.json()
            assert answer["response"]["allowed"] is True and answer["response"]["patch"]
            async with http.get(f"http://127.0.0.1:{running.health_port}/readyz") as response:
                assert response.status == 200
    finally:
        await running.stop()


async def test_undecodable_answer_fails_closed_and_the_loop_survives(
    kmock: kmock.KubernetesEmulator, state: ClusterState
) -> None:
    broken = {"on": True}
    kmock["list kubevirt.io/v1/kubevirts"][lambda _: broken["on"]] << b"<html>proxy error</html>"
    await state.start()
    await eventually(lambda: state.ready)
    messages = decide(state, labelled(VMI))
    assert len(messages) == 1 and "fail closed" in messages[0]
    # The loop retries: once the API server answers properly, the gates are known.
    broken["on"] = False
    kmock.objects["kubevirt.io/v1/kubevirts", "kubevirt", "kubevirt"] = KUBEVIRT_CR
    await eventually(lambda: decide(state, labelled(VMI)) == [])


async def test_unreadable_config_map_fails_closed(
    kmock: kmock.KubernetesEmulator, state: ClusterState
) -> None:
    kmock.objects["kubevirt.io/v1/kubevirts", "kubevirt", "kubevirt"] = KUBEVIRT_CR
    kmock["list v1/configmaps"] << 403 << forbidden("configmaps is forbidden")
    await state.start()
    await eventually(lambda: state.ready)
    await eventually(lambda: state.view().gates is not None)
    messages = decide(state, labelled(VMI))
    assert len(messages) == 1
    assert "kubevirt-cca-config is invalid (it could not be read" in messages[0]
    assert "403" in messages[0]
    assert decide(state, VMI) == []
