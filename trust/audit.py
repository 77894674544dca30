"""The registry's audit log (DESIGN §8): every change, hash-chained and signed.

Entry ``n`` lives under ``audit/<n, 12 digits>``. Its body names the actor, the action, the
subject, a time and the SHA-256 of entry ``n-1``'s stored bytes; the body is sealed by the
coordinator (national root) key. An edited entry fails its signature; a deleted entry leaves a
gap in the numbering and breaks the next entry's hash link; both are reported by
:func:`verify_log`. Appends are compare-and-put on a fresh key, so two coordinators writing at
once get consecutive numbers instead of overwriting each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from trust import records
from trust.errors import Conflict, HcxError, StoreUnavailable
from trust.kv import KvEntry, KvStore

MAX_APPEND_ATTEMPTS = 20


@dataclass(frozen=True)
class AuditEntry:
    """One registry change: who did what to which subject, when."""

    seq: int
    at: float
    actor: str  # caller identity (mTLS SPIFFE id later; "coordinator-cli" or the peer today)
    action: str
    subject: str
    detail: str
    prev: str  # hex SHA-256 of the previous entry's stored value; "" for the first


@dataclass
class AuditReport:
    """Entries that verified, and every problem found (empty when the chain is intact)."""

    entries: list[AuditEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def entry_key(seq: int) -> str:
    return f"{records.AUDIT}{seq:012d}"


def _encode(entry: AuditEntry) -> bytes:
    return cbor2.dumps(
        {
            "seq": entry.seq,
            "at": float(entry.at),
            "actor": entry.actor,
            "action": entry.action,
            "subject": entry.subject,
            "detail": entry.detail,
            "prev": entry.prev,
        }
    )


def _decode(body: bytes) -> AuditEntry:
    doc = records._load(
        body,
        {
            "seq": int,
            "at": float,
            "actor": str,
            "action": str,
            "subject": str,
            "detail": str,
            "prev": str,
        },
    )
    return AuditEntry(**doc)


async def append(
    store: KvStore,
    signer: ec.EllipticCurvePrivateKey,
    *,
    actor: str,
    action: str,
    subject: str,
    detail: str,
    at: float,
) -> AuditEntry:
    """Append one entry after the current last one; retries when another writer was first."""
    for _ in range(MAX_APPEND_ATTEMPTS):
        last = await _last(store)
        seq = 1 if last is None else int(last.key.removeprefix(records.AUDIT)) + 1
        prev = "" if last is None else hashlib.sha256(last.value).hexdigest()
        entry = AuditEntry(seq, at, actor, action, subject, detail, prev)
        key = entry_key(seq)
        try:
            await store.put(key, records.seal(key, _encode(entry), signer), expect_revision=0)
            return entry
        except Conflict:
            continue
    raise StoreUnavailable("audit log is too contended to append; try again")


async def _last(store: KvStore) -> KvEntry | None:
    snapshot = await store.read_prefix(records.AUDIT)
    return snapshot.entries[-1] if snapshot.entries else None


def verify_log(entries: Sequence[KvEntry], roots: Sequence[x509.Certificate]) -> AuditReport:
    """Check signatures, numbering and hash links of the whole log (read in key order)."""
    report = AuditReport()
    expected_seq, prev_hash = 1, ""
    for stored in sorted(entries, key=lambda e: e.key):
        try:
            entry = _decode(_unseal_any(stored, roots))
        except HcxError as e:
            report.problems.append(f"{stored.key}: {e.message} (edited or forged)")
            expected_seq += 1
            prev_hash = hashlib.sha256(stored.value).hexdigest()
            continue
        if stored.key != entry_key(entry.seq):
            report.problems.append(f"{stored.key}: holds entry {entry.seq} (moved)")
        if entry.seq != expected_seq:
            report.problems.append(
                f"{stored.key}: expected entry {expected_seq} next; "
                f"{entry.seq - expected_seq} entr(y/ies) deleted"
            )
        elif entry.prev != prev_hash:
            report.problems.append(f"{stored.key}: hash link to the previous entry is broken")
        report.entries.append(entry)
        expected_seq, prev_hash = entry.seq + 1, hashlib.sha256(stored.value).hexdigest()
    return report


def _unseal_any(stored: KvEntry, roots: Sequence[x509.Certificate]) -> bytes:
    error: HcxError | None = None
    for root in roots:
        try:
            return records.unseal(stored.key, stored.value, root)
        except HcxError as e:
            error = e
    raise error or HcxError("no root to verify the audit log with")
