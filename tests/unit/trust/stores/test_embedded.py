"""The embedded registry store (SQLite in a file) keeps the KvStore contract: one revision per
transaction, compare-and-put, all or nothing, leases that expire by the store's clock, and
watches that replay every change in order.

Each test opens a store in its own temporary directory, with a clock the test moves; nothing
here opens a socket.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from trust.errors import Conflict, NotFound, StoreUnavailable
from trust.kv import EventKind, KvEntry, KvEvent, Write
from trust.stores.embedded import EmbeddedStore

NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[EmbeddedStore]:
    opened = EmbeddedStore(tmp_path / "registry.db", poll_interval=0.01, clock=clock)
    yield opened
    await opened.close()


async def _events(store: EmbeddedStore, prefix: str, start: int, count: int) -> list[KvEvent]:
    """The first ``count`` events a watch from ``start`` shows."""
    seen: list[KvEvent] = []
    watch = store.watch(prefix, start_revision=start)
    async with asyncio.timeout(30):
        async for event in watch:
            seen.append(event)
            if len(seen) == count:
                break
    await watch.aclose()  # type: ignore[attr-defined]
    return seen


# -- values and revisions -----------------------------------------------------------------------
async def test_every_write_is_one_new_store_revision(store: EmbeddedStore) -> None:
    assert await store.get("a") is None
    assert await store.put("a", b"1") == 1
    assert await store.put("b", b"2") == 2
    assert await store.put("a", b"3") == 3
    assert await store.get("a") == KvEntry("a", b"3", 3)
    assert await store.get("b") == KvEntry("b", b"2", 2)
    assert (await store.read_prefix("")).revision == 3


async def test_a_prefix_read_holds_its_keys_in_order_at_one_revision(store: EmbeddedStore) -> None:
    for key in ("log/leaf/2", "log/head", "log/leaf/1", "logx", "nodes/1", "lo"):
        await store.put(key, key.encode())
    snapshot = await store.read_prefix("log/")
    assert [e.key for e in snapshot.entries] == ["log/head", "log/leaf/1", "log/leaf/2"]
    assert snapshot.entries[0] == KvEntry("log/head", b"log/head", 2)
    assert snapshot.revision == 6
    assert [e.key for e in (await store.read_prefix("")).entries] == sorted(
        ["log/leaf/2", "log/head", "log/leaf/1", "logx", "nodes/1", "lo"]
    )


async def test_a_prefix_is_text_not_a_pattern(store: EmbeddedStore) -> None:
    await store.put("a_b", b"1")
    await store.put("axb", b"2")
    await store.put("a%", b"3")
    assert [e.key for e in (await store.read_prefix("a_")).entries] == ["a_b"]
    assert [e.key for e in (await store.read_prefix("a%")).entries] == ["a%"]
    assert (await store.read_prefix("b")).entries == ()


async def test_a_value_is_returned_byte_for_byte(store: EmbeddedStore) -> None:
    value = bytes(range(256)) + b"\x00"
    await store.put("k", value)
    entry = await store.get("k")
    assert entry is not None and entry.value == value and type(entry.value) is bytes


@pytest.mark.parametrize(
    ("existing", "expect", "conflict"),
    [
        pytest.param(False, 0, False, id="0: the key must not exist, and does not"),
        pytest.param(True, 0, True, id="0: the key must not exist, but does"),
        pytest.param(True, 1, False, id="the revision it has"),
        pytest.param(True, 2, True, id="a revision it never had"),
        pytest.param(False, 1, True, id="a revision of a key that does not exist"),
        pytest.param(True, None, False, id="no expectation"),
    ],
)
async def test_compare_and_put(
    store: EmbeddedStore, existing: bool, expect: int | None, conflict: bool
) -> None:
    if existing:
        await store.put("k", b"old")
    if conflict:
        with pytest.raises(Conflict, match=f"k changed concurrently .*expected {expect}"):
            await store.put("k", b"new", expect_revision=expect)
        entry = await store.get("k")
        assert entry is None or entry.value == b"old"
    else:
        revision = await store.put("k", b"new", expect_revision=expect)
        assert await store.get("k") == KvEntry("k", b"new", revision)


async def test_a_conflict_names_the_revision_found(store: EmbeddedStore) -> None:
    await store.put("k", b"old")
    with pytest.raises(Conflict, match=r"\(revision 1, expected 0\)"):
        await store.put("k", b"new", expect_revision=0)


async def test_a_transaction_writes_everything_at_one_revision(store: EmbeddedStore) -> None:
    await store.put("x", b"0")
    revision = await store.transact(
        [Write("log/leaf/0", b"leaf", expect_revision=0), Write("log/head", b"head"),
         Write("x", b"1", expect_revision=1)]
    )  # fmt: skip
    assert revision == 2
    entries = (await store.read_prefix("")).entries
    assert {(e.key, e.value, e.mod_revision) for e in entries} == {
        ("log/leaf/0", b"leaf", 2),
        ("log/head", b"head", 2),
        ("x", b"1", 2),
    }
    events = await _events(store, "", 2, 3)
    assert [(e.key, e.revision) for e in events] == [("log/leaf/0", 2), ("log/head", 2), ("x", 2)]


async def test_a_transaction_with_one_failed_expectation_writes_nothing(
    store: EmbeddedStore,
) -> None:
    await store.put("log/head", b"head 1")
    with pytest.raises(Conflict, match="log/head changed concurrently"):
        await store.transact(
            [Write("log/leaf/1", b"leaf", expect_revision=0),
             Write("log/head", b"head 2", expect_revision=0)]
        )  # fmt: skip
    assert await store.get("log/leaf/1") is None
    assert await store.get("log/head") == KvEntry("log/head", b"head 1", 1)
    assert (await store.read_prefix("")).revision == 1
    assert await store.put("y", b"") == 2, "the refused transaction used no revision"


async def test_an_empty_transaction_is_refused(store: EmbeddedStore) -> None:
    with pytest.raises(ValueError, match="at least one write"):
        await store.transact([])


async def test_a_delete_is_a_revision_only_when_something_was_deleted(store: EmbeddedStore) -> None:
    await store.put("a", b"1")
    assert await store.delete("a") is True
    assert await store.get("a") is None
    assert await store.delete("a") is False
    assert await store.delete("never") is False
    assert await store.put("b", b"2") == 3
    events = await _events(store, "", 1, 3)
    assert [(e.kind, e.key, e.value, e.revision) for e in events] == [
        (EventKind.PUT, "a", b"1", 1),
        (EventKind.DELETE, "a", b"", 2),
        (EventKind.PUT, "b", b"2", 3),
    ]


async def test_two_stores_on_one_file_see_each_others_writes(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    other = EmbeddedStore(tmp_path / "registry.db")
    await other.put("k", b"from the other process")
    assert await store.get("k") == KvEntry("k", b"from the other process", 1)
    with pytest.raises(Conflict):
        await store.put("k", b"x", expect_revision=0)
    await other.close()


# -- leases -------------------------------------------------------------------------------------
async def test_a_lease_keeps_its_keys_until_it_expires(store: EmbeddedStore, clock: Clock) -> None:
    lease = await store.grant_lease(10)
    assert lease > 0
    await store.put("nodes/330000/n1", b"route", lease=lease)
    await store.put("log/head", b"head")
    clock.now = NOW + 10  # exactly at expiry: still alive
    assert await store.get("nodes/330000/n1") is not None
    clock.now = NOW + 10.5
    assert await store.get("nodes/330000/n1") is None
    assert await store.get("log/head") is not None, "a key without a lease stays"
    with pytest.raises(NotFound, match=f"lease {lease} expired or unknown"):
        await store.keep_alive(lease)


async def test_a_keep_alive_moves_the_expiry_by_the_ttl(store: EmbeddedStore, clock: Clock) -> None:
    lease = await store.grant_lease(10)
    await store.put("nodes/330000/n1", b"route", lease=lease)
    clock.now = NOW + 8
    assert await store.keep_alive(lease) == 10
    clock.now = NOW + 17
    assert await store.get("nodes/330000/n1") is not None
    clock.now = NOW + 18.5
    assert (await store.read_prefix("nodes/")).entries == ()


async def test_an_expired_lease_shows_as_deletes_to_a_watch(
    store: EmbeddedStore, clock: Clock
) -> None:
    lease = await store.grant_lease(5)
    await store.put("nodes/330000/n1", b"a", lease=lease)
    await store.put("handles/ab", b"b", lease=lease)
    clock.now = NOW + 6
    events = await _events(store, "", 1, 4)
    assert [(e.kind, e.key) for e in events[:2]] == [
        (EventKind.PUT, "nodes/330000/n1"),
        (EventKind.PUT, "handles/ab"),
    ]
    assert {(e.kind, e.key, e.value) for e in events[2:]} == {
        (EventKind.DELETE, "nodes/330000/n1", b""),
        (EventKind.DELETE, "handles/ab", b""),
    }
    assert [e.revision for e in events[2:]] == [3, 4]
    assert await store.get("handles/ab") is None


async def test_a_revoked_lease_drops_its_keys_at_once(store: EmbeddedStore) -> None:
    lease = await store.grant_lease(60)
    other = await store.grant_lease(60)
    await store.put("nodes/330000/n1", b"a", lease=lease)
    await store.put("nodes/330000/n2", b"b", lease=other)
    await store.revoke_lease(lease)
    assert await store.get("nodes/330000/n1") is None
    assert await store.get("nodes/330000/n2") is not None
    with pytest.raises(NotFound, match=f"lease {lease} expired or unknown"):
        await store.revoke_lease(lease)
    with pytest.raises(NotFound):
        await store.keep_alive(lease)
    with pytest.raises(NotFound, match=f"lease {lease} does not exist or expired"):
        await store.put("nodes/330000/n1", b"a", lease=lease)


@pytest.mark.parametrize(
    "lease", [pytest.param(0, id="0, no lease"), pytest.param(-1, id="negative"),
              pytest.param(12345, id="never granted")]
)  # fmt: skip
async def test_a_lease_never_granted_is_not_found(store: EmbeddedStore, lease: int) -> None:
    await store.put("k", b"v")
    with pytest.raises(NotFound, match=f"lease {lease} expired or unknown"):
        await store.keep_alive(lease)
    with pytest.raises(NotFound, match=f"lease {lease} expired or unknown"):
        await store.revoke_lease(lease)
    assert await store.get("k") == KvEntry("k", b"v", 1), "revoking nothing drops nothing"
    if lease:
        with pytest.raises(NotFound, match="does not exist or expired"):
            await store.put("n", b"v", lease=lease)
        assert await store.get("n") is None


async def test_a_lease_whose_random_id_came_out_zero_is_lease_1(
    store: EmbeddedStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0 means "no lease", so an all-zero draw becomes 1: a lease like any other."""
    monkeypatch.setattr("trust.stores.embedded.secrets.randbits", lambda bits: 0)
    lease = await store.grant_lease(10)
    assert lease == 1
    await store.put("nodes/330000/n1", b"route", lease=lease)
    assert await store.keep_alive(lease) == 10
    await store.revoke_lease(lease)
    assert await store.get("nodes/330000/n1") is None


