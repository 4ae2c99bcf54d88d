"""Timing helpers the benchmark scripts share (run them as scripts: this folder is on sys.path)."""

from __future__ import annotations

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
