"""The registry log: an append-only Merkle tree (RFC 9162) of signed statements, in any KvStore.

Store layout (under the deployment prefix)::

    log/leaf/<index, 12 digits>   a leaf: {statement: bstr, logged_at: uint, actor: text}
    log/head                      the signed tree head: envelope (purpose TREE_HEAD) of
                                  {size: uint, root: bstr .size 32, at: uint}
    nodes/<province>/<node id>    node registrations (routing, under leases; not trust)
    handles/<sha-256 of handle>   which registration a node's handle refers to (same lease)

A leaf is appended together with the new tree head in one store transaction that compares the
head's mod revision, so two gateways appending at once cannot fork the log: one of them gets
Conflict, reads the other's leaf and tries again. Readers take nothing on trust: the head must
be signed by a log key (a certificate chained to a pinned root that carries only the log
purpose), the leaves must be exactly 0 … size-1 and hash to the head's root, and a head must
extend the largest head the reader verified before (its first ``held.size`` leaves hash to the
held root). Anything else is :class:`LogInconsistent`, naming the entry, and the reader keeps
its last verified state (trust.view, gateway.feed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509

from trust import cbor, envelope, merkle, pki
from trust.envelope import Purpose
from trust.errors import DecodeError, HcxError
from trust.kv import KvEntry, KvStore, Snapshot, Write
from trust.model import Reason

LEAF_PREFIX = "log/leaf/"
HEAD_KEY = "log/head"
NODES_PREFIX = "nodes/"
HANDLES_PREFIX = "handles/"
ROUTING_PREFIXES = (NODES_PREFIX, HANDLES_PREFIX)
MAX_ACTOR_CHARS = 200


class LogInconsistent(HcxError):
    """The log in the store is not an extension of what this reader verified: fail closed."""

    reason = Reason.LOG_INCONSISTENT

    def __init__(self, message: str, *, key: str = "") -> None:
        super().__init__(message)
        self.key = key


def leaf_key(index: int) -> str:
    return f"{LEAF_PREFIX}{index:012d}"


def leaf_index(key: str) -> int | None:
    """The index of a leaf key, or None when the key is not exactly one."""
    digits = key.removeprefix(LEAF_PREFIX)
    if key == digits or len(digits) != 12 or not digits.isascii() or not digits.isdigit():
        return None
    return int(digits)


@dataclass(frozen=True)
class Leaf:
    """One log entry: a signed statement, when the log took it, and who submitted it."""

    statement: bytes
    logged_at: int
    actor: str  # the submitter's verified mTLS identity (audit); the signer is in the statement
    raw: bytes = field(repr=False)

    @classmethod
    def make(cls, statement: bytes, *, logged_at: int, actor: str) -> Leaf:
        raw = cbor.encode({"statement": statement, "logged_at": logged_at, "actor": actor})
        return cls(statement=statement, logged_at=logged_at, actor=actor, raw=raw)

    @classmethod
    def decode(cls, raw: bytes) -> Leaf:
        doc = cbor.expect_map(cbor.decode_canonical(raw, what="log leaf"), what="log leaf")
        cbor.exact_keys(doc, ("statement", "logged_at", "actor"), what="log leaf")
        actor = cbor.field(doc, "actor", str, what="log leaf")
        logged_at = cbor.field(doc, "logged_at", int, what="log leaf")
        if len(actor) > MAX_ACTOR_CHARS or not 0 <= logged_at < 1 << 40:
            raise DecodeError("log leaf: actor or time out of range", reason=Reason.MALFORMED)
        statement = cbor.field(doc, "statement", bytes, what="log leaf")
        return cls(statement=statement, logged_at=logged_at, actor=actor, raw=bytes(raw))

    @property
    def hash(self) -> bytes:
        return merkle.leaf_hash(self.raw)


@dataclass(frozen=True)
class TreeHead:
    """A verified signed tree head."""

    size: int
    root: bytes
    at: int
    signer: x509.Certificate
    raw: bytes = field(repr=False)


def sign_head(*, size: int, root: bytes, at: int, signer: pki.Authority) -> bytes:
    payload = cbor.encode({"size": size, "root": root, "at": at})
    return envelope.seal(Purpose.TREE_HEAD, payload, signer.private_key, signer.certificate)


def open_head(
    raw: bytes,
    roots: Sequence[x509.Certificate],
    *,
    is_revoked: Callable[[x509.Certificate], bool] = lambda certificate: False,
) -> TreeHead:
    """A tree head whose signature and log-key certificate verified (LogInconsistent if not)."""
    try:
        opened = envelope.open_verified(Purpose.TREE_HEAD, raw, what="tree head")
        doc = cbor.expect_map(cbor.decode_canonical(opened.payload, what="tree head"), what="head")
        cbor.exact_keys(doc, ("size", "root", "at"), what="tree head")
        size = cbor.field(doc, "size", int, what="tree head")
        root = cbor.field(doc, "root", bytes, what="tree head")
        at = cbor.field(doc, "at", int, what="tree head")
        if size < 0 or len(root) != merkle.HASH_SIZE or not 0 <= at < 1 << 40:
            raise DecodeError("tree head fields out of range", reason=Reason.MALFORMED)
        pki.verify_log_signer(opened.signer, roots, at=datetime.fromtimestamp(at, tz=UTC))
    except HcxError as e:
        raise LogInconsistent(f"tree head refused: {e.message}", key=HEAD_KEY) from e
    if is_revoked(opened.signer):
        raise LogInconsistent("tree head signed by a revoked log key", key=HEAD_KEY)
    return TreeHead(size=size, root=bytes(root), at=at, signer=opened.signer, raw=bytes(raw))


@dataclass
class VerifiedLog:
    """What a reader has verified: the head, every leaf, the tree, the head's store revision."""

    head: TreeHead | None = None
    leaves: list[Leaf] = field(default_factory=list)
    tree: merkle.LogTree = field(default_factory=merkle.LogTree)
    head_revision: int = 0  # mod revision of log/head in the store (for compare-and-put)

    @property
    def size(self) -> int:
        return len(self.leaves)

    def extended(self, head: TreeHead, new: Sequence[Leaf], head_revision: int) -> VerifiedLog:
        """This log plus ``new`` leaves, if they are exactly what ``head`` signs (else raise)."""
        if head.size != self.size + len(new):
            raise LogInconsistent(
                f"tree head of size {head.size} does not follow {self.size} + {len(new)} leaves",
                key=HEAD_KEY,
            )
        if self.head is not None and head.at < self.head.at:
            raise LogInconsistent("tree head time went backwards", key=HEAD_KEY)
        tree = self.tree.copy()
        for leaf in new:
            tree.append(leaf.hash)
        if tree.root() != head.root:
            raise LogInconsistent(
                f"leaves {self.size}..{head.size - 1} do not hash to the tree head's root "
                "(edited, removed or reordered)",
                key=leaf_key(self.size),
            )
        return VerifiedLog(head, [*self.leaves, *new], tree, head_revision)


