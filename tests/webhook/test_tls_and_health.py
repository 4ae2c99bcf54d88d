"""Certificate rotation without restart, TLS-only serving, health and Prometheus metrics."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

import pytest

from kubevirt_cca.adapters.webhook.server import WebhookApp
from kubevirt_cca.adapters.webhook.tls import CertificateError, ReloadingTLS
from kubevirt_cca.core.admission.gates import ClusterView, all_gates_on
from tests.admission.helpers import review
from tests.webhook.certs import serving_pair
from tests.webhook.cluster import StaticCluster
from tests.webhook.conftest import Webhook, start_webhook

VMI = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachineInstance",
    "metadata": {"name": "m", "namespace": "default"},
    "spec": {"domain": {"devices": {}, "resources": {}}},
}


def presented_certificate(port: int) -> bytes:
    """The DER certificate the server presents in a fresh handshake (not verified here)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_rotated_certificate_is_presented_on_the_next_handshake(tmp_path: Path) -> None:
    first, second = serving_pair(), serving_pair()
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first.write(cert, key)
    server, hook = start_webhook(StaticCluster(ClusterView(gates=all_gates_on())), cert, key)
    try:
        assert presented_certificate(hook.https_port) == first.der
        # Rotate the way a Secret volume does: new files, then an atomic rename over the old.
        second.write(tmp_path / "new.crt", tmp_path / "new.key")
        os.replace(tmp_path / "new.key", key)
        os.replace(tmp_path / "new.crt", cert)
        assert presented_certificate(hook.https_port) == second.der
        # And the server still answers reviews, verified against the new certificate.
        status, answer = hook.post("/validate-vmi", review(VMI))
        assert status == 200 and answer["response"]["allowed"] is True
        # A broken pair (key of another certificate) keeps the last good one in use.
        (tmp_path / "bad.key").write_bytes(first.key_pem)
        os.replace(tmp_path / "bad.key", key)
        assert presented_certificate(hook.https_port) == second.der
    finally:
        server.stop()


def test_missing_certificate_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match=r"no\.crt"):
        ReloadingTLS(str(tmp_path / "no.crt"), str(tmp_path / "no.key"))


def test_webhook_refuses_to_serve_without_tls() -> None:
    import asyncio

    from kubevirt_cca.adapters.webhook.server import serve

    app = WebhookApp(StaticCluster(ClusterView(gates=all_gates_on())))
    with pytest.raises(ValueError, match="TLS only"):
        asyncio.run(serve(app, host="127.0.0.1", port=0, health_port=0))


def test_health_readiness_and_metrics(webhook: Webhook, cluster: StaticCluster) -> None:
    assert webhook.get_health("/healthz") == (200, "ok\n")
    assert webhook.get_health("/readyz") == (200, "ready\n")
    cluster.ready = False
    try:
        assert webhook.get_health("/readyz")[0] == 503
    finally:
        cluster.ready = True
    webhook.post("/validate-vmi", review(VMI))
    webhook.post("/validate-vmi", b"nonsense")
    status, text = webhook.get_health("/metrics")
    assert status == 200
    assert (
        'kubevirt_cca_admissions_total{endpoint="validate-vmi",'
        'kind="VirtualMachineInstance",operation="CREATE",verdict="allowed"}'
    ) in text
    assert (
        'kubevirt_cca_admissions_total{endpoint="validate-vmi",kind="unknown",'
        'operation="unknown",verdict="malformed"}'
    ) in text
    assert 'kubevirt_cca_admission_duration_seconds_bucket{endpoint="validate-vmi"' in text
    # The benchmark's canned route exists only when a benchmark sets it up.
    assert webhook.post("/canned", b"{}")[0] == 404
