"""TLS 1.2 offers only AEAD suites; a corrupt pair is named at start and logged once per change
(issue 13, section 5). Over real TLS on 127.0.0.1, and the command as a process."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.run import kubevirt_cca
from tests.webhook.certs import serving_pair
from tests.webhook.cluster import StaticCluster
from tests.webhook.conftest import Webhook, start_webhook


@pytest.fixture
def own_webhook(cluster: StaticCluster, tmp_path: Path) -> Iterator[tuple[Webhook, Path, Path]]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    serving_pair().write(cert, key)
    server, hook = start_webhook(cluster, cert, key)
    yield hook, cert, key
    server.stop()


def handshake(hook: Webhook, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", hook.https_port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def tls12_client(hook: Webhook, ciphers: str) -> ssl.SSLContext:
    context = hook.client_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


@pytest.mark.parametrize(
    "ciphers",
    [
        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA",  # CBC with SHA-1
        "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384",  # CBC with SHA-2
    ],
)
def test_tls12_refuses_suites_without_aead(webhook: Webhook, ciphers: str) -> None:
    with pytest.raises(ssl.SSLError):
        handshake(webhook, tls12_client(webhook, ciphers)).close()


@pytest.mark.parametrize(
    "ciphers",
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ],
)
def test_tls12_accepts_aead_suites(webhook: Webhook, ciphers: str) -> None:
    sock = handshake(webhook, tls12_client(webhook, ciphers))
    assert sock.version() == "TLSv1.2"
    assert sock.cipher()[0] == ciphers  # type: ignore[index]
    sock.close()


def test_tls13_still_works(webhook: Webhook) -> None:
    sock = handshake(webhook, webhook.client_context())
    assert sock.version() == "TLSv1.3"
    sock.close()


def test_a_broken_pair_on_disk_is_logged_once_per_change(
    own_webhook: tuple[Webhook, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    hook, cert, _ = own_webhook
    trusted = ssl.create_default_context(cadata=cert.read_text())
    caplog.set_level(logging.WARNING, logger="kubevirt_cca.adapters.webhook.tls")
    cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    for _ in range(5):  # every handshake checks the files; the old pair keeps serving
        handshake(hook, trusted).close()
    broken = [r.getMessage() for r in caplog.records if "tls reload failed" in r.getMessage()]
    assert len(broken) == 1, broken
    assert f"the certificate file {cert} is not a PEM certificate" in broken[0]
    # A change (still broken, differently) is logged again, once.
    cert.write_text("not pem at all, and longer than before\n")
    for _ in range(3):
        handshake(hook, trusted).close()
    broken = [r.getMessage() for r in caplog.records if "tls reload failed" in r.getMessage()]
    assert len(broken) == 2


@pytest.mark.parametrize("which", ["cert", "key", "mismatch"])
def test_a_corrupt_pair_at_start_names_the_file(tmp_path: Path, which: str) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    serving_pair().write(cert, key)
    if which == "cert":
        cert.write_text("garbage\n")
        expected = f"the certificate file {cert} is not a PEM certificate"
    elif which == "key":
        key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        expected = f"the private key file {key} is not a PEM private key"
    else:
        serving_pair().write(tmp_path / "other.crt", key)
        expected = f"the private key in {key} does not belong to the certificate in {cert}"
    result = kubevirt_cca(
        "webhook",
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--port",
        "0",
        "--health-port",
        "0",
        "--server",
        "http://127.0.0.1:9",
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr
