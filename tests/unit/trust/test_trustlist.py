"""The signed trust list: a log-carrying list, verified and folded by its holder, never believed.

Every refusal is matched on its reason and message, and every list a checkpoint holds must
extend the last one it held (rollback and fork refused), with deltas checked by their RFC 9162
consistency proofs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import pytest

from simulations.registry_builder import RegistryBuilder
from trust import cbor, envelope, merkle, trustlist
from trust.envelope import Purpose
from trust.kv import Snapshot
from trust.log import LogInconsistent
from trust.model import Reason
from trust.reader import LogReader
from trust.statements import DscRevocation
from trust.trustlist import HeldHead, TrustListError
from trust.view import TrustView

NOW = 1_760_000_000  # a fixed past clock: anything issued at the machine's clock fails at once


def _view(builder: RegistryBuilder, size: int | None = None) -> TrustView:
    view = TrustView(roots=builder.roots)
    assert LogReader(view).load(builder.snapshot(size))
    return view


@pytest.fixture
def builder() -> RegistryBuilder:
    b = RegistryBuilder(clock=NOW)
    b.onboard("330000", "浙江省")
    return b


def _list(
    builder: RegistryBuilder, *, size: int | None = None, since: int = 0, now: float = NOW
) -> bytes:
    return trustlist.build(_view(builder, size), builder.trust_list_signer, now=now, since=since)


def test_a_full_list_round_trips_into_the_same_view(builder: RegistryBuilder) -> None:
    checked = trustlist.verify(_list(builder), builder.roots, now=NOW)
    view = checked.view(builder.roots)
    zj = builder.provinces["330000"]
    assert view.signer(zj.kid) is not None
    assert checked.revision == len(builder.leaves) and checked.since == 0


@pytest.mark.parametrize(
    ("case", "check_at", "reason", "message"),
    [
        ("frozen: past its not-after", NOW + trustlist.DEFAULT_NOT_AFTER_S + 1, Reason.EXPIRED,
         "frozen list refused"),
        ("signed before its signer was valid", NOW - 400 * 86400 * 3, Reason.LOG_INCONSISTENT,
         "trust-list signer"),
    ],
)  # fmt: skip
def test_refused_lists(
    builder: RegistryBuilder, case: str, check_at: float, reason: Reason, message: str
) -> None:
    with pytest.raises(TrustListError, match=message) as caught:
        trustlist.verify(_list(builder), builder.roots, now=check_at)
    assert caught.value.reason is reason or reason is Reason.LOG_INCONSISTENT


def test_a_list_signed_by_a_non_trust_list_key_is_refused(builder: RegistryBuilder) -> None:
    builder.trust_list_signer = builder.log_signer
    with pytest.raises(TrustListError, match="trust-list signer"):
        trustlist.verify(_list(builder), builder.roots, now=NOW)


def test_a_list_signed_under_another_root_is_refused(builder: RegistryBuilder) -> None:
    other = builder.new_root()
    with pytest.raises(TrustListError, match=r"not a pinned root|trust-list signer"):
        trustlist.verify(_list(builder), [other.certificate], now=NOW)


def test_a_tree_head_signature_is_not_a_trust_list(builder: RegistryBuilder) -> None:
    """Domain separation: the same key, another purpose, never verifies."""
    signer = builder.trust_list_signer
    payload = envelope.open_envelope(Purpose.TRUST_LIST, _list(builder)).payload
    as_head = envelope.seal(Purpose.TREE_HEAD, payload, signer.private_key, signer.certificate)
    with pytest.raises(TrustListError, match="signature does not verify"):
        trustlist.verify(as_head, builder.roots, now=NOW)


def test_bytes_too_large_for_any_list_are_refused_unread(builder: RegistryBuilder) -> None:
    data = b"\x00" * (envelope.MAX_ENVELOPE_BYTES + 1)
    with pytest.raises(TrustListError) as refused:
        trustlist.verify(data, builder.roots, now=NOW)
    assert refused.value.message == (
        f"trust list refused: trust list is not bytes of at most {envelope.MAX_ENVELOPE_BYTES}"
    )
    assert refused.value.reason is Reason.BAD_ENCODING


def test_a_tampered_list_is_refused(builder: RegistryBuilder) -> None:
    data = bytearray(_list(builder))
    data[len(data) // 2] ^= 0x01
    with pytest.raises(TrustListError, match="trust list refused"):
        trustlist.verify(bytes(data), builder.roots, now=NOW)


def test_a_list_whose_log_was_edited_before_signing_is_refused(builder: RegistryBuilder) -> None:
    """Even a list the trust-list key signed is folded and checked like a store: a leaf that
    does not hash to the log's signed head is refused."""
    view = _view(builder)
    edited = list(view.log.leaves)
    edited[1] = edited[2]
    view.log = type(view.log)(view.log.head, edited, view.log.tree, view.log.head_revision)
    signed = trustlist.build(view, builder.trust_list_signer, now=NOW)
    checked = trustlist.verify(signed, builder.roots, now=NOW)
    with pytest.raises(TrustListError, match="log refused"):
        checked.view(builder.roots)


