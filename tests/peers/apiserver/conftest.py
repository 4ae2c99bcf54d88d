"""Session fixtures of the real API server lane: one kube-apiserver, KubeVirt's CRDs, nodes."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.peers.apiserver.cluster import ApiServer, Webhook, kubevirt_cca, start, stop

KUBEVIRT_NAMESPACE = "kubevirt"
GATES = ["WorkloadEncryptionCCA", "Sidecar"]
_names = itertools.count(1)


def kubevirt_cr(
    gates: list[str], *, name: str = "kubevirt", namespace: str = KUBEVIRT_NAMESPACE
) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "KubeVirt",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"configuration": {"developerConfiguration": {"featureGates": gates}}},
    }


def kubevirt_crds(bin_dir: Path) -> str:
    """KubeVirt's CRDs as virt-operator installs them (``kubevirt-api-peer-main crds``)."""
    done = subprocess.run(
        [str(bin_dir / "kubevirt-api-peer-main"), "crds"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """kube-apiserver + etcd for the whole session, with KubeVirt's CRDs and its CR."""
    run_dir = tmp_path_factory.mktemp("apiserver")
    server = start(run_dir)
    try:
        crds = kubevirt_crds(server.bin_dir)
        # Plain `kubectl apply` fails on KubeVirt's largest CRDs (annotation > 256 KiB).
        server.kubectl("create", "-f", "-", stdin=crds)
        # kubectl wait fails at once on a CRD whose status has no conditions yet (seen when the
        # machine is loaded): ask again, a bounded number of times.
        for attempt in range(10):
            waited = server.kubectl(
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd",
                "--all",
                check=attempt == 9,
            )
            if waited.returncode == 0:
                break
            time.sleep(0.5)
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
    apiserver.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/arch": "arm64", "kubernetes.io/hostname": name},
            },
        }
    )
    return name


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


INSTALL_NAMESPACE = "kubevirt-cca"
# No pod starts here, so the image is never pulled; manifests requires one all the same.
IMAGE = "registry.example/kubevirt-cca:0.1.0"
# The virt-launcher image has no default (upstream KubeVirt's cannot start Realms); no pod starts
# here either, so this one is never pulled.
LAUNCHER = "quay.io/kubevirt/virt-launcher:v1.8.0"


@dataclass(frozen=True)
class Installed:
    """kubevirt-cca's install objects in the API server, and its webhook running locally."""

    server: ApiServer
    webhook: Webhook
    objects: list[dict[str, Any]]

    def sa_token(self, account: str, *, node: str | None = None) -> str:
        bound = ["--bound-object-kind", "Node", "--bound-object-name", node] if node else []
        return self.server.kubectl(
            "create", "token", account, "-n", INSTALL_NAMESPACE, "--duration", "1h", *bound
        ).stdout.strip()

    def undo_certs_ensure(self) -> None:
        """Back to the install as applied after a real ``certs ensure`` ran: the webhook
        configurations' caBundle (it sets its own CA), no Secret, an empty public ConfigMap."""
        self.reapply_webhook_configurations()
        self.server.kubectl(
            "delete", "secret", "kubevirt-cca-webhook-tls", "-n", INSTALL_NAMESPACE,
            "--ignore-not-found",
        )  # fmt: skip
        certificate = self.server.get(
            "configmap", "kubevirt-cca-webhook-certificate", namespace=INSTALL_NAMESPACE
        )
        if "data" in certificate:
            self.server.kubectl(
                "patch", "configmap", "kubevirt-cca-webhook-certificate", "-n",
                INSTALL_NAMESPACE, "--type=json", "-p", '[{"op": "remove", "path": "/data"}]',
            )  # fmt: skip

    def reapply_webhook_configurations(self) -> None:
        hooks = [o for o in self.objects if o["kind"].endswith("WebhookConfiguration")]
        for obj in hooks:
            self.server.kubectl(
                "delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found"
            )
        self.server.create(*hooks)


@pytest.fixture(scope="session")
def installed(
    apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    """``kubevirt-cca manifests`` applied as printed, but for the webhooks' clientConfig."""
    printed = kubevirt_cca(
        "manifests",
        "--image",
        IMAGE,
        "--virt-launcher-image",
        LAUNCHER,
        "--certificates",
        "self-signed",
        "--output",
        "json",
    )
    assert printed.returncode == 0, printed.stderr
    manifests = json.loads(printed.stdout)["items"]
    folder = tmp_path_factory.mktemp("webhook")
    webhook_kubeconfig = folder / "kubeconfig"
    webhook = Webhook(apiserver, webhook_kubeconfig, folder / "webhook.log")
    objects = webhook.clients(manifests)
    apiserver.create(*objects)
    installed = Installed(apiserver, webhook, objects)
    apiserver.token_kubeconfig(webhook_kubeconfig, installed.sa_token("kubevirt-cca-webhook"))
    webhook.start()
    try:
        yield installed
    finally:
        webhook.stop()
