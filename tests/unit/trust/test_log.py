"""The registry log itself: leaves, signed tree heads, a store's log checked against the held one,
and the atomic append. Every refusal is a LogInconsistent that names the entry and says why.

Each row builds a real signed log (simulations.registry_builder) and changes one thing in it:
a leaf's key or bytes, a field of the tree head, the log key, the held state it must extend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from simulations.registry_builder import RegistryBuilder
from trust import cbor, envelope, merkle
from trust.envelope import Purpose
from trust.errors import Conflict, DecodeError
from trust.kv import KvEntry, Snapshot
from trust.log import (
    HEAD_KEY,
    MAX_ACTOR_CHARS,
    Leaf,
    LogInconsistent,
    LogWriter,
    VerifiedLog,
    leaf_index,
    leaf_key,
    open_head,
    sign_head,
    verify_snapshot,
)
from trust.model import Reason
from trust.statements import Suspension
from trust.stores.embedded import EmbeddedStore

NOW = 1_760_000_000  # a fixed past clock: anything issued at the machine's clock fails at once
ZJ = "330000"


@pytest.fixture
def builder() -> RegistryBuilder:
    b = RegistryBuilder(clock=NOW)
    b.onboard(ZJ, "浙江省")
    return b


def _seal_head(builder: RegistryBuilder, doc: object) -> bytes:
    """A tree head of any content, signed by the real log key."""
    signer = builder.log_signer
    return envelope.seal(
        Purpose.TREE_HEAD, cbor.encode(doc), signer.private_key, signer.certificate
    )


def _entries(snapshot: Snapshot) -> dict[str, KvEntry]:
    return {e.key: e for e in snapshot.entries}


def _snapshot(entries: dict[str, KvEntry]) -> Snapshot:
    return Snapshot(tuple(sorted(entries.values(), key=lambda e: e.key)), 100)


# -- leaf keys ------------------------------------------------------------------------------------
def test_a_leaf_key_is_its_index_in_twelve_digits() -> None:
    assert leaf_key(0) == "log/leaf/000000000000"
    assert leaf_key(4711) == "log/leaf/000000004711"
    assert leaf_index(leaf_key(4711)) == 4711


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("000000000001", id="the digits without the prefix"),
        pytest.param("log/leaf/00000000001", id="eleven digits"),
        pytest.param("log/leaf/0000000000001", id="thirteen digits"),
        pytest.param("log/leaf/00000000000a", id="a letter"),
        pytest.param("log/leaf/-00000000001", id="a sign"),
        pytest.param("log/leaf/" + "\u0661" * 12, id="arabic-indic digits"),
        pytest.param("x/log/leaf/000000000001", id="under another prefix"),
        pytest.param("log/leaf/", id="no digits"),
    ],
)
def test_a_key_that_is_not_exactly_a_leaf_key_has_no_index(key: str) -> None:
    assert leaf_index(key) is None


# -- leaves ---------------------------------------------------------------------------------------
def _leaf_doc(**changes: object) -> bytes:
    doc: dict[str, object] = {"statement": b"signed", "logged_at": NOW, "actor": "gw-1"}
    doc.update(changes)
    return cbor.encode({k: v for k, v in doc.items() if v is not None})


def test_a_leaf_round_trips_with_its_rfc_9162_hash() -> None:
    leaf = Leaf.make(b"signed statement", logged_at=NOW, actor="spiffe://hcx/national/gateway/a")
    again = Leaf.decode(leaf.raw)
    assert again == leaf
    assert (again.statement, again.logged_at, again.actor) == (
        b"signed statement",
        NOW,
        "spiffe://hcx/national/gateway/a",
    )
    assert leaf.hash == merkle.leaf_hash(leaf.raw)
    assert leaf.raw == cbor.encode(
        {"statement": b"signed statement", "logged_at": NOW, "actor": leaf.actor}
    )


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_leaf_doc(actor="a" * MAX_ACTOR_CHARS), id="actor of the longest length"),
        pytest.param(_leaf_doc(actor=""), id="an empty actor"),
        pytest.param(_leaf_doc(logged_at=0), id="logged at time 0"),
        pytest.param(_leaf_doc(logged_at=(1 << 40) - 1), id="the latest time"),
        pytest.param(_leaf_doc(statement=b""), id="an empty statement (apply refuses it)"),
    ],
)
def test_leaf_edges_that_decode(raw: bytes) -> None:
    assert Leaf.decode(raw).raw == raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(_leaf_doc(actor="a" * (MAX_ACTOR_CHARS + 1)), "actor or time out of range",
                     id="actor one character too long"),
        pytest.param(_leaf_doc(logged_at=-1), "actor or time out of range", id="negative time"),
        pytest.param(_leaf_doc(logged_at=1 << 40), "actor or time out of range",
                     id="time past 2^40"),
        pytest.param(_leaf_doc(actor=7), "'actor' must be str", id="actor not text"),
        pytest.param(_leaf_doc(logged_at="now"), "'logged_at' must be int", id="time not an int"),
        pytest.param(_leaf_doc(statement="text"), "'statement' must be bytes",
                     id="statement not bytes"),
        pytest.param(_leaf_doc(extra=1), "exactly the keys", id="an extra key"),
        pytest.param(_leaf_doc(actor=None), "exactly the keys", id="no actor"),
        pytest.param(cbor.encode([1, 2]), "must be a map", id="not a map"),
        pytest.param(_leaf_doc() + b"\x00", "trailing bytes", id="trailing bytes"),
    ],
)  # fmt: skip
def test_leaves_that_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as refused:
        Leaf.decode(raw)
    assert refused.value.reason in (Reason.MALFORMED, Reason.BAD_ENCODING)


def test_a_leaf_out_of_range_is_malformed() -> None:
    with pytest.raises(DecodeError) as refused:
        Leaf.decode(_leaf_doc(logged_at=-1))
    assert refused.value.reason is Reason.MALFORMED


# -- tree heads -----------------------------------------------------------------------------------
def test_a_signed_tree_head_opens_with_its_fields_and_signer(builder: RegistryBuilder) -> None:
    root = merkle.root([leaf.hash for leaf in builder.leaves])
    raw = sign_head(size=len(builder.leaves), root=root, at=NOW, signer=builder.log_signer)
    head = open_head(raw, builder.roots)
    assert (head.size, head.root, head.at, head.raw) == (len(builder.leaves), root, NOW, raw)
    assert head.signer == builder.log_signer.certificate


def _head_doc(builder: RegistryBuilder, **changes: object) -> dict[str, Any]:
    doc: dict[str, Any] = {"size": 1, "root": merkle.root([builder.leaves[0].hash]), "at": NOW}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


HEAD_REFUSALS: list[Any] = [
    pytest.param(lambda b: _seal_head(b, _head_doc(b, size=-1)), "fields out of range",
                 id="negative size"),
    pytest.param(lambda b: _seal_head(b, _head_doc(b, root=b"\0" * 31)), "fields out of range",
                 id="root of 31 bytes"),
    pytest.param(lambda b: _seal_head(b, _head_doc(b, root=b"\0" * 33)), "fields out of range",
                 id="root of 33 bytes"),
    pytest.param(lambda b: _seal_head(b, _head_doc(b, at=-1)), "fields out of range",
                 id="negative time"),
    pytest.param(lambda b: _seal_head(b, _head_doc(b, at=1 << 40)), "fields out of range",
                 id="time past 2^40"),
    pytest.param(lambda b: _seal_head(b, _head_doc(b, at=0)), "log signer is not yet valid",
                 id="dated 1970, before the log key existed"),
    pytest.param(lambda b: _seal_head(b, _head_doc(b, size="1")), "'size' must be int",
                 id="size not an int"),
    pytest.param(lambda b: _seal_head(b, _head_doc(b, root="00")), "'root' must be bytes",
                 id="root not bytes"),
    pytest.param(lambda b: _seal_head(b, _head_doc(b, at=None)), "exactly the keys",
                 id="no time"),
    pytest.param(lambda b: _seal_head(b, _head_doc(b, signer="log")), "exactly the keys",
                 id="an extra field"),
    pytest.param(lambda b: _seal_head(b, [1, b"", NOW]), "must be a map", id="not a map"),
    pytest.param(
        lambda b: envelope.seal(Purpose.TREE_HEAD, cbor.encode(_head_doc(b)),
                                b.coordinators["alice"].private_key,
                                b.coordinators["alice"].certificate),
        "tree head refused: log signer", id="signed by a coordinator"),
    pytest.param(
        lambda b: envelope.seal(Purpose.TRUST_LIST, cbor.encode(_head_doc(b)),
                                b.log_signer.private_key, b.log_signer.certificate),
        "tree head refused: .*signature", id="a log key's signature for another purpose"),
    pytest.param(lambda b: b"\x00", "tree head refused", id="not an envelope"),
    pytest.param(lambda b: b"\x00" * (envelope.MAX_ENVELOPE_BYTES + 1),
                 f"^tree head refused: tree head is not bytes of at most "
                 f"{envelope.MAX_ENVELOPE_BYTES}$", id="too large to be one"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "message"), HEAD_REFUSALS)
def test_tree_heads_that_are_refused(
    builder: RegistryBuilder, make: Callable[[RegistryBuilder], bytes], message: str
) -> None:
    with pytest.raises(LogInconsistent, match=message) as refused:
        open_head(make(builder), builder.roots)
    assert refused.value.key == HEAD_KEY
    assert refused.value.reason is Reason.LOG_INCONSISTENT


def test_a_refusal_that_names_no_entry_has_an_empty_key() -> None:
    refused = LogInconsistent("the gateways disagree")
    assert (refused.key, refused.message, refused.reason) == (
        "",
        "the gateways disagree",
        Reason.LOG_INCONSISTENT,
    )


def test_a_tree_head_of_a_revoked_log_key_is_refused(builder: RegistryBuilder) -> None:
    asked: list[object] = []

    def revoked(certificate: object) -> bool:
        asked.append(certificate)
        return True

    with pytest.raises(LogInconsistent, match="signed by a revoked log key") as refused:
        open_head(builder.head(), builder.roots, is_revoked=revoked)
    assert refused.value.key == HEAD_KEY
    assert asked == [builder.log_signer.certificate]


def test_a_tree_head_under_another_root_is_refused(builder: RegistryBuilder) -> None:
    other = RegistryBuilder(clock=NOW)
    with pytest.raises(LogInconsistent, match="tree head refused"):
        open_head(builder.head(), other.roots)


def test_the_empty_tree_has_a_head_too(builder: RegistryBuilder) -> None:
    head = open_head(builder.head(0), builder.roots)
    assert (head.size, head.root) == (0, merkle.EMPTY_ROOT)


# -- extending a verified log -------------------------------------------------------------------
def _verified(builder: RegistryBuilder, size: int) -> VerifiedLog:
    return verify_snapshot(builder.snapshot(size), builder.roots, VerifiedLog())


def test_a_log_extended_by_the_leaves_its_head_signs(builder: RegistryBuilder) -> None:
    held = _verified(builder, 2)
    head = open_head(builder.head(), builder.roots)
    extended = held.extended(head, builder.leaves[2:], head_revision=77)
    assert extended.size == len(builder.leaves)
    assert extended.leaves == builder.leaves
    assert extended.head == head and extended.head_revision == 77
    assert extended.tree.root() == head.root
    assert held.size == 2 and held.tree.size == 2, "the held log is left alone"


@pytest.mark.parametrize(
    ("held_size", "new", "message", "key"),
    [
        pytest.param(2, slice(2, -1), r"tree head of size 4 does not follow 2 \+ 1 leaves",
                     HEAD_KEY, id="one leaf short"),
        pytest.param(2, slice(1, None), r"tree head of size 4 does not follow 2 \+ 3 leaves",
                     HEAD_KEY, id="one leaf too many"),
        pytest.param(2, slice(1, 3), r"leaves 2\.\.3 do not hash to the tree head's root",
                     leaf_key(2), id="the right count, the wrong leaves"),
    ],
)  # fmt: skip
def test_an_extension_the_head_does_not_sign_is_refused(
    builder: RegistryBuilder, held_size: int, new: slice, message: str, key: str
) -> None:
    held = _verified(builder, held_size)
    head = open_head(builder.head(), builder.roots)
    with pytest.raises(LogInconsistent, match=message) as refused:
        held.extended(head, builder.leaves[new], head_revision=9)
    assert refused.value.key == key


def test_a_tree_head_whose_time_went_backwards_is_refused(builder: RegistryBuilder) -> None:
    held = _verified(builder, 2)
    assert held.head is not None and held.head.at == NOW
    earlier = open_head(builder.head(at=NOW - 1), builder.roots)
    with pytest.raises(LogInconsistent, match="tree head time went backwards") as refused:
        held.extended(earlier, builder.leaves[2:], head_revision=9)
    assert refused.value.key == HEAD_KEY
    same_time = open_head(builder.head(at=NOW), builder.roots)
    assert held.extended(same_time, builder.leaves[2:], 9).size == len(builder.leaves)


# -- a store's log against the held one ---------------------------------------------------------
def test_a_store_log_verifies_with_its_head_revision(builder: RegistryBuilder) -> None:
    snapshot = builder.snapshot()
    verified = verify_snapshot(snapshot, builder.roots, VerifiedLog())
    assert verified.size == len(builder.leaves)
    assert [leaf.raw for leaf in verified.leaves] == [leaf.raw for leaf in builder.leaves]
    assert (
        verified.head_revision == _entries(snapshot)[HEAD_KEY].mod_revision == len(builder.leaves)
    )
    assert verified.head is not None and verified.head.raw == _entries(snapshot)[HEAD_KEY].value


def test_routing_keys_beside_the_log_are_not_tampering(builder: RegistryBuilder) -> None:
    entries = _entries(builder.snapshot())
    for key in ("nodes/330000/n1", "handles/ab"):
        entries[key] = KvEntry(key, b"anything", 5)
    assert verify_snapshot(_snapshot(entries), builder.roots, VerifiedLog()).size == len(
        builder.leaves
    )


def test_an_empty_store_is_the_empty_log_for_a_fresh_reader(builder: RegistryBuilder) -> None:
    verified = verify_snapshot(Snapshot((), 0), builder.roots, VerifiedLog())
    assert (verified.size, verified.head, verified.head_revision) == (0, None, 0)
    routes_only = Snapshot((KvEntry("nodes/330000/n1", b"x", 3),), 3)
    assert verify_snapshot(routes_only, builder.roots, VerifiedLog()).size == 0


def _truncate(b: RegistryBuilder, entries: dict[str, KvEntry], size: int) -> None:
    """The tail removed and the older, validly signed head of ``size`` put back."""
    for i in range(size, len(b.leaves)):
        entries.pop(leaf_key(i))
    entries[HEAD_KEY] = KvEntry(HEAD_KEY, b.head(size), 60)


def _drop(key: str) -> Callable[[RegistryBuilder, dict[str, KvEntry]], object]:
    return lambda b, entries: entries.pop(key)


def _put(key: str, value: Callable[[RegistryBuilder], bytes]) -> Callable[..., None]:
    def edit(b: RegistryBuilder, entries: dict[str, KvEntry]) -> None:
        entries[key] = KvEntry(key, value(b), 50)

    return edit


SNAPSHOT_REFUSALS: list[Any] = [
    pytest.param(_put("provinces/330000", lambda b: b"x"), 0,
                 "provinces/330000 is in the store but not in the log", "provinces/330000",
                 id="a value outside the log"),
    pytest.param(_put("log/leaf/7", lambda b: b"x"), 0,
                 "log/leaf/7 is in the store but not in the log", "log/leaf/7",
                 id="a leaf key of the wrong form"),
    pytest.param(_drop(HEAD_KEY), 0, "tree head is missing", HEAD_KEY,
                 id="head deleted, leaves left"),
    pytest.param(_put(leaf_key(4), lambda b: b.leaves[0].raw), 0,
                 r"leaf 4 is in the store but not in the log \(size 4\)", leaf_key(4),
                 id="a leaf past the head"),
    pytest.param(_put(leaf_key(9), lambda b: b.leaves[0].raw), 0,
                 r"leaf 9 is in the store but not in the log \(size 4\)", leaf_key(9),
                 id="a leaf far past the head"),
    pytest.param(_drop(leaf_key(2)), 0, "leaf 2 is missing from the store", leaf_key(2),
                 id="a leaf deleted"),
    pytest.param(_drop(leaf_key(0)), 0, "leaf 0 is missing from the store", leaf_key(0),
                 id="the genesis leaf deleted"),
    pytest.param(_put(leaf_key(3), lambda b: b"\xa0"), 0,
                 "log/leaf/000000000003 is not a log leaf: log leaf must have exactly the keys",
                 leaf_key(3), id="a leaf that is not one"),
    pytest.param(_put(leaf_key(1), lambda b: b.leaves[2].raw), 0,
                 r"leaves 0\.\.3 do not hash to the tree head's root", leaf_key(0),
                 id="a leaf replaced, fresh reader"),
    pytest.param(_put(leaf_key(1), lambda b: b.leaves[2].raw), 3,
                 "leaf 1 differs from the one verified before", leaf_key(1),
                 id="a leaf replaced, held prefix"),
    pytest.param(lambda b, entries: _truncate(b, entries, 2), 3,
                 r"the log shrank from 3 to 2 entries \(rollback\)", HEAD_KEY,
                 id="truncated under an older head"),
    pytest.param(_put(HEAD_KEY, lambda b: b"\x00"), 0, "tree head refused", HEAD_KEY,
                 id="a head that is not one"),
]  # fmt: skip


@pytest.mark.parametrize(("tamper", "held_size", "message", "key"), SNAPSHOT_REFUSALS)
def test_a_tampered_store_log_is_refused_naming_the_entry(
    builder: RegistryBuilder,
    tamper: Callable[[RegistryBuilder, dict[str, KvEntry]], object],
    held_size: int,
    message: str,
    key: str,
) -> None:
    held = _verified(builder, held_size) if held_size else VerifiedLog()
    entries = _entries(builder.snapshot())
    tamper(builder, entries)
    with pytest.raises(LogInconsistent, match=message) as refused:
        verify_snapshot(_snapshot(entries), builder.roots, held)
    assert refused.value.key == key


@pytest.mark.parametrize("held_size", [pytest.param(1, id="held 1"), pytest.param(4, id="held 4")])
def test_an_emptied_store_is_refused_by_a_reader_that_held_a_log(
    builder: RegistryBuilder, held_size: int
) -> None:
    held = _verified(builder, held_size)
    with pytest.raises(LogInconsistent, match="tree head is missing") as refused:
        verify_snapshot(Snapshot((), 9), builder.roots, held)
    assert refused.value.key == HEAD_KEY


def test_the_same_log_again_verifies_against_itself(builder: RegistryBuilder) -> None:
    held = _verified(builder, len(builder.leaves))
    again = verify_snapshot(builder.snapshot(), builder.roots, held)
    assert again.size == held.size and again.tree.root() == held.tree.root()


def test_a_snapshot_checks_the_log_key_revocation(builder: RegistryBuilder) -> None:
    with pytest.raises(LogInconsistent, match="revoked log key"):
        verify_snapshot(
            builder.snapshot(), builder.roots, VerifiedLog(), is_revoked=lambda certificate: True
        )


# -- appending ------------------------------------------------------------------------------------
class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_appends_land_in_the_store_as_a_log_readers_verify(
    builder: RegistryBuilder, tmp_path: Path
) -> None:
    store = EmbeddedStore(tmp_path / "registry.db")
    clock = Clock(NOW + 10.7)
    writer = LogWriter(store, builder.log_signer, clock=clock)
    log = VerifiedLog()
    for leaf in builder.leaves:
        log = await writer.append(log, leaf)
    snapshot = await store.read_prefix("")
    read = verify_snapshot(snapshot, builder.roots, VerifiedLog())
    assert read.size == log.size == len(builder.leaves)
    assert read.head == log.head
    assert read.head_revision == log.head_revision == snapshot.revision
    statement = builder.sign(Suspension(ZJ, "audit"), "alice")
    leaf = writer.leaf(statement, actor="spiffe://hcx/national/gateway/a")
    assert (leaf.logged_at, leaf.statement) == (NOW + 10, statement)
    grown = await writer.append(log, leaf)
    assert grown.head is not None and grown.head.at == NOW + 10
    read = verify_snapshot(await store.read_prefix("log/"), builder.roots, read)
    assert read.leaves[-1] == leaf and read.head == grown.head
    await store.close()


async def test_a_head_never_goes_back_in_time_when_the_clock_does(
    builder: RegistryBuilder, tmp_path: Path
) -> None:
    store = EmbeddedStore(tmp_path / "registry.db")
    clock = Clock(NOW)
    writer = LogWriter(store, builder.log_signer, clock=clock)
    log = await writer.append(VerifiedLog(), builder.leaves[0])
    clock.now = NOW - 3600
    late = writer.leaf(builder.leaves[1].statement, actor="gw")
    assert late.logged_at == NOW - 3600
    log = await writer.append(log, late)
    assert log.head is not None and log.head.at == NOW
    read = verify_snapshot(await store.read_prefix(""), builder.roots, VerifiedLog())
    assert read.head is not None and read.head.at == NOW
    await store.close()


async def test_two_writers_appending_at_once_cannot_fork_the_log(
    builder: RegistryBuilder, tmp_path: Path
) -> None:
    store = EmbeddedStore(tmp_path / "registry.db")
    first = LogWriter(store, builder.log_signer, clock=Clock(NOW))
    second = LogWriter(store, builder.log_signer, clock=Clock(NOW))
    base = await first.append(VerifiedLog(), builder.leaves[0])
    await first.append(base, builder.leaves[1])
    with pytest.raises(Conflict, match="changed concurrently"):
        await second.append(base, builder.leaves[2])
    read = verify_snapshot(await store.read_prefix(""), builder.roots, VerifiedLog())
    assert [leaf.raw for leaf in read.leaves] == [leaf.raw for leaf in builder.leaves[:2]]
    await store.close()


async def test_an_append_behind_a_stale_head_revision_is_refused(
    builder: RegistryBuilder, tmp_path: Path
) -> None:
    """The head's compare-and-put, not only the new leaf key, guards the append."""
    store = EmbeddedStore(tmp_path / "registry.db")
    writer = LogWriter(store, builder.log_signer, clock=Clock(NOW))
    log = await writer.append(VerifiedLog(), builder.leaves[0])
    await store.put(HEAD_KEY, builder.head(1))  # someone rewrote the head meanwhile
    with pytest.raises(Conflict):
        await writer.append(log, builder.leaves[1])
    assert await store.get(leaf_key(1)) is None


