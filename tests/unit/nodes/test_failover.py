"""nodes.failover.first_answer: the one loop that tries replicas in turn."""

from __future__ import annotations

import time

import grpc
import pytest

from nodes.failover import NoAnswer, first_answer, in_turn

C = grpc.StatusCode


def failure(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=code.name)


class Replicas:
    """Targets that fail with the given codes (None: answer), recording who was called."""

    def __init__(self, **codes: grpc.StatusCode | None) -> None:
        self.codes = codes
        self.called: list[str] = []

    async def __call__(self, name: str) -> str:
        self.called.append(name)
        code = self.codes[name]
        if code is not None:
            raise failure(code)
        return f"answer of {name}"


def test_in_turn_goes_round_the_ring_from_any_start() -> None:
    assert in_turn("abc", 1) == ["b", "c", "a"]
    assert in_turn("abc", 7) == ["b", "c", "a"]
    assert in_turn("abc", -1) == ["c", "a", "b"]
    assert in_turn("", 3) == []


async def test_the_first_that_answers_and_its_position() -> None:
    replicas = Replicas(a=C.UNAVAILABLE, b=C.DEADLINE_EXCEEDED, c=None, d=None)
    assert await first_answer("abcd", replicas) == (2, "answer of c")
    assert replicas.called == ["a", "b", "c"]


async def test_a_refusal_is_the_answer_and_no_other_replica_is_asked() -> None:
    replicas = Replicas(a=C.UNAVAILABLE, b=C.PERMISSION_DENIED, c=None)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await first_answer("abc", replicas)
    assert refused.value.code() == C.PERMISSION_DENIED
    assert replicas.called == ["a", "b"]


async def test_every_replica_down_is_no_answer_with_the_last_failure() -> None:
    replicas = Replicas(a=C.UNAVAILABLE, b=C.DEADLINE_EXCEEDED)
    failed: list[tuple[str, grpc.StatusCode]] = []
    with pytest.raises(NoAnswer) as none:
        await first_answer("ab", replicas, on_failure=lambda t, e: failed.append((t, e.code())))
    assert none.value.tried == 2
    assert none.value.last is not None and none.value.last.code() == C.DEADLINE_EXCEEDED
    assert failed == [("a", C.UNAVAILABLE), ("b", C.DEADLINE_EXCEEDED)]


async def test_fail_over_on_any_code_when_asked() -> None:
    replicas = Replicas(a=C.PERMISSION_DENIED, b=None)
    assert await first_answer("ab", replicas, fail_over=None) == (1, "answer of b")


async def test_a_passed_deadline_tries_no_new_replica() -> None:
    replicas = Replicas(a=None)
    with pytest.raises(NoAnswer) as none:
        await first_answer("a", replicas, deadline=time.monotonic() - 0.001)
    assert none.value.tried == 0 and none.value.last is None
    assert replicas.called == []


async def test_no_targets_is_no_answer() -> None:
    with pytest.raises(NoAnswer):
        await first_answer([], Replicas())
