"""The signed trust list: a log-carrying list, verified and folded by its holder, never believed.

Every refusal is matched on its reason and message, and every list a checkpoint holds must
extend the last one it held (rollback and fork refused), with deltas checked by their RFC 9162
consistency proofs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.registry_builder import RegistryBuilder
from trust import envelope, pki, trustlist
from trust.envelope import Purpose
from trust.kv import Snapshot
from trust.model import Reason
from trust.reader import LogReader
from trust.statements import DscRevocation
from trust.trustlist import HeldHead, TrustListError
from trust.view import TrustView

NOW = int(time.time())


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
    other = pki.create_root_ca()
    with pytest.raises(TrustListError, match=r"not a pinned root|trust-list signer"):
        trustlist.verify(_list(builder), [other.certificate], now=NOW)


def test_a_tree_head_signature_is_not_a_trust_list(builder: RegistryBuilder) -> None:
    """Domain separation: the same key, another purpose, never verifies."""
    signer = builder.trust_list_signer
    payload = envelope.open_envelope(Purpose.TRUST_LIST, _list(builder)).payload
    as_head = envelope.seal(Purpose.TREE_HEAD, payload, signer.private_key, signer.certificate)
    with pytest.raises(TrustListError, match="signature does not verify"):
        trustlist.verify(as_head, builder.roots, now=NOW)


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
