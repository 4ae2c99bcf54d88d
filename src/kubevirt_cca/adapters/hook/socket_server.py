"""A gRPC server on one unix socket, with the lifecycle a sidecar needs.

It knows nothing of the protocol it serves: callers hand it gRPC handlers (the KubeVirt hook
services today; KubeVirt Plugins' ``DomainHookService`` can get its own instance on another
socket). It owns the socket file: a stale one left by a killed process is replaced, a live one
or a non-socket file is refused, and its own socket is removed when it stops.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import stat
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import grpc

from kubevirt_cca.errors import SettingsError

logger = logging.getLogger(__name__)

# sockaddr_un.sun_path holds 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
DEFAULT_WORKERS = 4
DEFAULT_GRACE_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class UnixSocketServer:
    """Serve ``handlers`` over gRPC on the unix socket ``path``.

    ``start()`` binds and serves in gRPC's threads; ``request_stop()`` (from a signal handler or
    an RPC such as the hook's ``Shutdown``) sets ``stop_event``, which whoever runs the server
    waits on; ``stop()`` ends the server and removes the socket. Servers that live and die
    together (one process, several sockets) share one ``stop_event``.
    """

    def __init__(
        self,
        path: Path,
        handlers: Sequence[grpc.GenericRpcHandler],
        *,
        max_workers: int = DEFAULT_WORKERS,
        stop_event: threading.Event | None = None,
        socket_mode: int | None = None,
        option: str = "--socket-dir",
    ) -> None:
        self.path = path
        self.socket_mode = socket_mode
        self.option = option
        """The command-line option that chose ``path``, named in refusals."""
        """Permission bits set on the socket after binding (``None``: leave the umask's)."""
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self._handlers = list(handlers)
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self._inode: tuple[int, int] | None = None

    def start(self) -> None:
        """Claim the socket path, bind it and start serving."""
        check_socket_path(self.path, option=self.option)
        _prepare_directory(self.path.parent)
        _claim_socket_path(self.path, option=self.option)
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="grpc-" + self.path.stem
            ),
            handlers=self._handlers,
        )
        address = f"unix:{self.path}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise SettingsError(f"cannot listen on unix socket {self.path}: {exc}") from exc
        if bound == 0:
            raise SettingsError(f"cannot listen on unix socket {self.path}")
        if self.socket_mode is not None:
            try:
                self.path.chmod(self.socket_mode)
            except OSError as exc:
                server.stop(None)
                self.path.unlink(missing_ok=True)
                raise SettingsError(
                    f"cannot set the mode of unix socket {self.path}: {exc.strerror}"
                ) from exc
        server.start()
        info = self.path.stat()
        self._inode = (info.st_dev, info.st_ino)
        self._server = server
        logger.info("listening socket=%s", self.path)

    def request_stop(self) -> None:
        """Ask for the server to be stopped; safe from signal handlers and RPC threads."""
        self.stop_event.set()

    def stop(self, grace: float = DEFAULT_GRACE_SECONDS) -> None:
        """Stop serving (in-flight calls get ``grace`` seconds) and remove our socket file."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace).wait()
        self._remove_own_socket()
        if server is not None:
            logger.info("stopped socket=%s", self.path)

    def _remove_own_socket(self) -> None:
        if self._inode is None:
            return
        try:
            info = self.path.lstat()
        except FileNotFoundError:
            return
        # Only our socket: if something replaced it meanwhile, it is not ours to delete.
        if (info.st_dev, info.st_ino) == self._inode and stat.S_ISSOCK(info.st_mode):
            self.path.unlink(missing_ok=True)
        self._inode = None


def serve_until_stopped(
    servers: Sequence[UnixSocketServer], *, grace: float = DEFAULT_GRACE_SECONDS
) -> None:
    """Run ``servers`` until SIGTERM/SIGINT or a stop request (their shared ``stop_event``).

    Must run in the main thread (Python delivers signals there).
    """
    if not servers:
        return
    stop = servers[0].stop_event
    if any(server.stop_event is not stop for server in servers):
        raise ValueError("servers run together must share one stop_event")

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    with _signal_handlers(on_signal):
        started: list[UnixSocketServer] = []
        try:
            for server in servers:
                server.start()
                started.append(server)
            stop.wait()
            logger.info("stopping sockets=%s", ",".join(str(s.path) for s in started))
        finally:
            for server in reversed(started):
                server.stop(grace)


@contextmanager
def _signal_handlers(handler: signal._HANDLER) -> Iterator[None]:
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def check_socket_path(path: Path, *, option: str = "--socket-dir") -> None:
    """Refuse a socket path the kernel cannot bind (relative, or longer than sun_path)."""
    if not path.is_absolute():
        raise SettingsError(f"socket path {path}: expected an absolute path")
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH_BYTES:
        raise SettingsError(
            f"socket path {path} is {size} bytes long; "
            f"a unix socket path can have at most {MAX_SOCKET_PATH_BYTES}: "
            f"choose a shorter {option}"
        )


def _prepare_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(
            f"cannot create the socket directory {directory}: {exc.strerror}; "
            "in a virt-launcher pod KubeVirt mounts it "
            "(is this container attached as a hook sidecar?)"
        ) from exc
    if not directory.is_dir():
        raise SettingsError(f"socket directory {directory} is not a directory")


def _claim_socket_path(path: Path, *, option: str) -> None:
    """Make ``path`` free for a new socket: replace a stale socket, refuse anything else."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SettingsError(
            f"{path} exists and is not a socket; refusing to replace it (remove it, "
            f"or choose another {option})"
        )
    if _accepts_connections(path):
        raise SettingsError(
            f"another server is already listening on {path}; stop it first "
            "(only one hook server may own the socket)"
        )
    logger.info("replacing stale socket=%s", path)
    path.unlink(missing_ok=True)


def _accepts_connections(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fspath(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False  # nobody listens: a stale socket (or it vanished meanwhile)
        raise SettingsError(f"cannot check whether {path} is in use: {exc.strerror}") from exc
    finally:
        probe.close()
    return True
