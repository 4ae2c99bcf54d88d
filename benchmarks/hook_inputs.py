"""What the two hook benchmarks (sidecar and Plugins path) share: the domain, the CCA VMI as
admission schedules it, and the 5 ms p99 target over the socket."""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION
from timing import describe, p

FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "fixtures"
    / "kubevirt"
    / "domains"
    / "kubevirt-arm64.xml"
)
TARGET_P99_MS = 5.0
SOCKET_ROWS = ("socket, one connection", "socket, new connection per call")

# As admission schedules the VMI: on a node whose libvirt and QEMU honour all three parameters
# (the hook refuses a parameter the VMI was not scheduled for).
SCHEDULED = dict.fromkeys(
    (
        "kubevirt.io/cca",
        "cca.kubevirt.io/measurement-algo-sha256",
        "cca.kubevirt.io/personalization-value",
        "cca.kubevirt.io/measurement-log",
        "cca.kubevirt.io/rme-guest-measurement-algo-sha256",
        "cca.kubevirt.io/rme-guest-personalization-value",
        "cca.kubevirt.io/rme-guest-measurement-log",
    ),
    "true",
)


def read_domain(calls: int, parser: argparse.ArgumentParser) -> bytes | None:
    """The fixture domain, after checking ``--calls`` (``None``: ../shared is absent)."""
    if calls < 1000:
        parser.error("--calls: at least 1000 for a meaningful p99")
    if not FIXTURE.exists():
        print(f"fixture not found: {FIXTURE} (needs ../shared beside the project)")
        return None
    return FIXTURE.read_bytes()


def cca_vmi(devices: dict[str, Any]) -> bytes:
    """A scheduled VMI asking for a Realm with all three parameters, as virt-launcher sends it."""
    parameters = {
        "measurementAlgo": "sha256",
        "measurementLog": True,
        "personalizationValue": base64.b64encode(bytes(range(64))).decode(),
    }
    return json.dumps(
        {
            "metadata": {
                "namespace": "bench",
                "name": "realm",
                "uid": "3c1f5b3e",
                "labels": {ENABLED_LABEL: "true"},
                "annotations": {LAUNCH_SECURITY_ANNOTATION: json.dumps(parameters)},
            },
            "spec": {"domain": {"devices": devices}, "nodeSelector": SCHEDULED},
            "status": {"phase": "Scheduled"},
        }
    ).encode()


def stop(process: subprocess.Popen[bytes], workdir: Path) -> None:
    """SIGTERM the hook process (it removes its socket) and remove its folder."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    shutil.rmtree(workdir, ignore_errors=True)


def report(
    rows: dict[str, list[float]], *, heading: str, core_row: str, unrelated: tuple[str, ...] = ()
) -> int:
    """Print every row (as a ratio to ``core_row``, except ``unrelated`` rows) and the verdict
    over the socket; the exit status."""
    base = statistics.median(rows[core_row])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{heading}, load average {load}")
    for name, times in rows.items():
        print(describe(name, times, None if name in unrelated else base))
    return socket_verdict(rows)


def socket_verdict(rows: dict[str, list[float]]) -> int:
    """Print the worst p99 over the socket against the target; the exit status."""
    worst = max(p(rows[name], 0.99) for name in SOCKET_ROWS)
    verdict = "within" if worst <= TARGET_P99_MS else "OVER"
    print(f"p99 over the socket: {worst:.3f} ms, {verdict} the {TARGET_P99_MS} ms target")
    return 0 if worst <= TARGET_P99_MS else 1


def start_hook(socket: Path, *args: str, what: str) -> subprocess.Popen[bytes]:
    """``kubevirt-cca hook *args`` as a process, once its socket is there (else exits: what)."""
    command = [
        sys.executable,
        "-c",
        "import sys; from kubevirt_cca.cli import main; sys.exit(main())",
        "--log-level",
        "INFO",
        "hook",
        *args,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not socket.is_socket():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"{what} did not start")
        time.sleep(0.05)
    return process
