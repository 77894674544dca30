"""The province's status store: one row per code, the authoritative live colour.

Embedded SQLite (WAL, synchronous=FULL: an acknowledged write survives a crash) for one host.
Holders are stored by a keyed hash of their ID number, never the number itself.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from trust.errors import InvalidRequest, NotFound, StoreUnavailable
from trust.model import Colour

_SCHEMA = """
CREATE TABLE IF NOT EXISTS codes (
    code_id BLOB PRIMARY KEY,          -- 16 random bytes, the cti claim
    holder_ref BLOB NOT NULL UNIQUE,   -- HMAC-SHA256(province holder key, ID number)
    colour INTEGER NOT NULL,           -- trust.model.Colour
    status_version INTEGER NOT NULL,   -- +1 on every colour change
    updated_at REAL NOT NULL,          -- unix seconds of the last change
    reason TEXT NOT NULL,              -- why the colour is what it is
    masked_name TEXT NOT NULL,         -- e.g. 张*明, printed on refreshed codes
    id_tail TEXT NOT NULL              -- last 4 characters of the ID number
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS status_requests (
    request_id TEXT PRIMARY KEY,       -- SetStatus idempotency key
    code_id BLOB NOT NULL,
    status_version INTEGER NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class CodeRecord:
    code_id: bytes
    colour: Colour
    status_version: int
    updated_at: float
    reason: str
    masked_name: str
    id_tail: str


class SqliteStatusStore:
    """Status store on one SQLite file; safe for the threads of one process."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open status store {path}: {e}") from e
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def create_or_get(
        self,
        *,
        code_id: bytes,
        holder_ref: bytes,
        colour: Colour,
        now: float,
        masked_name: str,
        id_tail: str,
    ) -> CodeRecord:
        """Insert a new code for the holder, or return the holder's existing one."""
        with self._lock, self._tx():
            row = self._db.execute(
                "SELECT code_id FROM codes WHERE holder_ref = ?", (holder_ref,)
            ).fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO codes VALUES (?,?,?,?,?,?,?,?)",
                    (code_id, holder_ref, int(colour), 1, now, "issued", masked_name, id_tail),
                )
            else:
                code_id = bytes(row[0])
            return self._get(code_id)

    def get(self, code_id: bytes) -> CodeRecord | None:
        try:
            with self._lock:
                return self._get(code_id)
        except NotFound:
            return None

    def get_many(self, code_ids: list[bytes]) -> dict[bytes, CodeRecord]:
        """Records of the known ids among ``code_ids`` (one query)."""
        if not code_ids:
            return {}
        marks = ",".join("?" * len(code_ids))
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT code_id, colour, status_version, updated_at, reason, masked_name, "
                    f"id_tail FROM codes WHERE code_id IN ({marks})",
                    code_ids,
                ).fetchall()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"status store read failed: {e}") from e
        return {
            bytes(r[0]): CodeRecord(bytes(r[0]), Colour(r[1]), r[2], r[3], r[4], r[5], r[6])
            for r in rows
        }

    def set_colour(
        self, *, code_id: bytes, colour: Colour, reason: str, request_id: str, now: float
    ) -> CodeRecord:
        """Change the colour (version + 1); a repeated request_id changes nothing."""
        if not request_id:
            raise InvalidRequest("request_id is required (it makes SetStatus idempotent)")
        with self._lock, self._tx():
            done = self._db.execute(
                "SELECT code_id FROM status_requests WHERE request_id = ?", (request_id,)
            ).fetchone()
            if done is not None:
                if bytes(done[0]) != code_id:
                    raise InvalidRequest(f"request_id {request_id} was used for another code")
                return self._get(code_id)
            current = self._get(code_id)
            version = current.status_version + 1
            self._db.execute(
                "UPDATE codes SET colour=?, status_version=?, updated_at=?, reason=? "
                "WHERE code_id=?",
                (int(colour), version, now, reason, code_id),
            )
            self._db.execute(
                "INSERT INTO status_requests VALUES (?,?,?)", (request_id, code_id, version)
            )
            return self._get(code_id)

    def _get(self, code_id: bytes) -> CodeRecord:
        row = self._db.execute(
            "SELECT code_id, colour, status_version, updated_at, reason, masked_name, id_tail "
            "FROM codes WHERE code_id = ?",
            (code_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"unknown code id {code_id.hex()}")
        return CodeRecord(bytes(row[0]), Colour(row[1]), row[2], row[3], row[4], row[5], row[6])

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (nothing half-written)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StoreUnavailable(f"status store busy or unavailable: {e}") from e

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
