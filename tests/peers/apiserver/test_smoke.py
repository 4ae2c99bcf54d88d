"""The lane itself: the API server answers and serves KubeVirt's kinds."""

from __future__ import annotations

import pytest

from tests.peers.apiserver.cluster import ApiServer
from tests.peers.apiserver.conftest import Installed

pytestmark = pytest.mark.peers


def test_kubevirt_kinds_are_served(apiserver: ApiServer) -> None:
    kinds = apiserver.kubectl("api-resources", "--api-group=kubevirt.io", "-o", "name").stdout
    assert "virtualmachineinstances.kubevirt.io" in kinds.split()
    kv = apiserver.get("kubevirt", "kubevirt", namespace="kubevirt")
    assert kv["spec"]["configuration"]["developerConfiguration"]["featureGates"]


def test_install_objects_apply_as_printed(installed: Installed) -> None:
    kinds = {obj["kind"] for obj in installed.objects}
    assert {"ValidatingAdmissionPolicy", "MutatingWebhookConfiguration", "DaemonSet"} <= kinds
    for obj in installed.objects:
        name = obj["metadata"]["name"]
        ns = obj["metadata"].get("namespace")
        stored = installed.server.get(obj["kind"], name, namespace=ns)
        assert stored["metadata"]["name"] == name
