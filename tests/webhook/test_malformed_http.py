"""Issue 21 item 9, over real TLS on 127.0.0.1: a malformed HTTP request costs one short log
line, at most ``bad_request_logs`` per interval and then one summary line (it cost an 11-line
traceback each); pipelined HTTP/1.1 requests are answered, in order, and a malformed one in a
pipeline is refused explicitly (a 400, and the connection closes)."""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import time
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
    "metadata": {"name": "p", "namespace": "default"},
    "spec": {"domain": {"devices": {}}},
}
BUDGET = 5
# Malformed heads aiohttp's parser refuses, each after a well-formed first line.
MALFORMED = [
    b"POST /validate-vmi HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /validate-vmi HTTP/7.1\r\nHost: x\r\n\r\n",
    b"POST /validate-vmi HTTP/1.1\r\nHost x\r\n\r\n",
    b"POST /validate-vmi HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
]


@pytest.fixture
def budgeted(cluster: StaticCluster, cert_files: tuple[Path, Path]) -> Iterator[Webhook]:
    """A webhook of its own (a fresh log budget): BUDGET lines per hour."""
    server, hook = start_webhook(
        cluster, *cert_files, limits=Limits(bad_request_logs=BUDGET, log_interval_seconds=3600)
    )
    yield hook
    server.stop()


def connect(hook: Webhook) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", hook.https_port), timeout=10)
    return hook.client_context().wrap_socket(raw, server_hostname="127.0.0.1")


def read_until_closed(sock: ssl.SSLSocket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, ssl.SSLError):
        pass
    return b"".join(chunks)


def post(path: str, body: bytes, *, close: bool = False) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode()
        + connection
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def responses(stream: bytes) -> list[tuple[int, bytes]]:
    """The (status, body) of each HTTP/1.1 response in ``stream``, in order."""
    found = []
    while stream:
        head, _, rest = stream.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        match = re.search(rb"(?im)^content-length: *(\d+)", head)
        length = int(match[1]) if match else len(rest)
        found.append((status, rest[:length]))
        stream = rest[length:]
    return found


def server_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Everything the webhook's code and aiohttp logged."""
    return [r for r in caplog.records if r.name.startswith(("kubevirt_cca", "aiohttp"))]


def test_malformed_requests_cost_one_short_line_each_within_the_budget(
    budgeted: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sent = 30
    for index in range(sent):
        sock = connect(budgeted)
        sock.sendall(MALFORMED[index % len(MALFORMED)])
        answer = read_until_closed(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.0 400 Bad Request"), answer[:100]
    records = server_lines(caplog)
    assert len(records) == BUDGET, [r.getMessage() for r in records]
    for record in records:
        message = record.getMessage()
        assert record.exc_info is None and "\n" not in message
        assert record.levelno == logging.WARNING
        assert message.startswith("https bad request peer=127.0.0.1 status=400 problem=")
    assert "Invalid character in Content-Length" in records[0].getMessage()
    assert "Invalid HTTP version" in records[1].getMessage()


def test_malformed_bodies_are_within_the_same_budget(
    budgeted: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(20):
        status, _ = budgeted.post("/validate-vmi", b"{not json")
        assert status == 400
    records = server_lines(caplog)
    assert len(records) == BUDGET
    assert all("verdict=bad-request status=400" in r.getMessage() for r in records)


def test_after_the_interval_one_line_says_how_many_were_not_logged(
    cluster: StaticCluster, cert_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server, hook = start_webhook(
        cluster, *cert_files, limits=Limits(bad_request_logs=2, log_interval_seconds=0.2)
    )
    try:
        for _ in range(7):
            sock = connect(hook)
            sock.sendall(MALFORMED[0])
            read_until_closed(sock)
            sock.close()
        summary = "bad requests: 5 more not logged in the last 0.2s (at most 2 logged per 0.2s)"
        # Waiting for the summary (written when the interval ends), not timing anything.
        deadline = time.monotonic() + 60
        while summary not in caplog.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    messages = [r.getMessage() for r in server_lines(caplog)]
    assert messages.count(summary) == 1, messages
    assert len([m for m in messages if m.startswith("https bad request")]) == 2


# --- pipelining ---------------------------------------------------------------------------------


def body(uid: str, *, cca: bool = True) -> bytes:
    return json.dumps(review(labelled(VMI) if cca else VMI, uid=uid)).encode()


def test_pipelined_reviews_in_one_write_are_answered_in_order(webhook: Webhook) -> None:
    stream = (
        post("/mutate-vmi", body("first"))
        + post("/validate-vmi", body("second", cca=False))
        + post("/mutate-vmi", body("third"), close=True)
    )
    sock = connect(webhook)
    sock.sendall(stream)  # one write: the three requests arrive together
    answers = responses(read_until_closed(sock))
    sock.close()
    assert [status for status, _ in answers] == [200, 200, 200]
    reviews = [json.loads(answer)["response"] for _, answer in answers]
    assert [r["uid"] for r in reviews] == ["first", "second", "third"]
    assert reviews[0]["allowed"] is True and "patch" in reviews[0]
    assert reviews[1]["allowed"] is True and "patch" not in reviews[1]


def test_a_bad_body_in_a_pipeline_is_answered_in_its_place(webhook: Webhook) -> None:
    stream = (
        post("/validate-vmi", body("one", cca=False))
        + post("/validate-vmi", b"{not json")
        + post("/validate-vmi", body("three", cca=False), close=True)
    )
    sock = connect(webhook)
    sock.sendall(stream)
    answers = responses(read_until_closed(sock))
    sock.close()
    assert [status for status, _ in answers] == [200, 400, 200]
    assert json.loads(answers[0][1])["response"]["uid"] == "one"
    assert "not JSON" in json.loads(answers[1][1])["message"]
    assert json.loads(answers[2][1])["response"]["uid"] == "three"


@pytest.mark.parametrize("malformed", MALFORMED)
def test_a_malformed_request_in_a_pipeline_is_refused_after_the_ones_before_it(
    webhook: Webhook, malformed: bytes
) -> None:
    """The requests before a malformed one are answered (aiohttp alone dropped them when they
    came in the same packet, and its 400 looked like the first request's answer); then a 400
    says why and the server closes the connection: nothing after it is served."""
    sock = connect(webhook)
    sock.sendall(
        post("/validate-vmi", body("before", cca=False))
        + post("/mutate-vmi", body("also-before"))
        + malformed
        + post("/validate-vmi", body("after", cca=False))
    )
    sock.settimeout(30)
    answer = read_until_closed(sock)  # returns: the server closed the connection
    sock.close()
    answers = responses(answer)
    assert [status for status, _ in answers] == [200, 200, 400]
    assert [json.loads(b)["response"]["uid"] for _, b in answers[:2]] == ["before", "also-before"]


def test_the_bad_request_line_never_logs_another_request_s_body(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = b'{"userData": "password: hunter2"}'
    sock = connect(webhook)
    sock.sendall(post("/validate-vmi", secret) + b"GARBAGE\r\n\r\n")
    read_until_closed(sock)
    sock.close()
    assert all("hunter2" not in r.getMessage() for r in caplog.records)