async def test_lease_ids_are_not_guessable(store: EmbeddedStore) -> None:
    leases = {await store.grant_lease(30) for _ in range(8)}
    assert len(leases) == 8
    assert all(lease > 0 for lease in leases)
    assert max(leases) > 1 << 32, "random 62-bit ids, not a counter"


# -- watches ------------------------------------------------------------------------------------
async def test_a_watch_replays_changes_under_its_prefix_from_a_revision(
    store: EmbeddedStore,
) -> None:
    await store.put("log/leaf/0", b"0")
    await store.put("nodes/1", b"n")
    await store.put("log/head", b"h")
    await store.put("log/leaf/1", b"1")
    events = await _events(store, "log/", 3, 2)
    assert events == [
        KvEvent(EventKind.PUT, "log/head", b"h", 3),
        KvEvent(EventKind.PUT, "log/leaf/1", b"1", 4),
    ]


async def test_a_watch_sees_writes_made_after_it_started(store: EmbeddedStore) -> None:
    await store.put("a", b"0")

    async def later() -> None:
        await asyncio.sleep(0.05)
        await store.put("b", b"1")
        await store.put("a", b"2")

    writer = asyncio.create_task(later())
    events = await _events(store, "", 1, 3)
    await writer
    assert [(e.key, e.value, e.revision) for e in events] == [
        ("a", b"0", 1),
        ("b", b"1", 2),
        ("a", b"2", 3),
    ]


