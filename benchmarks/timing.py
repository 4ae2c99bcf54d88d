"""Timing helpers the benchmark scripts share (run them as scripts: this folder is on sys.path)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def sample(fns: dict[str, Callable[[], object]], calls: int) -> dict[str, list[float]]:
    """Time every function ``calls`` times in milliseconds, round-robin, so all rows see the
    same noise; each row comes back sorted."""
    for fn in fns.values():
        for _ in range(min(200, calls)):  # warm-up
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(calls):
        for name, fn in fns.items():
            start = time.perf_counter_ns()
            fn()
            times[name].append((time.perf_counter_ns() - start) / 1e6)
    return {name: sorted(values) for name, values in times.items()}


def p(times: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``times``."""
    return times[max(0, int(len(times) * q) - 1)]


def describe(name: str, times: list[float], base: float | None = None) -> str:
    """One row: p50, p99 and mean of sorted ``times``, and the p50 as a multiple of ``base``."""
    line = (
        f"{name:<34} p50 {statistics.median(times):7.3f} ms   p99 {p(times, 0.99):7.3f} ms"
        f"   mean {statistics.fmean(times):7.3f} ms"
    )
    if base is not None:
        line += f"   {statistics.median(times) / base:5.1f}x core (p50)"
    return line
