"""Labeller at steady state: API calls per cycle (and so per hour) and RSS after 1,000 cycles.

Runs the real ``kubevirt-cca labeller`` process against kmock's Kubernetes API emulator over
HTTP on 127.0.0.1, with a real aarch64 domcapabilities file and a fake host tree, at a tiny
``--interval`` so that 1,000 reconcile cycles pass in seconds. The emulator counts every request;
the labeller's own ``/metrics`` says how many cycles it has done; its RSS is read from
``/proc/PID/status``. The first cycle labels the node (one patch, one Event); every later cycle
must be read-only. Per-hour figures are per-cycle counts times the default interval's 12 cycles
an hour.

    uv run python benchmarks/bench_labeller.py [--cycles 1000]

Exit status 1 when a target of docs/performance.md is missed (a write at steady state, RSS
> 60 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import kmock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.labeller.conftest import NODE, make_host  # noqa: E402
from tests.labeller.emulator import ClusterAPI  # noqa: E402

DOMCAPS = ROOT.parent / "shared/fixtures/kubevirt/domcapabilities/aarch64-cca.xml"
DEFAULT_INTERVAL = 300.0
RSS_TARGET_MIB = 60.0
ENTRY = "import sys; from kubevirt_cca.cli import main; sys.exit(main())"
LISTENING = re.compile(rb"health endpoint listening on http://127\.0\.0\.1:(\d+)")
RECONCILES = re.compile(
    r'^kubevirt_cca_labeller_reconciles_total\{result="(\w+)"\} ([0-9.e+]+)$', re.M
)


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


async def cycles_done(http: aiohttp.ClientSession, port: int) -> int:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return int(sum(float(count) for _, count in RECONCILES.findall(text)))


async def run(cycles: int, interval: float) -> int:
    if not DOMCAPS.exists():
        print(f"skipped: {DOMCAPS} not found (../shared is absent)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        host = make_host(Path(tmp) / "host")
        async with ClusterAPI() as api, kmock.Server(api):
            api.add_node(NODE, labels={"kubernetes.io/arch": "arm64"}, annotations={})
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                ENTRY,
                "--log-level",
                "INFO",
                "labeller",
                "--node-name",
                NODE,
                "--domcaps-file",
                str(DOMCAPS),
                "--root",
                str(host),
                "--interval",
                str(interval),
                "--health-port",
                "127.0.0.1:0",
                "--server",
                str(api.url),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                return await measure(api, process, cycles, interval)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def measure(
    api: ClusterAPI, process: asyncio.subprocess.Process, cycles: int, interval: float
) -> int:
    assert process.stderr is not None
    port = 0
    async with asyncio.timeout(30):
        while not port:
            line = await process.stderr.readline()
            if not line:
                raise SystemExit("the labeller exited before listening")
            found = LISTENING.search(line)
            port = int(found.group(1)) if found else 0
    drain = asyncio.create_task(_drain(process.stderr))
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(30):
            while await cycles_done(http, port) < 1:
                await asyncio.sleep(0.01)
        first_rss, _ = memory_mib(process.pid)
        first_cycle = [str(r.method.value) for r in api]
        writes_before = _writes(api)
        started = time.perf_counter()
        async with asyncio.timeout(600):
            while (done := await cycles_done(http, port)) < cycles + 1:
                api.forget_requests()  # kmock scans its log on every request; keep it short
                await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        rss, hwm = memory_mib(process.pid)
        writes = _writes(api) - writes_before
        reads = api.methods["GET"]
    process.terminate()
    code = await process.wait()
    drain.cancel()

    per_hour = 3600 / DEFAULT_INTERVAL
    print(f"cycles: {done} ({elapsed:.1f} s for the last {done - 1}, --interval {interval})")
    print(f"first cycle: {' '.join(first_cycle)} (label the node, record the Event)")
    print(
        f"reads: {reads} GET for {done} cycles ({reads / done:.3f} per cycle); writes after "
        f"the first cycle: {writes}"
    )
    print(
        f"per hour at the default {DEFAULT_INTERVAL:.0f} s interval: "
        f"{reads / done * per_hour:.1f} reads, {writes / (done - 1) * per_hour:.1f} writes"
    )
    print(
        f"RSS: {first_rss:.1f} MiB after the first cycle, {rss:.1f} MiB after {done} cycles "
        f"(peak {hwm:.1f} MiB); growth {rss / first_rss:.3f}x"
    )
    print(f"exit status after SIGTERM: {code}")
    ok = writes == 0 and hwm <= RSS_TARGET_MIB and code == 0
    print("targets (zero writes at steady state, <= 60 MiB RSS):", "met" if ok else "MISSED")
    return 0 if ok else 1


def _writes(api: ClusterAPI) -> int:
    return sum(count for method, count in api.methods.items() if method != "GET")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument(
        "--interval",
        type=float,
        default=0.002,
        help="the labeller's --interval for the run (seconds)",
    )
    args = parser.parse_args()
    return asyncio.run(run(args.cycles, args.interval))


if __name__ == "__main__":
    raise SystemExit(main())
