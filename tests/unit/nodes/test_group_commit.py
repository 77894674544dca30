"""Group commit of IssueCode (nodes/provincial/group_commit.py) on a real SQLite store.

A store wrapper holds the first commit until the other callers have queued, so which calls share
a commit is decided by the test, not by the scheduler.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodes.provincial.group_commit import IssueQueue
from nodes.provincial.issuance import Holder, Issuer, with_check_character
from nodes.provincial.stores import NewCode, SqliteStatusStore
from simulations.registry_builder import RegistryBuilder
from trust.codeformat import decode_token
from trust.errors import InvalidRequest, StoreUnavailable

PROVINCE = "330000"


def holder(n: int) -> Holder:
    return Holder(with_check_character(f"33010219900101{n:03d}"), "张三")


class GatedStore:
    """A real store whose first ``create_or_get_many`` waits for ``release``; counts batches."""

    def __init__(self, inner: SqliteStatusStore) -> None:
        self.inner = inner
        self.release = threading.Event()
        self.batches: list[int] = []
        self.fail_next = False
        self.blocking = inner.blocking

    def create_or_get_many(self, codes: list[NewCode]) -> Any:
        self.batches.append(len(codes))
        if len(self.batches) == 1:
            assert self.release.wait(10), "the test never released the first commit"
        if self.fail_next:
            self.fail_next = False
            raise StoreUnavailable("disk gone")
        return self.inner.create_or_get_many(codes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GatedStore]:
    inner = SqliteStatusStore(tmp_path / "status.db")
    yield GatedStore(inner)
    inner.close()


@pytest.fixture
def issuer(store: GatedStore) -> Issuer:
    built = RegistryBuilder(clock=1_800_000_000.0)
    built.onboard(PROVINCE, "浙江省")
    province = built.provinces[PROVINCE]
    return Issuer(
        province=PROVINCE,
        signing_key=province.dsc_key,
        kid=province.kid,
        holder_key=b"\x07" * 32,
        store=store,
        clock=lambda: 1_800_000_000.0,
    )


async def _queued(queue: IssueQueue, holders: list[Holder]) -> list[asyncio.Task[Any]]:
    """Start one call per holder and let each reach the queue."""
    tasks = [asyncio.create_task(queue.issue(h)) for h in holders]
    await asyncio.sleep(0.05)
    return tasks


def test_calls_arriving_during_a_commit_share_the_next_one(
    issuer: Issuer, store: GatedStore
) -> None:
    async def scenario() -> list[Any]:
        queue = IssueQueue(issuer)
        first = await _queued(queue, [holder(0)])
        rest = await _queued(queue, [holder(n) for n in range(1, 40)])
        store.release.set()
        return await asyncio.gather(*first, *rest)

    issued = asyncio.run(scenario())
    assert store.batches == [1, 39]  # the lone first call was not delayed, the rest shared
    ids = [code.record.code_id for code in issued]
    assert len(set(ids)) == 40
    for code in issued:  # committed, and each token is the caller's own code
        assert store.inner.get(code.record.code_id) is not None
        assert decode_token(code.token).claims.code_id == code.record.code_id


def test_a_bad_request_fails_alone_and_the_same_holder_twice_gets_one_code(
    issuer: Issuer, store: GatedStore
) -> None:
    async def scenario() -> list[Any]:
        queue = IssueQueue(issuer)
        first = await _queued(queue, [holder(0)])
        bad = Holder("330102199001010000", "张三")  # wrong check character
        rest = await _queued(queue, [holder(1), bad, holder(1), Holder(holder(2).id_number, "")])
        store.release.set()
        return await asyncio.gather(*first, *rest, return_exceptions=True)

    zero, one, bad, one_again, nameless = asyncio.run(scenario())
    assert isinstance(bad, InvalidRequest) and isinstance(nameless, InvalidRequest)
    assert one.record.code_id == one_again.record.code_id != zero.record.code_id
    assert store.batches == [1, 2]  # the refused holders never reached the store


def test_a_store_failure_fails_that_batch_only_and_a_retry_succeeds(
    issuer: Issuer, store: GatedStore
) -> None:
    async def scenario() -> tuple[list[Any], Any]:
        queue = IssueQueue(issuer)
        store.fail_next = True
        first = await _queued(queue, [holder(0)])
        rest = await _queued(queue, [holder(1), holder(2)])
        store.release.set()
        results = await asyncio.gather(*first, *rest, return_exceptions=True)
        return results, await queue.issue(holder(0))

    (failed, one, two), retried = asyncio.run(scenario())
    assert isinstance(failed, StoreUnavailable)
    assert store.inner.get(one.record.code_id) and store.inner.get(two.record.code_id)
    assert store.inner.get(retried.record.code_id) is not None  # nothing was half-written


def test_a_caller_that_gives_up_does_not_disturb_the_batch(
    issuer: Issuer, store: GatedStore
) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        queue = IssueQueue(issuer)
        first = await _queued(queue, [holder(0)])
        quitter, stayer = await _queued(queue, [holder(1), holder(2)])
        quitter.cancel()
        store.release.set()
        done = await asyncio.gather(*first, quitter, stayer, return_exceptions=True)
        again = await queue.issue(holder(1))  # the quitter's holder, asking again
        await queue.close()
        return done, again, queue.commits

    (zero, quit_result, stayed), again, commits = asyncio.run(scenario())
    assert isinstance(quit_result, asyncio.CancelledError)
    assert stayed.record.code_id != zero.record.code_id
    assert store.inner.get(again.record.code_id) is not None
    assert commits == 3


def test_a_batch_is_at_most_max_batch_holders(issuer: Issuer, store: GatedStore) -> None:
    async def scenario() -> None:
        queue = IssueQueue(issuer, max_batch=4)
        first = await _queued(queue, [holder(0)])
        rest = await _queued(queue, [holder(n) for n in range(1, 11)])
        store.release.set()
        await asyncio.gather(*first, *rest)

    asyncio.run(scenario())
    assert store.batches == [1, 4, 4, 2]
    with pytest.raises(ValueError):
        IssueQueue(issuer, max_batch=0)


def test_a_store_that_answers_short_fails_the_batch_instead_of_hanging(
    issuer: Issuer, store: GatedStore
) -> None:
    def short(codes: list[NewCode]) -> Any:
        return store.inner.create_or_get_many(codes)[:-1]

    store.create_or_get_many = short  # type: ignore[method-assign]

    async def scenario() -> list[Any]:
        queue = IssueQueue(issuer)
        calls = [asyncio.create_task(queue.issue(holder(n))) for n in range(3)]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(scenario()))