def verify_snapshot(
    snapshot: Snapshot,
    roots: Sequence[x509.Certificate],
    held: VerifiedLog,
    *,
    is_revoked: Callable[[x509.Certificate], bool] = lambda certificate: False,
) -> VerifiedLog:
    """The whole log in ``snapshot``, checked against itself and against ``held`` (the largest
    log this reader verified): raises LogInconsistent naming the first entry that is wrong."""
    leaves: dict[int, KvEntry] = {}
    head_entry: KvEntry | None = None
    for entry in snapshot.entries:
        if entry.key == HEAD_KEY:
            head_entry = entry
        elif (index := leaf_index(entry.key)) is not None:
            leaves[index] = entry
        elif not entry.key.startswith(ROUTING_PREFIXES):
            raise LogInconsistent(f"{entry.key} is in the store but not in the log", key=entry.key)
    if head_entry is None:
        if leaves or held.size:
            raise LogInconsistent(
                "the log's tree head is missing (deleted, or an older store restored)",
                key=HEAD_KEY,
            )
        return VerifiedLog()
    head = open_head(head_entry.value, roots, is_revoked=is_revoked)
    _check_leaf_keys(leaves, head.size)
    if head.size < held.size:
        raise LogInconsistent(
            f"the log shrank from {held.size} to {head.size} entries (rollback)", key=HEAD_KEY
        )
    stored = [_decode_leaf(leaves[i]) for i in range(head.size)]
    _check_prefix(stored, held)
    return VerifiedLog().extended(head, stored, head_entry.mod_revision)


def _check_leaf_keys(leaves: dict[int, KvEntry], size: int) -> None:
    for index in sorted(leaves):
        if index >= size:
            raise LogInconsistent(
                f"leaf {index} is in the store but not in the log (size {size})",
                key=leaf_key(index),
            )
    for index in range(size):
        if index not in leaves:
            raise LogInconsistent(f"leaf {index} is missing from the store", key=leaf_key(index))


def _check_prefix(stored: Sequence[Leaf], held: VerifiedLog) -> None:
    """The first ``held.size`` leaves are byte for byte the ones verified before."""
    for index, leaf in enumerate(held.leaves):
        if stored[index].raw != leaf.raw:
            raise LogInconsistent(
                f"leaf {index} differs from the one verified before (edited or replaced)",
                key=leaf_key(index),
            )


def _decode_leaf(entry: KvEntry) -> Leaf:
    try:
        return Leaf.decode(entry.value)
    except HcxError as e:
        raise LogInconsistent(f"{entry.key} is not a log leaf: {e.message}", key=entry.key) from e


class LogWriter:
    """Appends one signed statement: a leaf and the new tree head in one transaction."""

    def __init__(
        self, store: KvStore, signer: pki.Authority, *, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock

    def leaf(self, statement: bytes, *, actor: str) -> Leaf:
        return Leaf.make(statement, logged_at=int(self._clock()), actor=actor[:MAX_ACTOR_CHARS])

    async def append(self, log: VerifiedLog, leaf: Leaf) -> VerifiedLog:
        """``log`` plus ``leaf``, written; Conflict when another writer appended first."""
        tree = log.tree.copy()
        tree.append(leaf.hash)
        previous_at = log.head.at if log.head is not None else 0
        head_raw = sign_head(
            size=tree.size, root=tree.root(), at=max(leaf.logged_at, previous_at),
            signer=self._signer,
        )  # fmt: skip
        revision = await self._store.transact(
            [
                Write(leaf_key(log.size), leaf.raw, expect_revision=0),
                Write(HEAD_KEY, head_raw, expect_revision=log.head_revision),
            ]
        )
        head = TreeHead(
            size=tree.size, root=tree.root(), at=max(leaf.logged_at, previous_at),
            signer=self._signer.certificate, raw=head_raw,
        )  # fmt: skip
        return VerifiedLog(head, [*log.leaves, leaf], tree, revision)
