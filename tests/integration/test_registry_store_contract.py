"""One contract, two stores: the embedded SQLite store and a real etcd behave the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.etcd import EtcdCluster, etcd  # noqa: F401  (fixture)
from trust.errors import Conflict, NotFound
from trust.kv import EventKind, KvEvent, KvStore
from trust.stores import open_registry_store

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "etcd"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KvStore]:
    if request.param == "sqlite":
        opened = open_registry_store(f"sqlite:///{tmp_path}/registry.db")
    else:
        cluster: EtcdCluster = request.getfixturevalue("etcd")
        opened = open_registry_store(cluster.url())
    yield opened
    await opened.close()


async def test_put_get_and_revisions_increase(store: KvStore) -> None:
    first = await store.put("provinces/330000", b"a")
    second = await store.put("provinces/510000", b"b")
    assert second > first
    entry = await store.get("provinces/330000")
    assert entry is not None and entry.value == b"a" and entry.mod_revision == first
    assert await store.get("provinces/999999") is None


async def test_read_prefix_is_sorted_and_carries_the_read_revision(store: KvStore) -> None:
    await store.put("dsc/bb", b"2")
    await store.put("dsc/aa", b"1")
    last = await store.put("provinces/330000", b"p")
    snapshot = await store.read_prefix("dsc/")
    assert [e.key for e in snapshot.entries] == ["dsc/aa", "dsc/bb"]
    assert snapshot.revision >= last
    everything = await store.read_prefix("")
    assert {e.key for e in everything.entries} == {"dsc/aa", "dsc/bb", "provinces/330000"}


async def test_compare_and_put_refuses_a_stale_revision(store: KvStore) -> None:
    created = await store.put("provinces/330000", b"v1", expect_revision=0)
    with pytest.raises(Conflict):
        await store.put("provinces/330000", b"again", expect_revision=0)
    updated = await store.put("provinces/330000", b"v2", expect_revision=created)
    with pytest.raises(Conflict):
        await store.put("provinces/330000", b"stale", expect_revision=created)
    entry = await store.get("provinces/330000")
    assert entry is not None and (entry.value, entry.mod_revision) == (b"v2", updated)


async def test_two_coordinators_at_once_lose_no_update(store: KvStore) -> None:
    """Ten concurrent read-modify-write loops on one counter: every increment survives."""
    await store.put("audit/counter", b"0", expect_revision=0)

    async def increment() -> None:
        while True:
            entry = await store.get("audit/counter")
            assert entry is not None
            try:
                await store.put(
                    "audit/counter",
                    str(int(entry.value) + 1).encode(),
                    expect_revision=entry.mod_revision,
                )
                return
            except Conflict:
                await asyncio.sleep(0)

    await asyncio.gather(*(increment() for _ in range(10)))
    entry = await store.get("audit/counter")
    assert entry is not None and entry.value == b"10"


async def test_delete(store: KvStore) -> None:
    await store.put("nodes/330000/a", b"x")
    assert await store.delete("nodes/330000/a") is True
    assert await store.delete("nodes/330000/a") is False
    assert await store.get("nodes/330000/a") is None


async def test_watch_from_a_revision_sees_every_later_change_in_order(store: KvStore) -> None:
    before = await store.put("provinces/110000", b"old")
    start = (await store.read_prefix("")).revision + 1
    seen: list[KvEvent] = []

    async def follow() -> None:
        async for event in store.watch("provinces/", start_revision=start):
            seen.append(event)
            if len(seen) == 3:
                return

    task = asyncio.create_task(follow())
    await store.put("provinces/330000", b"1")
    await store.put("dsc/ignored", b"not under the prefix")
    await store.put("provinces/330000", b"2")
    await store.delete("provinces/110000")
    await asyncio.wait_for(task, 5)
    assert [(e.kind, e.key, e.value) for e in seen] == [
        (EventKind.PUT, "provinces/330000", b"1"),
        (EventKind.PUT, "provinces/330000", b"2"),
        (EventKind.DELETE, "provinces/110000", b""),
    ]
    assert all(e.revision > before for e in seen)
    assert [e.revision for e in seen] == sorted(e.revision for e in seen)


async def test_watch_replays_history_from_an_old_revision(store: KvStore) -> None:
    first = await store.put("dsc/01", b"a")
    await store.put("dsc/02", b"b")

    async def first_two() -> list[str]:
        keys = []
        async for event in store.watch("dsc/", start_revision=first):
            keys.append(event.key)
            if len(keys) == 2:
                return keys
        return keys

    assert await asyncio.wait_for(first_two(), 5) == ["dsc/01", "dsc/02"]


async def test_lease_expiry_deletes_its_keys(store: KvStore) -> None:
    lease = await store.grant_lease(1)
    await store.put("nodes/330000/n1", b"endpoint", lease=lease)
    assert await store.keep_alive(lease) >= 1
    deadline = asyncio.get_running_loop().time() + 6
    while await store.get("nodes/330000/n1") is not None:
        assert asyncio.get_running_loop().time() < deadline, "leased key outlived its lease"
        await asyncio.sleep(0.2)
    with pytest.raises(NotFound):
        await store.keep_alive(lease)


async def test_revoked_lease_drops_its_keys_and_refuses_new_ones(store: KvStore) -> None:
    lease = await store.grant_lease(30)
    await store.put("nodes/510000/n1", b"e", lease=lease)
    await store.revoke_lease(lease)
    assert await store.get("nodes/510000/n1") is None
    with pytest.raises(NotFound):
        await store.put("nodes/510000/n2", b"e", lease=lease)
