"""Status store on PostgreSQL: for a province whose node replicas run on several hosts.

Every replica connects to the province's database; a commit is acknowledged only after
PostgreSQL has made it durable (synchronous_commit on, the server default), so an answered
SetStatus survives a crash of the node or of the database server.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import psycopg

from nodes.provincial.stores.base import (
    CODE_COLUMNS,
    ISSUED_REASON,
    RECORD_COLUMNS,
    BulkRow,
    CodeRecord,
    ColourChange,
    NewCode,
    check_set_colour,
    record_from_row,
)
from nodes.provincial.stores.health import POSTGRES_SCHEMA, HealthTables, Sql
from trust.errors import InvalidRequest, NotFound, StoreUnavailable
from trust.model import Colour

SCHEMA = """
CREATE TABLE IF NOT EXISTS codes (
    code_id bytea PRIMARY KEY,
    holder_ref bytea NOT NULL UNIQUE,
    colour smallint NOT NULL,
    status_version bigint NOT NULL,
    updated_at double precision NOT NULL,
    reason text NOT NULL,
    masked_name text NOT NULL,
    id_tail text NOT NULL
);
CREATE TABLE IF NOT EXISTS status_requests (
    request_id text PRIMARY KEY,
    code_id bytea NOT NULL,
    status_version bigint NOT NULL,
    applied_at double precision NOT NULL
);
"""

BULK_CHUNK = 200_000
CONNECT_TIMEOUT_S = 5
# A database cut off mid-conversation (a partition, not a refused connection): unacknowledged
# data fails the connection after 3 s, and an idle one is probed, instead of waiting out the
# kernel's retransmissions (15 minutes) in a worker thread.
TCP_USER_TIMEOUT_MS = 3000
BATCH_WRITERS = 2  # of the pool's connections, for an import's or a scan's chunks
_T = TypeVar("_T")


class PostgresStatusStore:
    """Status store in a PostgreSQL database, with a small pool of connections."""

    blocking = True

    def __init__(self, dsn: str, *, pool_size: int = 4) -> None:
        self._dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = pool_size
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(4242)")  # replicas create it once
            conn.execute(SCHEMA)
            conn.execute(POSTGRES_SCHEMA)
        self.health = HealthTables(Sql("%s"), self._run_health, writers=BATCH_WRITERS)

    def _run_health(self, call: Callable[[psycopg.Connection[Any]], _T], write: bool) -> _T:
        with self._connection() as conn:
            if not write:
                return call(conn)
            with conn.transaction():
                return call(conn)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                tcp_user_timeout=TCP_USER_TIMEOUT_MS,
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=2,
            )
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot connect to the status database: {e}") from e

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; a broken one is dropped, database errors become StoreUnavailable."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        except psycopg.Error as e:
            raise StoreUnavailable(f"status database error: {e}") from e
        finally:
            if conn.closed or conn.broken or self._idle.qsize() >= self._slots:
                conn.close()
            else:
                self._idle.put(conn)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def create_or_get_many(self, codes: list[NewCode]) -> list[CodeRecord]:
        # Rows are inserted in holder_ref order: two replicas writing batches that share
        # holders then take the unique keys in the same order and never deadlock.
        order = sorted(range(len(codes)), key=lambda i: codes[i].holder_ref)
        records: list[CodeRecord | None] = [None] * len(codes)
        with self._connection() as conn, conn.transaction():
            for i in order:
                records[i] = self._create_or_get(conn, codes[i])
        return [r for r in records if r is not None]

    def _create_or_get(self, conn: psycopg.Connection[Any], code: NewCode) -> CodeRecord:
        row = conn.execute(
            "INSERT INTO codes VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
            f"ON CONFLICT (holder_ref) DO NOTHING RETURNING {RECORD_COLUMNS}",
            (
                code.code_id,
                code.holder_ref,
                int(code.colour),
                1,
                code.now,
                ISSUED_REASON,
                code.masked_name,
                code.id_tail,
            ),
        ).fetchone()
        if row is None:  # the holder already has a code: keep it
            row = conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM codes WHERE holder_ref = %s", (code.holder_ref,)
            ).fetchone()
        if row is None:
            raise StoreUnavailable("holder's code vanished during issuance")
        return record_from_row(row)

    def get(self, code_id: bytes) -> CodeRecord | None:
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM codes WHERE code_id = %s", (code_id,)
            ).fetchone()
        return None if row is None else record_from_row(row)

    def get_many(self, code_ids: list[bytes]) -> dict[bytes, CodeRecord]:
        if not code_ids:
            return {}
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM codes WHERE code_id = ANY(%s)", (code_ids,)
            ).fetchall()
        return {bytes(r[0]): record_from_row(r) for r in rows}

    def set_colour(
        self, *, code_id: bytes, colour: Colour, reason: str, request_id: str, now: float
    ) -> ColourChange:
        check_set_colour(code_id=code_id, reason=reason, request_id=request_id)
        with self._connection() as conn, conn.transaction():
            # Claiming the request id first serialises two replicas applying the same request:
            # the second waits on the first's row and then sees it as done.
            claimed = conn.execute(
                "INSERT INTO status_requests VALUES (%s,%s,0,%s) "
                "ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
                (request_id, code_id, now),
            ).fetchone()
            if claimed is None:
                return ColourChange(self._already_applied(conn, code_id, request_id), False)
            row = conn.execute(
                "UPDATE codes SET colour=%s, status_version=status_version+1, updated_at=%s, "
                f"reason=%s WHERE code_id=%s RETURNING {RECORD_COLUMNS}",
                (int(colour), now, reason, code_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"unknown code id {code_id.hex()}")
            record = record_from_row(row)
            conn.execute(
                "UPDATE status_requests SET status_version=%s WHERE request_id=%s",
                (record.status_version, request_id),
            )
            return ColourChange(record, True)

    def _already_applied(
        self, conn: psycopg.Connection[Any], code_id: bytes, request_id: str
    ) -> CodeRecord:
        done = conn.execute(
            "SELECT code_id FROM status_requests WHERE request_id = %s", (request_id,)
        ).fetchone()
        if done is None or bytes(done[0]) != code_id:
            raise InvalidRequest(f"request_id {request_id} was used for another code")
        row = conn.execute(
            f"SELECT {RECORD_COLUMNS} FROM codes WHERE code_id = %s", (code_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"unknown code id {code_id.hex()}")
        return record_from_row(row)

    def bulk_load(self, rows: Iterable[BulkRow]) -> int:
        """COPY rows in large transactions (the fastest way into PostgreSQL)."""
        written = 0
        iterator = iter(rows)
        columns = ", ".join(CODE_COLUMNS)
        while chunk := list(itertools.islice(iterator, BULK_CHUNK)):
            with (
                self._connection() as conn,
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY codes ({columns}) FROM STDIN") as copy,
            ):
                for row in chunk:
                    copy.write_row(row)
            written += len(chunk)
        return written

    def ping(self) -> None:
        with self._connection() as conn:
            conn.execute("SELECT 1").fetchone()

    def count(self) -> int:
        with self._connection() as conn:
            row = conn.execute("SELECT count(*) FROM codes").fetchone()
        return int(row[0]) if row else 0

    def size_bytes(self) -> int:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT pg_total_relation_size('codes') + pg_total_relation_size('status_requests')"
            ).fetchone()
        return int(row[0]) if row else 0

    def truncate_for_tests_only(self) -> None:
        """Empty both tables (test isolation on a shared database)."""
        with self._connection() as conn:
            conn.execute(
                "TRUNCATE codes, status_requests, health, health_places, health_events, "
                "health_requests, risk_areas, health_audit, policy_versions"
            )
