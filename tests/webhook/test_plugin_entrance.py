"""/validate-plugin over real TLS: the Plugin object that would enter the mixed state is refused
(docs/plugins.md, "The mixed state"); in plugin mode it is admitted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubevirt_cca.constants import CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE, SIDECAR_FEATURE_GATE
from kubevirt_cca.core.admission.gates import ClusterView, FeatureGates
from kubevirt_cca.core.cluster.integration import IntegrationMode
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.install.plugin_manifest import plugin_object
from tests.webhook.cluster import StaticCluster
from tests.webhook.conftest import Webhook, start_webhook

GATES = FeatureGates(frozenset({CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE, PLUGINS_FEATURE_GATE}))
QEMU = Settings(dialect=Dialect.QEMU_COMMANDLINE)


def served(view: ClusterView, cert_files: tuple[Path, Path]) -> Iterator[Webhook]:
    server, hook = start_webhook(StaticCluster(view), *cert_files)
    yield hook
    server.stop()


@pytest.fixture(scope="module")
def sidecar_webhook(cert_files: tuple[Path, Path]) -> Iterator[Webhook]:
    yield from served(
        ClusterView(
            gates=GATES,
            settings=QEMU,
            kubevirt_version="v1.9.0",
            integration_mode=IntegrationMode.SIDECAR,
        ),
        cert_files,
    )


@pytest.fixture(scope="module")
def plugin_webhook(cert_files: tuple[Path, Path]) -> Iterator[Webhook]:
    yield from served(
        ClusterView(
            gates=GATES,
            settings=QEMU,
            kubevirt_version="v1.9.0",
            integration_mode=IntegrationMode.PLUGIN,
        ),
        cert_files,
    )


def plugin_review(operation: str = "CREATE") -> dict[str, Any]:
    obj = plugin_object()
    gvk = {"group": "plugin.kubevirt.io", "version": "v1alpha1"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {**gvk, "kind": "Plugin"},
            "resource": {**gvk, "resource": "plugins"},
            "operation": operation,
            "name": obj["metadata"]["name"],
            "userInfo": {"username": "cluster-admin"},
            "object": obj,
            "oldObject": obj if operation == "UPDATE" else None,
            "dryRun": False,
        },
    }


def answer(webhook: Webhook, body: dict[str, Any]) -> dict[str, Any]:
    status, reply = webhook.post("/validate-plugin", body)
    assert status == 200, reply
    assert reply["response"]["uid"] == body["request"]["uid"]
    return dict(reply["response"])


def test_our_plugin_object_is_refused_in_sidecar_mode(sidecar_webhook: Webhook) -> None:
    response = answer(sidecar_webhook, plugin_review())
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    message = status["message"]
    assert message.startswith(
        "metadata.name: creating Plugin kubevirt-cca would put the cluster "
        "in the mixed state: kubevirt-cca runs as a hook sidecar"
    )
    assert "a CCA VM admitted earlier would start as a plain VM" in message
    assert (
        "Move kubevirt-cca to plugin mode first (integrationMode: plugin in "
        "kubevirt-cca-config, with dialect qemu-commandline), or upgrade KubeVirt to 1.10 "
        "or newer"
    ) in message
    # Only CREATE enters the state: an update of an existing object is not ours to refuse.
    assert answer(sidecar_webhook, plugin_review("UPDATE"))["allowed"] is True


def test_our_plugin_object_is_admitted_in_plugin_mode(plugin_webhook: Webhook) -> None:
    response = answer(plugin_webhook, plugin_review())
    assert response == {"uid": response["uid"], "allowed": True}
