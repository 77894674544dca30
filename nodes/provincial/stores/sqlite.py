"""Status store on one SQLite file: the default for a province whose replicas share one host.

WAL lets readers in every replica process run beside the one writer; synchronous=FULL makes
every acknowledged commit survive a crash or power loss. Writers of several processes queue on
BEGIN IMMEDIATE (busy_timeout), so two replicas on one file never lose an update.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

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
from nodes.provincial.stores.health import SQLITE_SCHEMA, HealthTables, Sql
from nodes.provincial.stores.wal import Checkpointer
from trust.errors import HcxError, InvalidRequest, NotFound, StoreUnavailable
from trust.model import Colour

SCHEMA = """
CREATE TABLE IF NOT EXISTS codes (
    code_id BLOB PRIMARY KEY,          -- 16 random bytes, the cti claim
    holder_ref BLOB NOT NULL,          -- HMAC-SHA256(province holder key, ID number)
    colour INTEGER NOT NULL,           -- trust.model.Colour
    status_version INTEGER NOT NULL,   -- +1 on every colour change
    updated_at REAL NOT NULL,          -- unix seconds of the last change
    reason TEXT NOT NULL,              -- why the colour is what it is
    masked_name TEXT NOT NULL,         -- e.g. 张*明, printed on refreshed codes
    id_tail TEXT NOT NULL              -- last 4 characters of the ID number
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS codes_by_holder ON codes(holder_ref);
CREATE TABLE IF NOT EXISTS status_requests (
    request_id TEXT PRIMARY KEY,       -- SetStatus idempotency key
    code_id BLOB NOT NULL,
    status_version INTEGER NOT NULL,   -- the version this request produced
    applied_at REAL NOT NULL
) WITHOUT ROWID;
"""

BULK_CHUNK = 200_000
# Page cache per connection: holds the B-tree interior pages (~31 MB at 10 M codes), so a
# random look-up reads one leaf. 192 MiB (a fifth of the leaves as well) measured no faster
# for random look-ups at 10 M codes and doubled peak RSS (bench/bench_node.py).
CACHE_MIB = 64
WAL_FALLBACK_CHECKPOINT_PAGES = 25_000
INSERT_ROWS = 500  # rows per INSERT statement: 6 variables each, far below SQLite's 32,766
_NEW_ROW = f"(?,?,?,1,?,'{ISSUED_REASON}',?,?)"  # status version 1, reason "issued"
_GET_BY_ID = (
    "SELECT colour, status_version, updated_at, reason, masked_name, id_tail "
    "FROM codes WHERE code_id = ?"
)
_COLOURS = {int(c): c for c in Colour}
_T = TypeVar("_T")


def _issued_record(code: NewCode) -> CodeRecord:
    """The record a freshly inserted code has (what the INSERT wrote)."""
    colour = _COLOURS[int(code.colour)]
    return CodeRecord(
        code.code_id, colour, 1, float(code.now), ISSUED_REASON, code.masked_name, code.id_tail
    )


class SqliteStatusStore:
    """Status store on one SQLite file; safe for the threads of one process and for processes."""

    blocking = False

    def __init__(self, path: str | Path, *, cache_mib: int = CACHE_MIB) -> None:
        self.path = Path(path)
        self._checkpointer: Checkpointer | None = None
        try:
            self._db = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
            # Checkpoints run on a background connection (stores/wal.py); the writer's own
            # automatic checkpoint is only the fallback that bounds the WAL (~100 MB).
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_FALLBACK_CHECKPOINT_PAGES}")
            with self._tx():
                for statement in (SCHEMA + SQLITE_SCHEMA).split(";\n"):
                    if statement.strip():
                        self._db.execute(statement)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open status store {path}: {e}") from e
        self._lookup = self._db.cursor()
        self._lock = threading.Lock()
        self._checkpointer = Checkpointer(self.path)
        # Health reads (a history, the statistics' scan of every code) on their own
        # connection: they never hold the lock the verification look-ups wait on.
        self._reader = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._reader_lock = threading.Lock()
        self.health = HealthTables(Sql("?"), self._run_health)

    def _run_health(self, call: Callable[[sqlite3.Connection], _T], write: bool) -> _T:
        if write:
            with self._lock, self._tx():
                return call(self._db)
        with self._reader_lock, self._reading():
            return call(self._reader)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._reader_lock:
            self._reader.close()
        with self._lock:
            self._db.close()

    def create_or_get_many(self, codes: list[NewCode]) -> list[CodeRecord]:
        with self._lock, self._tx():
            records: list[CodeRecord] = []
            for start in range(0, len(codes), INSERT_ROWS):
                records += self._create_or_get(codes[start : start + INSERT_ROWS])
            return records

    def _create_or_get(self, codes: list[NewCode]) -> list[CodeRecord]:
        """One multi-row INSERT: the B-tree work runs in one call without the GIL.

        Row-by-row statements hand the GIL back and forth once per code, and a writer thread
        then waits for the signing thread at every hand-over (bench/bench_node.py).
        """
        rows = ",".join([_NEW_ROW] * len(codes))
        params = [
            value
            for c in codes
            for value in (c.code_id, c.holder_ref, int(c.colour), c.now, c.masked_name, c.id_tail)
        ]
        inserted = self._db.execute(
            f"INSERT INTO codes VALUES {rows} ON CONFLICT(holder_ref) DO NOTHING", params
        ).rowcount
        if inserted == len(codes):  # every holder was new: the rows are exactly the codes
            return [_issued_record(code) for code in codes]
        return self._existing(codes)

    def _existing(self, codes: list[NewCode]) -> list[CodeRecord]:
        """The stored code of each holder (some holders already had one, keep it)."""
        holder_refs = list({code.holder_ref for code in codes})
        marks = ",".join("?" * len(holder_refs))
        rows = self._db.execute(
            f"SELECT holder_ref, {RECORD_COLUMNS} FROM codes WHERE holder_ref IN ({marks})",
            holder_refs,
        ).fetchall()
        by_holder = {bytes(row[0]): record_from_row(row[1:]) for row in rows}
        return [by_holder[code.holder_ref] for code in codes]

    def get(self, code_id: bytes) -> CodeRecord | None:
        # The hot path of every verification: one cached statement on a cursor kept for it,
        # the id the caller passed instead of reading it back, no helper calls.
        try:
            with self._lock:
                row = self._lookup.execute(_GET_BY_ID, (code_id,)).fetchone()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"status store read failed: {e}") from e
        if row is None:
            return None
        colour, version, updated_at, reason, masked_name, tail = row
        return CodeRecord(code_id, _COLOURS[colour], version, updated_at, reason, masked_name, tail)

    def get_many(self, code_ids: list[bytes]) -> dict[bytes, CodeRecord]:
        if not code_ids:
            return {}
        marks = ",".join("?" * len(code_ids))
        with self._lock, self._reading():
            rows = self._db.execute(
                f"SELECT {RECORD_COLUMNS} FROM codes WHERE code_id IN ({marks})", code_ids
            ).fetchall()
        return {bytes(r[0]): record_from_row(r) for r in rows}

    def set_colour(
        self, *, code_id: bytes, colour: Colour, reason: str, request_id: str, now: float
    ) -> ColourChange:
        check_set_colour(code_id=code_id, reason=reason, request_id=request_id)
        with self._lock, self._tx():
            done = self._db.execute(
                "SELECT code_id FROM status_requests WHERE request_id = ?", (request_id,)
            ).fetchone()
            if done is not None:
                return ColourChange(
                    self._already_applied(bytes(done[0]), code_id, request_id), False
                )
            row = self._db.execute(
                "UPDATE codes SET colour=?, status_version=status_version+1, updated_at=?, "
                f"reason=? WHERE code_id=? RETURNING {RECORD_COLUMNS}",
                (int(colour), now, reason, code_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"unknown code id {code_id.hex()}")
            record = record_from_row(row)
            self._db.execute(
                "INSERT INTO status_requests VALUES (?,?,?,?)",
                (request_id, code_id, record.status_version, now),
            )
            return ColourChange(record, True)

    def _already_applied(self, done_for: bytes, code_id: bytes, request_id: str) -> CodeRecord:
        if done_for != code_id:
            raise InvalidRequest(f"request_id {request_id} was used for another code")
        row = self._db.execute(
            f"SELECT {RECORD_COLUMNS} FROM codes WHERE code_id = ?", (code_id,)
        ).fetchone()
        return record_from_row(row)

    def bulk_load(self, rows: Iterable[BulkRow]) -> int:
        """Insert rows in large transactions (one fsync per chunk, not per row)."""
        written = 0
        marks = ",".join("?" * len(CODE_COLUMNS))
        iterator = iter(rows)
        while chunk := list(itertools.islice(iterator, BULK_CHUNK)):
            with self._lock, self._tx():
                self._db.executemany(f"INSERT INTO codes VALUES ({marks})", chunk)
            written += len(chunk)
        with self._lock:  # fold the bulk WAL into the database so later commits stay short
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return written

    def ping(self) -> None:
        """A file on this host: it answers while the process runs."""

    def count(self) -> int:
        with self._lock, self._reading():
            return int(self._db.execute("SELECT count(*) FROM codes").fetchone()[0])

    def size_bytes(self) -> int:
        files = [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")]
        return sum(f.stat().st_size for f in files if f.exists())

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise StoreUnavailable(f"status store read failed: {e}") from e

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT; rolled back on any error, so nothing is half-written."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StoreUnavailable(f"status store busy or unavailable: {e}") from e
        try:
            yield
        except HcxError:
            self._db.execute("ROLLBACK")
            raise
        except sqlite3.Error as e:
            self._db.execute("ROLLBACK")
            raise StoreUnavailable(f"status store write failed: {e}") from e
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            self._db.execute("ROLLBACK")
            raise StoreUnavailable(f"status store commit failed: {e}") from e
        if self._checkpointer is not None:  # None only while __init__ creates the schema
            self._checkpointer.request()
