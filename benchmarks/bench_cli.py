"""Benchmark: what starting the ``kubevirt-cca`` command costs (issue 23, item 7).

Run: uv run python benchmarks/bench_cli.py [--calls N]

Each row starts a fresh Python process N times (round-robin, so every row sees the same noise)
and reads the CPU time (user + system) and the peak RSS of that process from ``wait4``:

- top-level help: ``kubevirt-cca --help`` (the lazy parser: names and one-line help only);
- eager help (before): the same help with every subcommand's module imported and registered,
  as the command did before the parser became lazy (``build_parser(every=True)``);
- render: ``kubevirt-cca render examples/vmi-cca.yaml``, the reference the target names;
- python: an empty interpreter, the floor.

Target: the top-level help costs about what render does (CPU at most 1.2x render's, p50).
Exit 1 when that is missed on this run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EAGER = "from kubevirt_cca.cli import build_parser; build_parser(every=True).format_help()"
ROWS = {
    "top-level help": ["-m", "kubevirt_cca", "--help"],
    "eager help (before)": ["-c", EAGER],
    "render": ["-m", "kubevirt_cca", "render", "examples/vmi-cca.yaml"],
    "python": ["-c", "pass"],
}
TARGET = 1.2


def run_once(args: list[str]) -> tuple[float, float]:
    """CPU seconds and peak RSS (MiB) of one process running ``python args``."""
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"python {' '.join(args)}: exit status {process.returncode}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="processes per row")
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {name: [] for name in ROWS}
    rss: dict[str, list[float]] = {name: [] for name in ROWS}
    for _ in range(args.calls):
        for name, argv in ROWS.items():
            seconds, mib = run_once(argv)
            cpu[name].append(seconds * 1000)
            rss[name].append(mib)
    render = statistics.median(cpu["render"])
    for name in ROWS:
        print(
            f"{name:<22} CPU p50 {statistics.median(cpu[name]):7.1f} ms   "
            f"peak RSS p50 {statistics.median(rss[name]):6.1f} MiB   "
            f"{statistics.median(cpu[name]) / render:4.2f}x render (CPU)"
        )
    ratio = statistics.median(cpu["top-level help"]) / render
    met = ratio <= TARGET
    print(f"target: top-level help <= {TARGET}x render CPU: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