def test_a_delta_merges_onto_the_full_list_with_its_proof(builder: RegistryBuilder) -> None:
    held = trustlist.verify(_list(builder), builder.roots, now=NOW)
    zj = builder.provinces["330000"]
    builder.accept(builder.sign(DscRevocation(zj.kid, NOW, "key_compromise"), "alice"))
    delta = trustlist.verify(_list(builder, since=held.revision), builder.roots, now=NOW)
    assert delta.since == held.revision and delta.proof
    merged = trustlist.merge(held, delta, builder.roots)
    assert merged.view(builder.roots).signer(zj.kid).revoked_at == NOW  # type: ignore[union-attr]


def test_a_delta_from_another_log_is_refused(builder: RegistryBuilder) -> None:
    held = trustlist.verify(_list(builder), builder.roots, now=NOW)
    other = RegistryBuilder(clock=NOW, like=builder)
    other.onboard("510000", "四川省")
    other.onboard("460000", "海南省")
    fork = trustlist.verify(_list(other, since=held.revision), builder.roots, now=NOW)
    with pytest.raises(TrustListError, match="not consistent"):
        trustlist.merge(held, fork, builder.roots)


def test_the_held_head_refuses_rollback_and_fork(builder: RegistryBuilder, tmp_path: Path) -> None:
    held = HeldHead(tmp_path / "list.state")
    current = trustlist.verify(_list(builder), builder.roots, now=NOW)
    held.check(current)
    held.raise_to(current)
    older = trustlist.verify(_list(builder, size=3), builder.roots, now=NOW)
    with pytest.raises(TrustListError, match="rollback refused"):
        held.check(older)
    fork = RegistryBuilder(clock=NOW, like=builder)
    for code in ("110000", "120000", "130000"):
        fork.onboard(code)
    forked = trustlist.verify(_list(fork), builder.roots, now=NOW)
    with pytest.raises(TrustListError, match="fork refused"):
        held.check(forked)


def test_a_damaged_state_file_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "list.state"
    path.write_text("{not json")
    with pytest.raises(TrustListError, match="unreadable"):
        HeldHead(path).get()


def test_an_empty_log_lists_nothing(builder: RegistryBuilder) -> None:
    view = TrustView(roots=builder.roots)
    assert LogReader(view).load(Snapshot((), 0))
    checked = trustlist.verify(
        trustlist.build(view, builder.trust_list_signer, now=NOW), builder.roots, now=NOW
    )
    assert checked.revision == 0 and checked.view(builder.roots).provinces() == []


# -- the list's fields ----------------------------------------------------------------------------
def _body(data: bytes) -> dict[str, object]:
    return cbor.decode(envelope.open_envelope(Purpose.TRUST_LIST, data).payload, what="list")


def _resigned(builder: RegistryBuilder, data: bytes, **changes: object) -> bytes:
    """The list ``data`` with fields changed (None: removed), signed again by the real key."""
    body = _body(data)
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}
    signer = builder.trust_list_signer
    return envelope.seal(
        Purpose.TRUST_LIST, cbor.encode(body), signer.private_key, signer.certificate
    )


def test_a_list_carries_its_times_head_and_every_leaf(builder: RegistryBuilder) -> None:
    view = _view(builder)
    data = trustlist.build(
        view, builder.trust_list_signer, now=NOW + 0.9, next_update_s=60, not_after_s=600
    )
    checked = trustlist.verify(data, builder.roots, now=NOW)
    assert (checked.revision, checked.since) == (len(builder.leaves), 0)
    assert (checked.issued_at, checked.next_update, checked.not_after) == (NOW, NOW + 60, NOW + 600)
    assert checked.head == view.log.head.raw  # type: ignore[union-attr]
    assert checked.leaves == tuple(leaf.raw for leaf in builder.leaves)
    assert checked.proof == ()
    assert checked.root == view.log.tree.root()
    assert _body(data)["v"] == trustlist.FORMAT_VERSION == 2