async def test_an_append_never_overwrites_a_leaf_already_in_the_store(
    builder: RegistryBuilder, tmp_path: Path
) -> None:
    """A leaf key at the log's end without a head over it (a half-made or planted entry) makes
    the append conflict: the writer re-reads, and the reader then names the stray leaf."""
    store = EmbeddedStore(tmp_path / "registry.db")
    writer = LogWriter(store, builder.log_signer, clock=Clock(NOW))
    log = await writer.append(VerifiedLog(), builder.leaves[0])
    await store.put(leaf_key(1), b"planted")
    with pytest.raises(Conflict, match="log/leaf/000000000001 changed concurrently"):
        await writer.append(log, builder.leaves[1])
    assert (await store.get(leaf_key(1))).value == b"planted"  # type: ignore[union-attr]
    await store.close()


def test_a_leaf_names_at_most_the_longest_actor(builder: RegistryBuilder, tmp_path: Path) -> None:
    writer = LogWriter(EmbeddedStore(tmp_path / "r.db"), builder.log_signer, clock=Clock(NOW))
    leaf = writer.leaf(b"s", actor="x" * (MAX_ACTOR_CHARS + 50))
    assert leaf.actor == "x" * MAX_ACTOR_CHARS
    assert Leaf.decode(leaf.raw) == leaf


def test_verified_log_defaults_to_the_empty_log() -> None:
    log = VerifiedLog()
    assert (log.size, log.head, log.head_revision, log.tree.root()) == (
        0,
        None,
        0,
        merkle.EMPTY_ROOT,
    )
    assert replace(log, head_revision=3).head_revision == 3
