"""Embedded registry store: the KvStore contract on one SQLite file (the single-machine default).

Several processes on one host may share the file (WAL mode); watches poll the change log, so a
write by one process reaches the watchers of another within the poll interval.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from trust.errors import Conflict, NotFound, StoreUnavailable
from trust.kv import EventKind, KvEntry, KvEvent, Snapshot, Write

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    mod_revision INTEGER NOT NULL,
    lease INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS changelog (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    revision INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS changelog_revision ON changelog(revision);
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ttl REAL NOT NULL,
    expires_at REAL NOT NULL
);
"""


class EmbeddedStore:
    """KvStore on SQLite; every write is one transaction that also appends to the change log."""

    def __init__(
        self,
        path: str | Path,
        *,
        poll_interval: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = str(path)
        self._poll = poll_interval
        self._clock = clock
        try:
            self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open registry store {self._path}: {e}") from e

    def _revision(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(revision), 0) FROM changelog").fetchone()
        return int(row[0])

    def _append(self, kind: EventKind, key: str, value: bytes) -> int:
        revision = self._revision() + 1
        self._db.execute(
            "INSERT INTO changelog(revision, kind, key, value) VALUES (?,?,?,?)",
            (revision, kind.value, key, value),
        )
        return revision

    def _expire_leases(self) -> None:
        """Delete keys of expired leases (inside the caller's transaction)."""
        now = self._clock()
        expired = [
            r[0] for r in self._db.execute("SELECT id FROM leases WHERE expires_at < ?", (now,))
        ]
        for lease in expired:
            self._drop_lease(lease)

    def _drop_lease(self, lease: int) -> None:
        keys = [r[0] for r in self._db.execute("SELECT key FROM kv WHERE lease = ?", (lease,))]
        for key in keys:
            self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
            self._append(EventKind.DELETE, key, b"")
        self._db.execute("DELETE FROM leases WHERE id = ?", (lease,))

    def _write(self, action: Callable[[], int]) -> int:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._expire_leases()
                result = action()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result
        except sqlite3.Error as e:
            raise StoreUnavailable(f"registry store write failed: {e}") from e

    async def get(self, key: str) -> KvEntry | None:
        self._write(lambda: 0)  # expire leases first, so a dead node is not returned
        row = self._db.execute(
            "SELECT key, value, mod_revision FROM kv WHERE key = ?", (key,)
        ).fetchone()
        return KvEntry(row[0], bytes(row[1]), row[2]) if row else None

    async def read_prefix(self, prefix: str) -> Snapshot:
        self._write(lambda: 0)
        try:
            self._db.execute("BEGIN")
            rows = self._db.execute(
                "SELECT key, value, mod_revision FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            ).fetchall()
            revision = self._revision()
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            if self._db.in_transaction:  # else every later write fails: "within a transaction"
                self._db.rollback()
            raise StoreUnavailable(f"registry store read failed: {e}") from e
        return Snapshot(tuple(KvEntry(k, bytes(v), r) for k, v, r in rows), revision)

    async def put(
        self, key: str, value: bytes, *, expect_revision: int | None = None, lease: int = 0
    ) -> int:
        return await self.transact([Write(key, value, expect_revision, lease)])

    async def transact(self, writes: Sequence[Write]) -> int:
        def action() -> int:
            for write in writes:
                self._check(write)
            # One revision for the whole transaction, as in etcd: watchers see it at once.
            revision = self._revision() + 1
            for write in writes:
                self._db.execute(
                    "INSERT INTO changelog(revision, kind, key, value) VALUES (?,?,?,?)",
                    (revision, EventKind.PUT.value, write.key, write.value),
                )
                self._db.execute(
                    "INSERT INTO kv(key, value, mod_revision, lease) VALUES (?,?,?,?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value, "
                    "mod_revision=excluded.mod_revision, lease=excluded.lease",
                    (write.key, write.value, revision, write.lease),
                )
            return revision

        if not writes:
            raise ValueError("a transaction needs at least one write")
        return self._write(action)

    def _check(self, write: Write) -> None:
        row = self._db.execute("SELECT mod_revision FROM kv WHERE key = ?", (write.key,)).fetchone()
        current = row[0] if row else 0
        if write.expect_revision is not None and current != write.expect_revision:
            raise Conflict(
                f"{write.key} changed concurrently "
                f"(revision {current}, expected {write.expect_revision})"
            )
        if write.lease and not self._lease_exists(write.lease):
            raise NotFound(f"lease {write.lease} does not exist or expired")

    def _lease_exists(self, lease: int) -> bool:
        return lease > 0 and bool(
            self._db.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone()
        )

    async def delete(self, key: str) -> bool:
        def action() -> int:
            if self._db.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount == 0:
                return 0
            self._append(EventKind.DELETE, key, b"")
            return 1

        return bool(self._write(action))

    async def grant_lease(self, ttl_seconds: int) -> int:
        def action() -> int:
            # Random ids, as etcd's are not guessable either: holding a lease id is what lets
            # a node keep its registration alive or drop it.
            lease = secrets.randbits(62) or 1
            self._db.execute(
                "INSERT INTO leases(id, ttl, expires_at) VALUES (?, ?, ?)",
                (lease, ttl_seconds, self._clock() + ttl_seconds),
            )
            return lease

        return self._write(action)

    async def keep_alive(self, lease: int) -> int:
        def action() -> int:
            row = self._db.execute("SELECT ttl FROM leases WHERE id = ?", (lease,)).fetchone()
            if row is None or lease <= 0:
                raise NotFound(f"lease {lease} expired or unknown")
            self._db.execute(
                "UPDATE leases SET expires_at = ? WHERE id = ?", (self._clock() + row[0], lease)
            )
            return int(row[0])

        return self._write(action)

    async def revoke_lease(self, lease: int) -> None:
        def action() -> int:
            # Lease 0 means "no lease" on every key without one: never a lease to drop.
            if not self._lease_exists(lease):
                raise NotFound(f"lease {lease} expired or unknown")
            self._drop_lease(lease)
            return 0

        self._write(action)

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[KvEvent]:
        next_revision = start_revision
        while True:
            self._write(lambda: 0)  # lease expiry produces delete events even when idle
            rows = self._db.execute(
                "SELECT revision, kind, key, value FROM changelog WHERE revision >= ? "
                "AND substr(key, 1, ?) = ? ORDER BY seq",
                (next_revision, len(prefix), prefix),
            ).fetchall()
            for revision, kind, key, value in rows:
                yield KvEvent(EventKind(kind), key, bytes(value), revision)
                next_revision = revision + 1
            await asyncio.sleep(self._poll)

    async def close(self) -> None:
        self._db.close()