def test_the_default_times_are_an_hour_and_three_days(builder: RegistryBuilder) -> None:
    checked = trustlist.verify(_list(builder), builder.roots, now=NOW)
    assert checked.next_update == NOW + 3600 == NOW + trustlist.DEFAULT_NEXT_UPDATE_S
    assert checked.not_after == NOW + 3 * 24 * 3600 == NOW + trustlist.DEFAULT_NOT_AFTER_S


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        pytest.param(-5, 0, id="negative: a full list"),
        pytest.param(0, 0, id="0: a full list"),
        pytest.param(1, 1, id="after the genesis leaf"),
        pytest.param(None, None, id="at the log's size: an empty delta"),
        pytest.param(10_000, None, id="past the log: an empty delta at its size"),
    ],
)
def test_a_delta_starts_where_asked_within_the_log(
    builder: RegistryBuilder, since: int | None, expected: int | None
) -> None:
    size = len(builder.leaves)
    since = size if since is None else since
    expected = size if expected is None else expected
    checked = trustlist.verify(_list(builder, since=since), builder.roots, now=NOW)
    assert checked.since == expected and checked.revision == size
    assert checked.leaves == tuple(leaf.raw for leaf in builder.leaves[expected:])
    tree = _view(builder).log.tree
    assert list(checked.proof) == (tree.consistency_proof(expected) if expected else [])


def test_a_list_is_good_up_to_its_not_after(builder: RegistryBuilder) -> None:
    data = _list(builder)
    not_after = NOW + trustlist.DEFAULT_NOT_AFTER_S
    assert trustlist.verify(data, builder.roots, now=not_after).not_after == not_after
    with pytest.raises(TrustListError) as refused:
        trustlist.verify(data, builder.roots, now=not_after + 0.5)
    iso = datetime.fromtimestamp(not_after, tz=UTC).isoformat(timespec="seconds")
    assert refused.value.message == (
        f"trust list revision {len(builder.leaves)} expired at {iso} (frozen list refused); "
        "fetch a new one"
    )
    assert refused.value.reason is Reason.EXPIRED


def test_a_refusal_keeps_the_reason_of_what_failed(builder: RegistryBuilder) -> None:
    data = _resigned(builder, _list(builder), v=3)
    with pytest.raises(TrustListError, match="trust list refused: trust list format 3") as refused:
        trustlist.verify(data, builder.roots, now=NOW)
    assert refused.value.reason is Reason.MALFORMED


_KEYS = (
    "trust list must have exactly the keys ['head', 'issued_at', 'leaves', 'next_update', "
    "'not_after', 'proof', 'revision', 'since', 'v']"
)
DECODE_REFUSALS = [
    pytest.param({"v": 1}, "trust list format 1 not understood", id="format 1"),
    pytest.param({"v": None}, _KEYS, id="no format"),
    pytest.param({"extra": 0}, _KEYS, id="an extra field"),
    pytest.param({"leaves": b"x"}, "trust list leaves must be byte strings",
                 id="leaves not a list"),
    pytest.param({"leaves": ["x"]}, "trust list leaves must be byte strings",
                 id="a leaf not bytes"),
    pytest.param({"proof": b"x"}, "trust list proof must be byte strings", id="proof not a list"),
    pytest.param({"proof": [b"\0" * 32, 1]}, "trust list proof must be byte strings",
                 id="a proof hash int"),
    pytest.param({"revision": 99}, "trust list revision, since and leaves disagree",
                 id="revision too large"),
    pytest.param({"since": 1}, "trust list revision, since and leaves disagree",
                 id="since and leaves"),
    pytest.param({"since": -1}, "trust list revision, since and leaves disagree",
                 id="negative since"),
    pytest.param({"revision": "4"}, "trust list: 'revision' must be int", id="revision text"),
    pytest.param({"since": True}, "trust list: 'since' must be int", id="since a boolean"),
    pytest.param({"issued_at": 1.5}, "trust list: 'issued_at' must be int", id="issued_at float"),
    pytest.param({"next_update": None}, _KEYS, id="no next_update"),
    pytest.param({"next_update": "x"}, "trust list: 'next_update' must be int",
                 id="next_update text"),
    pytest.param({"not_after": b""}, "trust list: 'not_after' must be int", id="not_after bytes"),
    pytest.param({"head": "x"}, "trust list: 'head' must be bytes", id="head text"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "message"), DECODE_REFUSALS)
