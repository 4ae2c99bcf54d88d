"""Fixtures of the realm lane: one boot of the emulated CCA host that runs every Realm of
``cases.CASES``, and what each printed.

The lane skips itself, saying what is missing, where ``../shared/cca-emu``, the arm64 cross
compiler or the prepared host (``scripts/realm-lane-setup.sh``) is absent. CI runs that script
and sets ``KUBEVIRT_CCA_REALM_REQUIRED=1``, which turns a missing piece into a failure instead
of a skip, so CI cannot go green with the lane silently skipped.

The launcher and the payload are rebuilt here with ``make`` (a second; nothing when unchanged),
so a changed ``launcher.c`` or ``payload.c`` is what boots. The initramfs is the launcher as
``/init``, the payload and the list of Realms, written with the boot lane's cpio writer into a
temporary folder; the host console goes to a file there too.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.boot.initramfs import Cpio
from tests.conftest import SHARED
from tests.realm.cases import CASES, LANE_DONE, LANE_FAIL, RealmRun, parse_console

HERE = Path(__file__).parent
CACHE = Path(os.environ.get("KUBEVIRT_CCA_REALM_CACHE", "/var/cache/kubevirt-cca-realm"))
REQUIRED = os.environ.get("KUBEVIRT_CCA_REALM_REQUIRED") == "1"
EMU = SHARED / "cca-emu"
RUN_HOST = EMU / "scripts" / "run-host.sh"
EMU_CACHE = CACHE / "emu"
QEMU = EMU_CACHE / "qemu" / "usr" / "bin" / "qemu-system-aarch64"
BUILD = CACHE / "build"
CROSS_GCC = "aarch64-linux-gnu-gcc"
# A safety net for a hung boot, not a performance bound: four Realms take about 6 s.
BOOT_LIMIT_S = 600


def missing_parts() -> list[str]:
    """What the lane needs and this machine lacks (empty when it can run)."""
    missing = []
    if not RUN_HOST.exists():
        missing.append(f"the emulated CCA host ({RUN_HOST})")
    for tool in (CROSS_GCC, "make"):
        if shutil.which(tool) is None:
            missing.append(f"{tool} (not on PATH)")
    if not (CACHE / "READY").exists() or not QEMU.exists():
        missing.append(f"the prepared host and QEMU 10.0.2 in {CACHE}")
    return missing


@dataclass(frozen=True)
class RealmLane:
    """One host boot's results: each Realm's lines, the payload they ran, the whole console."""

    runs: dict[str, RealmRun]
    payload: Path
    console: str
    folder: Path


@pytest.fixture(scope="session")
def realm_lane() -> Iterator[RealmLane]:
    missing = missing_parts()
    if missing:
        message = (
            "realm lane: missing "
            + "; ".join(missing)
            + " - run scripts/realm-lane-setup.sh as root on Debian 12"
        )
        if REQUIRED:
            pytest.fail(message + " (KUBEVIRT_CCA_REALM_REQUIRED=1)")
        pytest.skip(message)
    subprocess.run(
        ["make", "-s", "-C", str(HERE), f"OUT={BUILD}"], check=True, capture_output=True, text=True
    )
    folder = Path(tempfile.mkdtemp(prefix="kubevirt-cca-realm-"))
    try:
        payload = folder / "payload.bin"
        shutil.copyfile(BUILD / "payload.bin", payload)
        initramfs = folder / "initramfs.cpio.gz"
        write_initramfs(initramfs, launcher=BUILD / "realm-launcher", payload=payload)
        log = folder / "console.log"
        result = subprocess.run(
            [str(RUN_HOST), "-t", str(BOOT_LIMIT_S), "-m", LANE_DONE, "-f", LANE_FAIL, initramfs],
            env={**os.environ, "CCA_EMU_CACHE": str(EMU_CACHE), "CCA_EMU_LOG": str(log)},
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
        console = log.read_text(errors="replace") if log.exists() else result.stdout
        if LANE_DONE not in console and LANE_FAIL not in console:
            pytest.fail(
                f"the emulated CCA host did not finish (run-host.sh exit {result.returncode}); "
                f"last lines:\n{_tail(console + result.stderr)}"
            )
        yield RealmLane(
            runs=parse_console(console), payload=payload, console=console, folder=folder
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_initramfs(out: Path, *, launcher: Path, payload: Path) -> None:
    """The host's initramfs: the launcher as /init, the payload, and the Realms to create."""
    writer = Cpio()
    for folder in ("dev", "etc"):
        writer.directory(folder)
    writer.char_device("dev/console", major=5, minor=1)
    writer.file("init", launcher.read_bytes(), mode=0o755)
    writer.file("payload.bin", payload.read_bytes(), mode=0o644)
    writer.file("etc/realms", "".join(case.realms_line() for case in CASES).encode(), mode=0o644)
    out.write_bytes(gzip.compress(writer.finish(), compresslevel=1))


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
