"""Issue 18: what the labeller reads is bounded, and SIGTERM stops a hanging command at once.

The commands are real processes (a shell script standing in for virsh); memory is measured as
the maximum resident size of a separate ``kubevirt-cca detect`` process.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubevirt_cca.adapters.virsh import STDOUT_LIMIT, run_domcapabilities
from kubevirt_cca.core.node.detection_report import REPORT_LIMIT, TEXT_LIMIT
from kubevirt_cca.errors import CapabilitiesError
from tests.conftest import ROOT
from tests.labeller.conftest import make_host

MARKER_LINE = "[    0.123456] kvm [1]: RMI ABI version 1.0"


def script(folder: Path, body: str) -> Path:
    path = folder / "virsh.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def detect_in_child(*args: str) -> tuple[dict[str, object], int]:
    """``kubevirt-cca detect --output json`` in a fresh process: its report and max RSS (KiB)."""
    code = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(done.stdout)\n"
        "sys.stderr.write(done.stderr)\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            sys.executable,
            "-m",
            "kubevirt_cca",
            "detect",
            "--output",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    rss, _, report = done.stdout.partition("\n")
    assert report.strip(), done.stderr
    return json.loads(report), int(rss)


def test_an_error_flood_is_read_with_a_limit(tmp_path: Path) -> None:
    flood = script(tmp_path, "head -c 209715200 /dev/zero | tr '\\0' e >&2\nexit 1\n")
    report, rss_kib = detect_in_child(
        "--domcaps-command", str(flood), "--root", str(make_host(tmp_path / "host"))
    )
    assert report["capable"] is False
    assert rss_kib < 120 * 1024, f"detect used {rss_kib} KiB for a 200 MiB error flood"
    assert len(json.dumps(report)) <= REPORT_LIMIT
    assert all(len(reason) <= TEXT_LIMIT + 40 for reason in report["reasons"])  # type: ignore[attr-defined]


def test_output_past_the_limit_is_refused(tmp_path: Path) -> None:
    big = script(tmp_path, f"head -c {STDOUT_LIMIT + 1} /dev/zero\n")
    with pytest.raises(CapabilitiesError, match="printed more than 4 MiB"):
        run_domcapabilities([str(big)])


def test_a_huge_kernel_log_is_scanned_not_loaded(tmp_path: Path) -> None:
    host = make_host(tmp_path / "host")
    (host / "var/log/dmesg").unlink()  # read before kern.log when present
    log = host / "var/log/kern.log"
    with log.open("wb") as file:  # 160 MiB, most of it one line without an end
        file.truncate(160 * 1024 * 1024)
        file.seek(0, os.SEEK_END)
        file.write(f"\n{MARKER_LINE}\nlater\n".encode())
    report, rss_kib = detect_in_child("--domcaps", "/nonexistent", "--root", str(host))
    assert report["evidence"]["host"]["kernelRmiAbiLine"] == MARKER_LINE  # type: ignore[index]
    assert rss_kib < 120 * 1024, f"detect used {rss_kib} KiB for a 160 MiB kern.log"


def test_sigterm_kills_a_hanging_command_and_exits_within_10_s(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hang = script(tmp_path, f"sleep 300 &\necho $! > {pids}\nsleep 300\n")
    log = (tmp_path / "labeller.log").open("wb")
    labeller = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubevirt_cca",
            "labeller",
            "--node-name",
            "arm-1",
            "--domcaps-command",
            str(hang),
            "--root",
            str(make_host(tmp_path / "host")),
            "--health-port",
            "127.0.0.1:0",
            "--server",
            "https://127.0.0.1:9",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while not pids.exists() or not pids.read_text().strip():
            assert time.monotonic() < deadline, "the command never started"
            assert labeller.poll() is None, (tmp_path / "labeller.log").read_text()
            time.sleep(0.05)
        child = int(pids.read_text())
        labeller.send_signal(signal.SIGTERM)
        # the command sleeps 300 s: an exit at all means the labeller did not wait for it
        labeller.wait(timeout=120)
    finally:
        if labeller.poll() is None:
            labeller.kill()
            labeller.wait()
        log.close()
    assert labeller.returncode == 0
    # The command's whole process group went with it (a zombie, at most, waiting for init).
    try:
        state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z")


def test_maxrss_is_measured_per_child() -> None:
    # The memory assertions above rely on RUSAGE_CHILDREN in a fresh process.
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss >= 0


def test_the_report_is_capped_and_keeps_its_verdict() -> None:
    from datetime import UTC, datetime

    from kubevirt_cca.core.node.detection_report import HostEvidence, build_report

    host = HostEvidence(
        arch="aarch64",
        kvm_device=False,
        rmi_parameters={f"p{i}": "0" * 2000 for i in range(40)},
        notes=tuple("n" * 5000 for _ in range(30)),
    )
    report = build_report(
        domcaps=None,
        domcaps_error="e" * 100_000,
        host=host,
        checked_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    wire = json.dumps(report.to_json(), separators=(",", ":"))
    assert len(wire.encode()) <= REPORT_LIMIT
    assert report.capable is False
    assert report.evidence == {
        "omitted": f"the evidence made the report larger than {REPORT_LIMIT} bytes"
    }
    assert "no /dev/kvm: KVM is not available on this host" in report.reasons
    unreadable = next(r for r in report.reasons if "could not be read" in r)
    assert unreadable.endswith("more characters)")
    assert len(unreadable) <= TEXT_LIMIT + 40
