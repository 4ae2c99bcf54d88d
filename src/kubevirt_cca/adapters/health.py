"""``/healthz``, ``/readyz`` and ``/metrics`` over plain HTTP, for kubelet probes and Prometheus.

Built on the standard library's WSGI server and prometheus-client's WSGI exposition, serving
one request at a time from one daemon thread. That is plenty for a probe every few seconds and
a scrape every half minute, and it keeps a long-running process small: the node labeller runs
on every arm64 node within a 60 MiB budget, and aiohttp alone would cost it about 13 MiB.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app

from kubevirt_cca.errors import CCAError

# A client that has not sent its request within this many seconds is dropped.
REQUEST_TIMEOUT_SECONDS = 5.0


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: object) -> None:
        """Probes and scrapes are not worth a log line each."""


class _Server(WSGIServer):
    address_family = socket.AF_INET


class _Server6(WSGIServer):
    address_family = socket.AF_INET6


class HealthServer:
    """Serves ``ready()`` at ``/readyz``, liveness at ``/healthz`` and ``registry`` at ``/metrics``.

    ``host`` ``""`` listens on every IPv4 address; an address with ``:`` is IPv6. Port 0 picks a
    free port; :meth:`start` returns the one bound.
    """

    def __init__(
        self,
        *,
        ready: Callable[[], bool],
        registry: CollectorRegistry,
        host: str,
        port: int,
        not_ready_message: str = "not ready",
    ) -> None:
        self.ready = ready
        self.host = host
        self.port = port
        self.not_ready_message = not_ready_message
        self._metrics = make_wsgi_app(registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        server_class = _Server6 if ":" in self.host else _Server
        try:
            server = make_server(
                self.host, self.port, self._app, server_class=server_class, handler_class=_Handler
            )
        except OSError as exc:
            raise CCAError(
                "health endpoint: "
                f"cannot listen on {self.host or '*'}:{self.port}: {exc.strerror or exc}"
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="health-endpoint",
            daemon=True,
        )
        self._thread.start()
        self.port = server.server_port
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if method not in ("GET", "HEAD"):
            return _plain(
                start_response,
                "405 Method Not Allowed",
                "only GET and HEAD\n",
                [("Allow", "GET, HEAD")],
            )
        if path == "/healthz":
            return _plain(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            if self.ready():
                return _plain(start_response, "200 OK", "ready\n")
            return _plain(start_response, "503 Service Unavailable", f"{self.not_ready_message}\n")
        if path == "/metrics":
            body: Iterable[bytes] = self._metrics(environ, start_response)
            return body
        return _plain(start_response, "404 Not Found", "try /healthz, /readyz or /metrics\n")


def _plain(
    start_response: StartResponse,
    status: str,
    text: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = text.encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *(headers or []),
        ],
    )
    return [body]
