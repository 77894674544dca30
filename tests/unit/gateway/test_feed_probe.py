"""The view feed's probe: a watch that goes quiet (on an etcd member cut off from its peers)
is noticed by the log head running ahead of it, and a store no read reaches makes the view no
longer claimed current (tests/integration/test_partitions.py runs it on a real etcd)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway import feed as feed_module
from gateway.feed import ViewFeed
from simulations.registry_builder import RegistryBuilder
from trust.errors import StoreUnavailable
from trust.kv import KvEntry, KvEvent, Write
from trust.log import HEAD_KEY, leaf_key
from trust.stores.embedded import EmbeddedStore
from trust.view import TrustView


class QuietStore(EmbeddedStore):
    """Reads work (or fail when ``down``); the watch delivers nothing once ``quiet``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.down = False
        self.quiet = False
        self.full_reads = 0

    async def get(self, key: str) -> KvEntry | None:
        if self.down:
            raise StoreUnavailable("no leader")
        return await super().get(key)

    async def read_prefix(self, prefix: str):
        if self.down:
            raise StoreUnavailable("no leader")
        self.full_reads += 1
        return await super().read_prefix(prefix)

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[KvEvent]:
        if self.quiet:
            await asyncio.Event().wait()  # an open stream that never delivers
        async for event in super().watch(prefix, start_revision=start_revision):
            yield event


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_module, "PROBE_S", 0.05)
    monkeypatch.setattr(feed_module, "STALL_AFTER_S", 0.2)
    monkeypatch.setattr(feed_module, "STALE_AFTER_S", 0.4)


async def _until(condition, timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


async def _feed(tmp_path: Path) -> tuple[QuietStore, ViewFeed, RegistryBuilder]:
    builder = RegistryBuilder()
    store = QuietStore(tmp_path / "registry.db")
    await builder.write_to(store)
    view = TrustView(roots=[builder.root.certificate])
    feed = ViewFeed(store=store, view=view)
    await feed.start()
    return store, feed, builder


async def test_a_quiet_watch_is_noticed_and_the_store_read_again(tmp_path: Path) -> None:
    store, feed, builder = await _feed(tmp_path)
    try:
        store.quiet = True
        await feed._restart_follow()  # the watch now open on a member that went quiet
        reads, size = store.full_reads, len(builder.leaves)
        builder.onboard("330000")  # the majority moves on: the log grows, its head changes
        for i in range(size, len(builder.leaves)):
            head = await store.get(HEAD_KEY)
            assert head is not None
            await store.transact(
                [Write(leaf_key(i), builder.leaves[i].raw, expect_revision=0),
                 Write(HEAD_KEY, builder.head(i + 1), expect_revision=head.mod_revision)]
            )  # fmt: skip
        await _until(lambda: store.full_reads > reads)  # read again, not waited for forever
        await _until(lambda: feed._view.revision == len(builder.leaves))
        assert feed.healthy
    finally:
        await feed.stop()


async def test_a_store_no_read_reaches_makes_the_view_not_current_until_one_does(
    tmp_path: Path,
) -> None:
    store, feed, _ = await _feed(tmp_path)
    states: list[bool] = []

    async def on_state(healthy: bool) -> None:
        states.append(healthy)

    feed.set_state_listener(on_state)
    try:
        assert feed.healthy
        store.down = True
        await _until(lambda: feed.stale)
        assert not feed.healthy and states[-1] is False
        store.down = False
        await _until(lambda: not feed.stale)
        assert feed.healthy and states[-1] is True
    finally:
        await feed.stop()
