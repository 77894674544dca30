"""Restoring the registry's log in a store from a verified copy: re-append, never rewrite.

When the log in the store was tampered with (a leaf deleted or edited, the tail truncated, an
older backup restored), every gateway keeps serving its last verified view and refuses writes.
The way back is not to write anything new: a coordinator takes a verified copy of the log (a
gateway's persisted view, checked again here against the pinned roots: signed tree head,
leaves hashing to it) and puts back exactly those bytes — the missing or altered leaves, the
newest tree head — and removes values that are not in the log. Gateways see a store that
verifies again and recover by themselves. A store whose log is longer than the copy and does
not extend it (a fork) is refused: that needs people, not a tool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509

from trust.kv import KvStore, Write
from trust.log import HEAD_KEY, ROUTING_PREFIXES, LogInconsistent, leaf_index, leaf_key
from trust.reader import LogReader, load_saved
from trust.view import TrustView


@dataclass
class Repair:
    """What a repair wrote and removed (empty when the store was already sound)."""

    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def verified_copy(saved: bytes, roots: Sequence[x509.Certificate]) -> TrustView:
    """A saved view, verified from scratch (LogInconsistent if it does not verify)."""
    view = TrustView(roots=roots)
    reader = LogReader(view)
    if not load_saved(saved, reader):
        assert reader.inconsistent is not None
        raise reader.inconsistent
    return view


async def restore(store: KvStore, copy: TrustView, *, dry_run: bool = False) -> Repair:
    """Put the verified ``copy``'s leaves and head back where the store differs."""
    verified = copy.log
    if verified.head is None:
        raise LogInconsistent("the copy holds no log")
    snapshot = await store.read_prefix("")
    stored = {e.key: e for e in snapshot.entries}
    extra = [k for k in stored if (i := leaf_index(k)) is not None and i >= verified.size]
    if extra:
        raise LogInconsistent(
            f"the store's log is longer than the copy ({extra[0]} and more): a fork, not a "
            "tamper this copy can undo; compare the tree heads first",
            key=extra[0],
        )
    repair = Repair()
    for index, leaf in enumerate(verified.leaves):
        key = leaf_key(index)
        entry = stored.get(key)
        if entry is None or entry.value != leaf.raw:
            repair.restored.append(key)
            if not dry_run:
                await store.put(key, leaf.raw)
    for key in stored:
        if key != HEAD_KEY and leaf_index(key) is None and not key.startswith(ROUTING_PREFIXES):
            repair.removed.append(key)
            if not dry_run:
                await store.delete(key)
    head = stored.get(HEAD_KEY)
    if head is None or head.value != verified.head.raw:
        repair.restored.append(HEAD_KEY)
        if not dry_run:
            await store.transact([Write(HEAD_KEY, verified.head.raw)])
    return repair
