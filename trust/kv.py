"""The registry's storage contract: a revisioned key-value store with leases and watches.

It is the shape of the etcd v3 API (global revision, compare-and-put, leases, watch from a
revision), so the embedded SQLite store and the etcd adapter implement one contract. Values are
opaque bytes: the store is storage and distribution, never the root of trust; every reader
verifies what it reads (trust.view).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol


class EventKind(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True)
class KvEntry:
    """One stored value and the revision that last changed it."""

    key: str
    value: bytes
    mod_revision: int


@dataclass(frozen=True)
class KvEvent:
    """A change seen by a watch; ``value`` is empty for deletes."""

    kind: EventKind
    key: str
    value: bytes
    revision: int


@dataclass(frozen=True)
class Write:
    """One put of a transaction; ``expect_revision`` as in :meth:`KvStore.put`."""

    key: str
    value: bytes
    expect_revision: int | None = None
    lease: int = 0


@dataclass(frozen=True)
class Snapshot:
    """Entries under a prefix, read at one store revision (watch from ``revision + 1``)."""

    entries: tuple[KvEntry, ...]
    revision: int


class KvStore(Protocol):
    """Revisioned key-value store; raises trust.errors.StoreUnavailable when unreachable."""

    async def get(self, key: str) -> KvEntry | None: ...

    async def read_prefix(self, prefix: str) -> Snapshot: ...

    async def put(
        self, key: str, value: bytes, *, expect_revision: int | None = None, lease: int = 0
    ) -> int:
        """Write ``value``; with ``expect_revision`` (0 = key must not exist) it is a
        compare-and-put that raises trust.errors.Conflict when the key changed meanwhile.
        Returns the new store revision."""
        ...

    async def transact(self, writes: Sequence[Write]) -> int:
        """All ``writes`` at one revision, or none: Conflict when any expectation fails
        (this is how two gateways appending to the registry log at once cannot fork it).
        Returns the new store revision."""
        ...

    async def delete(self, key: str) -> bool: ...

    async def grant_lease(self, ttl_seconds: int) -> int:
        """A new lease (id > 0) expiring after ``ttl_seconds`` without a keep-alive."""
        ...

    async def keep_alive(self, lease: int) -> int:
        """Refresh a lease; returns its TTL, raises trust.errors.NotFound once it expired
        (and for 0 or any id that was never granted)."""
        ...

    async def revoke_lease(self, lease: int) -> None:
        """Drop a lease and its keys; NotFound for 0 or an unknown id (nothing changes)."""
        ...

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[KvEvent]:
        """Every change under ``prefix`` from ``start_revision`` on, in revision order."""
        ...

    async def close(self) -> None: ...