# -- failures -----------------------------------------------------------------------------------
def test_a_store_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="cannot open registry store"):
        EmbeddedStore(tmp_path)  # a directory, not a database file


async def test_a_write_to_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "registry.db")
    await store.close()
    with pytest.raises(StoreUnavailable, match="registry store write failed"):
        await store.put("k", b"v")
    with pytest.raises(StoreUnavailable):
        await store.read_prefix("")


async def test_an_error_inside_a_write_rolls_it_back(store: EmbeddedStore) -> None:
    """A failed expectation after a lease expiry leaves the store as it was, leases included."""
    lease = await store.grant_lease(60)
    await store.put("a", b"1", lease=lease)
    with pytest.raises(Conflict):
        await store.transact([Write("b", b"2"), Write("a", b"x", expect_revision=0)])
    assert await store.get("b") is None
    assert await store.keep_alive(lease) == 60
    assert await store.put("c", b"3") == 2


def test_a_store_opened_on_one_thread_serves_another(tmp_path: Path) -> None:
    """A server's event loop may run on another thread than the one that opened the store."""
    store = EmbeddedStore(tmp_path / "registry.db")
    asyncio.run(store.put("k", b"v"))
    seen: list[KvEntry | None] = []
    worker = threading.Thread(target=lambda: seen.append(asyncio.run(store.get("k"))))
    worker.start()
    worker.join(timeout=30)
    assert seen == [KvEntry("k", b"v", 1)]
    asyncio.run(store.close())


class FailingReads:
    """The store's connection, except that reading values fails as a bad disk would."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, *args: Sequence[Any] | Mapping[str, Any]) -> sqlite3.Cursor:
        if sql.startswith("SELECT key, value"):
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


async def test_a_prefix_read_that_fails_is_unavailable_and_leaves_the_store_usable(
    store: EmbeddedStore,
) -> None:
    await store.put("log/head", b"head")
    store._db = FailingReads(store._db)  # type: ignore[assignment]
    with pytest.raises(StoreUnavailable) as refused:
        await store.read_prefix("log/")
    assert refused.value.message == "registry store read failed: disk I/O error"
    assert await store.put("log/head", b"head 2") == 2, "the read left no transaction open"
