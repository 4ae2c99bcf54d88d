"""What one client may cost the webhook: time to send a request, connections, handshake time.

The API server calls the webhook with a 10-second timeout, and every CCA VMI create waits on it
(``failurePolicy: Fail``), so no client may stall the event loop or hold memory for long:

- a TLS handshake must finish within ``handshake_seconds`` (asyncio's own timer);
- a complete request head must arrive within ``head_seconds`` of the connection being made or
  of the previous answer on it (aiohttp's keep-alive timer closes a connection whose next
  request head has not arrived by then; that is also how long an idle connection is kept);
- the body must arrive within ``body_seconds`` of the head (the handler's read deadline);
- at most ``connections`` connections at once, ``per_peer`` of them from one address,
  counted from the TCP accept; a connection over the cap is closed at once, before any TLS
  work (a handshake is the most expensive thing a client can make the server do);
- a request body is never decoded: aiohttp's decompression is off, and any
  ``Content-Encoding`` is refused before the body is read (see ``server.py``);
- a malformed request costs one short log line, and at most ``bad_request_logs`` of them are
  written per ``log_interval_seconds``; then one line says how many more were not
  (:class:`LogBudget`, :class:`ProtocolLog`). It used to cost an 11-line traceback each.

Measured costs and the figures behind the defaults: docs/performance.md and docs/security.md.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Per-connection time limits and connection caps of the HTTPS server."""

    handshake_seconds: float = 5.0
    head_seconds: float = 10.0
    body_seconds: float = 5.0
    connections: int = 256
    per_peer: int = 64
    bad_request_logs: int = 10
    log_interval_seconds: float = 60.0