def test_a_list_of_the_wrong_form_is_refused_even_when_signed(
    builder: RegistryBuilder, changes: dict[str, object], message: str
) -> None:
    data = _resigned(builder, _list(builder), **changes)
    with pytest.raises(TrustListError) as refused:
        trustlist.verify(data, builder.roots, now=NOW)
    assert refused.value.message == f"trust list refused: {message}"
    assert refused.value.reason is Reason.MALFORMED


def _sealed(builder: RegistryBuilder, payload: bytes) -> bytes:
    signer = builder.trust_list_signer
    return envelope.seal(Purpose.TRUST_LIST, payload, signer.private_key, signer.certificate)


@pytest.mark.parametrize(
    ("payload", "message", "reason"),
    [
        pytest.param(lambda body: cbor.encode(list(body)), "trust list must be a map",
                     Reason.MALFORMED, id="a list, not a map"),
        pytest.param(lambda body: cbor2.dumps(dict(reversed(list(body.items())))),
                     "trust list is not in deterministic CBOR form", Reason.NON_CANONICAL,
                     id="keys out of canonical order"),
        pytest.param(lambda body: cbor.encode(body) + b"\x00",
                     "trust list has trailing bytes after the CBOR item", Reason.BAD_ENCODING,
                     id="trailing bytes"),
    ],
)  # fmt: skip
def test_a_signed_payload_that_is_not_one_list_is_refused(
    builder: RegistryBuilder, payload: Callable[[dict[str, object]], bytes], message: str,
    reason: Reason,
) -> None:  # fmt: skip
    data = _sealed(builder, payload(_body(_list(builder))))
    with pytest.raises(TrustListError) as refused:
        trustlist.verify(data, builder.roots, now=NOW)
    assert refused.value.message == f"trust list refused: {message}"
    assert refused.value.reason is reason


def test_a_list_whose_since_is_its_revision_is_an_empty_delta(builder: RegistryBuilder) -> None:
    size = len(builder.leaves)
    data = _resigned(builder, _list(builder), since=size, leaves=[])
    assert trustlist.verify(data, builder.roots, now=NOW).since == size
    too_far = _resigned(builder, _list(builder), since=size + 1, leaves=[])
    with pytest.raises(TrustListError, match="disagree"):
        trustlist.verify(too_far, builder.roots, now=NOW)


def test_a_list_signed_at_a_time_its_signer_was_not_valid_is_refused(
    builder: RegistryBuilder,
) -> None:
    """The signer is checked at the time the list is checked, not at a time the list says."""
    not_after = builder.trust_list_signer.certificate.not_valid_after_utc.timestamp()
    data = trustlist.build(
        _view(builder), builder.trust_list_signer, now=NOW, not_after_s=int(not_after - NOW) + 10
    )
    with pytest.raises(TrustListError, match="trust-list signer is expired"):
        trustlist.verify(data, builder.roots, now=not_after + 5)


# -- the view of a list ---------------------------------------------------------------------------
def test_a_delta_has_no_view_of_its_own(builder: RegistryBuilder) -> None:
    delta = trustlist.verify(_list(builder, since=2), builder.roots, now=NOW)
    with pytest.raises(
        TrustListError, match=r"^a delta has no view of its own: merge it onto a full list$"
    ):
        delta.view(builder.roots)


def test_a_list_without_a_head_for_its_leaves_is_refused(builder: RegistryBuilder) -> None:
    data = _resigned(builder, _list(builder), head=b"")
    checked = trustlist.verify(data, builder.roots, now=NOW)
    with pytest.raises(
        TrustListError, match=r"^trust list log refused: the log's tree head is missing"
    ):
        checked.view(builder.roots)


def test_a_list_view_folds_the_log_like_a_gateway(builder: RegistryBuilder) -> None:
    zj = builder.provinces["330000"]
    builder.accept(builder.sign(DscRevocation(zj.kid, NOW, "key_compromise"), "alice"))
    view = trustlist.verify(_list(builder), builder.roots, now=NOW).view(builder.roots)
    assert view.revision == len(builder.leaves)
    assert view.signer(zj.kid).revoked_at == NOW  # type: ignore[union-attr]
    assert view.log.head_revision == 0, "a list's log is in no store"


