"""The signed trust list: the registry log, packaged for offline checkpoints and provincial nodes.

A trust list carries the log's signed tree head and its leaves (all of them, or a delta: the
leaves after revision ``since`` with an RFC 9162 consistency proof from the tree of size
``since``), so a checkpoint verifies and folds them exactly as a gateway does (trust.reader,
trust.authority) instead of believing anything the gateway says. Around them: the revision
(the tree size; it only grows), the issue time, a next-update time (fetch again after it) and a
hard not-after (refuse after it: a frozen list must not keep keys alive for ever). The whole
list is an envelope (purpose TRUST_LIST) signed by the national trust-list key, whose
certificate is marked for that purpose only and chains to the pinned root.

Holders remember the largest tree head they accepted (:class:`HeldHead`): a smaller tree is a
rollback, a different root at the same size is a fork, and a larger tree must extend the held
one; each is refused, failing closed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from trust import cbor, envelope, merkle, pki
from trust.envelope import Purpose
from trust.errors import DecodeError, HcxError
from trust.files import replace_file
from trust.kv import KvEntry, Snapshot
from trust.log import HEAD_KEY, leaf_key, open_head
from trust.model import Reason
from trust.reader import LogReader
from trust.view import TrustView

FORMAT_VERSION = 2
DEFAULT_NEXT_UPDATE_S = 3600  # checkpoints fetch hourly
DEFAULT_NOT_AFTER_S = 3 * 24 * 3600  # and refuse a list older than three days


class TrustListError(HcxError):
    """A trust list that must not be used (bad signature, rollback, fork, frozen): fail closed."""

    reason = Reason.LOG_INCONSISTENT


@dataclass(frozen=True)
class TrustList:
    """A trust list (or delta) whose signature and signer verified."""

    revision: int
    since: int
    issued_at: int
    next_update: int
    not_after: int
    head: bytes  # the signed tree head (empty for an empty log)
    leaves: tuple[bytes, ...]
    proof: tuple[bytes, ...]

    @property
    def root(self) -> bytes:
        return merkle.root([merkle.leaf_hash(leaf) for leaf in self.leaves])

    def view(self, roots: Sequence[x509.Certificate]) -> TrustView:
        """A view of the full list's log, verified and folded like a gateway's."""
        if self.since != 0:
            raise TrustListError("a delta has no view of its own: merge it onto a full list")
        view = TrustView(roots=roots)
        entries = [KvEntry(leaf_key(i), leaf, 0) for i, leaf in enumerate(self.leaves)]
        if self.head:
            entries.append(KvEntry(HEAD_KEY, self.head, 0))
        reader = LogReader(view)
        if not reader.load(Snapshot(tuple(entries), 0)):
            assert reader.inconsistent is not None
            raise TrustListError(f"trust list log refused: {reader.inconsistent.message}")
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
    """Sign the view's log (the leaves after ``since``, with a consistency proof) as a list."""
    verified = view.log
    since = max(0, min(since, verified.size))
    proof = verified.tree.consistency_proof(since, verified.size) if since > 0 else []
    body = {
        "v": FORMAT_VERSION,
        "revision": verified.size,
        "since": since,
        "issued_at": int(now),
        "next_update": int(now + next_update_s),
        "not_after": int(now + not_after_s),
        "head": verified.head.raw if verified.head is not None else b"",
        "leaves": [leaf.raw for leaf in verified.leaves[since:]],
        "proof": list(proof),
    }
    return envelope.seal(
        Purpose.TRUST_LIST, cbor.encode(body), signer.private_key, signer.certificate
    )


def verify(data: bytes, roots: Sequence[x509.Certificate], *, now: float) -> TrustList:
    """Check signer chain and purpose, signature, not-after; fail closed (TrustListError)."""
    try:
        opened = envelope.open_verified(Purpose.TRUST_LIST, data, what="trust list")
        pki.verify_trust_list_signer(opened.signer, roots, at=datetime.fromtimestamp(now, tz=UTC))
        trust_list = _decode(opened.payload)
    except HcxError as e:
        raise TrustListError(f"trust list refused: {e.message}", reason=e.reason) from e
    if now > trust_list.not_after:
        raise TrustListError(
            f"trust list revision {trust_list.revision} expired at "
            f"{_iso(trust_list.not_after)} (frozen list refused); fetch a new one",
            reason=Reason.EXPIRED,
        )
    return trust_list


