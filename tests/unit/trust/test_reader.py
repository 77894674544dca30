"""Reading the registry log from an untrusted store: every tamper is detected, none un-revokes.

A reader that verified the log once (with a revocation in it) is shown the store after each
tamper an attacker with store write access could make. It must refuse the new state, name the
entry, and keep serving what it verified: the revoked key stays revoked. A fresh reader (no
held state) must refuse the tampered store too, except where the tamper leaves a log that
verifies by itself (a truncated store with an older head, or an older snapshot): those are
caught by the held head of an existing reader or by the trust list a fresh one starts from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from tests.registry_builder import RegistryBuilder
from trust.errors import VerificationError
from trust.kv import EventKind, KvEntry, KvEvent, Snapshot
from trust.log import HEAD_KEY, LogInconsistent, leaf_key
from trust.model import Reason
from trust.reader import LogReader, NeedsFullRead, encode_saved, load_saved
from trust.statements import DscRevocation
from trust.verify import check_code
from trust.view import TrustView

NOW = int(time.time())
ZJ = "330000"


@dataclass
class World:
    builder: RegistryBuilder
    token: str  # a code signed with the key that is revoked below
    revoked_at: int  # the index of the revocation leaf


@pytest.fixture
def world() -> World:
    builder = RegistryBuilder(clock=NOW)
    zj = builder.onboard(ZJ, "浙江省")
    builder.onboard("510000", "四川省")
    token = zj.token(issued_at=NOW)
    builder.accept(builder.sign(DscRevocation(zj.kid, NOW, "key_compromise"), "alice"))
    builder.onboard("460000", "海南省")  # something after the revocation
    return World(builder, token, revoked_at=len(builder.leaves) - 4)


def reason(view: TrustView, token: str) -> Reason:
    try:
        check_code(token, view, now=NOW + 1)
    except VerificationError as e:
        return e.reason
    return Reason.NONE


def _entries(snapshot: Snapshot) -> dict[str, KvEntry]:
    return {e.key: e for e in snapshot.entries}


def _with(snapshot: Snapshot, entries: dict[str, KvEntry]) -> Snapshot:
    return Snapshot(tuple(sorted(entries.values(), key=lambda e: e.key)), snapshot.revision + 1)


def edit_a_leaf(w: World, s: Snapshot) -> Snapshot:
    entries = _entries(s)
    key = leaf_key(w.revoked_at)
    raw = bytearray(entries[key].value)
    raw[-5] ^= 0x01
    entries[key] = replace(entries[key], value=bytes(raw))
    return _with(s, entries)


def delete_the_revocation(w: World, s: Snapshot) -> Snapshot:
    entries = _entries(s)
    del entries[leaf_key(w.revoked_at)]
    return _with(s, entries)


def delete_the_head(w: World, s: Snapshot) -> Snapshot:
    entries = _entries(s)
    del entries[HEAD_KEY]
    return _with(s, entries)


def delete_everything(w: World, s: Snapshot) -> Snapshot:
    return Snapshot((), s.revision + 1)


def truncate_the_tail(w: World, s: Snapshot) -> Snapshot:
    """The last leaves removed and an older, validly signed head put back."""
    return w.builder.snapshot(w.revoked_at)


def replay_an_older_head(w: World, s: Snapshot) -> Snapshot:
    entries = _entries(s)
    entries[HEAD_KEY] = replace(entries[HEAD_KEY], value=w.builder.head(w.revoked_at))
    return _with(s, entries)


def reorder_two_leaves(w: World, s: Snapshot) -> Snapshot:
    entries = _entries(s)
    a, b = leaf_key(w.revoked_at), leaf_key(w.revoked_at + 1)
    entries[a], entries[b] = replace(entries[b], key=a), replace(entries[a], key=b)
    return _with(s, entries)


def move_a_value(w: World, s: Snapshot) -> Snapshot:
    entries = _entries(s)
    moved = entries.pop(leaf_key(w.revoked_at))
    entries["provinces/330000"] = replace(moved, key="provinces/330000")
    return _with(s, entries)


def add_a_value_outside_the_log(w: World, s: Snapshot) -> Snapshot:
    entries = _entries(s)
    entries["revoked/00"] = KvEntry("revoked/00", b"\xa0", 99)
    return _with(s, entries)


def add_a_leaf_past_the_head(w: World, s: Snapshot) -> Snapshot:
    entries = _entries(s)
    extra = leaf_key(len(w.builder.leaves))
    entries[extra] = KvEntry(extra, w.builder.leaves[0].raw, 99)
    return _with(s, entries)


def restore_an_older_snapshot(w: World, s: Snapshot) -> Snapshot:
    """The whole prefix replaced by what the store held before the revocation."""
    return w.builder.snapshot(w.revoked_at)


def forge_a_head(w: World, s: Snapshot) -> Snapshot:
    """A head over a log without the revocation, signed by a key that is not a log key."""
    entries = _entries(s)
    del entries[leaf_key(w.revoked_at)]
    signer, w.builder.log_signer = w.builder.log_signer, w.builder.coordinators["alice"]
    try:
        entries[HEAD_KEY] = replace(entries[HEAD_KEY], value=w.builder.head())
    finally:
        w.builder.log_signer = signer
    return _with(s, entries)


TAMPERS: list[tuple[str, Callable[[World, Snapshot], Snapshot], bool]] = [
    # name, tamper, whether a fresh reader (no held state) detects it on its own
    ("an edited leaf", edit_a_leaf, True),
    ("the revocation deleted", delete_the_revocation, True),
    ("the tree head deleted", delete_the_head, True),
    ("everything deleted", delete_everything, False),
    ("the tail truncated", truncate_the_tail, False),
    ("an older head replayed", replay_an_older_head, True),
    ("two leaves reordered", reorder_two_leaves, True),
    ("a value moved to another key", move_a_value, True),
    ("a value outside the log", add_a_value_outside_the_log, True),
    ("a leaf past the head", add_a_leaf_past_the_head, True),
    ("an older snapshot restored", restore_an_older_snapshot, False),
    ("a head signed by a coordinator", forge_a_head, True),
]


@pytest.mark.parametrize(("name", "tamper", "fresh"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_a_reader_that_verified_the_log_refuses_every_tamper(
    world: World, name: str, tamper: Callable[[World, Snapshot], Snapshot], fresh: bool
) -> None:
    view = TrustView(roots=world.builder.roots)
    seen: list[LogInconsistent] = []
    reader = LogReader(view, on_inconsistent=seen.append)
    assert reader.load(world.builder.snapshot())
    size = view.revision
    assert reason(view, world.token) is Reason.KEY_REVOKED

    assert not reader.load(tamper(world, world.builder.snapshot()))
    assert seen and seen[0].key, "the refusal names the entry"
    assert view.revision == size
    assert reason(view, world.token) is Reason.KEY_REVOKED  # what was revoked stays revoked


@pytest.mark.parametrize(("name", "tamper", "fresh"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_a_fresh_reader_refuses_what_the_store_alone_betrays(
    world: World, name: str, tamper: Callable[[World, Snapshot], Snapshot], fresh: bool
) -> None:
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view)
    loaded = reader.load(tamper(world, world.builder.snapshot()))
    assert loaded is not fresh
    if fresh:
        assert reader.inconsistent is not None
        assert reason(view, world.token) is Reason.UNKNOWN_KID  # nothing was taken


@pytest.mark.parametrize(("name", "tamper", "fresh"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_a_fresh_reader_with_a_pinned_head_refuses_every_tamper(
    world: World, name: str, tamper: Callable[[World, Snapshot], Snapshot], fresh: bool
) -> None:
    """A self-consistent older log (truncated, restored) verifies by itself: a fresh reader
    starts from a pinned tree head (or a trust list) to see it as the rollback it is."""
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view, pinned=world.builder.head())
    assert not reader.load(tamper(world, world.builder.snapshot()))
    assert reason(view, world.token) is Reason.UNKNOWN_KID


def test_a_fresh_reader_starting_from_a_saved_view_refuses_a_rollback(world: World) -> None:
    first = TrustView(roots=world.builder.roots)
    assert LogReader(first).load(world.builder.snapshot())
    saved = encode_saved(first)
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view)
    assert load_saved(saved, reader)
    assert not reader.load(restore_an_older_snapshot(world, world.builder.snapshot()))
    assert reason(view, world.token) is Reason.KEY_REVOKED


def test_a_saved_view_edited_on_disk_is_refused(world: World) -> None:
    view = TrustView(roots=world.builder.roots)
    assert LogReader(view).load(world.builder.snapshot())
    saved = bytearray(encode_saved(view))
    saved[len(saved) // 2] ^= 0x01
    fresh = TrustView(roots=world.builder.roots)
    reader = LogReader(fresh)
    assert not load_saved(bytes(saved), reader)
    assert fresh.revision == 0


# -- watched changes -------------------------------------------------------------------------------
def _events(snapshot: Snapshot, start: int, revision: int) -> list[KvEvent]:
    """The events of appending leaves ``start``… and the head, as a store's watch shows them."""
    entries = _entries(snapshot)
    size = len([k for k in entries if k.startswith("log/leaf/")])
    events = [
        KvEvent(EventKind.PUT, leaf_key(i), entries[leaf_key(i)].value, revision)
        for i in range(start, size)
    ]
    return [*events, KvEvent(EventKind.PUT, HEAD_KEY, entries[HEAD_KEY].value, revision)]


