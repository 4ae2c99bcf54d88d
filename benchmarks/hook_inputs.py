"""What the two hook benchmarks (sidecar and Plugins path) share: the domain, the CCA VMI as
admission schedules it, and the 5 ms p99 target over the socket."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION
from timing import p

FIXTURE = (Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "kubevirt" / "domains"
           / "kubevirt-arm64.xml")
TARGET_P99_MS = 5.0
SOCKET_ROWS = ("socket, one connection", "socket, new connection per call")

# As admission schedules the VMI: on a node whose libvirt and QEMU honour all three parameters
# (the hook refuses a parameter the VMI was not scheduled for).
SCHEDULED = dict.fromkeys((
    "kubevirt.io/cca", "cca.kubevirt.io/measurement-algo-sha256",
    "cca.kubevirt.io/personalization-value", "cca.kubevirt.io/measurement-log",
    "cca.kubevirt.io/rme-guest-measurement-algo-sha256",
    "cca.kubevirt.io/rme-guest-personalization-value", "cca.kubevirt.io/rme-guest-measurement-log",
), "true")


def cca_vmi(devices: dict[str, Any]) -> bytes:
    """A scheduled VMI asking for a Realm with all three parameters, as virt-launcher sends it."""
    parameters = {"measurementAlgo": "sha256", "measurementLog": True,
                  "personalizationValue": base64.b64encode(bytes(range(64))).decode()}
    return json.dumps({
        "metadata": {"namespace": "bench", "name": "realm", "uid": "3c1f5b3e",
                     "labels": {ENABLED_LABEL: "true"},
                     "annotations": {LAUNCH_SECURITY_ANNOTATION: json.dumps(parameters)}},
        "spec": {"domain": {"devices": devices}, "nodeSelector": SCHEDULED},
        "status": {"phase": "Scheduled"},
    }).encode()


def socket_verdict(rows: dict[str, list[float]]) -> int:
    """Print the worst p99 over the socket against the target; the exit status."""
    worst = max(p(rows[name], 0.99) for name in SOCKET_ROWS)
    verdict = "within" if worst <= TARGET_P99_MS else "OVER"
    print(f"p99 over the socket: {worst:.3f} ms, {verdict} the {TARGET_P99_MS} ms target")
    return 0 if worst <= TARGET_P99_MS else 1
