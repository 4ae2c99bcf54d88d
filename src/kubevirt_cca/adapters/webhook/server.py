"""The webhook's servers: AdmissionReview over HTTPS, health and metrics over plain HTTP.

The HTTPS application only translates: read a bounded body, parse it with the core, ask the
cluster source for what the core needs, call :func:`~kubevirt_cca.core.admission.admit.admit`,
write the AdmissionReview back, log one line and count it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from kubevirt_cca.adapters.webhook.limits import LimitedSite, Limits, LogBudget, ProtocolLog
from kubevirt_cca.adapters.webhook.tls import ReloadingTLS
from kubevirt_cca.core.admission.admit import Verdict, admit, migration_target
from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.admission.reviews import (
    AdmissionReview,
    MalformedReview,
    build_review,
    deny,
    parse_review,
)
from kubevirt_cca.core.admission.validate import VMILookup
from kubevirt_cca.core.vmi.webhook_table import WEBHOOKS, Endpoint
from kubevirt_cca.errors import Violation

logger = logging.getLogger(__name__)

# An AdmissionReview holds the object and the old object; Kubernetes stores objects up to
# ~1.5 MiB, so 8 MiB leaves room and still bounds what one request can make us hold.
MAX_BODY_BYTES = 8 * 1024 * 1024
_KNOWN_KINDS = frozenset(kind for hook in WEBHOOKS for kind in hook.kinds) | {"unknown"}
_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT", "unknown"})
_REASONS = {400: "BadRequest", 408: "Timeout", 415: "UnsupportedMediaType"}
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ClusterSource(Protocol):
    """What the server needs from the cluster (the watch-fed cache; the tests' fixed view)."""

    @property
    def ready(self) -> bool: ...

    def view(self) -> ClusterView: ...

    async def lookup_vmi(self, namespace: str, name: str) -> VMILookup: ...


class Metrics:
    """Admissions by kind, operation and verdict; latency per endpoint; with ``tls``, the end
    of the serving certificate's validity (read at each scrape, so it follows reloads)."""

    def __init__(self, registry: CollectorRegistry, tls: ReloadingTLS | None = None) -> None:
        self.registry = registry
        self.admissions = Counter(
            "kubevirt_cca_admissions",
            "AdmissionReviews answered",
            ("endpoint", "kind", "operation", "verdict"),
            registry=registry,
        )
        self.latency = Histogram(
            "kubevirt_cca_admission_duration_seconds",
            "Time from request to AdmissionReview answer",
            ("endpoint",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        if tls is not None:
            Gauge(
                "kubevirt_cca_webhook_certificate_not_after_timestamp_seconds",
                "When the serving certificate in use expires (Unix time)",
                registry=registry,
            ).set_function(lambda: tls.not_after)


class WebhookApp:
    """Builds the HTTPS and the health applications around one cluster source."""

    def __init__(
        self,
        source: ClusterSource,
        *,
        tls: ReloadingTLS | None = None,
        registry: CollectorRegistry | None = None,
        max_body: int = MAX_BODY_BYTES,
        limits: Limits | None = None,
    ) -> None:
        self.source = source
        self.tls = tls
        self.limits = limits or Limits()
        self.metrics = Metrics(registry or CollectorRegistry(), tls)
        self.max_body = max_body
        # What a flood of bad requests (or a bug hit by every request) may write to the log.
        self.bad_requests = LogBudget(
            logger,
            what="bad requests",
            limit=self.limits.bad_request_logs,
            interval=self.limits.log_interval_seconds,
        )
        self.internal_errors = LogBudget(
            logger,
            what="admission internal errors",
            limit=self.limits.bad_request_logs,
            interval=self.limits.log_interval_seconds,
        )

    def https_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        for endpoint in Endpoint:
            app.router.add_post(f"/{endpoint.value}", self._handler(endpoint))
        return app

    def health_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    def _handler(self, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
        latency = self.metrics.latency.labels(endpoint.value)  # one child per endpoint

        async def handle(request: web.Request) -> web.Response:
            started = time.perf_counter()
            try:
                return await self._review(endpoint, request, started)
            finally:
                latency.observe(time.perf_counter() - started)

        return handle

    async def _review(
        self, endpoint: Endpoint, request: web.Request, started: float
    ) -> web.Response:
        refused = self._refuse_unread(endpoint, request)
        if refused is not None:
            return await _answer_and_close(request, refused)
        try:
            async with asyncio.timeout(self.limits.body_seconds):
                body = await _read_bounded(request, self.max_body)
        except TimeoutError:
            return await _answer_and_close(
                request,
                self._bad_request(
                    endpoint,
                    (f"the body did not arrive within {self.limits.body_seconds:g} seconds"),
                    status=408,
                ),
            )
        if body is None:
            return self._bad_request(endpoint, f"the body is larger than {self.max_body} bytes")
        try:
            review = parse_review(body)
        except MalformedReview as exc:
            if exc.uid is None:
                return self._bad_request(endpoint, str(exc))
            cause = Violation("request", str(exc))
            self._count(endpoint, "unknown", "unknown", "malformed")
            if logger.isEnabledFor(logging.INFO) and self.bad_requests.allow():
                logger.info(
                    "admission endpoint=%s uid=%s verdict=malformed problem=%r",
                    endpoint.value,
                    log_value(exc.uid),
                    str(exc)[:300],
                )
            return _json(build_review(deny(exc.uid, [cause], code=400)))
        try:
            lookup = None
            target = migration_target(review) if endpoint is Endpoint.VALIDATE_MIGRATION else None
            if target is not None:
                lookup = await self.source.lookup_vmi(*target)
            verdict = admit(endpoint, review, self.source.view(), lookup=lookup)
        except Exception:
            if self.internal_errors.allow():
                logger.exception(
                    "admission endpoint=%s uid=%s verdict=error",
                    endpoint.value,
                    log_value(review["uid"]),
                )
            cause = Violation(
                "",
                "kubevirt-cca hit an internal error deciding this request; it is refused "
                "(fail closed). The webhook's log has the details",
            )
            self._count(endpoint, review["kind"]["kind"], review["operation"], "error")
            return _json(build_review(deny(review["uid"], [cause], code=500)))
        self._log(endpoint, review["uid"], verdict, started)
        self._count(endpoint, verdict.kind, verdict.operation, verdict.verdict)
        return _json(build_review(verdict.response))

    def _refuse_unread(self, endpoint: Endpoint, request: web.Request) -> web.Response | None:
        """A refusal decided from the head alone, before a byte of the body is read."""
        encoding = request.headers.get(hdrs.CONTENT_ENCODING)
        if encoding is not None and encoding.strip().lower() not in ("", "identity"):
            # Never inflate a body: a small compressed body can expand a thousandfold.
            return self._bad_request(
                endpoint,
                (
                    f"Content-Encoding {_shown(encoding)} is not accepted; "
                    "send the AdmissionReview as plain JSON (the Kubernetes API server does)"
                ),
                status=415,
            )
        return None

    def _bad_request(self, endpoint: Endpoint, message: str, *, status: int = 400) -> web.Response:
        self._count(endpoint, "unknown", "unknown", "malformed")
        if logger.isEnabledFor(logging.INFO) and self.bad_requests.allow():
            logger.info(
                "admission endpoint=%s verdict=bad-request status=%d problem=%r",
                endpoint.value,
                status,
                message[:300],
            )
        return web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": status,
                "reason": _REASONS.get(status, "BadRequest"),
                "message": message,
            },
            status=status,
        )

    def _count(self, endpoint: Endpoint, kind: str, operation: str, verdict: str) -> None:
        # Label values come from the request: keep them to the known few (bounded cardinality).
        kind = kind if kind in _KNOWN_KINDS else "other"
        operation = operation if operation in _OPERATIONS else "other"
        self.metrics.admissions.labels(endpoint.value, kind, operation, verdict).inc()

    def _log(self, endpoint: Endpoint, uid: str, verdict: Verdict, started: float) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        causes = [f"{c.field}: {c.message}"[:300] for c in verdict.causes]
        logger.info(
            "admission endpoint=%s uid=%s kind=%s operation=%s namespace=%s name=%s verdict=%s "
            "patch_ops=%d causes=%s duration_ms=%.2f",
            endpoint.value,
            log_value(uid),
            log_value(verdict.kind),
            log_value(verdict.operation),
            log_value(verdict.namespace or "-"),
            log_value(verdict.name or "-"),
            verdict.verdict,
            verdict.patched,
            json.dumps(causes),
            (time.perf_counter() - started) * 1000,
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if not self.source.ready:
            return web.Response(status=503, text="cluster state not listed yet\n")
        return web.Response(text="ready\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, or ``None`` when it is larger than ``limit`` (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _answer_and_close(request: web.Request, response: web.Response) -> web.Response:
    """Send ``response``, then close the connection without reading the rest of the body."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()  # flushes the answer first
    return response


_PLAIN = re.compile(r"\A[A-Za-z0-9._:/@-]{1,253}\Z")


def log_value(value: str) -> str:
    """A value from a request, safe in a log line: Kubernetes names as they are, anything else
    (spaces, newlines, control or non-ASCII characters) quoted and escaped as JSON, so a
    request cannot forge a log line or a field."""
    if _PLAIN.match(value):
        return value
    text = json.dumps(value)
    return text if len(text) <= 200 else text[:197] + '..."'


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


# json.dumps with separators builds a new encoder per call; one serves every answer.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def _json(review: AdmissionReview) -> web.Response:
    return web.Response(body=_COMPACT.encode(review).encode(), content_type="application/json")


@dataclass
class Running:
    """The two listening sites of a started webhook, for shutdown."""

    runners: list[web.AppRunner]
    https_port: int
    health_port: int
    https_site: LimitedSite | None = None

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


async def serve(app: WebhookApp, *, host: str, port: int, health_port: int) -> Running:
    """Start HTTPS on ``port`` and health/metrics on ``health_port`` (0: pick free ports).

    The HTTPS side runs with ``app.limits`` (``limits.py``): no body decompression, a deadline
    for each request head, capped connections. The rest of an oversized body is discarded
    (never decoded) for at most ``body_seconds`` so the client can read its 400; a body that
    was refused unread (415) or arrived too slowly (408) closes the connection at once.
    """
    if app.tls is None:
        raise ValueError("the webhook serves TLS only: give it a ReloadingTLS")
    https = web.AppRunner(
        app.https_app(),
        access_log=None,
        # aiohttp logs each request its parser refuses with a traceback: one line instead.
        logger=ProtocolLog(logger, app.bad_requests),
        auto_decompress=False,
        lingering_time=app.limits.body_seconds,
        keepalive_timeout=app.limits.head_seconds,
    )
    health = web.AppRunner(app.health_app(), access_log=None)
    await https.setup()
    await health.setup()
    https_site = LimitedSite(https, host, port, ssl_context=app.tls.context, limits=app.limits)
    health_site = web.TCPSite(health, host, health_port)
    await https_site.start()
    await health_site.start()
    return Running([https, health], https_site.bound_port, _port(health_site), https_site)


def _port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here; the bound port is on it
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else 0
