"""The health tables beside ``codes``: one SQL for SQLite and PostgreSQL (docs/colour-policy.md).

    health          code_id, state (JSON), state_version, due_at   -- quarantine, declaration
    health_places   district, code_id, at                          -- where a holder lives/went
    health_events   code_id, seq, at, kind, rule, colours, words   -- the history in words
    health_requests request_id, code_id, kind, at                  -- ApplyCode/CheckIn replays
    risk_areas      district, level, valid_from, valid_until, import_id, applied
    health_audit    at, actor, action, subject, outcome           -- who imported, asked, answered
    policy_versions version, digest, loaded_at                    -- no older policy comes back

Every write is a compare-and-set on both the code's status version and its health state
version, inside one transaction with its history entry and its request id: two replicas
deciding the same transition cannot both apply it (the second finds the versions moved and
re-reads), and a replica dying mid-write leaves nothing behind (the transaction rolls back; the
next scan of due codes finds the code still due). The functions take an open connection inside
a transaction; the backends own connections and transactions.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from nodes.provincial.stores.base import RECORD_COLUMNS, record_from_row
from trust.errors import StoreUnavailable
from trust.model import Colour

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS health (
    code_id BLOB PRIMARY KEY, state TEXT NOT NULL, state_version INTEGER NOT NULL, due_at REAL,
    residence TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS health_due ON health(due_at) WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS health_places (
    district TEXT NOT NULL, code_id BLOB NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (district, code_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS health_places_code ON health_places(code_id);
CREATE TABLE IF NOT EXISTS health_events (
    code_id BLOB NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL,
    rule TEXT NOT NULL, colour_before INTEGER NOT NULL, colour_after INTEGER NOT NULL,
    words TEXT NOT NULL, PRIMARY KEY (code_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS health_requests (
    request_id TEXT PRIMARY KEY, code_id BLOB NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS risk_areas (
    district TEXT PRIMARY KEY, level INTEGER NOT NULL, valid_from REAL NOT NULL,
    valid_until REAL NOT NULL, import_id TEXT NOT NULL, applied INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_versions (
    version INTEGER PRIMARY KEY, digest TEXT NOT NULL, loaded_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS health_audit (
    at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,
    outcome TEXT NOT NULL
)
"""

POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS health (
    code_id bytea PRIMARY KEY, state text NOT NULL, state_version bigint NOT NULL,
    due_at double precision, residence text
);
CREATE INDEX IF NOT EXISTS health_due ON health(due_at) WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS health_places (
    district text NOT NULL, code_id bytea NOT NULL, at double precision NOT NULL,
    PRIMARY KEY (district, code_id)
);
CREATE INDEX IF NOT EXISTS health_places_code ON health_places(code_id);
CREATE TABLE IF NOT EXISTS health_events (
    code_id bytea NOT NULL, seq bigint NOT NULL, at double precision NOT NULL, kind text NOT NULL,
    rule text NOT NULL, colour_before smallint NOT NULL, colour_after smallint NOT NULL,
    words text NOT NULL, PRIMARY KEY (code_id, seq)
);
CREATE TABLE IF NOT EXISTS health_requests (
    request_id text PRIMARY KEY, code_id bytea NOT NULL, kind text NOT NULL,
    at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS risk_areas (
    district text PRIMARY KEY, level smallint NOT NULL, valid_from double precision NOT NULL,
    valid_until double precision NOT NULL, import_id text NOT NULL, applied smallint NOT NULL
);
CREATE TABLE IF NOT EXISTS policy_versions (
    version bigint PRIMARY KEY, digest text NOT NULL, loaded_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS health_audit (
    at double precision NOT NULL, actor text NOT NULL, action text NOT NULL,
    subject text NOT NULL, outcome text NOT NULL
)
"""


class HealthRow(NamedTuple):
    state: dict[str, Any]
    state_version: int


class EventRow(NamedTuple):
    seq: int
    at: float
    kind: str
    rule: str
    colour_before: Colour
    colour_after: Colour
    words: str


class HealthWrite(NamedTuple):
    """A compare-and-set of one code: colour (and status version), state, history, request.
    (A tuple: a batch makes 100,000 of them, ``_replace`` copies one in a microsecond.)"""

    code_id: bytes
    status_version: int  # what the writer read: the write applies only if still so
    state_version: int  # 0: the code has no health row yet
    colour: Colour
    colour_changed: bool
    reason: str  # the codes row's reason when the colour changes
    state: dict[str, Any]
    due_at: float | None
    event: EventRow | None  # its seq is assigned here (the new state version)
    now: float
    request_id: str | None = None
    request_kind: str = ""
    residence: str | None = None
    places: Sequence[tuple[str, float]] | None = None  # replaces the code's places when given
    # (actor, action, subject, outcome): an audit row written in the same transaction
    audit: tuple[str, str, str, str] | None = None


LockedRow = tuple[int, int, str | None, int]


class RequestReplayed(Exception):
    """A new code's request id was applied meanwhile (its transaction is rolled back)."""


class WriteResult(enum.Enum):
    APPLIED = "applied"
    CONFLICT = "conflict"  # the versions moved: re-read and decide again
    REPLAYED = "replayed"  # the request id was applied before
    NOT_FOUND = "not_found"


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _many(conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """executemany on a cursor (psycopg has it on cursors only; sqlite3 on both)."""
    cursor = conn.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


_UPSERT_HEALTH = (
    "INSERT INTO health {rows} ON CONFLICT (code_id) DO UPDATE SET "
    "state=excluded.state, state_version=excluded.state_version, "
    "due_at=excluded.due_at, residence=excluded.residence"
)
_BATCH_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS health_batch (code_id bytea, changed boolean, "
    "colour smallint, at double precision, reason text, state text, state_version bigint, "
    "due_at double precision, residence text, kind text, rule text, colour_before smallint, "
    "colour_after smallint, words text, event_at double precision) ON COMMIT DELETE ROWS"
)


def _copy_batch(
    conn: Any, writes: Sequence[HealthWrite], text: Callable[[HealthWrite], str]
) -> None:
    """PostgreSQL: the batch COPYed into a temporary table, then one set-based statement per
    table (a statement per row costs ~30 µs of the server's time, three per code)."""
    conn.execute(_BATCH_TABLE)
    conn.execute("DELETE FROM health_batch")  # empty already (ON COMMIT), but never assume
    with conn.cursor() as cursor, cursor.copy("COPY health_batch FROM STDIN") as copy:
        for w in writes:
            e = w.event
            copy.write_row(
                (
                    w.code_id, w.colour_changed, int(w.colour), w.now, w.reason[:200], text(w),
                    w.state_version + 1, w.due_at, w.residence,
                    None if e is None else e.kind, None if e is None else e.rule,
                    None if e is None else int(e.colour_before),
                    None if e is None else int(e.colour_after),
                    None if e is None else e.words, None if e is None else e.at,
                )
            )  # fmt: skip
    conn.execute(
        "UPDATE codes c SET colour=b.colour, status_version=c.status_version+1, "
        "updated_at=b.at, reason=b.reason FROM health_batch b "
        "WHERE b.changed AND c.code_id = b.code_id"
    )
    conn.execute(
        _UPSERT_HEALTH.format(
            rows="SELECT code_id, state, state_version, due_at, residence FROM health_batch"
        )
    )
    conn.execute(
        "INSERT INTO health_events SELECT code_id, state_version, event_at, kind, rule, "
        "colour_before, colour_after, words FROM health_batch WHERE kind IS NOT NULL"
    )


def _by_index(conn: Any) -> None:
    """PostgreSQL, for this transaction: a batch's statements go by index. A batch is a key
    range of at most 2,000 codes; on a freshly loaded table the planner's statistics chose a
    hash join over a scan of every code, and JIT-compiled it, 50 ms a statement where the
    index takes 5 (a 100,000-code import 9.5 s → 7.1 s, docs/colour-policy.md)."""
    conn.execute(  # one round trip: no parameters, so several statements may go at once
        "SET LOCAL jit = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
    )


def _state_text(state: dict[str, Any]) -> str:
    return _ENCODE(state)


def _event_row(w: HealthWrite) -> tuple[Any, ...]:
    e = w.event
    assert e is not None
    return (
        w.code_id,
        w.state_version + 1,
        e.at,
        e.kind,
        e.rule,
        int(e.colour_before),
        int(e.colour_after),
        e.words,
    )


class Sql:
    """The statements with the backend's placeholder (``?`` for sqlite3, ``%s`` for psycopg)."""

    def __init__(self, placeholder: str) -> None:
        self.p = placeholder

    def q(self, text: str) -> str:
        return text.replace("?", self.p)

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """``column`` is one of ``values``: one array parameter on PostgreSQL, sent in binary
        (a statement of 2,000 placeholders cost psycopg ~10 ms to parse, and an array of bytea
        in text ~13 ms to escape: together most of a batch's client time), a list of
        placeholders on SQLite."""
        if self.p == "%s":
            return f"{column} = ANY(%b)", (list(values),)
        return f"{column} IN ({','.join('?' * len(values))})", tuple(values)

    def read(self, conn: Any, code_id: bytes) -> tuple[int, int, HealthRow | None] | None:
        """(colour, status_version, health row or None) of a code, or None if unknown."""
        row = conn.execute(
            self.q(
                "SELECT c.colour, c.status_version, h.state, h.state_version FROM codes c "
                "LEFT JOIN health h ON h.code_id = c.code_id WHERE c.code_id = ?"
            ),
            (code_id,),
        ).fetchone()
        if row is None:
            return None
        colour, version, state, state_version = row
        health = None if state is None else HealthRow(json.loads(state), int(state_version))
        return int(colour), int(version), health

    def write(self, conn: Any, w: HealthWrite) -> WriteResult:
        """One compare-and-set under a savepoint: all of it or none of it."""
        conn.execute("SAVEPOINT health_write")
        result = self._write(conn, w)
        conn.execute(
            "RELEASE SAVEPOINT health_write"
            if result is WriteResult.APPLIED
            else "ROLLBACK TO SAVEPOINT health_write"
        )
        if result is not WriteResult.APPLIED:
            conn.execute("RELEASE SAVEPOINT health_write")
        return result

    def _write(self, conn: Any, w: HealthWrite) -> WriteResult:
        if w.request_id is not None:
            claimed = conn.execute(
                self.q(
                    "INSERT INTO health_requests VALUES (?,?,?,?) "
                    "ON CONFLICT (request_id) DO NOTHING"
                ),
                (w.request_id, w.code_id, w.request_kind, w.now),
            ).rowcount
            if claimed == 0:
                return WriteResult.REPLAYED
        # The code's row first: every writer locks it before the health row (the batch path
        # too), so two writers never hold one row each while waiting for the other.
        if w.colour_changed:
            sql = (
                "UPDATE codes SET colour=?, status_version=status_version+1, updated_at=?, "
                "reason=? WHERE code_id=? AND status_version=?"
            )
            args: tuple[Any, ...] = (
                int(w.colour),
                w.now,
                w.reason[:200],
                w.code_id,
                w.status_version,
            )
        else:
            sql = "UPDATE codes SET colour=colour WHERE code_id=? AND status_version=?"
            args = (w.code_id, w.status_version)
        if conn.execute(self.q(sql), args).rowcount == 0:
            return WriteResult.CONFLICT
        new_version = w.state_version + 1
        state = _state_text(w.state)
        if w.state_version == 0:
            changed = conn.execute(
                self.q("INSERT INTO health VALUES (?,?,1,?,?) ON CONFLICT (code_id) DO NOTHING"),
                (w.code_id, state, w.due_at, w.residence),
            ).rowcount
        else:
            changed = conn.execute(
                self.q(
                    "UPDATE health SET state=?, state_version=?, due_at=?, residence=? "
                    "WHERE code_id=? AND state_version=?"
                ),
                (state, new_version, w.due_at, w.residence, w.code_id, w.state_version),
            ).rowcount
        if changed == 0:
            return WriteResult.CONFLICT
        if w.event is not None:
            conn.execute(
                self.q("INSERT INTO health_events VALUES (?,?,?,?,?,?,?,?)"), _event_row(w)
            )
        if w.audit is not None:
            self.audit(conn, w.now, *w.audit)
        if w.places is not None:
            conn.execute(self.q("DELETE FROM health_places WHERE code_id=?"), (w.code_id,))
            for district, at in w.places:
                conn.execute(
                    self.q(
                        "INSERT INTO health_places VALUES (?,?,?) "
                        "ON CONFLICT (district, code_id) DO UPDATE SET at=excluded.at"
                    ),
                    (district, w.code_id, at),
                )
        return WriteResult.APPLIED

    def read_locked(self, conn: Any, code_ids: Sequence[bytes]) -> dict[bytes, LockedRow]:
        """(colour, status version, state text or None, state version) of each code, locked
        until the transaction ends (PostgreSQL: FOR UPDATE, in code id order, so two batches
        never deadlock; SQLite: the writer holds the whole database)."""
        if not code_ids:
            return {}
        where, args = self.one_of("code_id", sorted(set(code_ids)))
        if self.p != "%s":
            rows = conn.execute(
                "SELECT c.code_id, c.colour, c.status_version, h.state, h.state_version "
                f"FROM codes c LEFT JOIN health h USING (code_id) WHERE c.{where}",
                args,
            ).fetchall()
            return {
                bytes(code_id): (int(colour), int(version), state, int(state_version or 0))
                for code_id, colour, version, state, state_version in rows
            }
        _by_index(conn)
        # A row locked by another writer is returned as that writer committed it...
        codes = conn.execute(
            f"SELECT code_id, colour, status_version FROM codes WHERE {where} "
            "ORDER BY code_id FOR UPDATE",
            args,
        ).fetchall()
        # ...and its health row, which that writer wrote under the same lock, is read by a new
        # statement (one that began before the wait would see the old one).
        health = {
            bytes(code_id): (state, int(state_version))
            for code_id, state, state_version in conn.execute(
                f"SELECT code_id, state, state_version FROM health WHERE {where}", args
            ).fetchall()
        }
        found: dict[bytes, LockedRow] = {}
        for code_id, colour, version in codes:
            state, state_version = health.get(bytes(code_id), (None, 0))
            found[bytes(code_id)] = (int(colour), int(version), state, state_version)
        return found

    def write_locked(self, conn: Any, writes: Sequence[HealthWrite]) -> None:
        """Writes decided on rows ``read_locked`` in this transaction: no compare needed, each
        statement once for the whole batch."""
        texts: dict[int, str] = {}  # a state shared by many writes is encoded once

        def text(w: HealthWrite) -> str:
            return texts.get(id(w.state)) or texts.setdefault(id(w.state), _state_text(w.state))

        if self.p == "%s":
            _copy_batch(conn, writes, text)
            return
        changed = [
            (int(w.colour), w.now, w.reason[:200], w.code_id) for w in writes if w.colour_changed
        ]
        if changed:
            _many(
                conn,
                "UPDATE codes SET colour=?, status_version=status_version+1, updated_at=?, "
                "reason=? WHERE code_id=?",
                changed,
            )
        health = [(w.code_id, text(w), w.state_version + 1, w.due_at, w.residence) for w in writes]
        _many(conn, _UPSERT_HEALTH.format(rows="VALUES (?,?,?,?,?)"), health)
        events = [_event_row(w) for w in writes if w.event is not None]
        if events:
            _many(conn, "INSERT INTO health_events VALUES (?,?,?,?,?,?,?,?)", events)

    def admit_policy(self, conn: Any, version: int, digest: str, now: float) -> str | None:
        """Record the policy version this node runs; why not, if an older one or other rules
        under the same version (None: admitted)."""
        if self.p == "%s":  # two nodes starting at once must not both be admitted
            conn.execute("LOCK TABLE policy_versions IN SHARE ROW EXCLUSIVE MODE")
        row = conn.execute("SELECT max(version) FROM policy_versions").fetchone()
        newest = None if row is None or row[0] is None else int(row[0])
        if newest is not None and version < newest:
            return f"policy version {version} is older than version {newest}, already in force"
        known = conn.execute(
            self.q("SELECT digest FROM policy_versions WHERE version = ?"), (version,)
        ).fetchone()
        if known is not None and known[0] != digest:
            return f"version {version} is already in force with other rules: sign a new version"
        if known is None:
            conn.execute(
                self.q("INSERT INTO policy_versions VALUES (?,?,?) ON CONFLICT DO NOTHING"),
                (version, digest, now),
            )
        return None

    def remember(self, conn: Any, request_id: str, kind: str, now: float) -> bool:
        """Remember a request that concerns no one code (an import); False if it was known."""
        return bool(
            conn.execute(
                self.q(
                    "INSERT INTO health_requests VALUES (?,?,?,?) "
                    "ON CONFLICT (request_id) DO NOTHING"
                ),
                (request_id, b"", kind, now),
            ).rowcount
        )

    def request(self, conn: Any, request_id: str) -> tuple[bytes, str] | None:
        row = conn.execute(
            self.q("SELECT code_id, kind FROM health_requests WHERE request_id=?"), (request_id,)
        ).fetchone()
        return None if row is None else (bytes(row[0]), str(row[1]))

    def due(self, conn: Any, now: float, limit: int) -> list[bytes]:
        rows = conn.execute(
            self.q("SELECT code_id FROM health WHERE due_at <= ? ORDER BY due_at LIMIT ?"),
            (now, limit),
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def history(self, conn: Any, code_id: bytes, limit: int) -> list[EventRow]:
        """The code's last ``limit`` entries, oldest first."""
        rows = conn.execute(
            self.q(
                "SELECT seq, at, kind, rule, colour_before, colour_after, words "
                "FROM health_events WHERE code_id=? ORDER BY seq DESC LIMIT ?"
            ),
            (code_id, limit),
        ).fetchall()
        return [
            EventRow(int(s), float(at), k, r, Colour(b), Colour(a), w)
            for s, at, k, r, b, a, w in reversed(rows)
        ]

    def codes_in(
        self, conn: Any, districts: Sequence[str], since: float
    ) -> list[tuple[bytes, str, float]]:
        """(code id, district, when) of holders who live in (when: RESIDENT) or went to
        ``districts`` since ``since``."""
        if not districts:
            return []
        where, args = self.one_of("district", districts)
        rows = conn.execute(
            f"SELECT code_id, district, at FROM health_places WHERE {where} AND at >= {self.p}",
            (*args, since),
        ).fetchall()
        return [(bytes(c), str(d), float(at)) for c, d, at in rows]

    def codes_of_holders(self, conn: Any, holder_refs: Sequence[bytes]) -> list[bytes]:
        if not holder_refs:
            return []
        where, args = self.one_of("holder_ref", holder_refs)
        rows = conn.execute(f"SELECT code_id FROM codes WHERE {where}", args).fetchall()
        return [bytes(r[0]) for r in rows]

    def put_risk_areas(
        self, conn: Any, areas: Iterable[tuple[str, int, float, float]], import_id: str
    ) -> None:
        for district, level, valid_from, valid_until in areas:
            conn.execute(
                self.q(
                    # The same area imported again stays decided; a changed one is decided anew.
                    "INSERT INTO risk_areas VALUES (?,?,?,?,?,0) ON CONFLICT (district) DO UPDATE "
                    "SET applied = CASE WHEN risk_areas.level = excluded.level "
                    "AND risk_areas.valid_from = excluded.valid_from "
                    "AND risk_areas.valid_until = excluded.valid_until "
                    "THEN risk_areas.applied ELSE 0 END, "
                    "level=excluded.level, valid_from=excluded.valid_from, "
                    "valid_until=excluded.valid_until, import_id=excluded.import_id"
                ),
                (district, level, valid_from, valid_until, import_id),
            )

    def areas_due(self, conn: Any, now: float) -> list[tuple[str, int, float, float]]:
        """Stored areas in force now whose holders have not been decided yet."""
        rows = conn.execute(
            self.q(
                "SELECT district, level, valid_from, valid_until FROM risk_areas "
                "WHERE applied = 0 AND valid_from <= ? AND valid_until > ?"
            ),
            (now, now),
        ).fetchall()
        return [(str(d), int(level), float(a), float(b)) for d, level, a, b in rows]

    def mark_applied(self, conn: Any, areas: Sequence[tuple[str, int, float, float]]) -> None:
        """The areas' holders are decided (unless the area was imported again meanwhile with
        another level or window: that one is decided anew)."""
        _many(
            conn,
            self.q(
                "UPDATE risk_areas SET applied=1 WHERE district=? AND level=? AND valid_from=? "
                "AND valid_until=?"
            ),
            list(areas),
        )

    def risk_areas(
        self, conn: Any, districts: Sequence[str]
    ) -> list[tuple[str, int, float, float]]:
        """(district, level, valid_from, valid_until) of the risk areas among ``districts``."""
        if not districts:
            return []
        where, args = self.one_of("district", districts)
        rows = conn.execute(
            f"SELECT district, level, valid_from, valid_until FROM risk_areas WHERE {where}", args
        ).fetchall()
        return [(str(d), int(level), float(a), float(b)) for d, level, a, b in rows]

    def statistics(self, conn: Any) -> dict[str, Any]:
        by_colour = conn.execute("SELECT colour, count(*) FROM codes GROUP BY colour").fetchall()
        in_quarantine = conn.execute(
            "SELECT count(*) FROM health WHERE due_at IS NOT NULL"
        ).fetchone()[0]
        by_district = conn.execute(
            "SELECT h.residence, c.colour, count(*) FROM health h "
            "JOIN codes c ON c.code_id = h.code_id WHERE h.residence IS NOT NULL "
            "GROUP BY h.residence, c.colour"
        ).fetchall()
        return {
            "by_colour": {Colour(c).name: int(n) for c, n in by_colour},
            "in_quarantine": int(in_quarantine),
            "by_district": sorted((str(d), Colour(c).name, int(n)) for d, c, n in by_district),
        }

    def audit(
        self, conn: Any, at: float, actor: str, action: str, subject: str, outcome: str
    ) -> None:
        conn.execute(
            self.q("INSERT INTO health_audit VALUES (?,?,?,?,?)"),
            (at, actor[:200], action[:64], subject[:200], outcome[:500]),
        )

    def audit_counts(self, conn: Any) -> dict[str, int]:
        rows = conn.execute("SELECT action, count(*) FROM health_audit GROUP BY action").fetchall()
        return {str(a): int(n) for a, n in rows}

    def quarantined(self, conn: Any) -> list[dict[str, Any]]:
        rows = conn.execute("SELECT state FROM health WHERE due_at IS NOT NULL").fetchall()
        return [json.loads(r[0]) for r in rows]

    def create(self, conn: Any, code: Any, w: HealthWrite) -> tuple[Any, WriteResult]:
        """Create a code (``NewCode``) with its health row in one transaction; a holder who
        has a code keeps it: (the existing record, CONFLICT), nothing written."""
        row = conn.execute(
            self.q(
                "INSERT INTO codes VALUES (?,?,?,1,?,?,?,?) ON CONFLICT (holder_ref) DO NOTHING "
                f"RETURNING {RECORD_COLUMNS}"
            ),
            (
                code.code_id,
                code.holder_ref,
                int(code.colour),
                code.now,
                w.reason[:200] or "issued",
                code.masked_name,
                code.id_tail,
            ),
        ).fetchone()
        if row is None:
            existing = conn.execute(
                self.q(f"SELECT {RECORD_COLUMNS} FROM codes WHERE holder_ref = ?"),
                (code.holder_ref,),
            ).fetchone()
            return record_from_row(existing), WriteResult.CONFLICT
        # The INSERT wrote the colour: the health row is written against status version 1.
        result = self.write(conn, w._replace(status_version=1, colour_changed=False))
        if result is WriteResult.REPLAYED:  # roll the new code back with the transaction
            raise RequestReplayed(w.request_id)
        if result is not WriteResult.APPLIED:
            raise StoreUnavailable(f"health row of a new code not written: {result.value}")
        return record_from_row(row), result


Runner = Callable[[Callable[[Any], Any], bool], Any]


class HealthTables:
    """The health tables of one store: ``run(fn, write)`` runs ``fn(conn)`` in the backend's
    read (write=False) or transaction (write=True)."""

    def __init__(self, sql: Sql, run: Runner, *, writers: int = 1) -> None:
        self._sql = sql
        self._run = run
        self.writers = writers  # batch transactions worth running at once (SQLite: one writer)

    def read(self, code_id: bytes) -> tuple[int, int, HealthRow | None] | None:
        return self._run(lambda c: self._sql.read(c, code_id), False)

    def write(self, writes: Sequence[HealthWrite]) -> list[WriteResult]:
        """All the writes in one transaction, each applied or not on its own."""
        return self._run(lambda c: [self._sql.write(c, w) for w in writes], True)

    def transact(
        self,
        code_ids: Sequence[bytes],
        plan: Callable[[bytes, LockedRow], HealthWrite | None],
    ) -> list[HealthWrite]:
        """One transaction over many codes: lock and read them, ``plan`` a write for each (or
        None), write the plans; returns the writes made."""

        def run(conn: Any) -> list[HealthWrite]:
            found = self._sql.read_locked(conn, code_ids)
            writes = [w for code_id, row in found.items() if (w := plan(code_id, row)) is not None]
            if writes:
                self._sql.write_locked(conn, writes)
            return writes

        return self._run(run, True)

    def create(self, code: Any, w: HealthWrite) -> tuple[Any, WriteResult]:
        return self._run(lambda c: self._sql.create(c, code, w), True)

    def admit_policy(self, version: int, digest: str, now: float) -> str | None:
        return self._run(lambda c: self._sql.admit_policy(c, version, digest, now), True)

    def remember(self, request_id: str, kind: str, now: float) -> bool:
        return self._run(lambda c: self._sql.remember(c, request_id, kind, now), True)

    def request(self, request_id: str) -> tuple[bytes, str] | None:
        return self._run(lambda c: self._sql.request(c, request_id), False)

    def due(self, now: float, limit: int) -> list[bytes]:
        return self._run(lambda c: self._sql.due(c, now, limit), False)

    def history(self, code_id: bytes, limit: int) -> list[EventRow]:
        return self._run(lambda c: self._sql.history(c, code_id, limit), False)

    def codes_in(self, districts: Sequence[str], since: float) -> list[tuple[bytes, str, float]]:
        return self._run(lambda c: self._sql.codes_in(c, districts, since), False)

    def codes_of_holders(self, holder_refs: Sequence[bytes]) -> list[bytes]:
        return self._run(lambda c: self._sql.codes_of_holders(c, holder_refs), False)

    def put_risk_areas(
        self, areas: Sequence[tuple[str, int, float, float]], import_id: str
    ) -> None:
        self._run(lambda c: self._sql.put_risk_areas(c, areas, import_id), True)

    def areas_due(self, now: float) -> list[tuple[str, int, float, float]]:
        return self._run(lambda c: self._sql.areas_due(c, now), False)

    def mark_applied(self, areas: Sequence[tuple[str, int, float, float]]) -> None:
        self._run(lambda c: self._sql.mark_applied(c, areas), True)

    def risk_areas(self, districts: Sequence[str]) -> list[tuple[str, int, float, float]]:
        return self._run(lambda c: self._sql.risk_areas(c, districts), False)

    def statistics(self) -> dict[str, Any]:
        return self._run(self._sql.statistics, False)

    def audit(self, at: float, actor: str, action: str, subject: str, outcome: str) -> None:
        self._run(lambda c: self._sql.audit(c, at, actor, action, subject, outcome), True)

    def audit_counts(self) -> dict[str, int]:
        return self._run(self._sql.audit_counts, False)

    def quarantined(self) -> list[dict[str, Any]]:
        return self._run(self._sql.quarantined, False)
