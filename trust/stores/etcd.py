"""etcd registry store: the KvStore contract on a real etcd v3 cluster (the only etcd client user).

The client (aetcd, asyncio) stays behind this module: callers see trust.kv types and
trust.errors only. Every key is stored under a deployment prefix, so several federations (or
tests) can share one cluster. Writes with ``expect_revision`` are etcd transactions comparing
the key's mod revision, so two coordinators acting at once cannot lose an update.

Several endpoints are given to one gRPC channel with round-robin balancing: when a member
dies, calls move to the others. A call that the cluster cannot answer within ``timeout``
(no quorum, all members down) raises StoreUnavailable with the endpoints it tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aetcd
from aetcd import rpc
from aetcd.exceptions import ClientError

from trust.errors import Conflict, InvalidRequest, NotFound, StoreUnavailable
from trust.kv import EventKind, KvEntry, KvEvent, Snapshot, Write

DEFAULT_PREFIX = "hcx/"
DEFAULT_TIMEOUT_S = 3
RETRY_PAUSE_S = 0.1
ATTEMPT_TIMEOUT_S = 1.0
CLOSE_TIMEOUT_S = 2.0
log = logging.getLogger(__name__)


def _range_end(prefix: bytes) -> bytes:
    """The etcd range end that selects every key starting with ``prefix``."""
    return aetcd.utils.prefix_range_end(prefix) if prefix else b"\0"


def _grpc_target(endpoints: Sequence[tuple[str, int]]) -> tuple[str, int]:
    """(host, port) for aetcd.Client naming every endpoint in one gRPC target.

    aetcd builds its target as ``f"{host}:{port}"``; gRPC's ``ipv4:`` scheme takes a comma
    separated address list, so the list goes into ``host`` and the last port into ``port``.
    Host names are resolved once here because that scheme takes literal addresses only.
    """
    if len(endpoints) == 1:
        return endpoints[0]
    addresses = [f"{_resolve(host)}:{port}" for host, port in endpoints]
    last_host, last_port = addresses[-1].rsplit(":", 1)
    return "ipv4:" + ",".join([*addresses[:-1], last_host]), int(last_port)


def _resolve(host: str) -> str:
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0])
    except OSError as e:
        raise InvalidRequest(f"cannot resolve etcd host {host!r}: {e}") from e


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    """``h1:2379,h2:2379`` → [(h1, 2379), (h2, 2379)]."""
    endpoints = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise InvalidRequest(f"bad etcd endpoint {item!r} (expected host:port)")
        endpoints.append((host, int(port)))
    return endpoints


REQUIRE_LEADER = ("hasleader", "true")  # etcd's rpctypes.MetadataRequireLeaderKey


class EtcdStore:
    """KvStore on etcd v3; keys are ``prefix + key``, values opaque bytes."""

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not endpoints:
            raise InvalidRequest("no etcd endpoints given")
        self.endpoints = list(endpoints)
        self._prefix = prefix.encode()
        self._timeout = timeout
        host, port = _grpc_target(self.endpoints)
        options = {
            "grpc.lb_policy_name": "round_robin",
            # A dead member must be noticed quickly, and a restarted one re-dialled soon.
            "grpc.keepalive_time_ms": 2000,
            "grpc.keepalive_timeout_ms": 1000,
            "grpc.initial_reconnect_backoff_ms": 200,
            "grpc.max_reconnect_backoff_ms": 1000,
        }
        self._client = aetcd.Client(
            host=host,
            port=port,
            timeout=timeout,
            options=options,
        )

    def _key(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _unkey(self, raw: bytes) -> str:
        return raw[len(self._prefix) :].decode()

    def _unavailable(self, e: BaseException, what: str) -> StoreUnavailable:
        where = ",".join(f"{h}:{p}" for h, p in self.endpoints)
        return StoreUnavailable(f"etcd ({where}) could not {what}: {e or type(e).__name__}")

    async def _call(self, what: str, stub: str, method: str, request: Any) -> Any:
        """One unary etcd RPC; every transport failure becomes StoreUnavailable.

        Each attempt has at most ATTEMPT_TIMEOUT_S; UNAVAILABLE ("leader changed", "no
        leader", member lost) and an attempt's own deadline are retried until the whole
        ``timeout`` budget is spent. A proposal sent to a member whose leader just died waits
        for the next election, which a fresh attempt (often on another member) does not. Retries
        are safe: the registry's writes compare revisions (a retried compare-and-put whose first
        attempt committed reports Conflict, and callers re-read on Conflict), plain puts write
        the same value again, deletes and lease revocations are idempotent, and a duplicate
        lease grant expires by itself.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            try:
                await self._client.connect()
                call = getattr(getattr(self._client, stub), method)
                attempt = min(max(deadline - loop.time(), 0.05), ATTEMPT_TIMEOUT_S)
                return await call(request, timeout=attempt)
            except rpc.AioRpcError as e:
                retry = e.code() in (rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.DEADLINE_EXCEEDED)
                if not retry or loop.time() + RETRY_PAUSE_S >= deadline:
                    raise self._unavailable(e, what) from e
            except (TimeoutError, ClientError) as e:
                raise self._unavailable(e, what) from e
            await asyncio.sleep(RETRY_PAUSE_S)

    async def get(self, key: str) -> KvEntry | None:
        reply = await self._call(
            f"read {key}", "kvstub", "Range", rpc.RangeRequest(key=self._key(key))
        )
        if not reply.kvs:
            return None
        kv = reply.kvs[0]
        return KvEntry(key, bytes(kv.value), int(kv.mod_revision))

    async def read_prefix(self, prefix: str) -> Snapshot:
        start = self._key(prefix)
        request = rpc.RangeRequest(
            key=start,
            range_end=_range_end(start),
            sort_order=rpc.RangeRequest.ASCEND,
            sort_target=rpc.RangeRequest.KEY,
        )
        reply = await self._call(f"read {prefix}*", "kvstub", "Range", request)
        entries = tuple(
            KvEntry(self._unkey(kv.key), bytes(kv.value), int(kv.mod_revision)) for kv in reply.kvs
        )
        return Snapshot(entries, int(reply.header.revision))

    async def put(
        self, key: str, value: bytes, *, expect_revision: int | None = None, lease: int = 0
    ) -> int:
        return await self.transact([Write(key, value, expect_revision, lease)])

    async def transact(self, writes: Sequence[Write]) -> int:
        """One etcd transaction: every compare on the keys' mod revisions, then every put."""
        if not writes:
            raise ValueError("a transaction needs at least one write")
        compare, success = [], []
        for write in writes:
            raw = self._key(write.key)
            success.append(
                rpc.RequestOp(
                    request_put=rpc.PutRequest(key=raw, value=write.value, lease=write.lease)
                )
            )
            if write.expect_revision is not None:
                compare.append(
                    rpc.Compare(
                        key=raw,
                        target=rpc.Compare.MOD,
                        result=rpc.Compare.EQUAL,
                        mod_revision=write.expect_revision,
                    )
                )
        keys = ", ".join(w.key for w in writes)
        request = rpc.TxnRequest(compare=compare, success=success)
        try:
            reply = await self._call(f"write {keys}", "kvstub", "Txn", request)
        except StoreUnavailable as e:
            if "requested lease not found" in e.message:
                raise NotFound("lease does not exist or expired") from e
            raise
        if not reply.succeeded:
            raise Conflict(f"{keys} changed concurrently")
        return int(reply.header.revision)

    async def delete(self, key: str) -> bool:
        request = rpc.DeleteRangeRequest(key=self._key(key))
        reply = await self._call(f"delete {key}", "kvstub", "DeleteRange", request)
        return int(reply.deleted) > 0

    async def grant_lease(self, ttl_seconds: int) -> int:
        reply = await self._call(
            "grant a lease", "leasestub", "LeaseGrant", rpc.LeaseGrantRequest(TTL=ttl_seconds)
        )
        return int(reply.ID)

    async def keep_alive(self, lease: int) -> int:
        if lease <= 0:
            raise NotFound(f"lease {lease} expired or unknown")
        try:
            await self._client.connect()
            reply = await self._client.refresh_lease(lease)
        except (TimeoutError, ClientError, rpc.AioRpcError) as e:
            raise self._unavailable(e, f"refresh lease {lease}") from e
        if reply is None or reply.TTL <= 0:
            raise NotFound(f"lease {lease} expired or unknown")
        return int(reply.TTL)

    async def revoke_lease(self, lease: int) -> None:
        if lease <= 0:  # etcd's "no lease": never a lease to drop
            raise NotFound(f"lease {lease} expired or unknown")
        try:
            await self._call(
                f"revoke lease {lease}",
                "leasestub",
                "LeaseRevoke",
                rpc.LeaseRevokeRequest(ID=lease),
            )
        except StoreUnavailable as e:
            if "requested lease not found" in e.message:
                raise NotFound(f"lease {lease} expired or unknown") from e
            raise

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[KvEvent]:
        """Events under ``prefix`` from ``start_revision``; StoreUnavailable when the stream
        breaks (member lost, revision compacted): the caller re-reads and watches again."""
        start = self._key(prefix)
        try:
            await self._client.connect()
            self._require_leader()
            watch = await self._client.watch(
                start, range_end=_range_end(start), start_revision=max(start_revision, 1)
            )
        except (TimeoutError, ClientError, rpc.AioRpcError) as e:
            raise self._unavailable(e, f"watch {prefix}*") from e
        try:
            async for event in watch:
                kind = EventKind.PUT if event.kind == "PUT" else EventKind.DELETE
                value = bytes(event.kv.value) if kind is EventKind.PUT else b""
                yield KvEvent(kind, self._unkey(event.kv.key), value, int(event.kv.mod_revision))
        except (ClientError, rpc.AioRpcError) as e:
            raise self._unavailable(e, f"keep watching {prefix}*") from e
        finally:
            # The stream may already be gone; cancelling then is a no-op worth ignoring.
            # Bounded: aetcd's cancel can wait on a stream to a member that is gone.
            with contextlib.suppress(ClientError, rpc.AioRpcError, RuntimeError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await watch.cancel()
        raise self._unavailable(RuntimeError("watch stream ended"), f"keep watching {prefix}*")

    def _require_leader(self) -> None:
        """Watches carry etcd's require-leader metadata (``clientv3.WithRequireLeader``): a
        member cut off from its peers then cancels them ("no leader") instead of keeping a
        stream open that never delivers again. aetcd has no option for it; its watcher sends
        the metadata it holds when its stream (re)starts."""
        watcher = getattr(self._client, "_watcher", None)
        if watcher is None:
            return
        held = tuple(getattr(watcher, "_metadata", None) or ())
        if REQUIRE_LEADER not in held:
            watcher._metadata = (*held, REQUIRE_LEADER)

    async def close(self) -> None:
        """Close the channel; bounded, because aetcd's watcher shutdown can wait on a stream
        to a dead member."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._client.close()
        except (TimeoutError, ClientError, rpc.AioRpcError) as e:
            log.warning("etcd client did not close cleanly: %r", e)
