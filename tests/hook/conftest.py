"""Hook fixtures: a short socket directory and real hook servers started in this process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubevirt_cca.adapters.hook import UnixSocketServer, hook_server
from kubevirt_cca.core.cluster.settings import Settings
from tests.hook.launcher import Launcher

StartHook = Callable[..., UnixSocketServer]
StartServer = Callable[[UnixSocketServer], UnixSocketServer]


@pytest.fixture
def hooks_dir() -> Iterator[Path]:
    """virt-launcher's /var/run/kubevirt-hooks, short enough for unix socket paths."""
    path = Path(tempfile.mkdtemp(prefix="kcca-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start a socket server; every one started is stopped after the test."""
    servers: list[UnixSocketServer] = []

    def start(server: UnixSocketServer) -> UnixSocketServer:
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=1.0)


@pytest.fixture
def start_hook(hooks_dir: Path, start_server: StartServer) -> StartHook:
    """Start a hook server in a sidecar sub-directory; stopped after the test."""

    def start(
        settings: Settings | None = None, subdir: str = "hook-sidecar-0", **kwargs: object
    ) -> UnixSocketServer:
        return start_server(hook_server(hooks_dir / subdir, settings or Settings(), **kwargs))  # type: ignore[arg-type]

    return start


@pytest.fixture
def launcher(hooks_dir: Path) -> Launcher:
    return Launcher(hooks_dir)
