"""Feeds the gateway's verified view: a full read, then a watch from that revision + 1.

Everything read goes through trust.reader.LogReader: the view only ever takes a log that
verifies and extends the largest one it held. The last verified view is persisted to disk
(``view_file``: the signed tree head, the leaves and the routes, re-verified on load). A
gateway started while the store is unreachable serves that file and says so: ``from_disk`` is
True, the ``hcx_gateway_view_from_disk`` gauge is 1 and the health service ``hcx.registry-view``
is NOT_SERVING until a full read of the store verifies.

When the store's log does not verify (an entry deleted, edited, reordered or rolled back, a
value outside the log), the gateway keeps serving its last verified view, refuses registry
writes, counts the event (``hcx_gateway_log_inconsistencies_total``), reports NOT_SERVING for
``hcx.registry-view`` with the entry named in the log, and re-reads now and then: once a
coordinator has restored the store (docs/operations.md), it recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import Counter, Gauge

from gateway.metrics import LIVE_NODES, REGISTRY_REVISION
from trust.errors import StoreUnavailable
from trust.files import SECRET, replace_file
from trust.kv import KvEvent, KvStore
from trust.log import HEAD_KEY, LogInconsistent
from trust.reader import LogReader, NeedsFullRead, encode_saved, load_saved
from trust.view import TrustView

log = logging.getLogger(__name__)

VIEW_FROM_DISK = Gauge(
    "hcx_gateway_view_from_disk",
    "1 while the gateway serves the view persisted on disk because the registry is unreachable.",
)
LOG_INCONSISTENT = Gauge(
    "hcx_gateway_log_inconsistent",
    "1 while the registry log in the store fails verification (the last verified view serves).",
)
LOG_INCONSISTENCIES = Counter(
    "hcx_gateway_log_inconsistencies",
    "Times the registry log in the store failed verification (deleted, edited, reordered, "
    "rolled back, or a value outside the log).",
)
TREE_SIZE = Gauge("hcx_gateway_log_tree_size", "Size of the registry log this gateway verified.")
TREE_ROOT = Gauge(
    "hcx_gateway_log_root_prefix",
    "First 6 bytes of the verified log's root hash as an integer: equal on gateways that agree.",
)
VIEW_STALE = Gauge(
    "hcx_gateway_view_stale",
    "1 while the gateway cannot confirm its view is current: no read of the registry has "
    "succeeded for STALE_AFTER_S (an etcd member cut off from its peers, a lost store).",
)
WATCH_STALLS = Counter(
    "hcx_gateway_watch_stalls",
    "Times the store's log head was ahead of what the watch delivered for STALL_AFTER_S (a "
    "watch on a member that lost its peers): the view was read again in full.",
)
RETRY_S = 0.5
RECHECK_S = 2.0  # how often an inconsistent store is read again
PROBE_S = 1.0  # a linearizable read of the log head this often: is the view current?
PROBE_TIMEOUT_S = 2.0
STALL_AFTER_S = 2.0  # the head ahead of the watch this long: the watch is stuck, read again
STALE_AFTER_S = 5.0  # no read confirmed the view this long: it is no longer claimed current


def save_view(path: Path, view: TrustView) -> None:
    """Write the verified view atomically (tmp file + fsync + rename), mode 0600."""
    # The workers of one gateway save the same file: each write has a temporary name of its own.
    replace_file(path, encode_saved(view), mode=SECRET, durable=True)


class ViewFeed:
    """Keeps ``view`` current from ``store``; survives outages and tampering, fails closed."""

    def __init__(
        self,
        *,
        store: KvStore,
        view: TrustView,
        view_file: Path | None = None,
        pinned_head: bytes | None = None,
        on_state: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._view = view
        self._view_file = view_file
        self._on_state = on_state
        self.reader = LogReader(view, on_inconsistent=self._inconsistent, pinned=pinned_head)
        self._task: asyncio.Task[None] | None = None
        self._saved_size = -1
        self._saved_routes: object = None
        self._saving: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._revision = 0  # store revision of the last full read or event
        self.ready = asyncio.Event()
        self.from_disk = False
        self._confirmed_at = time.monotonic()  # when a read last showed the view current
        self._stale = False
        self._prober: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """Serving a view that is current with a store whose log verifies."""
        return not self.from_disk and self.reader.inconsistent is None and not self._stale

    @property
    def stale(self) -> bool:
        """No read of the store has confirmed the view for ``STALE_AFTER_S``."""
        return self._stale

    async def start(self) -> None:
        """Persisted view first (so a store that shrank is seen as a rollback), then a full
        read; if the store is down, serve the persisted view (or fail without one)."""
        if self._view_file is not None and self._view_file.exists():
            load_saved(self._view_file.read_bytes(), self.reader)
            self.reader.inconsistent = None  # a bad file is logged; the store decides next
        try:
            await self.refresh()
        except StoreUnavailable as e:
            if self._view.log.head is None:
                raise
            await self._set_from_disk(True)
            log.warning(
                "registry unreachable (%s): serving the view persisted at size %d from %s",
                e.message,
                self._view.revision,
                self._view_file,
            )
        self.ready.set()
        self._task = asyncio.create_task(self._follow())
        self._prober = asyncio.create_task(self._probe())

    async def refresh(self) -> None:
        """A full read of the store into the view (StoreUnavailable when it cannot be read)."""
        snapshot = await self._store.read_prefix("")
        self._revision = snapshot.revision
        self._confirmed_at = time.monotonic()
        was_inconsistent = self.reader.inconsistent is not None
        if self.reader.load(snapshot):
            if was_inconsistent:
                log.warning("registry log verifies again (size %d)", self._view.revision)
            if self.from_disk:
                await self._set_from_disk(False)
            else:
                await self._notify()
        self._after_change()

    async def _probe(self) -> None:
        """Confirm the view is current: a linearizable read of the log head, every PROBE_S.

        A watch on an etcd member cut off from its peers goes quiet, it does not fail; reads
        on that member fail (no leader). So: the head read fine and is no newer than what the
        watch delivered — the view is current; newer for STALL_AFTER_S — the watch is stuck,
        read the store in full again (through a member that has a leader); no read at all
        for STALE_AFTER_S — say so (health NOT_SERVING, ``hcx_gateway_view_stale``) until
        one succeeds."""
        behind_since: float | None = None
        while True:
            await asyncio.sleep(PROBE_S)
            now = time.monotonic()
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    head = await self._store.get(HEAD_KEY)
            except (StoreUnavailable, TimeoutError) as e:
                log.debug("view probe failed: %s", e)
            except Exception:  # a client bug must not end the probe: it is the alarm
                log.exception("view probe failed unexpectedly")
            else:
                if head is None or head.mod_revision <= self._revision:
                    self._confirmed_at, behind_since = now, None
                elif behind_since is None:
                    behind_since = now
                elif now - behind_since >= STALL_AFTER_S:
                    WATCH_STALLS.inc()
                    log.warning(
                        "registry watch stalled at revision %d (the store is at %d): reading "
                        "the store again",
                        self._revision,
                        head.mod_revision,
                    )
                    behind_since = None
                    await self._restart_follow()
            await self._check_stale(time.monotonic())

    async def _restart_follow(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3.0):
                    await asyncio.gather(self._task, return_exceptions=True)
        self._task = asyncio.create_task(self._follow(read_first=True))

    async def _check_stale(self, now: float) -> None:
        stale = now - self._confirmed_at > STALE_AFTER_S
        if stale == self._stale:
            return
        self._stale = stale
        VIEW_STALE.set(1 if stale else 0)
        if stale:
            log.error(
                "registry view not confirmed for %.0f s (revision %d): no longer claimed current",
                now - self._confirmed_at,
                self._revision,
            )
        else:
            log.warning("registry view current again (revision %d)", self._revision)
        await self._notify()

    async def _follow(self, *, read_first: bool = False) -> None:
        needs_read = read_first
        while True:
            try:
                if needs_read or self.from_disk or self.reader.inconsistent is not None:
                    await self.refresh()
                    needs_read = False
                if self.reader.inconsistent is not None:
                    await asyncio.sleep(RECHECK_S)
                    continue
                async for event in self._store.watch("", start_revision=self._revision + 1):
                    self._take(event)
                    if self.reader.inconsistent is not None:
                        break  # stop following; re-read now and then until it verifies again
            except StoreUnavailable as e:
                log.warning("registry unreachable, serving the last verified view: %s", e.message)
            except NeedsFullRead as e:
                log.info("registry watch needs a full read: %s", e)
            needs_read = True
            await asyncio.sleep(RETRY_S)

    def _take(self, event: KvEvent) -> None:
        self._revision = max(self._revision, event.revision)
        self._confirmed_at = time.monotonic()
        self.reader.apply(event)
        self._after_change()

    def _inconsistent(self, error: LogInconsistent) -> None:
        LOG_INCONSISTENCIES.inc()
        LOG_INCONSISTENT.set(1)
        log.error(
            "registry log inconsistent at %s: %s; serving the last verified view (size %d), "
            "registry writes refused",
            error.key or "?",
            error.message,
            self._view.revision,
            extra={"key": error.key, "why": error.message},
        )
        task = asyncio.get_running_loop().create_task(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _after_change(self) -> None:
        if self.reader.inconsistent is None:
            LOG_INCONSISTENT.set(0)
        self._publish()
        self._persist()

    async def _set_from_disk(self, value: bool) -> None:
        self.from_disk = value
        VIEW_FROM_DISK.set(1 if value else 0)
        await self._notify()

    async def _notify(self) -> None:
        if self._on_state is not None:
            await self._on_state(self.healthy)

    def _persist(self) -> None:
        """Save the view in the background (a large log takes a while to write), coalesced:
        at most one write in flight, and the latest view wins."""
        routes = sorted(r.key for r in self._view.routes())
        unchanged = self._view.revision == self._saved_size and routes == self._saved_routes
        if self._view_file is None or unchanged or self._saving is not None:
            return
        self._saving = asyncio.get_running_loop().create_task(self._save(routes))

    async def _save(self, routes: list[str]) -> None:
        assert self._view_file is not None
        size = self._view.revision
        try:
            data = encode_saved(self._view)  # the view's log and routes are replaced, not edited
            await asyncio.to_thread(replace_file, self._view_file, data, mode=SECRET, durable=True)
            self._saved_size, self._saved_routes = size, routes  # what the file holds
        except OSError as e:  # a full disk must not stop verification
            log.warning("could not persist the view to %s: %s", self._view_file, e)
        finally:
            self._saving = None
        self._persist()  # something changed while writing: write again

    def changed(self) -> None:
        """The view changed outside the feed (an append this gateway made itself)."""
        self._after_change()

    async def flush(self) -> None:
        """Wait for the view on disk to be current (tests, shutdown)."""
        self._persist()
        while self._saving is not None:
            await asyncio.shield(self._saving)

    def _publish(self) -> None:
        REGISTRY_REVISION.set(self._view.revision)
        TREE_SIZE.set(self._view.revision)
        head = self._view.log.head
        TREE_ROOT.set(int.from_bytes(head.root[:6], "big") if head is not None else 0)
        for province in self._view.provinces():
            LIVE_NODES.labels(province.code).set(len(self._view.nodes(province.code)))

    def set_state_listener(self, on_state: Callable[[bool], Awaitable[None]]) -> None:
        """Called with ``healthy`` whenever it may have changed."""
        self._on_state = on_state

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await self.flush()
        tasks = [t for t in (self._prober, self._task) if t is not None]
        for task in tasks:
            task.cancel()
        # Bounded: a store client stuck in its own shutdown must not hold the gateway up.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3.0):
                await asyncio.gather(*tasks, return_exceptions=True)


VIEW_HEALTH_SERVICE = "hcx.registry-view"


async def watch_views(
    channels: Sequence[Any], on_view: Callable[[int, bool], None], *, every: float,
    timeout: float = 1.0,
) -> None:  # fmt: skip
    """For a client of several gateways: ask each (over ``channels``) every ``every`` seconds
    whether its registry view is current, and tell ``on_view(index, current)``. A gateway on
    an etcd member cut from its peers still answers, from a view that misses what was written
    since; it says so here, and clients send their calls to a current one first. A gateway
    that does not answer is left out: the calls' own failover handles it. Runs until
    cancelled."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    request = health_pb2.HealthCheckRequest(service=VIEW_HEALTH_SERVICE)
    while True:
        for index, channel in enumerate(channels):
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout)
            except grpc.RpcError:
                continue
            on_view(index, reply.status == health_pb2.HealthCheckResponse.SERVING)
        await asyncio.sleep(every)


async def report_view_health(server: Any, feed: ViewFeed) -> None:
    """Health service ``hcx.registry-view``: SERVING on a current, verified view; NOT_SERVING
    from disk or while the store's log fails verification."""
    from grpc_health.v1 import health_pb2

    async def on_state(healthy: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if healthy
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await server.health.set(VIEW_HEALTH_SERVICE, status)

    feed.set_state_listener(on_state)
    await on_state(feed.healthy)
