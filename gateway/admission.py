"""Admission at the gateway: past capacity, refuse early and cheaply instead of timing out.

A gateway process saturates its core long before its in-flight limit fills: calls then wait in
the event loop's queue, run late, and time out at the checkpoint (ERROR verdicts, and the
checkpoint's retry adds load). What does show saturation at once is the event loop's lag: how
late a short sleep wakes up, on every one of the last three 20 ms ticks (``LoopLag``: one stall
is not overload). Each new call is judged
on entry, before any work is done for it:

- past ``max_in_flight_codes`` codes in progress, every call is refused;
- when the lag is above ``unary_lag_s``, unary ``Verify`` calls are refused, while batches and
  streams are still admitted: crowded stations and gates keep priority over single scans, the
  choice Hainan made at its 60,000/s peak (docs/capacity.md);
- when the lag is above ``bulk_lag_s``, batch calls and stream items are refused too;
- a call whose remaining deadline is below ``min_remaining_s`` when it reaches its handler
  (it waited in the queue) is refused at once: its answer would come too late to be read.

A refusal is ``Overloaded``: RESOURCE_EXHAUSTED, reason OVERLOADED and a RetryInfo delay
(nodes/grpc_edge.py), counted in ``hcx_gateway_shed_total{rpc, why}``.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import NoReturn

from gateway.coalescer import Overloaded
from gateway.metrics import LOOP_LAG, SHED
from gateway.options import SHED_LAG_BULK_S, SHED_LAG_UNARY_S, GatewayOptions
from nodes.tasks import cancel_and_wait

LAG_TICK_S = 0.02
# The lag is the smallest of the last LAG_WINDOW ticks: a loop with more work than its core
# is late on every tick, while one stall (a collection, a big view rebuild, a blocking call)
# makes one late tick and sheds nothing once it is over.
LAG_WINDOW = 3


@dataclass(frozen=True)
class AdmissionPolicy:
    """When a new call is refused (the defaults are measured in docs/capacity.md)."""

    max_in_flight_codes: int = GatewayOptions.max_in_flight_codes
    unary_lag_s: float = SHED_LAG_UNARY_S
    bulk_lag_s: float = SHED_LAG_BULK_S
    min_remaining_s: float = 0.05

    def __post_init__(self) -> None:
        if self.max_in_flight_codes < 1:
            raise ValueError("max_in_flight_codes must be at least 1")
        if not 0 < self.unary_lag_s <= self.bulk_lag_s:
            raise ValueError("lag thresholds must be positive, unary at most bulk")
        if self.min_remaining_s < 0:
            raise ValueError("min_remaining_s must not be negative")


class LoopLag:
    """How late the event loop runs: the least delay of the last few ticks; 0 until ``start``."""

    def __init__(self, tick: float = LAG_TICK_S) -> None:
        self._tick = tick
        self.seconds = 0.0
        self._recent = collections.deque([0.0] * LAG_WINDOW, maxlen=LAG_WINDOW)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin measuring on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self._tick)
            self.observe(loop.time() - before - self._tick)

    def observe(self, late: float) -> None:
        self._recent.append(max(0.0, late))
        self.seconds = min(self._recent)
        LOOP_LAG.set(self.seconds)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


class Admission:
    """Counts the codes in progress and refuses new work past the policy's limits."""

    def __init__(self, policy: AdmissionPolicy | None = None, lag: LoopLag | None = None) -> None:
        self.policy = policy or AdmissionPolicy()
        self.lag = lag or LoopLag()
        self.in_flight = 0

    def admit(self, rpc: str, codes: int, *, remaining: float | None, bulk: bool) -> None:
        """Take ``codes`` slots for a call of ``rpc``, or raise Overloaded; the caller gives
        them back with ``release`` (try/finally)."""
        policy = self.policy
        if remaining is not None and remaining < policy.min_remaining_s:
            self._refuse(rpc, "deadline", f"only {remaining * 1000:.0f} ms of the deadline left")
        if self.in_flight + codes > policy.max_in_flight_codes:
            self._refuse(rpc, "in_flight", f"{self.in_flight} codes in progress")
        lag = self.lag.seconds
        if lag > (policy.bulk_lag_s if bulk else policy.unary_lag_s):
            self._refuse(rpc, "lag", f"running {lag * 1000:.0f} ms behind")
        self.in_flight += codes

    def release(self, codes: int) -> None:
        self.in_flight -= codes

    @staticmethod
    def _refuse(rpc: str, why: str, detail: str) -> NoReturn:
        SHED.labels(rpc, why).inc()
        raise Overloaded(f"the gateway is at capacity ({detail}); retry shortly")
