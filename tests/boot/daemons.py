"""libvirt's daemons for the boot lane, on a machine without systemd.

``start_daemons`` starts ``virtlogd -d`` and ``libvirtd -d`` with their pid files in the run's
folder, waits until ``virsh uri`` answers, and ``Daemons.stop`` ends exactly those two PIDs.
When a libvirtd already answers (a developer's machine with libvirt running), it is used as it is
and left running.

Several test runs may share one machine (engineers running the suite side by side). ``open_lane``
and ``close_lane`` coordinate them with a lock file: starting is exclusive, running is shared,
and the daemons a lane started (recorded in a state file) are stopped by whichever run is the
last to leave, so no run pulls libvirt out from under another.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

URI = "qemu:///system"
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STATE_DIR = Path("/run/kubevirt-cca-boot")


def virsh(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``virsh -c qemu:///system ARGS`` and return what it said (no exception on failure)."""
    return subprocess.run(
        ["virsh", "-c", URI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def answers() -> bool:
    try:
        return virsh("uri", timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@dataclass
class Daemons:
    """The daemons the lane talks to; ``pids`` is empty when it started none."""

    folder: Path
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.folder / "libvirtd.log"

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM each daemon this lane started (checking it is still that program), wait."""
        for program, pid in reversed(list(self.pids.items())):
            if _program_of(pid) != program:
                continue  # already gone (the PID may even belong to someone else now)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _program_of(pid) == program and time.monotonic() < deadline:
                time.sleep(0.1)
            if _program_of(pid) == program:
                os.kill(pid, signal.SIGKILL)
        self.pids.clear()


def start_daemons(folder: Path, *, timeout: float = 30) -> Daemons:
    """Start virtlogd and libvirtd (unless a libvirtd answers already) and wait for them."""
    daemons = Daemons(folder)
    if answers():
        return daemons
    env = {**os.environ, "PATH": SBIN_PATH, "LIBVIRT_LOG_OUTPUTS": f"3:file:{daemons.log}"}
    try:
        for program in ("virtlogd", "libvirtd"):
            pid_file = folder / f"{program}.pid"
            started = subprocess.run(
                [program, "-d", "-p", str(pid_file)],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
                check=False,
            )
            if started.returncode != 0:
                raise RuntimeError(
                    f"{program} -d failed ({started.returncode}): "
                    f"{started.stderr.strip() or started.stdout.strip()}"
                )
            daemons.pids[program] = _wait_for_pid(pid_file, program, timeout)
        deadline = time.monotonic() + timeout
        while not answers():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"libvirtd started but 'virsh -c {URI} uri' did not answer "
                    f"within {timeout:.0f} s; its log: {daemons.log}"
                )
            time.sleep(0.2)
    except BaseException:
        daemons.stop()
        raise
    return daemons


def _wait_for_pid(pid_file: Path, program: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
            continue
        if _program_of(pid) == program:
            return pid
        time.sleep(0.05)
    raise RuntimeError(f"{program} wrote no usable pid file at {pid_file}")


def _program_of(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return None


@dataclass
class LaneShare:
    """A run's share of the machine's libvirt: hold it from ``open_lane`` to ``close_lane``."""

    lock: IO[str]
    daemons: Daemons


def open_lane(folder: Path) -> LaneShare:
    """Join (or start) the lane's libvirt daemons, holding the shared lock."""
    STATE_DIR.mkdir(mode=0o755, exist_ok=True)
    lock = (STATE_DIR / "lane.lock").open("a+")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        daemons = start_daemons(folder)
        if daemons.pids:
            (STATE_DIR / "daemons").write_text(
                "".join(f"{program} {pid}\n" for program, pid in daemons.pids.items())
            )
    except BaseException:
        lock.close()
        raise
    fcntl.flock(lock, fcntl.LOCK_SH)
    return LaneShare(lock=lock, daemons=daemons)


def close_lane(lane: LaneShare) -> None:
    """Leave the lane; the last run to leave stops the daemons a lane started."""
    try:
        fcntl.flock(lane.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lane.lock.close()  # another run still boots domains: leave libvirt to it
        return
    try:
        state = STATE_DIR / "daemons"
        if state.exists():
            pids = dict(line.split() for line in state.read_text().splitlines() if line)
            Daemons(lane.daemons.folder, {p: int(pid) for p, pid in pids.items()}).stop()
            state.unlink()
    finally:
        lane.lock.close()
