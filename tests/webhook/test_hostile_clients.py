"""One client cannot stall or exhaust the webhook (issue 13, section 2), over real TLS on
127.0.0.1: compressed bodies are refused unread, slow handshakes, heads and bodies are cut off,
connections are capped, and an honest client is answered meanwhile."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubevirt_cca.adapters.webhook.limits import Limits
from tests.admission.helpers import labelled, review
from tests.webhook.cluster import StaticCluster
from tests.webhook.conftest import Webhook, start_webhook

VMI = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachineInstance",
    "metadata": {"name": "h", "namespace": "default"},
    "spec": {"domain": {"devices": {}}},
}
LIMITS = Limits(
    handshake_seconds=0.5, head_seconds=0.5, body_seconds=0.5, connections=6, per_peer=4
)
# These tests assert behaviour: who is answered, what is refused, which connection is closed.
# How fast (an honest review's latency while hostile clients are connected) is measured by
# benchmarks/bench_hostile.py (docs/performance.md), never bounded here: a wall-clock bound
# goes red on a busy machine and says nothing about the code. Socket timeouts only stop a test
# that would otherwise hang.


@pytest.fixture(scope="module")
def strict(cluster: StaticCluster, cert_files: tuple[Path, Path]) -> Iterator[Webhook]:
    server, hook = start_webhook(cluster, *cert_files, limits=LIMITS)
    yield hook
    server.stop()


def tls_socket(hook: Webhook, *, source: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(
        ("127.0.0.1", hook.https_port), timeout=10, source_address=(source, 0)
    )
    return hook.client_context().wrap_socket(raw, server_hostname="127.0.0.1")


def assert_refused_before_tls(hook: Webhook, *, source: str = "127.0.0.1") -> None:
    """The server closes the connection at accept, before a TLS handshake (no CPU spent)."""
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        tls_socket(hook, source=source).close()


def read_all(sock: socket.socket, limit: float = 10.0) -> bytes:
    """Everything the server sends until it closes (b"" if it closes without a word)."""
    sock.settimeout(limit)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, ssl.SSLError):
        pass
    return b"".join(chunks)


def honest_review(hook: Webhook) -> None:
    """One ordinary review, answered and admitted."""
    status, answer = hook.post("/mutate-vmi", review(labelled(VMI)))
    assert status == 200 and answer["response"]["allowed"] is True


def head(body_length: int, encoding: str | None = None) -> bytes:
    lines = [
        "POST /validate-vmi HTTP/1.1",
        "Host: localhost",
        "Content-Type: application/json",
        f"Content-Length: {body_length}",
    ]
    if encoding is not None:
        lines.append(f"Content-Encoding: {encoding}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def bomb(size: int) -> bytes:
    """A gzip body of ``size`` zero bytes, compressed (about 1000:1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    out = [compressor.compress(block) for _ in range(size >> 20)]
    return b"".join(out) + compressor.flush()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP", "gzip, identity"])
def test_any_content_encoding_is_refused_unread(strict: Webhook, encoding: str) -> None:
    body = gzip.compress(json.dumps(review(VMI)).encode())
    status, answer = strict.post("/validate-vmi", body, {"Content-Encoding": encoding})
    assert status == 415
    assert answer["kind"] == "Status" and answer["code"] == 415
    assert answer["reason"] == "UnsupportedMediaType"
    assert "is not accepted; send the AdmissionReview as plain JSON" in answer["message"]


def test_identity_encoding_is_no_encoding(strict: Webhook) -> None:
    status, answer = strict.post("/validate-vmi", review(VMI), {"Content-Encoding": "identity"})
    assert status == 200 and answer["response"]["allowed"] is True


def test_a_compression_bomb_delays_no_one(strict: Webhook) -> None:
    """64 MiB of zeros in 64 KiB of gzip: answered 415 at once, never inflated."""
    body = bomb(64 << 20)
    assert len(body) < 128 << 10
    sock = tls_socket(strict)
    sock.sendall(head(len(body), "gzip") + body)
    answer = read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 415 ")
    honest_review(strict)


def test_a_slow_head_is_cut_off_and_others_are_served(strict: Webhook) -> None:
    sock = tls_socket(strict)
    sock.sendall(b"POST /validate-vmi HTTP/1.1\r\nHost: localhost\r\n")  # never finished
    started = time.perf_counter()
    honest_review(strict)
    assert read_all(sock) == b""  # closed without an answer
    closed_after = time.perf_counter() - started
    sock.close()
    # not cut off before its time (a lower bound cannot go red on a slow machine)
    assert closed_after >= LIMITS.head_seconds * 0.5


def test_a_head_dribbled_byte_by_byte_is_cut_off(strict: Webhook) -> None:
    sock = tls_socket(strict)
    text = b"POST /validate-vmi HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100
    closed = False
    for byte in text:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            closed = True
            break
        time.sleep(0.05)
    sock.close()
    # cut off while the head was still coming: sending it all takes about 7 s, more than ten
    # times the head limit, and a write after the server closed fails
    assert closed


def test_a_slow_body_gets_408_and_the_connection_closes(strict: Webhook) -> None:
    sock = tls_socket(strict)
    sock.sendall(head(1000) + b"{")
    answer = read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 0.5 seconds" in answer


def test_an_unfinished_handshake_is_cut_off(strict: Webhook) -> None:
    raw = socket.create_connection(("127.0.0.1", strict.https_port), timeout=10)
    raw.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
    honest_review(strict)
    assert read_all(raw) == b""
    raw.close()


def test_connections_are_capped_per_peer_and_in_total(strict: Webhook) -> None:
    # Idle connections from one peer, up to its cap (each would be dropped after
    # head_seconds; the test stays well inside that).
    held = [tls_socket(strict) for _ in range(LIMITS.per_peer)]
    try:
        assert_refused_before_tls(strict)
        # Another peer still gets in, up to the total cap.
        other = [
            tls_socket(strict, source="127.0.0.2")
            for _ in range(LIMITS.connections - LIMITS.per_peer)
        ]
        assert_refused_before_tls(strict, source="127.0.0.3")
        for sock in other:
            sock.close()
    finally:
        for sock in held:
            sock.close()
    # Room again once they are gone.
    deadline = time.monotonic() + 5
    while True:
        try:
            honest_review(strict)
            break
        except (ConnectionError, ssl.SSLError, OSError):
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_many_slow_clients_at_once_leave_an_honest_client_served(strict: Webhook) -> None:
    """Slow clients from other addresses fill up to the cap; the API server's own address
    still has room, and its review is answered quickly."""
    socks: list[ssl.SSLSocket] = []
    for index in range(LIMITS.connections - LIMITS.per_peer):
        sock = tls_socket(strict, source=f"127.0.1.{index + 1}")
        sock.sendall(b"POST /validate-vmi HTTP/1.1\r\n")
        socks.append(sock)
    try:
        honest_review(strict)
    finally:
        for sock in socks:
            sock.close()