# -- deltas ---------------------------------------------------------------------------------------
def _grow(builder: RegistryBuilder) -> None:
    builder.onboard("510000", "四川省")


def test_a_full_list_given_as_a_delta_replaces_the_held_one(builder: RegistryBuilder) -> None:
    held = trustlist.verify(_list(builder), builder.roots, now=NOW)
    _grow(builder)
    full = trustlist.verify(_list(builder), builder.roots, now=NOW + 5)
    assert trustlist.merge(held, full, builder.roots) is full


def test_a_merged_delta_is_the_full_list_of_the_new_head(builder: RegistryBuilder) -> None:
    held = trustlist.verify(_list(builder), builder.roots, now=NOW)
    _grow(builder)
    later = NOW + 60
    delta = trustlist.verify(
        _list(builder, since=held.revision, now=later), builder.roots, now=later
    )
    merged = trustlist.merge(held, delta, builder.roots)
    expected = trustlist.verify(_list(builder, now=later), builder.roots, now=later)
    assert (merged.revision, merged.since, merged.proof) == (expected.revision, 0, ())
    assert merged.leaves == expected.leaves == tuple(leaf.raw for leaf in builder.leaves)
    assert (merged.issued_at, merged.next_update, merged.not_after) == (
        later,
        later + trustlist.DEFAULT_NEXT_UPDATE_S,
        later + trustlist.DEFAULT_NOT_AFTER_S,
    )
    assert merged.head == delta.head
    assert merged.view(builder.roots).province("510000") is not None


def test_a_delta_from_an_earlier_revision_overlaps_the_held_leaves(
    builder: RegistryBuilder,
) -> None:
    held = trustlist.verify(_list(builder), builder.roots, now=NOW)
    _grow(builder)
    delta = trustlist.verify(_list(builder, since=2), builder.roots, now=NOW)
    merged = trustlist.merge(held, delta, builder.roots)
    assert merged.leaves == tuple(leaf.raw for leaf in builder.leaves)


def test_a_delta_that_rewrites_held_leaves_is_refused(builder: RegistryBuilder) -> None:
    held = trustlist.verify(_list(builder), builder.roots, now=NOW)
    _grow(builder)
    data = _list(builder, since=2)
    leaves = list(_body(data)["leaves"])  # type: ignore[call-overload]
    leaves[0] = leaves[1]
    delta = trustlist.verify(_resigned(builder, data, leaves=leaves), builder.roots, now=NOW)
    with pytest.raises(TrustListError, match=r"^delta rewrites leaves of the list held$"):
        trustlist.merge(held, delta, builder.roots)


def test_a_delta_past_the_held_revision_is_refused(builder: RegistryBuilder) -> None:
    held = trustlist.verify(_list(builder, size=2), builder.roots, now=NOW)
    delta = trustlist.verify(_list(builder, since=3), builder.roots, now=NOW)
    with pytest.raises(TrustListError, match=r"^delta since 3 does not follow revision 2$"):
        trustlist.merge(held, delta, builder.roots)
    at_held = trustlist.verify(_list(builder, since=2), builder.roots, now=NOW)
    assert trustlist.merge(held, at_held, builder.roots).revision == len(builder.leaves)


@pytest.mark.parametrize(
    "head",
    [pytest.param(b"", id="no head"), pytest.param("older", id="the head of another revision")],
)
def test_a_delta_without_the_head_of_its_revision_is_refused(
    builder: RegistryBuilder, head: bytes | str
) -> None:
    held = trustlist.verify(_list(builder, size=2), builder.roots, now=NOW)
    raw = builder.head(3) if head == "older" else head
    data = _resigned(builder, _list(builder, since=2), head=raw)
    delta = trustlist.verify(data, builder.roots, now=NOW)
    with pytest.raises(TrustListError, match=r"^delta without a tree head of its revision$"):
        trustlist.merge(held, delta, builder.roots)


def test_a_delta_with_a_wrong_proof_is_refused(builder: RegistryBuilder) -> None:
    held = trustlist.verify(_list(builder, size=2), builder.roots, now=NOW)
    data = _list(builder, since=2)
    proof = list(_body(data)["proof"])  # type: ignore[call-overload]
    proof[0] = bytes(32)
    delta = trustlist.verify(_resigned(builder, data, proof=proof), builder.roots, now=NOW)
    with pytest.raises(
        TrustListError, match=r"^delta is not consistent with the list held: consistency proof "
    ):
        trustlist.merge(held, delta, builder.roots)


