"""Session fixtures of the real API server lane: one kube-apiserver, KubeVirt's CRDs, nodes."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.apiserver.cluster import ApiServer, start, stop

KUBEVIRT_NAMESPACE = "kubevirt"
GATES = ["WorkloadEncryptionCCA", "Sidecar"]
_names = itertools.count(1)


def kubevirt_cr(gates: list[str], *, name: str = "kubevirt",
                namespace: str = KUBEVIRT_NAMESPACE) -> dict[str, Any]:
    return {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"configuration": {"developerConfiguration": {"featureGates": gates}}}}


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """kube-apiserver + etcd for the whole session, with KubeVirt's CRDs and its CR."""
    run_dir = tmp_path_factory.mktemp("apiserver")
    server = start(run_dir)
    try:
        crds = subprocess.run([str(server.bin_dir / "kubevirt-api-peer-main"), "crds"],
                              capture_output=True, text=True, timeout=120, check=True).stdout
        # Plain `kubectl apply` fails on KubeVirt's largest CRDs (annotation > 256 KiB).
        server.kubectl("create", "-f", "-", stdin=crds)
        server.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        server.kubectl("create", "namespace", KUBEVIRT_NAMESPACE)
        server.create(kubevirt_cr(GATES))
        yield server
    finally:
        stop(run_dir)


@pytest.fixture
def namespace(apiserver: ApiServer) -> str:
    """A fresh namespace per test (no controller runs here to delete it afterwards)."""
    name = f"t{next(_names)}"
    apiserver.kubectl("create", "namespace", name)
    return name


@pytest.fixture
def node_name(apiserver: ApiServer) -> str:
    """A fresh arm64 Node object (no kubelet: the admin creates it)."""
    name = f"arm-{next(_names)}"
    apiserver.create({"apiVersion": "v1", "kind": "Node",
                      "metadata": {"name": name, "labels": {"kubernetes.io/arch": "arm64",
                                                            "kubernetes.io/hostname": name}}})
    return name


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