def test_watched_appends_are_verified_and_taken(world: World) -> None:
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot(3))
    for event in _events(builder.snapshot(), 3, 1000):
        reader.apply(event)
    assert view.revision == len(builder.leaves) and reader.inconsistent is None
    assert reason(view, world.token) is Reason.KEY_REVOKED


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(lambda w: KvEvent(EventKind.DELETE, leaf_key(w.revoked_at), b"", 2000),
                     id="a leaf deleted"),
        pytest.param(lambda w: KvEvent(EventKind.DELETE, HEAD_KEY, b"", 2000), id="head deleted"),
        pytest.param(lambda w: KvEvent(EventKind.PUT, leaf_key(1), w.builder.leaves[2].raw, 2000),
                     id="a leaf overwritten"),
        pytest.param(lambda w: KvEvent(EventKind.PUT, HEAD_KEY, w.builder.head(3), 2000),
                     id="an older head put back"),
        pytest.param(lambda w: KvEvent(EventKind.PUT, "dsc/00", b"x", 2000),
                     id="a value outside the log"),
    ],
)  # fmt: skip
def test_watched_tampering_is_refused(world: World, event: Callable[[World], KvEvent]) -> None:
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view)
    assert reader.load(world.builder.snapshot())
    size = view.revision
    reader.apply(event(world))
    assert reader.inconsistent is not None and view.revision == size
    assert reason(view, world.token) is Reason.KEY_REVOKED


def test_a_head_whose_leaves_were_not_seen_asks_for_a_full_read(world: World) -> None:
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view)
    assert reader.load(world.builder.snapshot(3))
    with pytest.raises(NeedsFullRead):
        reader.apply(KvEvent(EventKind.PUT, HEAD_KEY, world.builder.head(), 3000))


def test_refused_leaves_are_reported_and_change_nothing(world: World) -> None:
    builder = world.builder
    rejected: list[str] = []
    builder.add(builder.sign(DscRevocation(builder.provinces["510000"].kid, NOW, "unspecified"),
                             builder.provinces[ZJ].ca))  # fmt: skip
    view = builder.view(rejected=rejected)
    assert rejected == [leaf_key(len(builder.leaves) - 1)]
    assert view.signer(builder.provinces["510000"].kid).revoked_at is None  # type: ignore[union-attr]
