"""Trying replicas in turn: the one fail-over loop of the federation's callers.

A gateway relaying an assistance request to a province's nodes, the residents' page calling its
province's nodes, the simulation's checkpoints calling the gateways: each tries its targets in
order until one answers. A failure that another replica could answer (the replica unreachable
or too slow) moves on to the next; any other failure is the answer, raised as it came (a
refusal is the same at every replica). Hedged calls (several in flight, gateway.relay) are not
this loop.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TypeVar

import grpc

_T = TypeVar("_T")
_R = TypeVar("_R")

# A replica that did not answer: another one may.
TRANSPORT_FAILURES: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)


class NoAnswer(Exception):
    """No target answered: each failed in a way another could have answered, or the deadline
    passed first. ``last`` is the last failure (None if the deadline left no try at all)."""

    def __init__(self, last: grpc.RpcError | None, tried: int) -> None:
        super().__init__(f"no answer from {tried} target(s)" + (f": {last}" if last else ""))
        self.last = last
        self.tried = tried


def in_turn(items: Sequence[_T], start: int) -> list[_T]:
    """``items`` round the ring from position ``start`` (any integer: taken modulo)."""
    return [items[(start + i) % len(items)] for i in range(len(items))]


async def first_answer(
    targets: Sequence[_T],
    call: Callable[[_T], Awaitable[_R]],
    *,
    fail_over: Collection[grpc.StatusCode] | None = TRANSPORT_FAILURES,
    deadline: float | None = None,
    on_failure: Callable[[_T, grpc.RpcError], None] | None = None,
) -> tuple[int, _R]:
    """(position in ``targets``, answer) of the first target whose ``call`` answers.

    A failed call whose code is in ``fail_over`` (``None``: any code) moves on to the next
    target, after ``on_failure``; any other failure is raised as it came. With a ``deadline``
    (time.monotonic) no new target is tried once it has passed. NoAnswer when none answered."""
    last: grpc.RpcError | None = None
    tried = 0
    for position, target in enumerate(targets):
        if deadline is not None and deadline - time.monotonic() <= 0:
            break
        tried += 1
        try:
            return position, await call(target)
        except grpc.RpcError as e:
            if fail_over is not None and e.code() not in fail_over:
                raise
            if on_failure is not None:
                on_failure(target, e)
            last = e
    raise NoAnswer(last, tried)
