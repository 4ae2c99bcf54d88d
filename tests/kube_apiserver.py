"""Starting and stopping the real kube-apiserver + etcd of ../shared/peers, for every lane.

The peers lane (tests/peers/apiserver) and the image lane (tests/image) both run one; this is
the one place that starts them (unpacked by ``tests/peers/binaries.unpack``, the lanes' one
call of ``../shared/peers/scripts/unpack.py``)
with ``apiserver-up.sh`` on random loopback ports and stops exactly what was started with
``apiserver-down.sh``. Each lane wraps the result in its own client helpers and decides itself
whether something missing is a skip or a failure (``unavailable``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.peers.binaries import PEERS, unpack

BINARIES = ("kube-apiserver", "etcd")
TOOLS = ("kubectl", "openssl", "curl")


@dataclass(frozen=True)
class Started:
    """A running API server: its folder, address, admin kubeconfig and the binaries' folder."""

    run_dir: Path
    url: str
    port: int
    kubeconfig: Path
    bin_dir: Path
    env: dict[str, str]
    """The environment the scripts ran with, plus ``KUBECONFIG`` (for child processes)."""


def peers_missing() -> str | None:
    """Why the API server cannot be started from ../shared here, or ``None``."""
    if not (PEERS / "scripts" / "apiserver-up.sh").is_file():
        return (
            f"../shared/peers is absent ({PEERS} not found): the real kube-apiserver and "
            "etcd are prebuilt there"
        )
    return None


def start(
    run_dir: Path, *, unavailable: Callable[[str], NoReturn], binaries: tuple[str, ...] = BINARIES
) -> Started:
    """Unpack ``binaries`` and start etcd + kube-apiserver in ``run_dir``.

    ``unavailable`` is called with the reason when ../shared or a tool is missing.
    """
    reason = peers_missing()
    if reason is not None:
        unavailable(reason)
    for tool in TOOLS:
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (the API server scripts need it)")
    bin_dir = unpack(*binaries)
    env = {**os.environ, "PEERS_BIN": str(bin_dir)}
    up = subprocess.run(
        ["bash", str(PEERS / "scripts" / "apiserver-up.sh"), str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if up.returncode != 0:
        stop(run_dir)
        pytest.fail(f"apiserver-up.sh failed:\n{up.stderr[-3000:]}")
    values = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
    return Started(
        run_dir=run_dir,
        url=values["APISERVER_URL"],
        port=int(values["APISERVER_PORT"]),
        kubeconfig=Path(values["KUBECONFIG"]),
        bin_dir=bin_dir,
        env={**env, "KUBECONFIG": values["KUBECONFIG"]},
    )


def stop(run_dir: Path, *, remove: bool = False) -> None:
    """Stop what ``start`` started in ``run_dir`` (and delete the folder when ``remove``)."""
    argv = [
        "bash",
        str(PEERS / "scripts" / "apiserver-down.sh"),
        *(["--rm"] if remove else []),
        str(run_dir),
    ]
    subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if remove:
        shutil.rmtree(run_dir, ignore_errors=True)
