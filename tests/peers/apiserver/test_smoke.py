"""The lane itself: the API server answers and serves KubeVirt's kinds."""

from __future__ import annotations

import pytest

from tests.peers.apiserver.cluster import ApiServer

pytestmark = pytest.mark.peers


def test_kubevirt_kinds_are_served(apiserver: ApiServer) -> None:
    kinds = apiserver.kubectl("api-resources", "--api-group=kubevirt.io", "-o", "name").stdout
    assert "virtualmachineinstances.kubevirt.io" in kinds.split()
    kv = apiserver.get("kubevirt", "kubevirt", namespace="kubevirt")
    assert kv["spec"]["configuration"]["developerConfiguration"]["featureGates"]
