"""Feeds the gateway's verified view: a full read, then a watch from that revision + 1.

The last good view is persisted to disk (``view_file``) after every change of trust material.
A gateway started while the registry store is unreachable loads that file, re-verifies every
value in it against the pinned roots, serves it, and says so: ``from_disk`` is True, the
``hcx_gateway_view_from_disk`` gauge is 1 and the health service ``hcx.registry-view`` reports
NOT_SERVING, until the store answers and a fresh full read replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cbor2
from prometheus_client import Gauge

from gateway.metrics import LIVE_NODES, REGISTRY_REVISION
from trust.errors import StoreUnavailable
from trust.kv import KvEntry, KvEvent, KvStore, Snapshot
from trust.view import TrustView

log = logging.getLogger(__name__)

VIEW_FROM_DISK = Gauge(
    "hcx_gateway_view_from_disk",
    "1 while the gateway serves the view persisted on disk because the registry is unreachable.",
)
RETRY_S = 0.5


def save_view(path: Path, view: TrustView) -> None:
    """Write the verified trust values atomically (tmp file + rename), mode 0600."""
    data = cbor2.dumps(
        {
            "revision": view.revision,
            "entries": [[k, v, r] for k, v, r in view.accepted_entries()],
        }
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load_view_file(path: Path) -> Snapshot:
    """The snapshot stored by :func:`save_view` (its values are re-verified by the view)."""
    doc = cbor2.loads(path.read_bytes())
    entries = tuple(KvEntry(str(k), bytes(v), int(r)) for k, v, r in doc["entries"])
    return Snapshot(entries, int(doc["revision"]))


class ViewFeed:
    """Keeps ``view`` current from ``store``; survives store outages by re-reading."""

    def __init__(
        self,
        *,
        store: KvStore,
        view: TrustView,
        view_file: Path | None = None,
        on_state: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._view = view
        self._view_file = view_file
        self._on_state = on_state
        self._task: asyncio.Task[None] | None = None
        self._saved_revision = -1
        self.ready = asyncio.Event()
        self.from_disk = False

    async def start(self) -> None:
        """Full read; if the store is down, serve the persisted view (or fail without one)."""
        try:
            await self._load()
        except StoreUnavailable as e:
            if self._view_file is None or not self._view_file.exists():
                raise
            self._view.load(load_view_file(self._view_file))
            await self._set_from_disk(True)
            self._publish()
            self.ready.set()
            log.warning(
                "registry unreachable (%s): serving the view persisted at revision %d from %s",
                e.message,
                self._view.revision,
                self._view_file,
            )
        self._task = asyncio.create_task(self._follow(needs_load=self.from_disk))

    async def _set_from_disk(self, value: bool) -> None:
        self.from_disk = value
        VIEW_FROM_DISK.set(1 if value else 0)
        if self._on_state is not None:
            await self._on_state(value)

    async def _load(self) -> None:
        snapshot = await self._store.read_prefix("")
        self._view.load(snapshot)
        self._publish()
        self._persist()
        self.ready.set()
        if self.from_disk:
            await self._set_from_disk(False)

    async def _follow(self, *, needs_load: bool) -> None:
        while True:
            try:
                if needs_load:
                    await self._load()
                    needs_load = False
                async for event in self._store.watch("", start_revision=self._view.revision + 1):
                    self._apply(event)
            except StoreUnavailable as e:
                log.warning("registry unreachable, serving the last verified view: %s", e.message)
            needs_load = True
            await asyncio.sleep(RETRY_S)

    def _apply(self, event: KvEvent) -> None:
        self._view.apply([event])
        self._publish()
        if not event.key.startswith("nodes/"):
            self._persist()

    def _persist(self) -> None:
        if self._view_file is None or self._view.revision == self._saved_revision:
            return
        try:
            save_view(self._view_file, self._view)
            self._saved_revision = self._view.revision
        except OSError as e:  # a full disk must not stop verification
            log.warning("could not persist the view to %s: %s", self._view_file, e)

    def _publish(self) -> None:
        REGISTRY_REVISION.set(self._view.revision)
        for province in self._view.provinces():
            LIVE_NODES.labels(province.code).set(len(self._view.nodes(province.code)))

    def set_state_listener(self, on_state: Callable[[bool], Awaitable[None]]) -> None:
        """Called with ``from_disk`` whenever the gateway switches view source."""
        self._on_state = on_state

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Bounded: a store client stuck in its own shutdown must not hold the gateway up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(self._task, return_exceptions=True), 3.0)


VIEW_HEALTH_SERVICE = "hcx.registry-view"


async def report_view_health(server: Any, feed: ViewFeed) -> None:
    """Health service ``hcx.registry-view``: SERVING on a live view, NOT_SERVING from disk."""
    from grpc_health.v1 import health_pb2

    async def on_state(from_disk: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.NOT_SERVING
            if from_disk
            else health_pb2.HealthCheckResponse.SERVING
        )
        await server.health.set(VIEW_HEALTH_SERVICE, status)

    feed.set_state_listener(on_state)
    await on_state(feed.from_disk)
