"""The labeller's waits: interval jitter and exponential backoff (pure arithmetic)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from kubevirt_cca.adapters.node_labeller import Timing


@given(seed=st.integers(0, 2**32), interval=st.floats(0.01, 3600))
def test_the_interval_is_jittered_by_ten_percent(seed: int, interval: float) -> None:
    wait = Timing(interval=interval).next_interval(random.Random(seed))

    assert 0.9 * interval <= wait <= 1.1 * interval


@given(seed=st.integers(0, 2**32), failures=st.integers(1, 500))
def test_backoff_doubles_from_one_second_up_to_the_interval(seed: int, failures: int) -> None:
    timing = Timing(interval=300.0)
    ceiling = min(300.0, 2.0 ** (failures - 1))

    wait = timing.backoff(failures, random.Random(seed))

    assert ceiling / 2 <= wait <= ceiling


@given(seed=st.integers(0, 2**32))
def test_below_the_cap_backoff_steps_never_overlap_so_waits_only_grow(seed: int) -> None:
    timing = Timing(interval=300.0, backoff_initial=0.5)
    rng = random.Random(seed)
    waits = [timing.backoff(n, rng) for n in range(1, 10)]  # ceilings 0.5 ... 128 s

    assert waits == sorted(waits)
    assert waits[0] <= 0.5
    assert 64.0 <= waits[-1] <= 128.0


def test_an_explicit_backoff_cap_wins() -> None:
    assert Timing(interval=300.0, backoff_max=10.0).backoff(50, random.Random(0)) <= 10.0
