"""The log budget on its own, with a clock the test moves (the TLS tests drive it for real)."""

from __future__ import annotations

import logging

import pytest

from kubevirt_cca.adapters.webhook.limits import LogBudget

LOG = logging.getLogger("tests.log_budget")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_at_most_the_limit_per_interval_then_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOG.name)
    clock = Clock()
    budget = LogBudget(LOG, what="bad requests", limit=2, interval=10.0, clock=clock)
    assert [budget.allow() for _ in range(5)] == [True, True, False, False, False]
    assert caplog.messages == []  # no loop runs here: the summary waits for the next event
    clock.now += 10.0
    assert budget.allow() is True  # a new interval
    assert caplog.messages == [
        "bad requests: 3 more not logged in the last 10s (at most 2 logged per 10s)"
    ]
    budget.flush()  # nothing suppressed since: no second summary
    assert len(caplog.messages) == 1


def test_within_the_interval_nothing_more_is_allowed() -> None:
    clock = Clock()
    budget = LogBudget(LOG, what="x", limit=1, interval=60.0, clock=clock)
    assert budget.allow() is True
    clock.now += 59.9
    assert budget.allow() is False
