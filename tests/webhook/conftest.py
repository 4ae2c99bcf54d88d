"""A real webhook on 127.0.0.1 over TLS, in a background thread for the whole session, and a
small HTTPS client that trusts its self-signed certificate."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from kubevirt_cca.adapters.cluster_state import ClusterState
from kubevirt_cca.adapters.kube import async_client
from kubevirt_cca.adapters.webhook.limits import Limits
from kubevirt_cca.adapters.webhook.server import WebhookApp, serve
from kubevirt_cca.adapters.webhook.tls import ReloadingTLS
from kubevirt_cca.core.admission.gates import ClusterView, all_gates_on
from tests.webhook.certs import Pair, serving_pair
from tests.webhook.cluster import StaticCluster, declare_resources


@dataclass
class Webhook:
    https_port: int
    health_port: int
    ca_file: Path
    app: WebhookApp

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def post(
        self, path: str, body: bytes | dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.https_port, context=self.client_context(), timeout=30
        )
        try:
            conn.request(
                "POST",
                path,
                body=data,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw)
        except json.JSONDecodeError:
            return response.status, raw.decode()

    def get_health(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.health_port, timeout=30)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()


class ServerThread:
    """An asyncio loop in a thread running one webhook until stopped."""

    def __init__(self, app: WebhookApp) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running = asyncio.run_coroutine_threadsafe(
            serve(app, host="127.0.0.1", port=0, health_port=0), self.loop
        ).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="session")
def pair() -> Pair:
    return serving_pair()


@pytest.fixture(scope="session")
def cert_files(pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "tls.crt", folder / "tls.key"
    pair.write(cert, key)
    return cert, key


def start_webhook(
    cluster: Any, cert: Path, key: Path, limits: Limits | None = None
) -> tuple[ServerThread, Webhook]:
    app = WebhookApp(
        cluster, tls=ReloadingTLS(str(cert), str(key)), registry=CollectorRegistry(), limits=limits
    )
    server = ServerThread(app)
    return server, Webhook(server.running.https_port, server.running.health_port, cert, app)


@pytest.fixture(scope="session")
def cluster() -> StaticCluster:
    """All gates on; tests may put VMIs into ``cluster.vmis`` (cleared after each use)."""
    return StaticCluster(ClusterView(gates=all_gates_on()))


@pytest.fixture(scope="session")
def webhook(cluster: StaticCluster, cert_files: tuple[Path, Path]) -> Iterator[Webhook]:
    server, hook = start_webhook(cluster, *cert_files)
    yield hook
    server.stop()


@pytest_asyncio.fixture
async def state(kmock: kmock.KubernetesEmulator) -> AsyncIterator[ClusterState]:
    """The webhook's watch-fed cluster state on kmock's emulator (not started)."""
    declare_resources(kmock)
    client = async_client(server=str(kmock.url))
    cluster = ClusterState(
        client, namespace="kubevirt-cca", kubevirt_namespace="kubevirt", retry_delay=0.1
    )
    yield cluster
    await cluster.stop()
    await client.close()
