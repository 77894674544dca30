"""The signed trust list: signer purpose, signature, freeze, rollback, deltas (table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trust import pki, records, trustlist
from trust.kv import KvEntry, Snapshot
from trust.view import TrustView

# Every certificate here starts at START, and the tests judge lists at NOW, a day later: fixed
# instants, so a slow test run cannot move "now" outside a certificate's validity.
START = datetime.now(UTC) - timedelta(days=2)
NOW = (START + timedelta(days=1)).timestamp()


def _signer(root: pki.Authority) -> pki.Authority:
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name="tl")
    return pki.Authority(pki.sign_trust_list_signer(root, csr, not_before=START), key)


@pytest.fixture
def setup() -> tuple[pki.Authority, pki.Authority, TrustView]:
    root = pki.create_root_ca(now=START)
    ca = pki.create_provincial_ca(root, province="330000", name="浙江省", now=START)
    key = records.province_key("330000")
    sealed = records.seal(
        key,
        records.encode_province(records.ProvinceRecord("330000", "浙江省", ca.certificate, seq=1)),
        root.private_key,
    )
    view = TrustView(roots=[root.certificate])
    view.load(Snapshot((KvEntry(key, sealed, 7),), 7))
    return root, _signer(root), view


def test_a_good_list_round_trips_into_a_verified_view(setup) -> None:  # type: ignore[no-untyped-def]
    root, signer, view = setup
    data = trustlist.build(view, signer, now=NOW)
    checked = trustlist.verify(data, [root.certificate], now=NOW + 10)
    assert checked.revision == 7
    assert [p.code for p in checked.view([root.certificate]).provinces()] == ["330000"]


@pytest.mark.parametrize(
    ("case", "check_at", "held", "message"),
    [
        ("past its hard not-after: frozen, refused", NOW + 4 * 86400, 0, "frozen"),
        ("older than the revision held: rollback, refused", NOW, 8, "rollback"),
    ],
)
def test_refused_lists(setup, case: str, check_at: float, held: int, message: str) -> None:  # type: ignore[no-untyped-def]
    root, signer, view = setup
    data = trustlist.build(view, signer, now=NOW)
    with pytest.raises(trustlist.TrustListError, match=message):
        trustlist.verify(data, [root.certificate], now=check_at, held_revision=held)


def test_a_list_signed_by_a_non_trust_list_key_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    root, _, view = setup
    provincial = pki.create_provincial_ca(root, province="510000", name="四川省")
    with pytest.raises(trustlist.TrustListError, match="signer is not trusted"):
        trustlist.verify(trustlist.build(view, provincial, now=NOW), [root.certificate], now=NOW)


def test_a_list_signed_under_another_root_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    root, _, view = setup
    other = _signer(pki.create_root_ca())
    with pytest.raises(trustlist.TrustListError):
        trustlist.verify(trustlist.build(view, other, now=NOW), [root.certificate], now=NOW)


def test_a_tampered_list_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    import cbor2

    root, signer, view = setup
    envelope = cbor2.loads(trustlist.build(view, signer, now=NOW))
    body = cbor2.loads(envelope["list"])
    body["not_after"] = NOW + 10 * 365 * 86400
    envelope["list"] = cbor2.dumps(body)
    with pytest.raises(trustlist.TrustListError, match="signature"):
        trustlist.verify(cbor2.dumps(envelope), [root.certificate], now=NOW)


def test_a_delta_merges_onto_the_full_list(setup) -> None:  # type: ignore[no-untyped-def]
    root, signer, view = setup
    full = trustlist.verify(trustlist.build(view, signer, now=NOW), [root.certificate], now=NOW)
    delta = trustlist.verify(
        trustlist.build(view, signer, now=NOW, since=7), [root.certificate], now=NOW
    )
    assert delta.entries == () and delta.since == 7
    merged = trustlist.merge(full, delta)
    assert merged.revision == 7 and len(merged.entries) == 1