def merge(full: TrustList, delta: TrustList, roots: Sequence[x509.Certificate]) -> TrustList:
    """Apply a delta onto the full list held: its consistency proof must take the held tree
    to the delta's tree, and the leaves it overlaps must be the held ones."""
    if delta.since == 0:
        return delta
    if delta.since > full.revision:
        raise TrustListError(f"delta since {delta.since} does not follow revision {full.revision}")
    held_root = merkle.root([merkle.leaf_hash(leaf) for leaf in full.leaves[: delta.since]])
    new_head = open_head(delta.head, roots) if delta.head else None
    if new_head is None or new_head.size != delta.revision:
        raise TrustListError("delta without a tree head of its revision")
    try:
        merkle.verify_consistency(delta.since, new_head.size, held_root, new_head.root, delta.proof)
    except HcxError as e:
        raise TrustListError(f"delta is not consistent with the list held: {e.message}") from e
    overlap = full.leaves[delta.since :]
    if tuple(delta.leaves[: len(overlap)]) != overlap:
        raise TrustListError("delta rewrites leaves of the list held")
    return TrustList(
        revision=delta.revision,
        since=0,
        issued_at=delta.issued_at,
        next_update=delta.next_update,
        not_after=delta.not_after,
        head=delta.head,
        leaves=(*full.leaves[: delta.since], *delta.leaves),
        proof=(),
    )


class HeldHead:
    """The largest tree head a checkpoint accepted (size and root), kept in a small file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self) -> tuple[int, bytes]:
        try:
            doc = json.loads(self.path.read_text())
            return int(doc["size"]), bytes.fromhex(doc["root"])
        except FileNotFoundError:
            return 0, merkle.EMPTY_ROOT
        except (ValueError, KeyError, TypeError) as e:
            # A damaged state file must not silently re-open the door to rollbacks.
            raise TrustListError(f"checkpoint state {self.path} is unreadable: {e}") from e

    def check(self, trust_list: TrustList) -> None:
        """Refuse a full list that does not extend the held head (rollback or fork)."""
        size, root = self.get()
        if trust_list.revision < size:
            raise TrustListError(
                f"trust list revision {trust_list.revision} is older than revision {size} "
                "already held (rollback refused)"
            )
        hashes = [merkle.leaf_hash(leaf) for leaf in trust_list.leaves[:size]]
        if size and merkle.root(hashes) != root:
            raise TrustListError(
                f"trust list does not extend the tree of size {size} already held (fork refused)"
            )

    def raise_to(self, trust_list: TrustList) -> None:
        size, _ = self.get()
        if trust_list.revision > size:
            head = {"size": trust_list.revision, "root": trust_list.root.hex()}
            replace_file(self.path, json.dumps(head).encode(), durable=True)

    def accept(
        self,
        signed: bytes,
        roots: Sequence[x509.Certificate],
        *,
        now: float,
        keep: Path | None = None,
    ) -> tuple[TrustList, TrustView]:
        """A full signed list taken as a checkpoint takes one: signer, signature and not-after
        checked, extending the list held (no rollback, no fork), its log verified into a view;
        then stored at ``keep`` (if given) before the held head is raised to it."""
        trust_list = verify(signed, roots, now=now)
        self.check(trust_list)
        view = trust_list.view(roots)
        if keep is not None:
            replace_file(keep, signed, durable=True)
        self.raise_to(trust_list)
        return trust_list, view


def _decode(payload: bytes) -> TrustList:
    doc = cbor.expect_map(cbor.decode_canonical(payload, what="trust list"), what="trust list")
    keys = ("v", "revision", "since", "issued_at", "next_update", "not_after", "head", "leaves",
            "proof")  # fmt: skip
    cbor.exact_keys(doc, keys, what="trust list")
    if doc["v"] != FORMAT_VERSION:
        raise DecodeError(f"trust list format {doc['v']!r} not understood", reason=Reason.MALFORMED)
    leaves, proof = doc["leaves"], doc["proof"]
    if not isinstance(leaves, list) or not all(type(x) is bytes for x in leaves):
        raise DecodeError("trust list leaves must be byte strings", reason=Reason.MALFORMED)
    if not isinstance(proof, list) or not all(type(x) is bytes for x in proof):
        raise DecodeError("trust list proof must be byte strings", reason=Reason.MALFORMED)
    revision = cbor.field(doc, "revision", int, what="trust list")
    since = cbor.field(doc, "since", int, what="trust list")
    if not 0 <= since <= revision or len(leaves) != revision - since:
        raise DecodeError("trust list revision, since and leaves disagree", reason=Reason.MALFORMED)
    return TrustList(
        revision=revision,
        since=since,
        issued_at=cbor.field(doc, "issued_at", int, what="trust list"),
        next_update=cbor.field(doc, "next_update", int, what="trust list"),
        not_after=cbor.field(doc, "not_after", int, what="trust list"),
        head=cbor.field(doc, "head", bytes, what="trust list"),
        leaves=tuple(leaves),
        proof=tuple(proof),
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")
