"""Reading the registry log from an untrusted store into a view, failing closed.

:class:`LogReader` takes what a store shows (a full read, then watched changes) and installs it
into a :class:`~trust.view.TrustView` only if it verifies as an extension of the largest log the
view holds: signed head, leaves 0 … size-1 exactly, root hash, the held prefix unchanged, no
value outside the log. Otherwise it records a :class:`~trust.log.LogInconsistent` naming the
entry, installs nothing, and keeps refusing new state until a full read verifies again (after a
coordinator restored the store by re-appending, docs/operations.md). Everything the held log
revoked therefore stays revoked, whatever is deleted, edited, reordered or rolled back.

The persisted form of a view (``encode_saved`` / ``load_saved``) is the signed head and the
leaves themselves: re-verifiable on load, so a file edited on disk is refused like a store.
Pure: no I/O.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from cryptography import x509

from trust import cbor
from trust.authority import RegistryState
from trust.errors import HcxError
from trust.kv import EventKind, KvEntry, KvEvent, Snapshot
from trust.log import (
    HEAD_KEY,
    ROUTING_PREFIXES,
    Leaf,
    LogInconsistent,
    VerifiedLog,
    leaf_index,
    leaf_key,
    open_head,
    verify_snapshot,
)
from trust.routes import encode_route
from trust.statements import ROOT_ISSUER, SignedStatement, open_statement
from trust.view import TrustView

SAVED_FORMAT = 1


class NeedsFullRead(Exception):
    """A watched change cannot be checked from what was seen (e.g. leaves not seen)."""


class LogReader:
    """Feeds a view from one store, one full read or watched event at a time."""

    def __init__(
        self,
        view: TrustView,
        *,
        on_inconsistent: Callable[[LogInconsistent], None] | None = None,
        pinned: bytes | None = None,
    ) -> None:
        """``pinned``: a signed tree head a fresh reader starts from (the log it takes must
        extend it), so a store restored from an old backup is a rollback for it too."""
        self.view = view
        self.inconsistent: LogInconsistent | None = None
        self._on_inconsistent = on_inconsistent
        self._pending: dict[int, Leaf] = {}
        self._pinned = open_head(pinned, view.state.roots) if pinned else None

    # -- full reads -----------------------------------------------------------------------------
    def load(self, snapshot: Snapshot) -> bool:
        """Take a full read; True when it verified (and was installed)."""
        routes = [(e.key, e.value) for e in snapshot.entries if e.key.startswith(ROUTING_PREFIXES)]
        try:
            verified = verify_snapshot(
                snapshot, self._roots(), self.view.log, is_revoked=self._log_key_revoked
            )
            self._check_pinned(verified)
        except LogInconsistent as e:
            self._fail(e)
            return False
        self._install(verified)
        self.view.set_routes(_routes_only(routes))
        self.inconsistent = None
        self._pending.clear()
        return True

    def _check_pinned(self, verified: VerifiedLog) -> None:
        pinned = self._pinned
        if pinned is None:
            return
        if verified.size < pinned.size:
            raise LogInconsistent(
                f"the log has {verified.size} entries, the pinned tree head {pinned.size} "
                "(an older store restored?)",
                key=HEAD_KEY,
            )
        if verified.tree.root_at(pinned.size) != pinned.root:
            raise LogInconsistent("the log does not extend the pinned tree head", key=HEAD_KEY)

    # -- watched changes ------------------------------------------------------------------------
    def apply(self, event: KvEvent) -> None:
        """One watched change, in store order. Raises NeedsFullRead when the change cannot be
        checked incrementally; records inconsistencies (and then ignores the log)."""
        key = event.key
        if key.startswith(ROUTING_PREFIXES):
            self._route(event)
            return
        if self.inconsistent is not None:
            return  # nothing more is taken until a full read verifies again
        if event.revision <= self.view.log.head_revision:
            return  # already in the view: the echo of an append this process made itself
        try:
            self._log_event(event)
        except LogInconsistent as e:
            self._fail(e)

    def _log_event(self, event: KvEvent) -> None:
        key = event.key
        if event.kind is EventKind.DELETE:
            raise LogInconsistent(f"{key} was deleted from the store", key=key)
        if key == HEAD_KEY:
            self._head(event)
            return
        index = leaf_index(key)
        if index is None:
            raise LogInconsistent(f"{key} is in the store but not in the log", key=key)
        if index < self.view.log.size:
            if event.value != self.view.log.leaves[index].raw:
                raise LogInconsistent(f"leaf {index} was overwritten in the store", key=key)
            return
        try:
            self._pending[index] = Leaf.decode(event.value)
        except HcxError as e:
            raise LogInconsistent(f"{key} is not a log leaf: {e.message}", key=key) from e

    def _head(self, event: KvEvent) -> None:
        head = open_head(event.value, self._roots(), is_revoked=self._log_key_revoked)
        held = self.view.log
        if head.size < held.size:
            raise LogInconsistent(
                f"the tree head went back from {held.size} to {head.size} (rollback)", key=HEAD_KEY
            )
        missing = [i for i in range(held.size, head.size) if i not in self._pending]
        if missing:
            raise NeedsFullRead(f"leaves {missing[0]}..{missing[-1]} were not seen")
        new = [self._pending.pop(i) for i in range(held.size, head.size)]
        self._install(held.extended(head, new, event.revision))
        for index in [i for i in self._pending if i < head.size]:
            del self._pending[index]

    def _route(self, event: KvEvent) -> None:
        if not event.key.startswith("nodes/"):
            return  # handles only serve the gateway's registration checks
        if event.kind is EventKind.DELETE:
            self.view.drop_route(event.key)
        else:
            self.view.put_route(event.key, event.value)

    # -- helpers ------------------------------------------------------------------------------
    def install_appended(self, verified: VerifiedLog) -> None:
        """A log this process appended itself (already verified by construction); ignored if
        the watch already brought the view to it."""
        if verified.size > self.view.log.size and self.inconsistent is None:
            self._install(verified)

    def _install(self, verified: VerifiedLog) -> None:
        held = self.view.log
        state = (
            self.view.state.copy()
            if held.size
            else RegistryState(pinned_roots=self.view.pinned_roots)
        )
        new = verified.leaves[held.size :]
        opened = open_in_parallel(new)
        decisions = [state.apply(leaf, opened=o) for leaf, o in zip(new, opened, strict=True)]
        self.view.install(verified, state, decisions)

    def _roots(self) -> Sequence[x509.Certificate]:
        return self.view.state.roots

    def _log_key_revoked(self, certificate: x509.Certificate) -> bool:
        return self.view.state.caller_revoked(
            issuer=ROOT_ISSUER, serial=certificate.serial_number, now=float("inf")
        )

    def _fail(self, error: LogInconsistent) -> None:
        first = self.inconsistent is None
        self.inconsistent = error
        self._pending.clear()
        if first and self._on_inconsistent is not None:
            self._on_inconsistent(error)


PARALLEL_FROM = 64  # below this many leaves a thread hop costs more than it saves


def open_in_parallel(leaves: Sequence[Leaf]) -> list[SignedStatement | None]:
    """Every leaf's statement decoded and its signature checked, on a few threads
    (cryptography releases the GIL while verifying); None where that failed (``apply`` then
    repeats it and records the refusal)."""
    if len(leaves) < PARALLEL_FROM:
        return [None] * len(leaves)
    workers = min(4, os.cpu_count() or 1)
    chunk = -(-len(leaves) // workers)
    parts = [leaves[i : i + chunk] for i in range(0, len(leaves), chunk)]
    with ThreadPoolExecutor(workers, thread_name_prefix="log-verify") as pool:
        results = list(pool.map(_open_all, parts))
    return [signed for part in results for signed in part]


def _open_all(leaves: Sequence[Leaf]) -> list[SignedStatement | None]:
    opened: list[SignedStatement | None] = []
    for leaf in leaves:
        try:
            opened.append(open_statement(leaf.statement))
        except HcxError:
            opened.append(None)
    return opened


def _routes_only(entries: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in entries if k.startswith("nodes/")]


# -- persistence ---------------------------------------------------------------------------
def encode_saved(view: TrustView) -> bytes:
    """The view as a file: the signed head, every leaf, and the routes (re-verified on load)."""
    head = view.log.head
    return cbor.encode(
        {
            "v": SAVED_FORMAT,
            "head": head.raw if head is not None else b"",
            "leaves": [leaf.raw for leaf in view.log.leaves],
            "routes": [[r.key, encode_route(r)] for r in view.routes()],
        }
    )


def load_saved(data: bytes, reader: LogReader) -> bool:
    """Install a saved view through ``reader`` (so it is verified like a store read)."""
    try:
        doc = cbor.expect_map(cbor.decode_canonical(data, what="saved view"), what="saved view")
        cbor.exact_keys(doc, ("v", "head", "leaves", "routes"), what="saved view")
        if doc["v"] != SAVED_FORMAT:
            raise LogInconsistent(f"saved view format {doc['v']!r} not understood")
        entries = _saved_entries(doc)
    except HcxError as e:
        reader._fail(LogInconsistent(f"saved view refused: {e.message}", key="view file"))
        return False
    return reader.load(Snapshot(tuple(entries), 0))


def _saved_entries(doc: dict[str, object]) -> list[KvEntry]:
    leaves, routes, head = doc["leaves"], doc["routes"], doc["head"]
    if not isinstance(leaves, list) or not isinstance(routes, list) or not isinstance(head, bytes):
        raise LogInconsistent("saved view has the wrong shape")
    if not all(type(raw) is bytes for raw in leaves):
        raise LogInconsistent("saved view has a leaf that is not bytes")
    entries = [KvEntry(leaf_key(i), raw, 0) for i, raw in enumerate(leaves)]
    if head:
        entries.append(KvEntry(HEAD_KEY, head, 0))
    for item in routes:
        if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is str
                and type(item[1]) is bytes and item[0].startswith("nodes/")):  # fmt: skip
            raise LogInconsistent("saved view has a bad route")
        entries.append(KvEntry(item[0], item[1], 0))
    return entries
