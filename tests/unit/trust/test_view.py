"""The verified view: what it serves, what it rejects, and that the last good value survives."""

from __future__ import annotations

import time

import pytest

from trust import pki, records
from trust.kv import EventKind, KvEntry, KvEvent, Snapshot
from trust.view import TrustView


class Keys:
    def __init__(self) -> None:
        self.root = pki.create_root_ca()
        self.ca = pki.create_provincial_ca(self.root, province="330000", name="浙江省")
        key = pki.generate_private_key()
        self.dsc = pki.sign_dsc(
            self.ca, pki.make_csr(key, common_name="d"), province="330000", name="d1"
        )
        self.kid = pki.kid(self.dsc)

    def province(self, *, suspended: bool = False, seq: int = 1, signer=None) -> bytes:  # type: ignore[no-untyped-def]
        record = records.ProvinceRecord("330000", "浙江省", self.ca.certificate, suspended, seq)
        key = records.province_key("330000")
        return records.seal(key, records.encode_province(record), (signer or self.root).private_key)

    def dsc_value(self) -> bytes:
        return records.encode_signing_cert(records.SigningCertRecord(self.kid, "330000", self.dsc))


@pytest.fixture
def keys() -> Keys:
    return Keys()


def _view(keys: Keys) -> tuple[TrustView, list[str]]:
    rejected: list[str] = []
    view = TrustView(roots=[keys.root.certificate], on_rejected=lambda k, why: rejected.append(k))
    view.load(
        Snapshot(
            (
                KvEntry(records.province_key("330000"), keys.province(), 2),
                KvEntry(records.signing_cert_key(keys.kid), keys.dsc_value(), 3),
            ),
            3,
        )
    )
    return view, rejected


def _put(view: TrustView, key: str, value: bytes, revision: int) -> None:
    view.apply([KvEvent(EventKind.PUT, key, value, revision)])


def test_signed_values_are_served(keys: Keys) -> None:
    view, rejected = _view(keys)
    assert view.signer(keys.kid) is not None and rejected == []


@pytest.mark.parametrize(
    "case",
    [
        "province record sealed by a foreign root",
        "older province record replayed (lower seq)",
        "province record moved to another key",
        "garbage bytes",
    ],
)
def test_bad_province_values_are_rejected_and_the_last_good_one_serves(
    keys: Keys, case: str
) -> None:
    view, rejected = _view(keys)
    _put(view, records.province_key("330000"), keys.province(seq=5), 4)  # a legit update
    key = records.province_key("330000")
    value = {
        "province record sealed by a foreign root": keys.province(
            suspended=True, seq=9, signer=pki.create_root_ca()
        ),
        "older province record replayed (lower seq)": keys.province(suspended=True, seq=2),
        "province record moved to another key": records.seal(
            "provinces/510000",
            records.encode_province(
                records.ProvinceRecord("330000", "x", keys.ca.certificate, True, 9)
            ),
            keys.root.private_key,
        ),
        "garbage bytes": b"\xff\x00",
    }[case]
    _put(view, key, value, 5)
    province = view.province("330000")
    assert province is not None and not province.suspended and province.seq == 5
    assert rejected == [key]


def test_deleting_trust_material_behind_the_registrys_back_is_rejected(keys: Keys) -> None:
    view, rejected = _view(keys)
    view.apply([KvEvent(EventKind.DELETE, records.signing_cert_key(keys.kid), b"", 4)])
    assert view.signer(keys.kid) is not None
    assert rejected == [records.signing_cert_key(keys.kid)]
    view.load(Snapshot((), 5))  # a full read without it: still rejected, still served
    assert view.signer(keys.kid) is not None


def test_revocation_order_sealed_by_the_root_marks_the_signer(keys: Keys) -> None:
    view, _ = _view(keys)
    at = time.time()
    key = records.revoked_key(keys.kid)
    order = records.Revocation(keys.kid, "330000", at, "key_compromise")
    _put(view, key, records.seal(key, records.encode_revocation(order), keys.root.private_key), 4)
    signer = view.signer(keys.kid)
    assert signer is not None and signer.revoked_at == at


def test_revocation_order_sealed_by_a_province_is_rejected(keys: Keys) -> None:
    view, rejected = _view(keys)
    key = records.revoked_key(keys.kid)
    order = records.Revocation(keys.kid, "330000", time.time(), "x")
    _put(view, key, records.seal(key, records.encode_revocation(order), keys.ca.private_key), 4)
    signer = view.signer(keys.kid)
    assert signer is not None and signer.revoked_at is None and rejected == [key]


def test_retirement_must_be_sealed_by_the_signers_provincial_ca(keys: Keys) -> None:
    view, rejected = _view(keys)
    key = records.retired_key(keys.kid)
    body = records.encode_retirement(records.Retirement(keys.kid, 1000.0))
    _put(view, key, records.seal(key, body, keys.root.private_key), 4)
    assert rejected == [key]
    _put(view, key, records.seal(key, body, keys.ca.private_key), 5)
    signer = view.signer(keys.kid)
    assert signer is not None and signer.retired_at == 1000.0
