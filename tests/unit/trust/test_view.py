"""The verified view: what the hot path reads once a log verified (signers, provinces, revoked
callers, routes), and that it never goes back to a smaller log.

The views here are folded from real signed logs (simulations.registry_builder); a few rows install a
state no log can derive (a signing key whose province is gone, an RSA key) to show the view
refuses to trust what it cannot check.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from simulations.registry_builder import Province, RegistryBuilder
from trust.authority import SigningKey
from trust.log import VerifiedLog, leaf_key
from trust.reader import LogReader
from trust.routes import NodeRoute, encode_route, route_key
from trust.statements import (
    ROOT_ISSUER,
    CaRevocation,
    CertRevocation,
    CrlUpload,
    DscRevocation,
    Onboard,
    Retirement,
)
from trust.view import TrustView

NOW = 1_760_000_000  # a fixed past clock: anything issued at the machine's clock fails at once
ZJ, SC, HN = "330000", "510000", "460000"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def builder() -> RegistryBuilder:
    b = RegistryBuilder(clock=NOW)
    b.onboard(ZJ, "浙江省")
    b.onboard(SC, "四川省")
    return b


def _view(builder: RegistryBuilder, clock: Clock | None = None) -> TrustView:
    view = TrustView(roots=builder.roots, clock=clock or Clock(NOW))
    assert LogReader(view).load(builder.snapshot())
    return view


def _ski(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _route(province: str, node_id: str, endpoint: str = "127.0.0.1:7000") -> NodeRoute:
    owner = f"spiffe://hcx/province/{province}/node/{node_id}"
    return NodeRoute(province, node_id, endpoint, owner, lease=7)


# -- construction and reads ---------------------------------------------------------------------
def test_a_view_needs_a_pinned_root() -> None:
    with pytest.raises(ValueError, match="at least one pinned root"):
        TrustView(roots=[])


def test_a_fresh_view_trusts_nothing_but_its_pinned_roots(builder: RegistryBuilder) -> None:
    view = TrustView(roots=builder.roots)
    assert view.revision == 0 and view.log.size == 0
    assert view.roots == tuple(builder.roots) == view.pinned_roots
    assert view.provinces() == [] and view.signers() == [] and view.decisions == []
    assert view.signer(builder.provinces[ZJ].kid) is None and view.province(ZJ) is None


def test_a_view_serves_the_provinces_and_signers_of_its_log(builder: RegistryBuilder) -> None:
    builder.onboard(HN, "海南省")
    view = _view(builder)
    assert view.revision == len(builder.leaves)
    assert [p.code for p in view.provinces()] == [ZJ, HN, SC]  # onboarded ZJ, SC, HN
    zj = view.province(ZJ)
    assert zj is not None
    assert (zj.code, zj.name, zj.suspended, zj.version) == (ZJ, "浙江省", False, 1)
    assert zj.ca_certificate == builder.provinces[ZJ].ca.certificate
    assert [(s.province, s.kid) for s in view.signers()] == sorted(
        (code, p.kid) for code, p in builder.provinces.items()
    )
    assert len(view.decisions) == len(builder.leaves)
    assert all(d.accepted for d in view.decisions)


def test_signers_of_one_province_are_ordered_by_kid(builder: RegistryBuilder) -> None:
    zj = builder.provinces[ZJ]
    for n in range(3):
        builder.new_dsc(zj.ca, ZJ, f"dsc-{n + 2}")
    kids = [s.kid for s in _view(builder).signers() if s.province == ZJ]
    assert len(kids) == 4 and kids == sorted(kids)


def test_a_trusted_signer_carries_its_certificate_and_key(builder: RegistryBuilder) -> None:
    zj = builder.provinces[ZJ]
    signer = _view(builder).signer(zj.kid)
    assert signer is not None
    assert (signer.kid, signer.province, signer.certificate) == (zj.kid, ZJ, zj.dsc)
    dsc_key = zj.dsc.public_key()
    assert isinstance(signer.public_key, ec.EllipticCurvePublicKey)  # an ECDSA DSC
    assert isinstance(dsc_key, ec.EllipticCurvePublicKey)
    assert signer.public_key.public_numbers() == dsc_key.public_numbers()
    assert signer.not_before == zj.dsc.not_valid_before_utc.timestamp()
    assert signer.not_after == zj.dsc.not_valid_after_utc.timestamp()
    assert (signer.revoked_at, signer.revocation_reason, signer.retired_at) == (None, "", None)


def test_a_suspended_province_is_shown_as_suspended(builder: RegistryBuilder) -> None:
    from trust.statements import Suspension

    builder.accept(builder.sign(Suspension(ZJ, "audit"), "alice"))
    zj = _view(builder).province(ZJ)
    assert zj is not None and zj.suspended and zj.version == 2


# -- revocation of signing certificates ---------------------------------------------------------
def _revoke_dsc(b: RegistryBuilder, p: Province, at: int) -> None:
    b.accept(b.sign(DscRevocation(p.kid, at, "key_compromise"), "alice"))


def _crl(b: RegistryBuilder, p: Province, at: int) -> None:
    crl = p.crl([p.dsc.serial_number], revoked_at=datetime.fromtimestamp(at, tz=UTC))
    b.accept(b.sign(CrlUpload(crl), p.ca))


def _revoke_ca(b: RegistryBuilder, p: Province, at: int) -> None:
    b.accept(b.sign(CaRevocation(p.code, p.ca.certificate.serial_number, at, "ca_compromise"),
                    "alice"))  # fmt: skip


def _replace_ca(b: RegistryBuilder, p: Province) -> None:
    b.propose(Onboard(p.code, "浙江省", b.new_ca(p.code, "浙江省").certificate))


@pytest.mark.parametrize(
    ("revocations", "at", "why"),
    [
        pytest.param([(_revoke_dsc, NOW - 100)], NOW - 100, "revoked nationally: key_compromise",
                     id="revoked by a coordinator"),
        pytest.param([(_crl, NOW - 200)], NOW - 200, "revoked by its provincial CA",
                     id="revoked by its province's CRL"),
        pytest.param([(_revoke_ca, NOW - 50)], NOW - 50, "its provincial CA is revoked",
                     id="its CA revoked"),
        pytest.param([(_revoke_dsc, NOW - 100), (_crl, NOW - 200)], NOW - 200,
                     "revoked by its provincial CA", id="the earlier of coordinator and CRL"),
        pytest.param([(_crl, NOW - 100), (_revoke_dsc, NOW - 300)], NOW - 300,
                     "revoked nationally: key_compromise", id="the earlier of CRL and coordinator"),
        pytest.param([(_revoke_dsc, NOW - 100), (_revoke_ca, NOW - 400)], NOW - 400,
                     "its provincial CA is revoked", id="the CA revoked before the key"),
        pytest.param([(_revoke_ca, NOW - 100), (_revoke_dsc, NOW - 400)], NOW - 400,
                     "revoked nationally: key_compromise", id="the key revoked before the CA"),
    ],
)  # fmt: skip
def test_a_revoked_signer_says_from_when_and_why(
    builder: RegistryBuilder, revocations: list, at: int, why: str
) -> None:
    zj = builder.provinces[ZJ]
    for revoke, when in revocations:
        revoke(builder, zj, when)
    view = _view(builder)
    signer = view.signer(zj.kid)
    assert signer is not None
    assert (signer.revoked_at, signer.revocation_reason) == (at, why)
    other = view.signer(builder.provinces[SC].kid)
    assert other is not None and other.revoked_at is None, "another province is untouched"


def test_a_signer_under_a_replaced_ca_stops_counting_when_it_was_replaced(
    builder: RegistryBuilder,
) -> None:
    zj = builder.provinces[ZJ]
    _replace_ca(builder, zj)
    signer = _view(builder).signer(zj.kid)
    assert signer is not None
    assert (signer.revoked_at, signer.revocation_reason) == (NOW, "its provincial CA was replaced")


def test_a_signer_whose_ca_left_no_replacement_time_counts_as_replaced_long_ago(
    builder: RegistryBuilder,
) -> None:
    view = _view(builder)
    state = view.state.copy()
    zj = builder.provinces[ZJ]
    key = state.signing_keys[zj.kid]
    state.signing_keys[zj.kid] = replace(key, ca_fingerprint=b"\x01" * 32)
    view.install(view.log, state, [])
    signer = view.signer(zj.kid)
    assert signer is not None
    assert (signer.revoked_at, signer.revocation_reason) == (0.0, "its provincial CA was replaced")


def test_a_retired_signer_says_from_when(builder: RegistryBuilder) -> None:
    zj = builder.provinces[ZJ]
    builder.accept(builder.sign(Retirement(zj.kid, NOW + 60), zj.ca))
    signer = _view(builder).signer(zj.kid)
    assert signer is not None
    assert signer.retired_at == NOW + 60 and isinstance(signer.retired_at, float)
    assert signer.revoked_at is None


def test_a_signing_key_of_a_province_the_state_lacks_is_not_trusted(
    builder: RegistryBuilder,
) -> None:
    view = _view(builder)
    state = view.state.copy()
    del state.provinces[ZJ]
    view.install(view.log, state, [])
    assert view.signer(builder.provinces[ZJ].kid) is None
    assert view.signer(builder.provinces[SC].kid) is not None


def _rsa_certificate() -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa")])
    start = datetime.now(UTC) - timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def test_a_signing_key_that_is_not_ecdsa_or_ed25519_is_not_trusted(
    builder: RegistryBuilder,
) -> None:
    view = _view(builder)
    state = view.state.copy()
    zj = builder.provinces[ZJ]
    key = state.signing_keys[zj.kid]
    state.signing_keys[zj.kid] = SigningKey(
        zj.kid, ZJ, _rsa_certificate(), key.ca_fingerprint, None, ()
    )
    view.install(view.log, state, [])
    assert view.signer(zj.kid) is None
    assert view.signer(builder.provinces[SC].kid) is not None


def test_each_certificate_key_is_parsed_once(builder: RegistryBuilder) -> None:
    view = _view(builder)
    kid = builder.provinces[ZJ].kid
    first = view.signer(kid)
    view.install(view.log, view.state.copy(), [])
    again = view.signer(kid)
    assert first is not None and again is not None
    assert again.public_key is first.public_key
    assert isinstance(again.public_key, ec.EllipticCurvePublicKey)


# -- caller certificates ------------------------------------------------------------------------
def test_callers_of_the_root_are_revoked_from_the_time_a_coordinator_says(
    builder: RegistryBuilder,
) -> None:
    builder.accept(builder.sign(CertRevocation(ROOT_ISSUER, 4242, NOW - 10, "key_compromise"),
                                "alice"))  # fmt: skip
    clock = Clock(NOW - 11)
    view = _view(builder, clock)
    assert not view.certificate_revoked(issuer_province=None, serial=4242)
    clock.now = NOW - 10
    assert view.certificate_revoked(issuer_province=None, serial=4242)
    assert not view.certificate_revoked(issuer_province=None, serial=4243)
    assert not view.certificate_revoked(issuer_province=ZJ, serial=4242), "another issuer"


def test_callers_of_a_province_are_revoked_by_its_crl_from_the_crl_time(
    builder: RegistryBuilder,
) -> None:
    zj = builder.provinces[ZJ]
    crl = zj.crl([99], revoked_at=datetime.fromtimestamp(NOW - 5, tz=UTC))
    builder.accept(builder.sign(CrlUpload(crl), zj.ca))
    clock = Clock(NOW - 6)
    view = _view(builder, clock)
    ski = _ski(zj.ca.certificate)
    assert not view.certificate_revoked(issuer_province=ZJ, serial=99, issuer_key_id=ski)
    clock.now = NOW - 5
    assert view.certificate_revoked(issuer_province=ZJ, serial=99, issuer_key_id=ski)
    assert view.certificate_revoked(issuer_province=ZJ, serial=99)
    assert not view.certificate_revoked(issuer_province=ZJ, serial=98, issuer_key_id=ski)
    assert not view.certificate_revoked(issuer_province=SC, serial=99), "another province"


def test_a_caller_of_a_province_not_onboarded_counts_as_revoked(builder: RegistryBuilder) -> None:
    view = _view(builder)
    assert view.certificate_revoked(issuer_province=HN, serial=1)
    assert not view.certificate_revoked(issuer_province=ZJ, serial=1)


def test_callers_of_a_revoked_ca_are_revoked_from_the_ca_revocation(
    builder: RegistryBuilder,
) -> None:
    _revoke_ca(builder, builder.provinces[ZJ], NOW - 30)
    clock = Clock(NOW - 31)
    view = _view(builder, clock)
    assert not view.certificate_revoked(issuer_province=ZJ, serial=5)
    clock.now = NOW - 30
    assert view.certificate_revoked(issuer_province=ZJ, serial=5)
    assert not view.certificate_revoked(issuer_province=SC, serial=5)


def test_callers_issued_by_a_replaced_ca_are_revoked(builder: RegistryBuilder) -> None:
    zj = builder.provinces[ZJ]
    old = _ski(zj.ca.certificate)
    _replace_ca(builder, zj)
    view = _view(builder)
    province = view.province(ZJ)
    assert province is not None
    new = _ski(province.ca_certificate)
    assert view.certificate_revoked(issuer_province=ZJ, serial=5, issuer_key_id=old)
    assert not view.certificate_revoked(issuer_province=ZJ, serial=5, issuer_key_id=new)


def test_a_ca_without_a_key_identifier_matches_no_caller(builder: RegistryBuilder) -> None:
    view = _view(builder)
    state = view.state.copy()
    state.provinces[ZJ] = replace(state.provinces[ZJ], ca=_rsa_certificate())
    view.install(view.log, state, [])
    assert view.certificate_revoked(issuer_province=ZJ, serial=5, issuer_key_id=b"\x01" * 20)
    assert not view.certificate_revoked(issuer_province=ZJ, serial=5)


# -- installing logs ----------------------------------------------------------------------------
def test_a_view_never_goes_back_to_a_smaller_log(builder: RegistryBuilder) -> None:
    view = _view(builder)
    size = view.revision
    smaller = VerifiedLog(leaves=view.log.leaves[:2])
    with pytest.raises(ValueError, match="never goes back to a smaller log"):
        view.install(smaller, view.state.copy(), [])
    assert view.revision == size


def test_refused_leaves_are_reported_by_their_key_and_kept(builder: RegistryBuilder) -> None:
    zj, sc = builder.provinces[ZJ], builder.provinces[SC]
    rejected: list[tuple[str, str]] = []
    view = TrustView(roots=builder.roots, on_rejected=lambda k, why: rejected.append((k, why)))
    reader = LogReader(view)
    assert reader.load(builder.snapshot())
    assert rejected == []
    # a province revoking another province's key: the authority table refuses it
    builder.add(builder.sign(DscRevocation(sc.kid, NOW, "unspecified"), zj.ca))
    assert reader.load(builder.snapshot())
    index = len(builder.leaves) - 1
    assert [k for k, _ in rejected] == [leaf_key(index)]
    assert rejected[0][1].startswith("refused: ")
    assert len(view.decisions) == len(builder.leaves)
    assert not view.decisions[-1].accepted and all(d.accepted for d in view.decisions[:-1])


def test_a_refused_leaf_is_logged_without_a_callback(
    builder: RegistryBuilder, caplog: pytest.LogCaptureFixture
) -> None:
    zj, sc = builder.provinces[ZJ], builder.provinces[SC]
    builder.add(builder.sign(DscRevocation(sc.kid, NOW, "unspecified"), zj.ca))
    with caplog.at_level("WARNING", logger="trust.view"):
        view = _view(builder)
    assert view.signer(sc.kid) is not None
    key = leaf_key(len(builder.leaves) - 1)
    assert f"registry entry refused: {key}: refused: " in caplog.text
    (record,) = [r for r in caplog.records if r.name == "trust.view"]
    assert record.key == key and record.why.startswith("refused: ")  # type: ignore[attr-defined]


# -- routes -------------------------------------------------------------------------------------
def test_routes_are_served_per_province_in_node_order(builder: RegistryBuilder) -> None:
    view = _view(builder)
    routes = [_route(ZJ, "n2"), _route(ZJ, "n1"), _route(SC, "n1", "10.0.0.1:7000")]
    view.set_routes((r.key, encode_route(r)) for r in routes)
    assert [n.node_id for n in view.nodes(ZJ)] == ["n1", "n2"]
    assert view.nodes(SC) == [routes[2]]
    assert view.nodes(HN) == []
    assert sorted(view.routes(), key=lambda r: r.key) == sorted(routes, key=lambda r: r.key)
    view.set_routes([(routes[0].key, encode_route(routes[0]))])
    assert view.routes() == [routes[0]], "set_routes replaces every route"


def test_a_route_that_is_not_its_own_nodes_is_refused_and_reported(
    builder: RegistryBuilder,
) -> None:
    rejected: list[tuple[str, str]] = []
    view = TrustView(roots=builder.roots, on_rejected=lambda k, why: rejected.append((k, why)))
    good = _route(ZJ, "n1")
    view.put_route(good.key, encode_route(good))
    view.put_route(route_key(ZJ, "n2"), encode_route(good))
    assert view.routes() == [good]
    assert rejected == [
        (route_key(ZJ, "n2"), f"{route_key(ZJ, 'n2')} is not a route of its own node")
    ]


def test_a_route_is_dropped_only_by_its_exact_key(builder: RegistryBuilder) -> None:
    view = _view(builder)
    routes = [_route(ZJ, "n1"), _route(ZJ, "n2")]
    view.set_routes((r.key, encode_route(r)) for r in routes)
    for key in ("nodes/330000/n1/x", "nodes/330000", "nodes/510000/n1", "other/330000/n1"):
        view.drop_route(key)
    assert len(view.routes()) == 2
    view.drop_route(route_key(ZJ, "n1"))
    assert view.nodes(ZJ) == [routes[1]]
    view.drop_route(route_key(ZJ, "n1"))  # twice: nothing left to drop
    assert view.nodes(ZJ) == [routes[1]]
