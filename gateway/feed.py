"""Feeds the gateway's verified view: a full read, then a watch from that revision + 1."""

from __future__ import annotations

import asyncio
import logging

from gateway.metrics import LIVE_NODES, REGISTRY_REVISION
from trust.errors import StoreUnavailable
from trust.kv import KvEvent, KvStore
from trust.view import TrustView

log = logging.getLogger(__name__)


class ViewFeed:
    """Keeps ``view`` current from ``store``; survives store outages by re-reading."""

    def __init__(self, *, store: KvStore, view: TrustView) -> None:
        self._store = store
        self._view = view
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        await self._load()
        self._task = asyncio.create_task(self._follow())

    async def _load(self) -> None:
        snapshot = await self._store.read_prefix("")
        self._view.load(snapshot)
        self._publish()
        self.ready.set()

    async def _follow(self) -> None:
        while True:
            try:
                async for event in self._store.watch("", start_revision=self._view.revision + 1):
                    self._apply(event)
            except StoreUnavailable as e:
                log.warning("registry watch interrupted: %s", e.message)
            await asyncio.sleep(0.5)
            try:
                await self._load()
            except StoreUnavailable as e:
                log.warning("registry unreachable, serving the last verified view: %s", e.message)

    def _apply(self, event: KvEvent) -> None:
        self._view.apply([event])
        self._publish()

    def _publish(self) -> None:
        REGISTRY_REVISION.set(self._view.revision)
        for province in self._view.provinces():
            LIVE_NODES.labels(province.code).set(len(self._view.nodes(province.code)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
