"""Fixtures for the labeller tests: the API emulator, fake host trees, domcapabilities files."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import kmock
import pytest
import pytest_asyncio

from kubevirt_cca.adapters.detection import detect
from kubevirt_cca.core.node.detection_report import DetectionReport
from tests.conftest import shared_path
from tests.labeller.emulator import ClusterAPI

NODE = "arm-node-1"
DOMCAPS = ("fixtures", "kubevirt", "domcapabilities")
# The aarch64 fixtures and what the labeller must put on a node that reports them.
CAPABLE_LABELS = {
    # libvirt lists sha256 and sha512; without QEMU's rme-guest answer only the fixed sha512 is
    # a choice a Realm really gets (issue 22, docs/node-labels.md).
    "aarch64-cca.xml": {
        "kubevirt.io/cca": "true",
        "cca.kubevirt.io/measurement-algo-sha512": "true",
    },
    "aarch64-cca-no-algo-enum.xml": {"kubevirt.io/cca": "true"},
    "aarch64-cca-empty-algo-enum.xml": {"kubevirt.io/cca": "true"},
    "aarch64-no-cca.xml": {},
    "x86_64-sev.xml": {},
    "x86_64-sevsnp.xml": {},
    "x86_64-tdx.xml": {},
    "x86_64-plain.xml": {},
    "x86_64-nothing_usable.xml": {},
    "s390x-pv.xml": {},
}
FOREIGN_LABELS = {
    "kubernetes.io/arch": "arm64",
    "kubernetes.io/hostname": NODE,
    "kubevirt.io/schedulable": "true",
    "cca.kubevirt.io/enabled": "true",  # our prefix, but a VM owner's key, not the labeller's
}
FOREIGN_ANNOTATIONS = {"node.alpha.kubernetes.io/ttl": "0", "team.example.com/owner": "infra"}


def domcaps(name: str) -> Path:
    return shared_path(*DOMCAPS, name)


def make_host(
    root: Path,
    *,
    arch: str = "aarch64",
    kvm: bool = True,
    rmi: str | None = "1",
    abi_line: bool = True,
) -> Path:
    """A fake host tree like the one the DaemonSet mounts read-only at --root."""
    (root / "proc/sys/kernel").mkdir(parents=True, exist_ok=True)
    (root / "proc/sys/kernel/arch").write_text(f"{arch}\n")
    (root / "dev").mkdir(exist_ok=True)
    if kvm:
        (root / "dev/kvm").write_text("")
    if rmi is not None:
        (root / "sys/module/kvm/parameters").mkdir(parents=True, exist_ok=True)
        (root / "sys/module/kvm/parameters/kvm_cap_arm_rmi").write_text(f"{rmi}\n")
    (root / "var/log").mkdir(parents=True, exist_ok=True)
    log = "[    0.000000] Booting Linux on physical CPU 0x0\n"
    if abi_line:
        log += "[    0.512345] kvm [1]: RMI ABI version 1.0\n"
    (root / "var/log/dmesg").write_text(log)
    return root


def detector_for(domcaps_file: Path, root: Path) -> Callable[[], DetectionReport]:
    return functools.partial(
        detect, domcaps_file=str(domcaps_file), domcaps_command="", root=str(root)
    )


class SwitchableDetector:
    """A detector whose domcapabilities file a test can swap between reconciles."""

    def __init__(self, domcaps_file: Path, root: Path) -> None:
        self.domcaps_file = domcaps_file
        self.root = root
        self.calls = 0

    def __call__(self) -> DetectionReport:
        self.calls += 1
        return detect(domcaps_file=str(self.domcaps_file), domcaps_command="", root=str(self.root))


@pytest_asyncio.fixture
async def api() -> AsyncIterator[ClusterAPI]:
    async with ClusterAPI() as emulator, kmock.Server(emulator):
        yield emulator


@pytest.fixture
def host(tmp_path: Path) -> Path:
    return make_host(tmp_path / "host")
