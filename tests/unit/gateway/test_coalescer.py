"""The coalescer with a recording status source: batching, caps, queue bound, breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from gateway.breaker import BreakerPolicy, BreakerState
from gateway.coalescer import CoalescerPolicy, Overloaded, StatusCoalescer
from gateway.relay import IssuerUnavailable
from trust.model import Colour
from trust.verify import LiveStatus


class RecordingRelay:
    """Answers GREEN for every id after ``delay``, or once ``answer`` is set when it is given;
    fails while ``down``; records batches and answers."""

    def __init__(self, delay: float = 0.0, answer: asyncio.Event | None = None) -> None:
        self.delay = delay
        self.answer = answer
        self.down = False
        self.batches: list[list[bytes]] = []
        self.answered = 0

    async def statuses(
        self, province: str, code_ids: Sequence[bytes], *, deadline: float
    ) -> dict[bytes, LiveStatus]:
        self.batches.append(list(code_ids))
        if self.down:
            raise IssuerUnavailable("down")
        await (self.answer.wait() if self.answer else asyncio.sleep(self.delay))
        self.answered += 1
        return {i: LiveStatus(True, Colour.GREEN, 1, 0) for i in code_ids if i != b"unknown"}


def coalescer(relay: RecordingRelay, **policy: object) -> StatusCoalescer:
    return StatusCoalescer(relay, CoalescerPolicy(**policy))  # type: ignore[arg-type]


def soon(seconds: float = 1.0) -> float:
    return time.monotonic() + seconds


async def test_concurrent_lookups_share_one_batch_and_duplicates_one_id() -> None:
    relay = RecordingRelay()
    c = coalescer(relay, window=0.01)
    ids = [bytes([i]) * 16 for i in range(10)] + [bytes([0]) * 16]
    results = await asyncio.gather(*(c.lookup("330000", i, deadline=soon()) for i in ids))
    assert all(r.colour is Colour.GREEN for r in results)
    assert len(relay.batches) == 1
    assert len(relay.batches[0]) == 10


async def test_size_cap_splits_batches() -> None:
    relay = RecordingRelay()
    c = coalescer(relay, window=0.05, max_batch=4)
    await asyncio.gather(*(c.lookup("330000", bytes([i]) * 16, deadline=soon()) for i in range(10)))
    assert [len(b) for b in relay.batches] == [4, 4, 2]


async def test_unknown_id_is_not_found() -> None:
    c = coalescer(RecordingRelay())
    assert not (await c.lookup("330000", b"unknown", deadline=soon())).found


async def test_deadline_is_honoured_when_the_issuer_is_slow() -> None:
    """The look-up gives up at its deadline, while the issuer still has not answered."""
    relay = RecordingRelay(answer=asyncio.Event())  # answers only when told to
    c = coalescer(relay)
    # The outer bound only turns a hang into a failure; it is not what is measured.
    with pytest.raises(IssuerUnavailable, match="did not answer in time"):
        await asyncio.wait_for(c.lookup("330000", b"x" * 16, deadline=soon(0.1)), timeout=30)
    assert (len(relay.batches), relay.answered) == (1, 0)  # asked, and still silent
    await c.close()


async def test_full_queue_is_refused_not_grown() -> None:
    c = coalescer(RecordingRelay(delay=0.5), max_queued=5, max_in_flight=1)
    waiting = [
        asyncio.create_task(c.lookup("330000", bytes([i]) * 16, deadline=soon())) for i in range(5)
    ]
    await asyncio.sleep(0)
    with pytest.raises(Overloaded):
        await c.lookup("330000", b"z" * 16, deadline=soon())
    await asyncio.gather(*waiting)
    await c.close()


async def test_breaker_opens_after_failures_and_probe_closes_it() -> None:
    relay = RecordingRelay()
    relay.down = True
    c = coalescer(relay, breaker=BreakerPolicy(failure_threshold=2, open_seconds=0.1))
    for i in range(2):
        with pytest.raises(IssuerUnavailable):
            await c.lookup("330000", bytes([i]) * 16, deadline=soon())
    assert c.lane("330000").breaker.state is BreakerState.OPEN
    calls = len(relay.batches)
    with pytest.raises(IssuerUnavailable):
        await c.lookup("330000", b"q" * 16, deadline=soon())
    assert len(relay.batches) == calls  # open: the issuer is not asked
    relay.down = False
    await asyncio.sleep(0.15)
    assert (await c.lookup("330000", b"r" * 16, deadline=soon())).found
    assert c.lane("330000").breaker.state is BreakerState.CLOSED
