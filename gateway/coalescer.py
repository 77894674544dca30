"""Merges concurrent status look-ups for one province into GetStatusBatch calls.

A look-up joins the province's open batch; the batch leaves when it holds ``max_batch`` ids or
``window`` seconds after its first id, whichever comes first. At most ``max_in_flight`` batches
per province are on the wire (the per-province concurrency limit); batches beyond that wait in
a queue of at most ``max_queued`` ids, and a look-up past that is refused with ``Overloaded``
(RESOURCE_EXHAUSTED at the edge) so memory stays bounded under a flood. A province whose
circuit breaker is open is not asked at all: its look-ups fail at once with IssuerUnavailable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from gateway.metrics import BREAKER_STATE, COALESCER_QUEUED, OVERLOAD_REJECTIONS
from gateway.options import GatewayOptions
from gateway.relay import MAX_STATUS_BATCH, IssuerUnavailable, StatusRelay
from trust.errors import RelayError, ResourceExhausted
from trust.verify import LiveStatus

log = logging.getLogger(__name__)


class Overloaded(ResourceExhausted):
    """The gateway's queue for a province is full; the checkpoint should retry shortly."""

    def __init__(self, message: str, *, retry_after: float | None = 0.1) -> None:
        super().__init__(message, retry_after=retry_after)


@dataclass(frozen=True)
class CoalescerPolicy:
    window: float = GatewayOptions.coalesce_window  # a batch stays open this long for more look-ups
    max_batch: int = 200  # ids per GetStatusBatch call (<= 1000)
    max_in_flight: int = 8  # concurrent GetStatusBatch calls per province
    max_queued: int = 20_000  # ids waiting per province before RESOURCE_EXHAUSTED
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)

    def __post_init__(self) -> None:
        if not 0 < self.max_batch <= MAX_STATUS_BATCH:
            raise ValueError(f"max_batch must be 1 to {MAX_STATUS_BATCH}")


@dataclass
class _Batch:
    waiters: dict[bytes, list[asyncio.Future[LiveStatus]]] = field(default_factory=dict)
    deadline: float = 0.0  # the latest deadline among its look-ups (monotonic)
    size: int = 0


class ProvinceLane:
    """The open batch, queue, concurrency limit and breaker of one province."""

    def __init__(self, province: str, relay: StatusRelay, policy: CoalescerPolicy) -> None:
        self.province = province
        self._relay = relay
        self._policy = policy
        self._open: _Batch | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._slots = asyncio.Semaphore(policy.max_in_flight)
        self._queued = 0
        self._tasks: set[asyncio.Task[None]] = set()
        gauge = BREAKER_STATE.labels(province)
        gauge.set(BreakerState.CLOSED)
        self.breaker = CircuitBreaker(policy.breaker, on_change=lambda s: gauge.set(int(s)))

    def submit(self, code_id: bytes, deadline: float) -> asyncio.Future[LiveStatus]:
        """Join the open batch; the future gets the live status (no deadline timer of its own:
        a batch of a caller's codes waits for all of them together, see verify_tokens)."""
        if self.breaker.state is BreakerState.OPEN:
            raise IssuerUnavailable(f"province {self.province}: circuit open")
        if self._queued >= self._policy.max_queued:
            OVERLOAD_REJECTIONS.labels(self.province).inc()
            raise Overloaded(f"too many look-ups waiting for province {self.province}")
        future: asyncio.Future[LiveStatus] = asyncio.get_running_loop().create_future()
        self._join(code_id, future, deadline)
        return future

    async def lookup(self, code_id: bytes, deadline: float) -> LiveStatus:
        """The live status of ``code_id`` by ``deadline`` (monotonic), or IssuerUnavailable."""
        future = self.submit(code_id, deadline)
        loop = asyncio.get_running_loop()
        # One timer on the loop's monotonic clock: cheaper per look-up than asyncio.wait_for,
        # which wraps the future in another and adds callbacks.
        timer = loop.call_at(deadline, self._expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _expire(self, future: asyncio.Future[LiveStatus]) -> None:
        if not future.done():
            future.set_exception(
                IssuerUnavailable(f"province {self.province} did not answer in time")
            )

    def _join(self, code_id: bytes, future: asyncio.Future[LiveStatus], deadline: float) -> None:
        batch = self._open
        if batch is None:
            batch = self._open = _Batch()
            self._timer = asyncio.get_running_loop().call_later(self._policy.window, self._seal)
        batch.waiters.setdefault(code_id, []).append(future)
        batch.deadline = max(batch.deadline, deadline)
        batch.size += 1
        self._queued += 1
        COALESCER_QUEUED.inc()
        if len(batch.waiters) >= self._policy.max_batch:
            self._seal()

    def _seal(self) -> None:
        """Close the open batch and hand it to a sender task."""
        batch, self._open = self._open, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if batch is None:
            return
        task = asyncio.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: _Batch) -> None:
        try:
            async with self._slots:
                await self._ask(batch)
        finally:
            self._queued -= batch.size
            COALESCER_QUEUED.dec(batch.size)

    async def _ask(self, batch: _Batch) -> None:
        live = [f for fs in batch.waiters.values() for f in fs if not f.done()]
        if not live or time.monotonic() >= batch.deadline:
            return  # every waiter gave up already: do not load the issuer for nothing
        if not self.breaker.allow():
            _fail(batch, IssuerUnavailable(f"province {self.province}: circuit open"))
            return
        try:
            found = await self._relay.statuses(
                self.province, list(batch.waiters), deadline=batch.deadline
            )
        except IssuerUnavailable as e:
            self.breaker.record(False)
            _fail(batch, e)
            return
        except Exception as e:  # a refusal by the node, or a bug: an error, never "offline"
            log.error("status look-up failed (answered as an error)", exc_info=e,
                      extra={"province": self.province})  # fmt: skip
            _fail(batch, e if isinstance(e, RelayError) else RelayError(f"relay failed: {e!r}"))
            return
        self.breaker.record(True)
        for code_id, futures in batch.waiters.items():
            status = found.get(code_id, LiveStatus(False, None, 0, 0))
            for future in futures:
                if not future.done():
                    future.set_result(status)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _fail(batch: _Batch, error: Exception) -> None:
    for futures in batch.waiters.values():
        for future in futures:
            if not future.done():
                future.set_exception(error)


class StatusCoalescer:
    """One ``ProvinceLane`` per issuing province, created on first use."""

    def __init__(
        self,
        relay: StatusRelay,
        policy: CoalescerPolicy | None = None,
        *,
        lane_factory: Callable[[str], ProvinceLane] | None = None,
    ) -> None:
        self._relay = relay
        self.policy = policy or CoalescerPolicy()
        self._lanes: dict[str, ProvinceLane] = {}
        self._factory = lane_factory or (lambda p: ProvinceLane(p, relay, self.policy))

    def lane(self, province: str) -> ProvinceLane:
        lane = self._lanes.get(province)
        if lane is None:
            lane = self._lanes[province] = self._factory(province)
        return lane

    async def lookup(self, province: str, code_id: bytes, *, deadline: float) -> LiveStatus:
        return await self.lane(province).lookup(code_id, deadline)

    def submit(
        self, province: str, code_id: bytes, *, deadline: float
    ) -> asyncio.Future[LiveStatus]:
        return self.lane(province).submit(code_id, deadline)

    async def close(self) -> None:
        for lane in self._lanes.values():
            await lane.close()
