"""Benchmark: the Realm rewrite of KubeVirt's arm64 domain fixture (target <= 1 ms per call).

Run: uv run python benchmarks/bench_rewrite.py [--calls N]

It times rewrite_domain() on ../shared/fixtures/kubevirt/domains/kubevirt-arm64.xml for each
dialect and, in the same process, a baseline that only parses and serialises the same document
with lxml, so the figure can be read as a ratio on a noisy machine.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from collections.abc import Callable

from lxml import etree

from hook_inputs import FIXTURE
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.domain.rewrite import rewrite_domain
from kubevirt_cca.core.vmi.request import CCARequest


def sample(fn: Callable[[], object], calls: int) -> list[float]:
    for _ in range(min(200, calls)):  # warm-up
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return times


def describe(name: str, times: list[float]) -> str:
    times = sorted(times)
    p50 = statistics.median(times)
    p99 = times[int(len(times) * 0.99) - 1]
    return f"{name:<28} p50 {p50:.3f} ms   p99 {p99:.3f} ms   mean {statistics.fmean(times):.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    if not FIXTURE.exists():
        print(f"fixture not found: {FIXTURE} (needs ../shared beside the project)")
        return 2
    xml = FIXTURE.read_bytes()
    request = CCARequest("sha512", True, base64.b64encode(bytes(64)).decode())
    baseline = sample(lambda: etree.tostring(etree.fromstring(xml), encoding="unicode"), args.calls)
    print(describe("baseline parse+serialise", baseline))
    base50 = statistics.median(baseline)
    for dialect in Dialect:
        settings = Settings(dialect=dialect)
        times = sample(lambda s=settings: rewrite_domain(xml, request, s), args.calls)  # type: ignore[misc]
        ratio = statistics.median(times) / base50
        print(describe(f"rewrite ({dialect.value})", times) + f"   {ratio:.1f}x baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
