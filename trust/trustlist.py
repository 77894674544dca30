"""The signed trust list: the verified registry, packaged for offline checkpoints.

A trust list carries the same signed registry values a gateway's view holds (province records
sealed by the root, DSCs, retirements, revocation orders, CRLs), so a checkpoint re-verifies
every entry exactly like a gateway does (trust.view). Around them: the registry revision
(strictly increasing), the issue time, a next-update time (fetch again after it) and a hard
not-after (refuse after it: a frozen list must not keep keys alive forever). The whole list is
signed by the national trust-list key, whose certificate is marked for that purpose only
(pki.TRUST_LIST_SIGNING_OID) and chains to the pinned root.

A list with ``since > 0`` is a delta: only entries changed after revision ``since``;
:func:`merge` applies it onto the full list a checkpoint holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from trust import pki
from trust.errors import DecodeError, HcxError
from trust.kv import KvEntry, Snapshot
from trust.model import Reason
from trust.view import TrustView

T = TypeVar("T")
FORMAT_VERSION = 1
DEFAULT_NEXT_UPDATE_S = 3600  # checkpoints fetch hourly
DEFAULT_NOT_AFTER_S = 3 * 24 * 3600  # and refuse a list older than three days


class TrustListError(HcxError):
    """A trust list that must not be used (bad signature, rollback, frozen); fail closed."""


@dataclass(frozen=True)
class TrustList:
    """A verified trust list (or delta)."""

    revision: int
    since: int
    issued_at: float
    next_update: float
    not_after: float
    entries: tuple[tuple[str, bytes, int], ...]

    def view(self, roots: Sequence[x509.Certificate]) -> TrustView:
        """A TrustView of the entries, each re-verified against ``roots``."""
        view = TrustView(roots=roots)
        view.load(Snapshot(tuple(KvEntry(k, v, r) for k, v, r in self.entries), self.revision))
        return view


def build(
    view: TrustView,
    signer: pki.Authority,
    *,
    now: float,
    since: int = 0,
    next_update_s: int = DEFAULT_NEXT_UPDATE_S,
    not_after_s: int = DEFAULT_NOT_AFTER_S,
) -> bytes:
    """Sign the view's verified entries (changed after ``since``) with the trust-list key."""
    body = cbor2.dumps(
        {
            "v": FORMAT_VERSION,
            "revision": view.revision,
            "since": since,
            "issued_at": float(now),
            "next_update": float(now + next_update_s),
            "not_after": float(now + not_after_s),
            "entries": [[k, v, r] for k, v, r in view.accepted_entries(since=since)],
        }
    )
    signature = signer.private_key.sign(body, ec.ECDSA(hashes.SHA256()))
    return cbor2.dumps(
        {"list": body, "sig": signature, "signer": pki.certificate_to_der(signer.certificate)}
    )


def verify(
    data: bytes,
    roots: Sequence[x509.Certificate],
    *,
    now: float,
    held_revision: int = 0,
) -> TrustList:
    """Check signer chain and purpose, signature, not-after and rollback; fail closed."""
    envelope = _map(data, "trust list")
    signer = pki.load_certificate_der(_field(envelope, "signer", bytes))
    try:
        pki.verify_trust_list_signer(signer, roots, at=datetime.fromtimestamp(now, tz=UTC))
    except HcxError as e:
        raise TrustListError(f"trust-list signer is not trusted: {e.message}") from e
    body = _field(envelope, "list", bytes)
    try:
        key = signer.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(_field(envelope, "sig", bytes), body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, AssertionError) as e:
        raise TrustListError(
            "trust-list signature does not verify", reason=Reason.BAD_SIGNATURE
        ) from e
    trust_list = _decode(_map(body, "trust list body"))
    if now > trust_list.not_after:
        raise TrustListError(
            f"trust list revision {trust_list.revision} expired at "
            f"{_iso(trust_list.not_after)} (frozen list refused); fetch a new one",
            reason=Reason.EXPIRED,
        )
    if trust_list.revision < held_revision:
        raise TrustListError(
            f"trust list revision {trust_list.revision} is older than revision {held_revision} "
            "already held (rollback refused)"
        )
    return trust_list


def merge(full: TrustList, delta: TrustList) -> TrustList:
    """Apply a delta (since <= full.revision) onto a full list."""
    if delta.since > full.revision:
        raise TrustListError(f"delta since {delta.since} does not follow revision {full.revision}")
    entries = {k: (v, r) for k, v, r in full.entries}
    entries.update({k: (v, r) for k, v, r in delta.entries})
    return TrustList(
        revision=delta.revision,
        since=0,
        issued_at=delta.issued_at,
        next_update=delta.next_update,
        not_after=delta.not_after,
        entries=tuple(sorted((k, v, r) for k, (v, r) in entries.items())),
    )


class HeldRevision:
    """The highest trust-list revision a checkpoint accepted, kept in a small file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self) -> int:
        try:
            return int(json.loads(self.path.read_text())["revision"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as e:
            # A damaged state file must not silently re-open the door to rollbacks.
            raise TrustListError(f"checkpoint state {self.path} is unreadable: {e}") from e

    def raise_to(self, revision: int) -> None:
        if revision > self.get():
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"revision": revision}))
            tmp.replace(self.path)


def _decode(doc: dict[str, object]) -> TrustList:
    if doc.get("v") != FORMAT_VERSION:
        raise DecodeError(f"trust list format {doc.get('v')!r} not understood")
    raw_entries = _field(doc, "entries", list)
    entries = []
    for item in raw_entries:
        if not (isinstance(item, list) and len(item) == 3):
            raise DecodeError("bad trust-list entry", reason=Reason.MALFORMED)
        key, value, revision = item
        if not (isinstance(key, str) and isinstance(value, bytes) and isinstance(revision, int)):
            raise DecodeError("bad trust-list entry", reason=Reason.MALFORMED)
        entries.append((key, value, revision))
    return TrustList(
        revision=_field(doc, "revision", int),
        since=_field(doc, "since", int),
        issued_at=_field(doc, "issued_at", float),
        next_update=_field(doc, "next_update", float),
        not_after=_field(doc, "not_after", float),
        entries=tuple(entries),
    )


def _map(data: bytes, what: str) -> dict[str, object]:
    try:
        doc = cbor2.loads(data)
    except Exception as e:  # hostile bytes: any decoder failure is malformed
        raise DecodeError(f"{what} is not CBOR: {e}", reason=Reason.MALFORMED) from e
    if not isinstance(doc, dict):
        raise DecodeError(f"{what} is not a map", reason=Reason.MALFORMED)
    return doc


def _field(doc: dict[str, object], name: str, kind: type[T]) -> T:
    value = doc.get(name)
    if not isinstance(value, kind):
        raise DecodeError(f"trust list lacks {name}", reason=Reason.MALFORMED)
    return value


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")
