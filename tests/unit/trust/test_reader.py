"""Reading the registry log from an untrusted store: every tamper is detected, none un-revokes.

A reader that verified the log once (with a revocation in it) is shown the store after each
tamper an attacker with store write access could make. It must refuse the new state, name the
entry, and keep serving what it verified: the revoked key stays revoked. A fresh reader (no
held state) must refuse the tampered store too, except where the tamper leaves a log that
verifies by itself (a truncated store with an older head, or an older snapshot): those are
caught by the held head of an existing reader or by the trust list a fresh one starts from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import cbor2
import pytest

from simulations.registry_builder import RegistryBuilder
from trust import cbor
from trust.errors import VerificationError
from trust.kv import EventKind, KvEntry, KvEvent, Snapshot
from trust.log import HEAD_KEY, Leaf, LogInconsistent, VerifiedLog, leaf_key, verify_snapshot
from trust.model import Reason
from trust.reader import (
    PARALLEL_FROM,
    LogReader,
    NeedsFullRead,
    encode_saved,
    load_saved,
    open_in_parallel,
)
from trust.routes import NodeRoute, encode_route
from trust.statements import ROOT_ISSUER, CertRevocation, DscRevocation, Suspension
from trust.verify import check_code
from trust.view import TrustView

NOW = 1_760_000_000  # a fixed past clock: anything issued at the machine's clock fails at once
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


# -- refusals name what was wrong ------------------------------------------------------------------
def _event(kind: EventKind, key: str, value: bytes = b"", revision: int = 2000) -> KvEvent:
    return KvEvent(kind, key, value, revision)


@pytest.mark.parametrize(
    ("event", "message", "key"),
    [
        pytest.param(lambda w: _event(EventKind.DELETE, leaf_key(2)),
                     "log/leaf/000000000002 was deleted from the store", leaf_key(2),
                     id="a leaf deleted"),
        pytest.param(lambda w: _event(EventKind.DELETE, HEAD_KEY), "log/head was deleted",
                     HEAD_KEY, id="the head deleted"),
        pytest.param(lambda w: _event(EventKind.PUT, leaf_key(1), w.builder.leaves[2].raw),
                     "leaf 1 was overwritten in the store", leaf_key(1),
                     id="a leaf overwritten"),
        pytest.param(lambda w: _event(EventKind.PUT, "dsc/00", b"x"),
                     "dsc/00 is in the store but not in the log", "dsc/00",
                     id="a value outside the log"),
        pytest.param(lambda w: _event(EventKind.PUT, "log/leaf/1", b"x"),
                     "log/leaf/1 is in the store but not in the log", "log/leaf/1",
                     id="a leaf key of the wrong form"),
        pytest.param(lambda w: _event(EventKind.PUT, leaf_key(len(w.builder.leaves)), b"\xa0"),
                     "is not a log leaf: log leaf must have exactly the keys", None,
                     id="a new leaf that is not one"),
        pytest.param(lambda w: _event(EventKind.PUT, HEAD_KEY, w.builder.head(3)),
                     r"the tree head went back from \d+ to 3 \(rollback\)", HEAD_KEY,
                     id="an older head put back"),
        pytest.param(lambda w: _event(EventKind.PUT, HEAD_KEY, b"\x00"), "tree head refused",
                     HEAD_KEY, id="a head that is not one"),
    ],
)  # fmt: skip
def test_watched_tampering_is_reported_once_naming_the_entry(
    world: World, event: Callable[[World], KvEvent], message: str, key: str | None
) -> None:
    seen: list[LogInconsistent] = []
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view, on_inconsistent=seen.append)
    assert reader.load(world.builder.snapshot())
    tampered = event(world)
    reader.apply(tampered)
    assert len(seen) == 1 and seen[0] is reader.inconsistent
    assert re.search(message, seen[0].message), seen[0].message
    assert seen[0].key == (tampered.key if key is None else key)
    reader.apply(event(world))  # the same again: already inconsistent, reported once
    assert len(seen) == 1


def test_a_leaf_written_again_with_its_own_bytes_is_not_tampering(world: World) -> None:
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view)
    assert reader.load(world.builder.snapshot())
    reader.apply(_event(EventKind.PUT, leaf_key(1), world.builder.leaves[1].raw))
    assert reader.inconsistent is None


def test_an_inconsistent_reader_takes_no_log_change_until_a_full_read(world: World) -> None:
    builder = world.builder
    seen: list[LogInconsistent] = []
    view = TrustView(roots=builder.roots)
    reader = LogReader(view, on_inconsistent=seen.append)
    assert reader.load(builder.snapshot(3))
    reader.apply(_event(EventKind.PUT, "dsc/00", b"x"))
    for event in _events(builder.snapshot(), 3, 3000):
        reader.apply(event)  # valid appends, but the reader no longer trusts the store
    assert view.revision == 3 and len(seen) == 1
    assert not reader.load(delete_the_head(world, builder.snapshot()))
    assert len(seen) == 1, "still the same episode: reported once"
    assert reader.load(builder.snapshot())
    assert reader.inconsistent is None and view.revision == len(builder.leaves)
    reader.apply(_event(EventKind.DELETE, leaf_key(0), revision=4000))
    assert len(seen) == 2, "a new episode after recovery is reported again"


def test_a_full_read_forgets_leaves_seen_before_it(world: World) -> None:
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot(3))
    reader.apply(_event(EventKind.PUT, leaf_key(3), builder.leaves[3].raw, revision=10))
    assert reader.load(builder.snapshot(3))
    with pytest.raises(NeedsFullRead, match=r"leaves 3\.\.3 were not seen"):
        reader.apply(_event(EventKind.PUT, HEAD_KEY, builder.head(4), revision=11))


def test_a_refusal_forgets_leaves_seen_before_it(world: World) -> None:
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot(3))
    reader.apply(_event(EventKind.PUT, leaf_key(3), builder.leaves[3].raw, revision=10))
    assert not reader.load(delete_the_head(world, builder.snapshot()))
    assert reader.load(builder.snapshot(3))
    with pytest.raises(NeedsFullRead):
        reader.apply(_event(EventKind.PUT, HEAD_KEY, builder.head(4), revision=11))


def test_a_head_whose_leaves_were_not_all_seen_names_them(world: World) -> None:
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot(3))
    reader.apply(_event(EventKind.PUT, leaf_key(4), builder.leaves[4].raw, revision=10))
    size = len(builder.leaves)
    with pytest.raises(NeedsFullRead, match=rf"leaves 3\.\.{size - 1} were not seen"):
        reader.apply(_event(EventKind.PUT, HEAD_KEY, builder.head(), revision=11))
    assert view.revision == 3 and reader.inconsistent is None


def test_leaves_ahead_of_a_head_wait_for_the_next_head(world: World) -> None:
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot(3))
    reader.apply(_event(EventKind.PUT, leaf_key(3), builder.leaves[3].raw, revision=10))
    reader.apply(_event(EventKind.PUT, leaf_key(4), builder.leaves[4].raw, revision=11))
    reader.apply(_event(EventKind.PUT, HEAD_KEY, builder.head(4), revision=12))
    assert view.revision == 4 and view.log.head_revision == 12
    reader.apply(_event(EventKind.PUT, HEAD_KEY, builder.head(5), revision=13))
    assert view.revision == 5 and reader.inconsistent is None
    with pytest.raises(NeedsFullRead, match=r"leaves 5\.\.5 were not seen"):
        reader.apply(_event(EventKind.PUT, HEAD_KEY, builder.head(6), revision=14))


def test_a_head_signed_again_at_the_same_size_is_taken(world: World) -> None:
    """Another gateway (or a repair) may sign the same tree again, later: nothing to refuse."""
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot())
    again = builder.head(at=NOW + 60)
    reader.apply(_event(EventKind.PUT, HEAD_KEY, again, revision=5000))
    assert reader.inconsistent is None
    assert view.log.head is not None and view.log.head.raw == again
    assert view.log.head_revision == 5000 and view.revision == len(builder.leaves)


def test_the_echo_of_an_append_this_process_made_is_ignored(world: World) -> None:
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot())
    at = view.log.head_revision
    assert at == len(builder.leaves)
    reader.apply(_event(EventKind.PUT, HEAD_KEY, b"not even a head", revision=at))
    reader.apply(_event(EventKind.DELETE, leaf_key(0), revision=at - 1))
    assert reader.inconsistent is None
    reader.apply(_event(EventKind.PUT, HEAD_KEY, b"not even a head", revision=at + 1))
    assert reader.inconsistent is not None


def test_a_grown_log_appended_by_this_process_is_installed_once(world: World) -> None:
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot(3))
    grown = verify_snapshot(builder.snapshot(5), builder.roots, view.log)
    reader.install_appended(grown)
    assert view.log is grown and view.revision == 5
    reader.install_appended(verify_snapshot(builder.snapshot(4), builder.roots, VerifiedLog()))
    reader.install_appended(grown)
    assert view.log is grown and len(view.decisions) == 5, "nothing smaller or equal, no repeat"


def test_an_own_append_the_watch_already_brought_keeps_the_store_revision_seen(
    world: World,
) -> None:
    """The next append compares against the head revision the watch saw last, not an older
    one the writer returned (which would make it conflict for nothing)."""
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot(3))
    written = verify_snapshot(builder.snapshot(4), builder.roots, view.log)
    for event in _events(builder.snapshot(4), 3, 7000):
        reader.apply(event)
    assert view.log.head_revision == 7000
    reader.install_appended(written)
    assert view.log.head_revision == 7000 and view.revision == 4


def test_an_inconsistent_reader_does_not_install_its_own_appends(world: World) -> None:
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot(3))
    reader.apply(_event(EventKind.PUT, "dsc/00", b"x"))
    reader.install_appended(verify_snapshot(builder.snapshot(5), builder.roots, view.log))
    assert view.revision == 3


# -- routes beside the log -------------------------------------------------------------------------
def _route(province: str, node_id: str) -> NodeRoute:
    owner = f"spiffe://hcx/province/{province}/node/{node_id}"
    return NodeRoute(province, node_id, "127.0.0.1:7000", owner, lease=3)


def test_a_full_read_installs_the_node_routes_and_no_handles(world: World) -> None:
    builder = world.builder
    route = _route(ZJ, "n1")
    snapshot = builder.snapshot()
    entries = _entries(snapshot)
    entries[route.key] = KvEntry(route.key, encode_route(route), 90)
    entries["handles/ab"] = KvEntry("handles/ab", b"\xa0", 90)
    view = TrustView(roots=builder.roots)
    assert LogReader(view).load(_with(snapshot, entries))
    assert view.routes() == [route]


def test_a_refused_full_read_keeps_the_routes_it_had(world: World) -> None:
    builder = world.builder
    route = _route(ZJ, "n1")
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    entries = _entries(builder.snapshot())
    entries[route.key] = KvEntry(route.key, encode_route(route), 90)
    assert reader.load(_with(builder.snapshot(), entries))
    assert not reader.load(delete_the_head(world, builder.snapshot()))
    assert view.routes() == [route]


def test_watched_routes_are_taken_even_while_the_log_is_refused(world: World) -> None:
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot())
    reader.apply(_event(EventKind.PUT, "dsc/00", b"x"))
    first, second = _route(ZJ, "n1"), _route(ZJ, "n2")
    reader.apply(_event(EventKind.PUT, first.key, encode_route(first), revision=1))
    reader.apply(_event(EventKind.PUT, second.key, encode_route(second), revision=2))
    reader.apply(_event(EventKind.PUT, "handles/ab", b"\xa0", revision=3))
    reader.apply(_event(EventKind.DELETE, "handles/ab", revision=4))
    assert view.nodes(ZJ) == [first, second]
    reader.apply(_event(EventKind.DELETE, first.key, revision=5))
    assert view.nodes(ZJ) == [second]


# -- pinned tree heads -----------------------------------------------------------------------------
def test_a_pinned_head_refuses_a_shorter_log_saying_so(world: World) -> None:
    builder = world.builder
    view = TrustView(roots=builder.roots)
    reader = LogReader(view, pinned=builder.head(5))
    assert not reader.load(builder.snapshot(4))
    assert reader.inconsistent is not None and reader.inconsistent.key == HEAD_KEY
    assert reader.inconsistent.message == (
        "the log has 4 entries, the pinned tree head 5 (an older store restored?)"
    )


@pytest.mark.parametrize("size", [pytest.param(5, id="as long"), pytest.param(6, id="longer")])
def test_a_pinned_head_refuses_a_fork(world: World, size: int) -> None:
    builder = world.builder
    fork = RegistryBuilder(clock=NOW, like=builder)
    for code in ("110000", "120000"):
        fork.onboard(code)
    assert len(fork.leaves) >= size
    view = TrustView(roots=builder.roots)
    reader = LogReader(view, pinned=builder.head(5))
    assert not reader.load(fork.snapshot(size))
    assert reader.inconsistent is not None
    assert reader.inconsistent.message == "the log does not extend the pinned tree head"


@pytest.mark.parametrize(
    "size", [pytest.param(5, id="the pinned log"), pytest.param(None, id="longer")]
)
def test_a_pinned_head_takes_a_log_that_extends_it(world: World, size: int | None) -> None:
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view, pinned=world.builder.head(5))
    assert reader.load(world.builder.snapshot(size))
    assert reader.inconsistent is None


def test_a_pinned_head_must_be_a_signed_tree_head(world: World) -> None:
    view = TrustView(roots=world.builder.roots)
    with pytest.raises(LogInconsistent, match="tree head refused"):
        LogReader(view, pinned=b"\x00")
    assert LogReader(view, pinned=b"").load(world.builder.snapshot(3)), "b'': nothing pinned"


# -- the log key -----------------------------------------------------------------------------------
def test_heads_of_a_log_key_the_log_revoked_are_refused(world: World) -> None:
    builder = world.builder
    serial = builder.log_signer.certificate.serial_number
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    builder.accept(builder.sign(CertRevocation(ROOT_ISSUER, serial, NOW, "key_compromise"),
                                "alice"))  # fmt: skip
    assert reader.load(builder.snapshot()), "the revocation itself is still under the old state"
    builder.onboard("110000")
    assert not reader.load(builder.snapshot())
    assert reader.inconsistent is not None
    assert reader.inconsistent.message == "tree head signed by a revoked log key"


def test_watched_heads_of_a_log_key_the_log_revoked_are_refused(world: World) -> None:
    builder = world.builder
    serial = builder.log_signer.certificate.serial_number
    builder.accept(builder.sign(CertRevocation(ROOT_ISSUER, serial, NOW, "key_compromise"),
                                "alice"))  # fmt: skip
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot())
    size = len(builder.leaves)
    builder.onboard("110000")
    for event in _events(builder.snapshot(), size, 5000):
        reader.apply(event)
    assert view.revision == size
    assert reader.inconsistent is not None
    assert reader.inconsistent.message == "tree head signed by a revoked log key"


def test_a_log_key_revoked_for_another_issuer_still_signs(world: World) -> None:
    builder = world.builder
    serial = builder.log_signer.certificate.serial_number
    builder.accept(builder.sign(CertRevocation(ZJ, serial, NOW, "key_compromise"), "alice"))
    view = TrustView(roots=builder.roots)
    reader = LogReader(view)
    assert reader.load(builder.snapshot())
    builder.onboard("110000")
    assert reader.load(builder.snapshot())


# -- statements opened in parallel -----------------------------------------------------------------
def _suspensions(builder: RegistryBuilder, count: int) -> list[Leaf]:
    return [
        Leaf.make(builder.sign(Suspension(ZJ, f"audit {i}"), "alice"), logged_at=NOW, actor="t")
        for i in range(count)
    ]


@pytest.mark.parametrize(
    "count",
    [
        pytest.param(PARALLEL_FROM, id="the threshold"),
        pytest.param(PARALLEL_FROM * 2 + 3, id="more"),
    ],
)
def test_many_statements_are_opened_in_their_order(world: World, count: int) -> None:
    leaves = _suspensions(world.builder, count)
    leaves[5] = Leaf.make(b"not a statement", logged_at=NOW, actor="t")
    opened = open_in_parallel(leaves)
    assert len(opened) == count and opened[5] is None
    for i, signed in enumerate(opened):
        if i != 5:
            assert signed is not None
            assert signed.statement.body == Suspension(ZJ, f"audit {i}")


def test_few_statements_are_left_to_the_fold(world: World) -> None:
    leaves = _suspensions(world.builder, PARALLEL_FROM - 1)
    assert open_in_parallel(leaves) == [None] * (PARALLEL_FROM - 1)
    assert open_in_parallel([]) == []


def test_a_long_log_folds_the_same_with_its_statements_opened_in_parallel(world: World) -> None:
    builder = world.builder
    for i in range(PARALLEL_FROM):
        builder.add(builder.sign(Suspension("510000", f"audit {i}"), "alice"))
    builder.add(builder.sign(DscRevocation(builder.provinces["510000"].kid, NOW, "unspecified"),
                             builder.provinces[ZJ].ca))  # fmt: skip
    view = builder.view()
    assert [d.accepted for d in view.decisions] == [d.accepted for d in builder.decisions]
    assert [d.effect for d in view.decisions] == [d.effect for d in builder.decisions]
    assert not view.decisions[-1].accepted
    assert reason(view, world.token) is Reason.KEY_REVOKED


# -- the saved view --------------------------------------------------------------------------------
def test_a_saved_view_round_trips_with_its_routes(world: World) -> None:
    builder = world.builder
    route = _route(ZJ, "n1")
    view = TrustView(roots=builder.roots)
    assert LogReader(view).load(builder.snapshot())
    view.put_route(route.key, encode_route(route))
    saved = encode_saved(view)
    again = TrustView(roots=builder.roots)
    assert load_saved(saved, LogReader(again))
    assert again.revision == view.revision and again.log.head == view.log.head
    assert again.routes() == [route]
    assert reason(again, world.token) is Reason.KEY_REVOKED
    assert again.log.head_revision == 0, "a file knows no store revision to compare against"


def test_a_saved_empty_view_loads_as_the_empty_log(world: World) -> None:
    saved = encode_saved(TrustView(roots=world.builder.roots))
    assert cbor.decode(saved, what="saved") == {"v": 1, "head": b"", "leaves": [], "routes": []}
    view = TrustView(roots=world.builder.roots)
    assert load_saved(saved, LogReader(view)) and view.revision == 0


def _saved(world: World, **changes: object) -> bytes:
    view = TrustView(roots=world.builder.roots)
    assert LogReader(view).load(world.builder.snapshot())
    doc = cbor.decode(encode_saved(view), what="saved")
    doc.update(changes)
    return cbor.encode({k: v for k, v in doc.items() if v is not None})


ROUTE = _route(ZJ, "n1")
_SAVED_KEYS = "saved view must have exactly the keys ['head', 'leaves', 'routes', 'v']"
SAVED_REFUSALS = [
    pytest.param({"v": 2}, "saved view format 2 not understood", id="another format"),
    pytest.param({"v": None}, _SAVED_KEYS, id="no format"),
    pytest.param({"extra": 1}, _SAVED_KEYS, id="an extra key"),
    pytest.param({"leaves": b"x"}, "saved view has the wrong shape", id="leaves not a list"),
    pytest.param({"routes": {}}, "saved view has the wrong shape", id="routes not a list"),
    pytest.param({"head": "x"}, "saved view has the wrong shape", id="head not bytes"),
    pytest.param({"leaves": [b"x", "y"]}, "saved view has a leaf that is not bytes",
                 id="a leaf not bytes"),
    pytest.param({"routes": [[ROUTE.key, encode_route(ROUTE), 1]]}, "saved view has a bad route",
                 id="a route of three parts"),
    pytest.param({"routes": [[ROUTE.key]]}, "saved view has a bad route",
                 id="a route of one part"),
    pytest.param({"routes": [(ROUTE.key, "x")]}, "saved view has a bad route",
                 id="a route value not bytes"),
    pytest.param({"routes": [[7, encode_route(ROUTE)]]}, "saved view has a bad route",
                 id="a route key not text"),
    pytest.param({"routes": [["handles/ab", b"x"]]}, "saved view has a bad route",
                 id="a handle"),
    pytest.param({"routes": [["log/head", b"x"]]}, "saved view has a bad route",
                 id="a log key as a route"),
    pytest.param({"routes": [ROUTE.key]}, "saved view has a bad route", id="a route not a pair"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "message"), SAVED_REFUSALS)
def test_a_saved_view_of_the_wrong_form_is_refused(
    world: World, changes: dict[str, object], message: str
) -> None:
    seen: list[LogInconsistent] = []
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view, on_inconsistent=seen.append)
    assert not load_saved(_saved(world, **changes), reader)
    assert view.revision == 0 and seen == [reader.inconsistent]
    assert reader.inconsistent is not None and reader.inconsistent.key == "view file"
    assert reader.inconsistent.message == f"saved view refused: {message}"


def test_a_saved_view_that_is_not_cbor_is_refused(world: World) -> None:
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view)
    assert not load_saved(b"\xff\x00", reader)
    assert reader.inconsistent is not None
    assert reader.inconsistent.message.startswith("saved view refused: ")
    assert not load_saved(cbor.encode([1]), reader)
    assert reader.inconsistent.message == "saved view refused: saved view must be a map"


@pytest.mark.parametrize(
    ("encode", "message"),
    [
        pytest.param(lambda doc: cbor2.dumps(dict(reversed(list(doc.items())))),
                     "saved view is not in deterministic CBOR form", id="keys out of order"),
        pytest.param(lambda doc: cbor.encode(doc) + b"\x00",
                     "saved view has trailing bytes after the CBOR item", id="trailing bytes"),
    ],
)  # fmt: skip
def test_a_saved_view_in_another_encoding_is_refused(
    world: World, encode: Callable[[dict[str, object]], bytes], message: str
) -> None:
    doc = cbor.decode(_saved(world), what="saved")
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view)
    assert not load_saved(encode(doc), reader)
    assert reader.inconsistent is not None
    assert reader.inconsistent.message == f"saved view refused: {message}"


def test_a_saved_view_without_its_head_is_refused_like_a_store(world: World) -> None:
    view = TrustView(roots=world.builder.roots)
    reader = LogReader(view)
    assert not load_saved(_saved(world, head=b""), reader)
    assert reader.inconsistent is not None and reader.inconsistent.key == HEAD_KEY
    assert "tree head is missing" in reader.inconsistent.message
