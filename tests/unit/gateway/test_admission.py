"""Admission (gateway/admission.py): who is refused on entry when the gateway is at capacity."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.admission import Admission, AdmissionPolicy, LoopLag
from gateway.coalescer import Overloaded
from trust.errors import ResourceExhausted

POLICY = AdmissionPolicy(max_in_flight_codes=10, unary_lag_s=0.05, bulk_lag_s=0.15)


def admission(lag: float = 0.0) -> Admission:
    a = Admission(POLICY)
    a.lag.seconds = lag
    return a


def test_unary_calls_are_shed_first_batches_and_streams_keep_priority() -> None:
    a = admission(lag=0.1)
    with pytest.raises(Overloaded, match="behind"):
        a.admit("Verify", 1, remaining=2.0, bulk=False)
    a.admit("VerifyBatch", 5, remaining=2.0, bulk=True)  # still admitted
    a.admit("VerifyStream", 1, remaining=None, bulk=True)
    assert a.in_flight == 6
    a.lag.seconds = 0.2
    for rpc in ("VerifyBatch", "VerifyStream"):
        with pytest.raises(Overloaded):
            a.admit(rpc, 1, remaining=2.0, bulk=True)
    assert a.in_flight == 6  # a refusal takes nothing


def test_the_in_flight_cap_holds_for_every_kind_and_release_gives_back() -> None:
    a = admission()
    a.admit("VerifyBatch", 10, remaining=None, bulk=True)
    for bulk in (False, True):
        with pytest.raises(Overloaded, match="in progress"):
            a.admit("Verify", 1, remaining=None, bulk=bulk)
    a.release(10)
    a.admit("Verify", 1, remaining=None, bulk=False)
    assert a.in_flight == 1


def test_a_call_that_waited_out_its_deadline_in_the_queue_is_refused_at_once() -> None:
    a = admission()
    with pytest.raises(Overloaded, match="deadline"):
        a.admit("VerifyBatch", 1, remaining=0.01, bulk=True)
    a.admit("VerifyBatch", 1, remaining=0.5, bulk=True)
    a.admit("Verify", 1, remaining=None, bulk=False)  # no deadline: nothing to run out


def test_a_refusal_is_resource_exhausted_with_a_retry_delay() -> None:
    # Overloaded is the RESOURCE_EXHAUSTED family: the edge gives it reason OVERLOADED and a
    # RetryInfo (tests/unit/nodes/test_grpc_edge.py); the checkpoint retries, not fails.
    assert issubclass(Overloaded, ResourceExhausted)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_in_flight_codes": 0},
        {"unary_lag_s": 0},
        {"unary_lag_s": 0.2, "bulk_lag_s": 0.1},
        {"min_remaining_s": -1},
    ],
)
def test_bad_policies_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AdmissionPolicy(**kwargs)


def test_loop_lag_rises_when_the_loop_is_blocked_and_falls_when_it_is_free() -> None:
    async def scenario() -> tuple[float, float, float]:
        lag = LoopLag(tick=0.01)
        lag.start()
        await asyncio.sleep(0.1)
        quiet = lag.seconds

        async def busy_task(until: float) -> None:  # more work than the core: always ready
            while time.monotonic() < until:
                time.sleep(0.005)
                await asyncio.sleep(0)

        until = time.monotonic() + 0.4
        await asyncio.gather(*(busy_task(until) for _ in range(10)))  # each tick ~50 ms late
        busy = lag.seconds
        await asyncio.sleep(0.5)
        after = lag.seconds
        await lag.stop()
        return quiet, busy, after

    quiet, busy, after = asyncio.run(scenario())
    assert busy > POLICY.unary_lag_s / 2 > quiet
    assert after < busy / 4


def test_one_stall_does_not_shed_but_a_loop_late_on_every_tick_does() -> None:
    lag = LoopLag()
    lag.observe(2.0)  # one 2 s stall (a collection, a view rebuild, a blocking call)
    assert lag.seconds < POLICY.unary_lag_s
    lag.observe(0.0)
    for _ in range(3):  # saturated: every tick late
        lag.observe(0.08)
    assert POLICY.unary_lag_s < lag.seconds < POLICY.bulk_lag_s
    lag.observe(0.001)  # one tick on time: the backlog is gone
    assert lag.seconds < POLICY.unary_lag_s
    lag.observe(-0.001)  # a tick cannot be early: counted as on time
    assert lag.seconds == 0
