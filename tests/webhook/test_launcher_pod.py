"""The Plugins path over real TLS: /mutate-launcher-pod and /mutate-vmi for a webhook whose
cluster runs kubevirt-cca as a KubeVirt Plugin (and, for contrast, as a hook sidecar)."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    HOOK_SIDECARS_ANNOTATION,
    INTEGRATION_ANNOTATION,
    PLUGIN_CONTAINER,
    PLUGIN_NAME,
    PLUGINS_FEATURE_GATE,
    SIDECAR_FEATURE_GATE,
)
from kubevirt_cca.core.admission.gates import ClusterView, FeatureGates
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.install import InstallOptions
from tests.admission.helpers import labelled, review
from tests.plugin.policy import POLICIES, PolicyFile
from tests.plugin.test_plugin_objects import K8S_VERSION, launcher_pod
from tests.webhook.cluster import StaticCluster
from tests.webhook.conftest import Webhook, start_webhook

PLUGIN_VIEW = ClusterView(
    gates=FeatureGates(frozenset({CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE})),
    settings=Settings(dialect=Dialect.QEMU_COMMANDLINE),
    hook_image="example/kubevirt-cca:2",
    plugin_names=frozenset({PLUGIN_NAME}),
)
SIDECAR_VIEW = ClusterView(gates=FeatureGates(frozenset({CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE})))
POD_POLICY_PATH = POLICIES / "cca-launcher-pod-needs-plugin.yaml"
POD_POLICY = PolicyFile(POD_POLICY_PATH)


@pytest.fixture(scope="module")
def plugin_webhook(cert_files: tuple[Path, Path]) -> Iterator[Webhook]:
    server, hook = start_webhook(StaticCluster(PLUGIN_VIEW), *cert_files)
    yield hook
    server.stop()


def pod_review(pod: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": operation,
            "namespace": "default",
            "name": "",
            "userInfo": {"username": "system:serviceaccount:kubevirt:kubevirt-controller"},
            "object": copy.deepcopy(pod),
            "oldObject": None,
            "dryRun": False,
        },
    }


def answer(webhook: Webhook, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, reply = webhook.post(path, body)
    assert status == 200, reply
    assert reply["kind"] == "AdmissionReview"
    assert reply["response"]["uid"] == body["request"]["uid"]
    return dict(reply["response"])


def patched(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    return result


def test_labelled_launcher_pod_gets_the_plugin_container(plugin_webhook: Webhook) -> None:
    pod = launcher_pod()
    response = answer(plugin_webhook, "/mutate-launcher-pod", pod_review(pod))
    assert response["allowed"] is True
    out = patched(pod, response)
    kubernetes_validate.validate(out, K8S_VERSION, strict=True)
    [ours] = [c for c in out["spec"]["containers"] if c["name"] == PLUGIN_CONTAINER]
    assert ours["image"] == "example/kubevirt-cca:2"
    # The policy pins the install's image (here: this cluster's), rendered in by manifests.
    this_install = PolicyFile(POD_POLICY_PATH, InstallOptions(image="example/kubevirt-cca:2"))
    assert this_install.denials(out) == []
    assert POD_POLICY.denials(out) != []
    # reinvocation (reinvocationPolicy IfNeeded): nothing more to add
    again = answer(plugin_webhook, "/mutate-launcher-pod", pod_review(out))
    assert again == {"uid": again["uid"], "allowed": True}


def test_other_pods_pass_untouched(plugin_webhook: Webhook) -> None:
    body = pod_review(launcher_pod(labelled=False))
    assert answer(plugin_webhook, "/mutate-launcher-pod", body) == {
        "uid": body["request"]["uid"],
        "allowed": True,
    }


def test_refusal_is_a_denial_with_the_field(plugin_webhook: Webhook) -> None:
    response = answer(
        plugin_webhook, "/mutate-launcher-pod", pod_review(launcher_pod(with_volume=False))
    )
    assert response["allowed"] is False
    assert response["status"]["code"] == 422
    [cause] = response["status"]["details"]["causes"]
    assert cause["field"] == "spec.volumes"
    assert "kubevirt-plugin-sockets" in cause["message"]


def test_garbage_and_wrong_kinds_never_500(plugin_webhook: Webhook) -> None:
    status, reply = plugin_webhook.post("/mutate-launcher-pod", b"{not json")
    assert status == 400 and reply["reason"] == "BadRequest"
    body = review(
        labelled(
            {
                "kind": "VirtualMachineInstance",
                "metadata": {"name": "x"},
                "spec": {"domain": {"devices": {}}},
            }
        )
    )
    response = answer(plugin_webhook, "/mutate-launcher-pod", body)
    assert response["allowed"] is False and response["status"]["code"] == 400


def test_cca_vmi_in_plugin_mode_over_tls(plugin_webhook: Webhook) -> None:
    vmi = labelled(
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "realm", "namespace": "default"},
            "spec": {"domain": {"devices": {}, "resources": {}}},
        }
    )
    out = patched(vmi, answer(plugin_webhook, "/mutate-vmi", review(vmi)))
    annotations = out["metadata"]["annotations"]
    assert HOOK_SIDECARS_ANNOTATION not in annotations
    assert annotations[INTEGRATION_ANNOTATION] == "plugin"
    assert answer(plugin_webhook, "/validate-vmi", review(out))["allowed"] is True


def test_sidecar_mode_pod_endpoint_changes_nothing(cert_files: tuple[Path, Path]) -> None:
    server, hook = start_webhook(StaticCluster(SIDECAR_VIEW), *cert_files)
    try:
        body = pod_review(launcher_pod())
        assert answer(hook, "/mutate-launcher-pod", body) == {
            "uid": body["request"]["uid"],
            "allowed": True,
        }
    finally:
        server.stop()
