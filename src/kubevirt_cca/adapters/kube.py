"""Kubernetes access, shared by every component that talks to the API server.

kubevirt-cca uses lightkube (see docs/dependencies.md): an asyncio client with typed core
models and generic resources for KubeVirt's kinds. This module builds the client the same way
for every command, declares the KubeVirt resources once, and translates the client's exceptions
in one place (:func:`call`, :func:`stream`): every adapter that talks to the API server awaits
its requests through them and sees only :class:`~kubevirt_cca.errors.KubernetesAPIError` (409 as
:class:`~kubevirt_cca.errors.KubernetesConflict`, no answer at all as
:class:`~kubevirt_cca.errors.KubernetesUnreachable`), with the same wording everywhere.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from kubevirt_cca.adapters.kubeconfig import load_kubeconfig
from kubevirt_cca.errors import (
    KubeconfigError,
    KubernetesAPIError,
    KubernetesConflict,
    KubernetesFailedGuard,
    KubernetesForbidden,
    KubernetesInvalid,
    KubernetesNotFound,
    KubernetesUnreachable,
)

FIELD_MANAGER = "kubevirt-cca"
UNPROCESSABLE = 422
# The statuses callers decide on, as types: they catch these, never compare ``.status``.
_BY_STATUS: dict[int, type[KubernetesAPIError]] = {
    401: KubernetesForbidden,
    403: KubernetesForbidden,
    404: KubernetesNotFound,
    409: KubernetesConflict,
}
# What lightkube and httpx raise for a failed request (ApiError is an HTTPStatusError).
CLIENT_ERRORS = (httpx2.HTTPError, ValueError)
T = TypeVar("T")

# KubeVirt's kinds, as lightkube generic resources.
KubeVirt = create_namespaced_resource("kubevirt.io", "v1", "KubeVirt", "kubevirts")
VirtualMachineInstance = create_namespaced_resource(
    "kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances"
)
VirtualMachine = create_namespaced_resource(
    "kubevirt.io", "v1", "VirtualMachine", "virtualmachines"
)
Plugin = create_global_resource("plugin.kubevirt.io", "v1alpha1", "Plugin", "plugins")
CertificateRequest = create_namespaced_resource(
    "cert-manager.io", "v1", "CertificateRequest", "certificaterequests"
)


def kube_config(*, server: str | None = None, kubeconfig: str | None = None) -> KubeConfig:
    """Where the API server is: an explicit URL, a kubeconfig file, or the environment.

    The environment means the pod's service account in a cluster, else ``$KUBECONFIG`` or
    ``~/.kube/config``. An unusable kubeconfig is a :class:`KubeconfigError` naming the file
    (``adapters/kubeconfig.py``).
    """
    if server is not None:
        # An explicit (anonymous) user: lightkube's from_server() leaves it out, and its HTTP
        # adapter then refuses to build a client ("Missing user").
        return KubeConfig.from_one(cluster=Cluster(server=server), user=User())
    return load_kubeconfig(kubeconfig)


def async_client(
    *, server: str | None = None, kubeconfig: str | None = None, namespace: str | None = None
) -> AsyncClient:
    """An asyncio client; ``server`` (e.g. a test emulator's URL) wins over the environment."""
    config = kube_config(server=server, kubeconfig=kubeconfig)
    try:
        return AsyncClient(
            config=config, namespace=namespace, field_manager=FIELD_MANAGER, trust_env=False
        )
    except (OSError, ssl.SSLError, ConfigError) as exc:
        # The files exist (load_kubeconfig checked) but do not load: not PEM, a key that
        # does not match its certificate.
        raise KubeconfigError(
            "no usable Kubernetes configuration: "
            f"the kubeconfig's certificate or key files do not load ({exc}); "
            "check certificate-authority, client-certificate and client-key "
            "(or their -data forms) of the current context",
            detail=str(exc),
        ) from exc


async def call(what: str, request: Awaitable[T]) -> T:
    """Await one API request; the client's exceptions become :class:`KubernetesAPIError`.

    ``what`` names the request in the message (``"get nodes"``); ``detail`` holds the reason
    alone (``"403 Forbidden: ..."``, ``"the API server could not be reached (...)"``).
    """
    try:
        return await request
    except CLIENT_ERRORS as exc:
        raise translate(what, exc) from exc


async def stream(
    what: str, events: AsyncIterable[tuple[str, Any]]
) -> AsyncIterator[tuple[str, Any]]:
    """A watch's events, with the client's exceptions translated as :func:`call` does."""
    try:
        async for event in events:
            yield event
    except CLIENT_ERRORS as exc:
        raise translate(what, exc) from exc


def translate(what: str, exc: httpx2.HTTPError | ValueError) -> KubernetesAPIError:
    """The one translation of a Kubernetes client exception (one of :data:`CLIENT_ERRORS`).

    lightkube raises :class:`ApiError` with the parsed ``Status`` when the answer's content type
    is exactly ``application/json``, else httpx's ``HTTPStatusError``; both read alike here.
    """
    if isinstance(exc, ApiError):
        code = exc.status.code or (exc.response.status_code if exc.response else 0)
        reason = f"{exc.status.reason}: " if exc.status.reason else ""
        details = exc.status.details
        causes = (
            [
                {"field": c.field, "message": c.message, "reason": c.reason}
                for c in (details.causes or [])
            ]
            if details is not None
            else []
        )
        return _answered(
            what, code, f"{code} {reason}{exc.status.message or 'no message'}", _causes(causes)
        )
    if isinstance(exc, httpx2.HTTPStatusError):
        code = exc.response.status_code
        return _answered(
            what, code, f"{code} {status_text(exc.response)}", _causes(_json_causes(exc.response))
        )
    if isinstance(exc, httpx2.HTTPError):
        detail = f"the API server could not be reached ({type(exc).__name__}: {exc or 'no detail'})"
        return KubernetesUnreachable(f"{what}: {detail}", detail=detail)
    # A ValueError: the answer was not the object the client expected.
    detail = f"unreadable response: {exc}"
    return KubernetesAPIError(f"{what}: {detail}", detail=detail)


def status_text(response: httpx2.Response) -> str:
    """``Reason: message`` from a Kubernetes Status body, else the HTTP reason phrase."""
    try:
        status = response.json()
    except ValueError:
        status = None
    if isinstance(status, dict) and (status.get("reason") or status.get("message")):
        reason = f"{status['reason']}: " if status.get("reason") else ""
        return f"{reason}{status.get('message') or 'no message'}"
    return response.reason_phrase or "no detail"


def _answered(
    what: str, code: int, detail: str, causes: tuple[str, ...] = ()
) -> KubernetesAPIError:
    kind = _BY_STATUS.get(code, KubernetesAPIError)
    if code == UNPROCESSABLE:
        kind = KubernetesInvalid if causes else KubernetesFailedGuard
    return kind(f"{what}: {detail}", status=code, detail=detail, causes=causes)


def _json_causes(response: httpx2.Response) -> list[Any]:
    try:
        status = response.json()
    except ValueError:
        return []
    details = status.get("details") if isinstance(status, dict) else None
    causes = details.get("causes") if isinstance(details, dict) else None
    return causes if isinstance(causes, list) else []


def _causes(causes: list[Any]) -> tuple[str, ...]:
    """``field: message`` per cause of a Status (duplicates dropped, in order)."""
    found: list[str] = []
    for cause in causes:
        if not isinstance(cause, dict):
            continue
        text = (
            f"{cause.get('field') or '(object)'}: "
            f"{cause.get('message') or cause.get('reason') or 'invalid'}"
        )
        if text not in found:
            found.append(text)
    return tuple(found)
