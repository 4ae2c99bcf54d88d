"""A test client that talks to hook sidecars the way KubeVirt's virt-launcher does.

virt-launcher scans the sub-directories of its hook directory (one per sidecar container) for
sockets, dials each with a one-second timeout, calls Info (one second), keeps the newest
callback version both sides know (v1alpha3, then v1alpha2, then v1alpha1), and later calls each
subscribed hook point with a one-minute timeout. It dials a fresh connection for every call.
(virt-launcher's dial blocks until connected; here a refused connection surfaces as UNAVAILABLE
on the first call, which collection treats as "not ready yet", as virt-launcher does.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from kubevirt_cca.hookproto import (
    api_info_pb2,
    api_info_pb2_grpc,
    api_v1alpha1_pb2,
    api_v1alpha1_pb2_grpc,
    api_v1alpha2_pb2,
    api_v1alpha2_pb2_grpc,
    api_v1alpha3_pb2,
    api_v1alpha3_pb2_grpc,
)

NEWEST_FIRST = ("v1alpha3", "v1alpha2", "v1alpha1")
CALLBACKS: dict[str, tuple[ModuleType, ModuleType]] = {
    "v1alpha1": (api_v1alpha1_pb2, api_v1alpha1_pb2_grpc),
    "v1alpha2": (api_v1alpha2_pb2, api_v1alpha2_pb2_grpc),
    "v1alpha3": (api_v1alpha3_pb2, api_v1alpha3_pb2_grpc),
}
DIAL_TIMEOUT = 1.0
INFO_TIMEOUT = 1.0
CALL_TIMEOUT = 60.0


@dataclass(frozen=True)
class Sidecar:
    socket: Path
    name: str
    version: str
    hook_points: tuple[str, ...]


class NoCommonVersion(Exception):
    pass


class Launcher:
    """virt-launcher's hook manager, in Python. ``known_versions``: newest first."""

    def __init__(self, hooks_dir: Path, known_versions: tuple[str, ...] = NEWEST_FIRST) -> None:
        self.hooks_dir = hooks_dir
        self.known_versions = known_versions
        self.sidecars: list[Sidecar] = []

    # --- collection ------------------------------------------------------------------------

    def collect(self, expected: int = 1, timeout: float = 10.0) -> list[Sidecar]:
        deadline = time.monotonic() + timeout
        processed: dict[str, Sidecar] = {}
        while len(processed) < expected:
            for subdir in sorted(p for p in self.hooks_dir.iterdir() if p.is_dir()):
                for entry in sorted(p for p in subdir.iterdir() if not p.is_dir()):
                    if entry.name in processed:
                        continue
                    sidecar = self._process(entry)
                    if sidecar is not None:
                        processed[entry.name] = sidecar
            if len(processed) >= expected:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("Failed to collect all expected sidecar hook sockets")
            time.sleep(0.05)
        self.sidecars = list(processed.values())
        return self.sidecars

    def _process(self, socket: Path) -> Sidecar | None:
        with grpc.insecure_channel(f"unix:{socket}") as channel:
            try:
                info = api_info_pb2_grpc.InfoStub(channel).Info(
                    api_info_pb2.InfoParams(), timeout=DIAL_TIMEOUT + INFO_TIMEOUT
                )
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return None  # not ready yet: retried on the next scan
                raise
        for version in self.known_versions:
            if version in info.versions:
                return Sidecar(
                    socket=socket,
                    name=info.name,
                    version=version,
                    hook_points=tuple(p.name for p in info.hookPoints),
                )
        raise NoCommonVersion(
            f"sidecar offers {list(info.versions)}, launcher knows {list(self.known_versions)}"
        )

    # --- hook points -----------------------------------------------------------------------

    def on_define_domain(self, domain_xml: bytes, vmi: Mapping[str, Any] | bytes) -> bytes:
        vmi_json = vmi if isinstance(vmi, bytes) else json.dumps(vmi).encode()
        for sidecar in self._subscribed("OnDefineDomain"):
            messages, services = CALLBACKS[sidecar.version]
            with grpc.insecure_channel(f"unix:{sidecar.socket}") as channel:
                result = services.CallbacksStub(channel).OnDefineDomain(
                    messages.OnDefineDomainParams(domainXML=domain_xml, vmi=vmi_json),
                    timeout=CALL_TIMEOUT,
                )
            domain_xml = result.domainXML
        return domain_xml

    def shutdown(self) -> None:
        for sidecar in self._subscribed("Shutdown"):
            if sidecar.version != "v1alpha3":
                continue  # virt-launcher only knows Shutdown on v1alpha3
            with grpc.insecure_channel(f"unix:{sidecar.socket}") as channel:
                api_v1alpha3_pb2_grpc.CallbacksStub(channel).Shutdown(
                    api_v1alpha3_pb2.ShutdownParams(), timeout=CALL_TIMEOUT
                )

    def _subscribed(self, hook_point: str) -> list[Sidecar]:
        return [s for s in self.sidecars if hook_point in s.hook_points]
