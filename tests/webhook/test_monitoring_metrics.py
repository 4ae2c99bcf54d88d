"""The webhook exports every metric the monitoring rules read, and the certificate's expiry
follows the certificate it serves (docs/monitoring.md)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509

from kubevirt_cca.core.admission.gates import ClusterView, all_gates_on
from tests.admission.helpers import review
from tests.install.monitoring_rules import scraped_names, scraped_value, webhook_metrics
from tests.webhook.certs import serving_pair
from tests.webhook.cluster import StaticCluster
from tests.webhook.conftest import start_webhook

NOT_AFTER = "kubevirt_cca_webhook_certificate_not_after_timestamp_seconds"
VMI = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachineInstance",
    "metadata": {"name": "m", "namespace": "default"},
    "spec": {"domain": {"devices": {}, "resources": {}}},
}


def not_after(der: bytes) -> float:
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


def test_every_webhook_metric_of_the_rules_is_served(tmp_path: Path) -> None:
    pair = serving_pair()
    pair.write(tmp_path / "tls.crt", tmp_path / "tls.key")
    server, hook = start_webhook(
        StaticCluster(ClusterView(gates=all_gates_on())), tmp_path / "tls.crt", tmp_path / "tls.key"
    )
    try:
        hook.post("/validate-vmi", review(VMI))
        status, text = hook.get_health("/metrics")
    finally:
        server.stop()

    assert status == 200
    assert webhook_metrics(), "the rules reference no webhook metric"
    missing = webhook_metrics() - scraped_names(text)
    assert not missing, f"the rules read metrics the webhook does not export: {sorted(missing)}"


def test_the_certificate_expiry_follows_a_rotation(tmp_path: Path) -> None:
    first, second = serving_pair(days=1), serving_pair(days=90)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first.write(cert, key)
    server, hook = start_webhook(StaticCluster(ClusterView(gates=all_gates_on())), cert, key)
    try:
        assert scraped_value(hook.get_health("/metrics")[1], NOT_AFTER) == not_after(first.der)
        second.write(tmp_path / "new.crt", tmp_path / "new.key")
        os.replace(tmp_path / "new.key", key)
        os.replace(tmp_path / "new.crt", cert)
        # The reload happens at the next handshake; the metric then names the new certificate.
        status, _ = hook.post("/validate-vmi", review(VMI))
        assert status == 200
        assert scraped_value(hook.get_health("/metrics")[1], NOT_AFTER) == not_after(second.der)
    finally:
        server.stop()
