"""What one client may cost the webhook: time to send a request, connections, handshake time.

The API server calls the webhook with a 10-second timeout, and every CCA VMI create waits on it
(``failurePolicy: Fail``), so no client may stall the event loop or hold memory for long:

- a TLS handshake must finish within ``handshake_seconds`` (asyncio's own timer);
- a complete request head must arrive within ``head_seconds`` of the connection being made or
  of the previous answer on it (aiohttp's keep-alive timer closes a connection whose next
  request head has not arrived by then; that is also how long an idle connection is kept);
- the body must arrive within ``body_seconds`` of the head (the handler's read deadline);
- at most ``connections`` connections at once, ``per_peer`` of them from one address; a
  connection over the cap is closed right after its handshake, before anything is read;
- a request body is never decoded: aiohttp's decompression is off, and any
  ``Content-Encoding`` is refused before the body is read (see ``server.py``).

Measured costs and the figures behind the defaults: docs/performance.md and docs/security.md.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from dataclasses import dataclass

from aiohttp import web

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Per-connection time limits and connection caps of the HTTPS server."""

    handshake_seconds: float = 5.0
    head_seconds: float = 10.0
    body_seconds: float = 5.0
    connections: int = 256
    per_peer: int = 64


class ConnectionCap:
    """Counts open connections, in total and per peer address."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self.by_peer: Counter[str] = Counter()
        self.refused = 0

    def admit(self, peer: str) -> bool:
        if self.open >= self.limits.connections or self.by_peer[peer] >= self.limits.per_peer:
            self.refused += 1
            return False
        self.open += 1
        self.by_peer[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.open -= 1
        self.by_peer[peer] -= 1
        if self.by_peer[peer] <= 0:
            del self.by_peer[peer]


class _Guarded(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection: admitted by the cap, or closed at once."""

    def __init__(self, inner: asyncio.Protocol, cap: ConnectionCap) -> None:
        self._inner = inner
        self._cap = cap
        self._peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "unknown"
        if not self._cap.admit(peer):
            if self._cap.refused % 100 == 1:  # logged, not once per connection in a flood
                logger.warning("https connection refused peer=%s open=%d limit=%d "
                               "per_peer_limit=%d refused_total=%d", peer, self._cap.open,
                               self._cap.limits.connections, self._cap.limits.per_peer,
                               self._cap.refused)
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            else:
                transport.close()
            return
        self._peer = peer
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._peer is None:
            return
        self._cap.release(self._peer)
        self._peer = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._peer is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._peer is not None else None

    def pause_writing(self) -> None:
        if self._peer is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._peer is not None:
            self._inner.resume_writing()


class LimitedSite(web.BaseSite):
    """aiohttp's TCP site with a handshake deadline and the connection cap in front."""

    __slots__ = ("_host", "_limits", "_port", "bound_port", "cap")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *,
                 ssl_context: ssl.SSLContext,
                 limits: Limits) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._limits = limits
        self.cap = ConnectionCap(limits)
        self.bound_port = port

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self.bound_port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner is not set up")

        def factory() -> asyncio.Protocol:
            return _Guarded(server(), self.cap)

        self._server = await loop.create_server(
            factory, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            ssl_handshake_timeout=self._limits.handshake_seconds, reuse_address=True)
        sockets = self._server.sockets
        if sockets:
            self.bound_port = int(sockets[0].getsockname()[1])
