"""The per-province circuit breaker, table-driven on a fake clock."""

from __future__ import annotations

import pytest

from gateway.breaker import BreakerPolicy, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, changes: list[BreakerState] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        BreakerPolicy(failure_threshold=3, open_seconds=1.0),
        clock=clock,
        on_change=None if changes is None else changes.append,
    )


@pytest.mark.parametrize(
    ("name", "outcomes", "state"),
    [
        ("two failures stay closed", [False, False], BreakerState.CLOSED),
        ("three failures open", [False, False, False], BreakerState.OPEN),
        ("a success resets the count", [False, False, True, False, False], BreakerState.CLOSED),
    ],
)
def test_consecutive_failures(name: str, outcomes: list[bool], state: BreakerState) -> None:
    b = breaker(Clock())
    for ok in outcomes:
        assert b.allow()
        b.record(ok)
    assert b.state is state, name


def test_open_refuses_until_cooled_down_then_one_probe() -> None:
    clock = Clock()
    changes: list[BreakerState] = []
    b = breaker(clock, changes)
    for _ in range(3):
        b.allow()
        b.record(False)
    assert not b.allow()
    clock.now = 1.0
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()  # the probe
    assert not b.allow()  # only one probe at a time
    b.record(True)
    assert b.state is BreakerState.CLOSED
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_probe_opens_again_for_a_full_period() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.allow()
        b.record(False)
    clock.now = 1.5
    assert b.allow()
    b.record(False)
    assert b.state is BreakerState.OPEN
    clock.now = 2.4
    assert not b.allow()
    clock.now = 2.5
    assert b.allow()