def test_a_delta_whose_head_is_not_a_log_key_head_is_refused(builder: RegistryBuilder) -> None:
    held = trustlist.verify(_list(builder, size=2), builder.roots, now=NOW)
    data = _resigned(builder, _list(builder, since=2), head=b"\x00")
    delta = trustlist.verify(data, builder.roots, now=NOW)
    with pytest.raises(LogInconsistent, match="tree head refused"):
        trustlist.merge(held, delta, builder.roots)


# -- the held head --------------------------------------------------------------------------------
def test_a_checkpoint_without_a_state_file_holds_the_empty_tree(tmp_path: Path) -> None:
    assert HeldHead(tmp_path / "none.state").get() == (0, merkle.EMPTY_ROOT)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="not JSON"),
        pytest.param('{"size": 3}', id="no root"),
        pytest.param('{"root": "00"}', id="no size"),
        pytest.param('{"size": 3, "root": "zz"}', id="a root not hex"),
        pytest.param('{"size": null, "root": "00"}', id="a size not a number"),
        pytest.param('{"size": "three", "root": "00"}', id="a size in words"),
        pytest.param("[3]", id="a list"),
    ],
)
def test_a_damaged_state_file_is_refused_naming_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "list.state"
    path.write_text(content)
    with pytest.raises(
        TrustListError, match=f"^checkpoint state {re.escape(str(path))} is unreadable: "
    ):
        HeldHead(path).get()


def test_the_held_head_rises_with_each_larger_list_only(
    builder: RegistryBuilder, tmp_path: Path
) -> None:
    held = HeldHead(tmp_path / "list.state")
    first = trustlist.verify(_list(builder), builder.roots, now=NOW)
    held.check(first)
    held.raise_to(first)
    assert held.get() == (first.revision, first.root)
    assert json.loads(held.path.read_text()) == {"size": first.revision, "root": first.root.hex()}
    assert [p.name for p in tmp_path.iterdir()] == ["list.state"], "no temporary file left"
    older = trustlist.verify(_list(builder, size=2), builder.roots, now=NOW)
    held.raise_to(older)
    assert held.get() == (first.revision, first.root), "never lowered"
    held.check(first)  # the same list again is no rollback
    held.raise_to(first)
    _grow(builder)
    grown = trustlist.verify(_list(builder), builder.roots, now=NOW)
    held.check(grown)
    held.raise_to(grown)
    assert held.get() == (grown.revision, grown.root)


def test_the_held_head_names_the_rollback(builder: RegistryBuilder, tmp_path: Path) -> None:
    held = HeldHead(tmp_path / "list.state")
    current = trustlist.verify(_list(builder), builder.roots, now=NOW)
    held.raise_to(current)
    older = trustlist.verify(_list(builder, size=3), builder.roots, now=NOW)
    with pytest.raises(TrustListError) as refused:
        held.check(older)
    assert refused.value.message == (
        f"trust list revision 3 is older than revision {current.revision} already held "
        "(rollback refused)"
    )


def test_the_held_head_refuses_a_fork_of_the_same_size(
    builder: RegistryBuilder, tmp_path: Path
) -> None:
    held = HeldHead(tmp_path / "list.state")
    current = trustlist.verify(_list(builder), builder.roots, now=NOW)
    held.raise_to(current)
    fork = RegistryBuilder(clock=NOW, like=builder)
    fork.onboard("110000")
    forked = trustlist.verify(_list(fork), builder.roots, now=NOW)
    assert forked.revision == current.revision
    with pytest.raises(TrustListError) as refused:
        held.check(forked)
    assert refused.value.message == (
        f"trust list does not extend the tree of size {current.revision} already held "
        "(fork refused)"
    )


def test_a_fresh_checkpoint_takes_any_list(builder: RegistryBuilder, tmp_path: Path) -> None:
    held = HeldHead(tmp_path / "list.state")
    held.check(trustlist.verify(_list(builder), builder.roots, now=NOW))
    empty = TrustView(roots=builder.roots)
    data = trustlist.build(empty, builder.trust_list_signer, now=NOW)
    nothing = trustlist.verify(data, builder.roots, now=NOW)
    held.check(nothing)
    held.raise_to(nothing)
    assert not held.path.exists(), "an empty list raises nothing"
