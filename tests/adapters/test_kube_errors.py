"""The one translation of Kubernetes client errors (adapters/kube.py), against a real HTTP server.

Every adapter that talks to the API server awaits through ``kube.call``/``kube.stream``; this
pins what each kind of answer becomes: the class (404 not found, 401/403 forbidden, 409 a
conflict, 422 without causes a failed guard, no answer unreachable), the HTTP status, and the
detail every message carries, whether lightkube parsed a Status (exact ``application/json``) or
httpx raised on another content type.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from lightkube.resources.core_v1 import Node

from kubevirt_cca.adapters.kube import async_client, call, stream
from kubevirt_cca.errors import (
    KubernetesAPIError,
    KubernetesConflict,
    KubernetesFailedGuard,
    KubernetesForbidden,
    KubernetesInvalid,
    KubernetesNotFound,
    KubernetesUnreachable,
)

pytestmark = pytest.mark.asyncio


def status(code: int, reason: str, message: str, *causes: str) -> str:
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": {},
    }
    if causes:
        body["details"] = {
            "causes": [
                {"reason": "FieldValueTooLong", "field": field, "message": "Too long"}
                for field in causes
            ]
        }
    return json.dumps(body)


# answer (status, Content-Type, body) -> (exception class, HTTP status, detail)
JSON = "application/json"
ANSWERS: dict[str, tuple[tuple[int, str, str], type[KubernetesAPIError], int, str]] = {
    "forbidden, a Status lightkube parses": (
        (403, JSON, status(403, "Forbidden", "nodes is forbidden")),
        KubernetesForbidden,
        403,
        "403 Forbidden: nodes is forbidden",
    ),
    "unauthorized": (
        (401, JSON, status(401, "Unauthorized", "Unauthorized")),
        KubernetesForbidden,
        401,
        "401 Unauthorized: Unauthorized",
    ),
    "not found": (
        (404, JSON, status(404, "NotFound", 'nodes "arm-1" not found')),
        KubernetesNotFound,
        404,
        '404 NotFound: nodes "arm-1" not found',
    ),
    "conflict": (
        (409, JSON, status(409, "Conflict", "the object has been modified")),
        KubernetesConflict,
        409,
        "409 Conflict: the object has been modified",
    ),
    "invalid, a Status with a charset (httpx raises, not lightkube)": (
        (422, f"{JSON}; charset=utf-8", status(422, "Invalid", "annotations: Too long")),
        KubernetesFailedGuard,
        422,
        "422 Invalid: annotations: Too long",
    ),
    # What the API server answers for a Node whose annotations pass 256 KiB (causes repeat).
    "invalid with causes, a Status lightkube parses": (
        (
            422,
            JSON,
            status(
                422, "Invalid", "Node is invalid", "metadata.annotations", "metadata.annotations"
            ),
        ),
        KubernetesInvalid,
        422,
        "422 Invalid: Node is invalid",
    ),
    "invalid with causes, with a charset": (
        (
            422,
            f"{JSON}; charset=utf-8",
            status(422, "Invalid", "Node is invalid", "metadata.annotations"),
        ),
        KubernetesInvalid,
        422,
        "422 Invalid: Node is invalid",
    ),
    # A JSON patch whose test operation failed: 422 with empty details (not invalid).
    "a failed test guard": (
        (
            422,
            JSON,
            status(
                422, "Invalid", "the server rejected our request due to an error in our request"
            ),
        ),
        KubernetesFailedGuard,
        422,
        "422 Invalid: the server rejected our request due to an error in our request",
    ),
    "a proxy's plain-text error": (
        (502, "text/plain", "upstream down"),
        KubernetesAPIError,
        502,
        "502 Bad Gateway",
    ),
}


@contextlib.asynccontextmanager
async def answering(code: int, content_type: str, body: str) -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 that gives every request this answer; yields its URL."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, body=body.encode(), headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("case", list(ANSWERS))
async def test_each_answer_becomes_one_error(case: str) -> None:
    answer, kind, code, detail = ANSWERS[case]
    async with answering(*answer) as url:
        client = async_client(server=url)
        try:
            with pytest.raises(KubernetesAPIError) as caught:
                await call("get nodes", client.get(Node, "arm-1"))
        finally:
            await client.close()
    assert type(caught.value) is kind
    assert caught.value.status == code
    assert caught.value.detail == detail
    assert str(caught.value) == f"get nodes: {detail}"
    expected_causes = ("metadata.annotations: Too long",) if kind is KubernetesInvalid else ()
    assert caught.value.causes == expected_causes


async def test_no_answer_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = async_client(server=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(KubernetesUnreachable) as caught:
            await call("get nodes", client.get(Node, "arm-1"))
        with pytest.raises(KubernetesUnreachable):
            async for _ in stream("watch nodes", client.watch(Node)):
                pass
    finally:
        await client.close()
    assert caught.value.status is None
    assert caught.value.detail.startswith("the API server could not be reached (")
