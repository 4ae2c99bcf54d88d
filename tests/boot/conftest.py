"""Fixtures of the boot lane: the tools, libvirt's daemons, the guest kernel and initramfs.

The lane skips itself, saying what is missing, where the tools are absent (a developer machine
without the Debian packages). ``scripts/boot-lane-setup.sh`` installs them; CI runs it and sets
``KUBEVIRT_CCA_BOOT_REQUIRED=1``, which turns a missing tool into a failure instead of a skip,
so CI cannot go green with the lane silently skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.boot.cases import FIRMWARE
from tests.boot.daemons import SBIN_PATH, Daemons, close_lane, open_lane
from tests.boot.domains import remove_lane_domains
from tests.boot.initramfs import GuestFiles, build_initramfs
from tests.boot.tcg import EMULATOR, BootFiles

CACHE = Path(os.environ.get("KUBEVIRT_CCA_BOOT_CACHE", "/var/cache/kubevirt-cca-boot"))
REQUIRED = os.environ.get("KUBEVIRT_CCA_BOOT_REQUIRED") == "1"
QEMU_USER = "libvirt-qemu"
# The guest's command line: serial console, and reboot at once should the kernel panic.
CMDLINE = "console=ttyAMA0 panic=-1"


def missing_tools() -> list[str]:
    """What the lane needs and this machine lacks (empty when it can run)."""
    missing = [
        f"{tool} (not on PATH)"
        for tool in ("virsh", "libvirtd", "virtlogd")
        if shutil.which(tool, path=SBIN_PATH) is None
    ]
    for path, what in ((EMULATOR, "qemu-system-arm"), (FIRMWARE, "qemu-efi-aarch64")):
        if not Path(path).exists():
            missing.append(f"{path} ({what})")
    if not (CACHE / "READY").exists():
        missing.append(f"the arm64 guest kernel and busybox in {CACHE}")
    if os.geteuid() != 0:
        missing.append("root (libvirt's system daemon runs QEMU as another user)")
    try:
        pwd.getpwnam(QEMU_USER)
    except KeyError:
        missing.append(f"the {QEMU_USER} user")
    return missing


@pytest.fixture(scope="session")
def qemu_binary() -> Path:
    """QEMU for aarch64 alone (tests/boot/test_qemu_arguments.py needs neither libvirt nor root).

    Skips without it, and fails under ``KUBEVIRT_CCA_BOOT_REQUIRED=1`` like the rest of the lane.
    """
    if not Path(EMULATOR).exists():
        message = (
            f"boot lane: missing {EMULATOR} (qemu-system-arm) - run scripts/boot-lane-setup.sh"
        )
        if REQUIRED:
            pytest.fail(message + " (KUBEVIRT_CCA_BOOT_REQUIRED=1)")
        pytest.skip(message)
    return Path(EMULATOR)


@dataclass(frozen=True)
class BootEnv:
    """A ready lane: libvirt answers, the guest's kernel and initramfs are built."""

    folder: Path
    kernel: Path
    initrd: Path
    modules: tuple[str, ...]
    daemons: Daemons

    def files(self, name: str) -> BootFiles:
        """A fresh folder for one domain, writable by QEMU's user, and its boot files."""
        folder = self.folder / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        user = pwd.getpwnam(QEMU_USER)
        os.chown(folder, user.pw_uid, user.pw_gid)
        return BootFiles(
            kernel=self.kernel,
            initrd=self.initrd,
            cmdline=CMDLINE,
            serial_log=folder / "serial.log",
            folder=folder,
        )


@pytest.fixture(scope="session")
def boot_env() -> Iterator[BootEnv]:
    missing = missing_tools()
    if missing:
        message = (
            "boot lane: missing "
            + "; ".join(missing)
            + " - run scripts/boot-lane-setup.sh as root on Debian 12"
        )
        if REQUIRED:
            pytest.fail(message + " (KUBEVIRT_CCA_BOOT_REQUIRED=1)")
        pytest.skip(message)
    # QEMU runs as libvirt-qemu: every folder on the way to its files must let it through.
    folder = Path(tempfile.mkdtemp(prefix="kubevirt-cca-boot-"))
    folder.chmod(0o755)
    try:
        guest = GuestFiles(CACHE / "root")
        kernel = folder / "vmlinuz"
        shutil.copyfile(guest.kernel, kernel)
        initrd = folder / "initrd.img"
        modules = build_initramfs(guest, initrd)
        for path in (kernel, initrd):
            path.chmod(0o644)
        lane = open_lane(folder)
        try:
            remove_lane_domains()  # left by an interrupted run
            yield BootEnv(
                folder=folder,
                kernel=kernel,
                initrd=initrd,
                modules=tuple(modules),
                daemons=lane.daemons,
            )
        finally:
            try:
                remove_lane_domains()
            finally:
                close_lane(lane)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