class LogBudget:
    """At most ``limit`` lines per ``interval`` seconds for one kind of event; past that the
    events are counted, and when the interval ends one line says how many were not logged.

    Runs on the event loop (aiohttp calls its logger there); ``clock`` is for tests.
    """

    def __init__(
        self,
        log: logging.Logger,
        *,
        what: str,
        limit: int,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._what = what
        self._limit = limit
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._logged = 0
        self._suppressed = 0
        self._flush_handle: asyncio.TimerHandle | None = None

    def allow(self) -> bool:
        """Whether this event may be logged now (else it is counted for the summary)."""
        now = self._clock()
        if now - self._started >= self._interval:
            self.flush()
            self._started, self._logged = now, 0
        if self._logged < self._limit:
            self._logged += 1
            return True
        self._suppressed += 1
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop: the next event after the interval flushes
                return False
            delay = max(0.0, self._started + self._interval - now)
            self._flush_handle = loop.call_later(delay, self.flush)
        return False

    def flush(self) -> None:
        """Log the summary of what was not logged, if anything was not."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._suppressed:
            self._log.warning(
                "%s: %d more not logged in the last %gs (at most %d logged per %gs)",
                self._what,
                self._suppressed,
                self._interval,
                self._limit,
                self._interval,
            )
            self._suppressed = 0


class ProtocolLog:
    """The logger aiohttp's HTTP protocol writes to, keeping a flood out of the log.

    A malformed request (aiohttp's parser refused it: an ``HttpProcessingError``) is one
    warning line, ``https bad request peer=... problem=...``, within ``budget``; any other
    error aiohttp reports keeps its traceback, within the same budget. aiohttp's own debug
    chatter passes through at debug level.
    """

    def __init__(self, log: logging.Logger, budget: LogBudget) -> None:
        self._log = log
        self._budget = budget

    def isEnabledFor(self, level: int) -> bool:
        return self._log.isEnabledFor(level)

    def debug(self, msg: str, *args: Any, exc_info: Any = None, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            # aiohttp's "not HTTP at all" on a connection's first request: quiet by design.
            if self._log.isEnabledFor(logging.DEBUG) and self._budget.allow():
                self._log.debug(*_bad_request_line(args, exc_info))
            return
        self._log.debug(msg, *args, exc_info=exc_info, **kwargs)

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if exc_info is True:
            exc_info = sys.exc_info()[1]
        if not self._budget.allow():
            return
        if isinstance(exc_info, HttpProcessingError):
            self._log.warning(*_bad_request_line(args, exc_info))
            return
        self._log.error(msg, *args, exc_info=exc_info, **kwargs)

    error = exception

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log.warning(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._log.info(msg, *args, **kwargs)


def _bad_request_line(args: tuple[Any, ...], exc: HttpProcessingError) -> tuple[Any, ...]:
    peer = args[0] if args and isinstance(args[0], str) else "unknown"
    # aiohttp's message is the reason, a blank line, then the bytes around the error: only the
    # reason is logged (the bytes may be another request's body, which is never logged).
    reason = str(exc.message).split("\n\n", 1)[0]
    problem = " ".join(reason.split()).rstrip(":")[:200]
    return ("https bad request peer=%s status=%d problem=%r", peer, exc.code, problem)


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


class _Gate(asyncio.Protocol):
    """The plain TCP side of one connection: counted by the cap before any TLS work.

    Over the cap, the connection is closed at once (the handshake would cost CPU). Admitted,
    the TLS handshake runs with its deadline, then aiohttp's protocol gets the connection.
    The slot is released when the connection ends, whichever side it ends on.
    """

    def __init__(
        self,
        make_inner: Callable[[], asyncio.Protocol],
        cap: ConnectionCap,
        context: ssl.SSLContext,
        limits: Limits,
    ) -> None:
        self._make_inner = make_inner
        self._cap = cap
        self._context = context
        self._limits = limits
        self._peer: str | None = None
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "unknown"
        if not isinstance(transport, asyncio.Transport) or not self._cap.admit(peer):
            if self._cap.refused % 100 == 1:  # logged, not once per connection in a flood
                logger.warning(
                    "https connection refused peer=%s open=%d limit=%d per_peer_limit=%d "
                    "refused_total=%d",
                    peer,
                    self._cap.open,
                    self._cap.limits.connections,
                    self._cap.limits.per_peer,
                    self._cap.refused,
                )
            transport.close()
            return
        self._peer = peer
        # The ClientHello stays in the socket until start_tls reads it (resumes reading).
        transport.pause_reading()
        _TASKS.add(task := asyncio.get_running_loop().create_task(self._handshake(transport)))
        task.add_done_callback(_TASKS.discard)

    async def _handshake(self, transport: asyncio.Transport) -> None:
        inner = _Counted(self._make_inner(), self._release)
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport,
                inner,
                self._context,
                server_side=True,
                ssl_handshake_timeout=self._limits.handshake_seconds,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            logger.debug("https handshake failed peer=%s problem=%r", self._peer, str(exc))
            transport.abort()
            self._release()
            return
        if tls is None:  # the connection closed as the handshake finished
            transport.abort()
            self._release()
            return
        inner.connection_made(tls)

    def _release(self) -> None:
        if self._peer is not None:
            self._cap.release(self._peer)
            self._peer = None

    def connection_lost(self, exc: Exception | None) -> None:
        # Only reached before the handshake took the transport over (start_tls swaps the
        # protocol); a lost connection mid-handshake makes start_tls fail, which releases.
        return None


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one TLS connection; releases the cap slot when it ends.

    ``start_tls`` hands back the TLS transport without calling ``connection_made``, and the
    client's first bytes may be delivered before that: they are held until it is called.
    """

    def __init__(self, inner: asyncio.Protocol, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release = release
        self._made = False
        self._early: list[bytes] = []
        self._early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)
        self._made = True
        early, self._early = self._early, []
        for data in early:
            _feed(self._inner, data)
        if self._early_eof:
            self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._made:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._made:
            _feed(self._inner, data)
        else:
            self._early.append(data)

    def eof_received(self) -> bool | None:
        if self._made:
            return self._inner.eof_received()
        self._early_eof = True
        return None

    def pause_writing(self) -> None:
        if self._made:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._made:
            self._inner.resume_writing()


# At most this many pieces per delivery: the split costs a call into aiohttp's parser each, and
# a body full of blank lines must not multiply that cost.
MAX_PIECES = 16
_HEAD_END = b"\r\n\r\n"


def _feed(inner: asyncio.Protocol, data: bytes) -> None:
    """Hand ``data`` to aiohttp cut after each end of a request head (up to MAX_PIECES).

    aiohttp's parser drops every request it read from one delivery when a later one in it is
    malformed, and answers only the 400: with pipelining the client would take that 400 for
    its first request's answer. Cut this way each delivery holds at most one head, so requests
    before a malformed one are queued, and answered, before it fails. (Any cut is one TCP
    could have made, which the parser handles anyway.)
    """
    start = 0
    for _ in range(MAX_PIECES - 1):
        end = data.find(_HEAD_END, start)
        if end < 0 or end + len(_HEAD_END) >= len(data):
            break
        inner.data_received(data[start : end + len(_HEAD_END)])
        start = end + len(_HEAD_END)
    inner.data_received(data[start:] if start else data)


_TASKS: set[asyncio.Task[None]] = set()  # handshakes in flight (a task needs a reference)


class LimitedSite(web.BaseSite):
    """aiohttp's TCP site with a handshake deadline and the connection cap in front."""

    __slots__ = ("_host", "_limits", "_port", "bound_port", "cap")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        limits: Limits,
    ) -> None:
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

        context = self._ssl_context
        if context is None:
            raise RuntimeError("the HTTPS site needs a TLS context")

        def factory() -> asyncio.Protocol:
            return _Gate(server, self.cap, context, self._limits)

        # Plain TCP here; each admitted connection starts TLS itself (_Gate), so the cap
        # applies before any handshake work.
        self._server = await loop.create_server(
            factory, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        sockets = self._server.sockets
        if sockets:
            self.bound_port = int(sockets[0].getsockname()[1])
