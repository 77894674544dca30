"""The federation PKI: issuing from CSRs, explicit chain checks, CRLs, and openssl interop."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trust import pki
from trust.errors import PkiError
from trust.model import Reason

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ZJ, SC = "330000", "510000"


@dataclass
class Federation:
    root: pki.Authority
    zj: pki.Authority
    sc: pki.Authority
    dsc: x509.Certificate
    dsc_key: pki.PrivateKey


def _issue(
    ca: pki.Authority,
    *,
    province: str = ZJ,
    kind: str = "dsc",
    name: str = "hz-2026",
    not_before: datetime = NOW - DAY,
    validity: timedelta = pki.DSC_VALIDITY,
) -> tuple[x509.Certificate, pki.PrivateKey]:
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name=name)
    cert = pki.sign_leaf(
        ca,
        csr,
        province=province,
        kind=kind,
        name=name,
        not_before=not_before,
        validity=validity,
    )
    return cert, key


@pytest.fixture(scope="module")
def fed() -> Federation:
    root = pki.create_root_ca(now=NOW - 10 * DAY)
    zj = pki.create_provincial_ca(root, province=ZJ, name="Zhejiang", now=NOW - 5 * DAY)
    sc = pki.create_provincial_ca(root, province=SC, name="Sichuan", now=NOW - 5 * DAY)
    dsc, dsc_key = _issue(zj)
    return Federation(root, zj, sc, dsc, dsc_key)


# --- Hand-made certificates for what the issuing functions rightly refuse to produce --------

Extensions = list[tuple[x509.ExtensionType, bool]]


def _forge(
    *,
    subject_cn: str,
    issuer: x509.Name | None,
    signer: pki.PrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    extensions: Extensions,
    not_before: datetime = NOW - DAY,
    not_after: datetime = NOW + 365 * DAY,
) -> x509.Certificate:
    """Sign an arbitrary certificate; ``issuer=None`` makes it self-issued."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hcx"),
            x509.NameAttribute(NameOID.COMMON_NAME, subject_cn),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(signer, hashes.SHA256())


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _dsc_extensions(uri: str, *, eku: bool = True) -> Extensions:
    extensions: Extensions = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_usage(ca=False), True),
        (x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), False),
    ]
    if eku:
        extensions.append((x509.ExtendedKeyUsage([pki.HEALTH_CODE_SIGNING_OID]), False))
    return extensions


def _ca_extensions(uri: str, *, path_length: int | None) -> Extensions:
    return [
        (x509.BasicConstraints(ca=True, path_length=path_length), True),
        (_usage(ca=True), True),
        (x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), False),
    ]


def _forged_dsc(
    ca: pki.Authority, *, uri: str, eku: bool = True, extra: Extensions | None = None
) -> x509.Certificate:
    key = pki.generate_private_key()
    return _forge(
        subject_cn="forged dsc",
        issuer=ca.certificate.subject,
        signer=ca.private_key,
        public_key=key.public_key(),
        extensions=_dsc_extensions(uri, eku=eku) + (extra or []),
    )


# --- Chain verification, one named row per case ----------------------------------------------

Chain = tuple[x509.Certificate, x509.Certificate, Sequence[x509.Certificate], datetime]


def _good(f: Federation) -> Chain:
    return f.dsc, f.zj.certificate, [f.root.certificate], NOW


def _signed_by_other_province(f: Federation) -> Chain:
    dsc, _ = _issue(f.sc, province=SC)
    return dsc, f.zj.certificate, [f.root.certificate], NOW


def _right_name_wrong_key(f: Federation) -> Chain:
    # Issuer name says Zhejiang's CA, but Sichuan's CA key signed it.
    impostor = pki.Authority(f.zj.certificate, f.sc.private_key)
    dsc = _forged_dsc(impostor, uri="spiffe://hcx/province/330000/dsc/x")
    return dsc, f.zj.certificate, [f.root.certificate], NOW


def _san_names_other_province(f: Federation) -> Chain:
    dsc = _forged_dsc(f.sc, uri="spiffe://hcx/province/330000/dsc/x")
    return dsc, f.sc.certificate, [f.root.certificate], NOW


def _self_signed_dsc(f: Federation) -> Chain:
    key = pki.generate_private_key()
    dsc = _forge(
        subject_cn="self-signed dsc",
        issuer=None,
        signer=key,
        public_key=key.public_key(),
        extensions=_dsc_extensions("spiffe://hcx/province/330000/dsc/self"),
    )
    return dsc, f.zj.certificate, [f.root.certificate], NOW


def _foreign_root(f: Federation) -> Chain:
    # Same subject name as the pinned root, different key: only the key gives it away.
    foreign = pki.create_root_ca(now=NOW - 10 * DAY)
    ca = pki.create_provincial_ca(foreign, province=ZJ, name="Zhejiang", now=NOW - 5 * DAY)
    dsc, _ = _issue(ca)
    return dsc, ca.certificate, [f.root.certificate], NOW


def _no_pinned_roots(f: Federation) -> Chain:
    return f.dsc, f.zj.certificate, [], NOW


def _expired_dsc(f: Federation) -> Chain:
    dsc, _ = _issue(f.zj, not_before=NOW - 60 * DAY, validity=30 * DAY)
    return dsc, f.zj.certificate, [f.root.certificate], NOW


def _not_yet_valid_dsc(f: Federation) -> Chain:
    dsc, _ = _issue(f.zj, not_before=NOW + 10 * DAY)
    return dsc, f.zj.certificate, [f.root.certificate], NOW


def _expired_provincial_ca(f: Federation) -> Chain:
    return f.dsc, f.zj.certificate, [f.root.certificate], NOW + 6 * 365 * DAY


def _dsc_used_as_ca(f: Federation) -> Chain:
    # The DSC's key signs a "DSC" of its own and presents the DSC as its provincial CA.
    child = _forged_dsc(
        pki.Authority(f.dsc, f.dsc_key), uri="spiffe://hcx/province/330000/dsc/child"
    )
    return child, f.dsc, [f.root.certificate], NOW


def _root_path_length_zero(f: Federation) -> Chain:
    key = pki.generate_private_key()
    root_cert = _forge(
        subject_cn="hcx national root CA",
        issuer=None,
        signer=key,
        public_key=key.public_key(),
        extensions=_ca_extensions(pki.NATIONAL_SPIFFE_ID, path_length=0),
        not_before=NOW - 10 * DAY,
    )
    root = pki.Authority(root_cert, key)
    ca = pki.create_provincial_ca(root, province=ZJ, name="Zhejiang", now=NOW - 5 * DAY)
    dsc, _ = _issue(ca)
    return dsc, ca.certificate, [root_cert], NOW


def _provincial_ca_path_length_one(f: Federation) -> Chain:
    key = pki.generate_private_key()
    ca_cert = _forge(
        subject_cn="hcx province 330000 CA",
        issuer=f.root.certificate.subject,
        signer=f.root.private_key,
        public_key=key.public_key(),
        extensions=_ca_extensions("spiffe://hcx/province/330000", path_length=1),
    )
    dsc, _ = _issue(pki.Authority(ca_cert, key))
    return dsc, ca_cert, [f.root.certificate], NOW


def _missing_eku(f: Federation) -> Chain:
    dsc = _forged_dsc(f.zj, uri="spiffe://hcx/province/330000/dsc/x", eku=False)
    return dsc, f.zj.certificate, [f.root.certificate], NOW


def _node_cert_as_dsc(f: Federation) -> Chain:
    node, _ = _issue(f.zj, kind="node", name="hz-1")
    return node, f.zj.certificate, [f.root.certificate], NOW


def _unknown_critical_extension(f: Federation) -> Chain:
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    dsc = _forged_dsc(f.zj, uri="spiffe://hcx/province/330000/dsc/x", extra=[(odd, True)])
    return dsc, f.zj.certificate, [f.root.certificate], NOW


@dataclass(frozen=True)
class ChainCase:
    name: str
    build: Callable[[Federation], Chain]
    reason: Reason | None  # None: the chain verifies
    message: str = ""


CHAIN_CASES = [
    ChainCase("good chain verifies", _good, None),
    ChainCase(
        "DSC signed by another province's CA",
        _signed_by_other_province,
        Reason.CHAIN_INVALID,
        "does not match the provincial CA subject",
    ),
    ChainCase(
        "DSC naming Zhejiang's CA but signed with Sichuan's key",
        _right_name_wrong_key,
        Reason.CHAIN_INVALID,
        "signature does not verify",
    ),
    ChainCase(
        "DSC whose SAN names another province",
        _san_names_other_province,
        Reason.CHAIN_INVALID,
        "names province 330000 but was issued by the CA of province 510000",
    ),
    ChainCase("self-signed DSC", _self_signed_dsc, Reason.CHAIN_INVALID, "does not match"),
    ChainCase(
        "provincial CA from a look-alike foreign root",
        _foreign_root,
        Reason.CHAIN_INVALID,
        "not issued by any pinned root",
    ),
    ChainCase("no pinned roots", _no_pinned_roots, Reason.CHAIN_INVALID, "not a pinned root"),
    ChainCase("expired DSC", _expired_dsc, Reason.KEY_NOT_VALID_AT_ISSUANCE, "DSC is expired"),
    ChainCase(
        "DSC not yet valid",
        _not_yet_valid_dsc,
        Reason.KEY_NOT_VALID_AT_ISSUANCE,
        "DSC is not yet valid",
    ),
    ChainCase(
        "provincial CA expired",
        _expired_provincial_ca,
        Reason.KEY_NOT_VALID_AT_ISSUANCE,
        "provincial CA is expired",
    ),
    ChainCase(
        "DSC used as a CA to sign another certificate",
        _dsc_used_as_ca,
        Reason.CHAIN_INVALID,
        "provincial CA is not a CA",
    ),
    ChainCase(
        "root with path length 0 cannot have provincial CAs",
        _root_path_length_zero,
        Reason.CHAIN_INVALID,
        "path length exceeded",
    ),
    ChainCase(
        "provincial CA allowing sub-CAs is off-profile",
        _provincial_ca_path_length_one,
        Reason.CHAIN_INVALID,
        "path length 1, the profile requires 0",
    ),
    ChainCase("DSC without EKU", _missing_eku, Reason.WRONG_PURPOSE, "extended key usage"),
    ChainCase(
        "node TLS certificate presented as DSC",
        _node_cert_as_dsc,
        Reason.WRONG_PURPOSE,
        "extended key usage",
    ),
    ChainCase(
        "unknown critical extension",
        _unknown_critical_extension,
        Reason.CHAIN_INVALID,
        "unknown critical extension",
    ),
]


@pytest.mark.parametrize("case", CHAIN_CASES, ids=[c.name for c in CHAIN_CASES])
def test_verify_dsc_chain(fed: Federation, case: ChainCase) -> None:
    dsc, ca, roots, at = case.build(fed)
    if case.reason is None:
        assert pki.verify_dsc_chain(dsc, ca, roots, at=at) == ZJ
        return
    with pytest.raises(PkiError) as caught:
        pki.verify_dsc_chain(dsc, ca, roots, at=at)
    assert caught.value.reason == case.reason
    assert case.message in caught.value.message


def test_naive_verification_time_is_a_programming_error(fed: Federation) -> None:
    with pytest.raises(ValueError, match="must be timezone-aware"):
        pki.verify_dsc_chain(
            fed.dsc, fed.zj.certificate, [fed.root.certificate], at=NOW.replace(tzinfo=None)
        )


# --- Other leaf kinds and the trust-list signer --------------------------------------------------


@pytest.mark.parametrize("kind", ["node", "checkpoint"])
def test_leaf_chain_verifies_for_its_kind(fed: Federation, kind: str) -> None:
    cert, _ = _issue(fed.zj, kind=kind, name="hz-1")
    roots = [fed.root.certificate]
    assert pki.verify_leaf_chain(cert, fed.zj.certificate, roots, at=NOW, kind=kind) == ZJ
    assert pki.spiffe_id(cert) == f"spiffe://hcx/province/330000/{kind}/hz-1"


def test_checkpoint_certificate_is_not_a_node_certificate(fed: Federation) -> None:
    cert, _ = _issue(fed.zj, kind="checkpoint", name="cd-east")
    with pytest.raises(PkiError) as caught:
        pki.verify_leaf_chain(cert, fed.zj.certificate, [fed.root.certificate], at=NOW, kind="node")
    assert caught.value.reason == Reason.WRONG_PURPOSE


def test_node_certificate_serves_loopback_tls(fed: Federation) -> None:
    cert, _ = _issue(fed.zj, kind="node", name="hz-1")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    # localhost for loopback TLS, and the identity name gateways dial the node by.
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "hz-1.node.330000.hcx.internal"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("127.0.0.1")]
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


def test_unknown_leaf_kind_refused(fed: Federation) -> None:
    with pytest.raises(PkiError, match="unknown certificate kind"):
        _issue(fed.zj, kind="gateway")


def test_trust_list_signer(fed: Federation) -> None:
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name="trust list")
    signer = pki.sign_trust_list_signer(fed.root, csr, not_before=NOW - DAY)
    pki.verify_trust_list_signer(signer, [fed.root.certificate], at=NOW)
    assert pki.spiffe_id(signer) == pki.TRUST_LIST_SPIFFE_ID
    assert pki.province_of(signer) is None

    with pytest.raises(PkiError) as caught:
        pki.verify_trust_list_signer(fed.dsc, [fed.root.certificate], at=NOW)
    assert caught.value.reason == Reason.WRONG_PURPOSE

    foreign = pki.create_root_ca(now=NOW - DAY)
    with pytest.raises(PkiError, match="not issued by any pinned root"):
        pki.verify_trust_list_signer(signer, [foreign.certificate], at=NOW)


# --- Issuing from CSRs --------------------------------------------------------------------------


def _tampered_csr() -> x509.CertificateSigningRequest:
    der = bytearray(
        pki.make_csr(pki.generate_private_key(), common_name="x").public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-1] ^= 0x01  # last byte of the signature's s value: still DER, no longer valid
    return x509.load_der_x509_csr(bytes(der))


SIGNERS: dict[str, Callable[[Federation, x509.CertificateSigningRequest], x509.Certificate]] = {
    "root signs provincial CA": lambda f, csr: pki.sign_provincial_ca(
        f.root, csr, province=ZJ, name="Zhejiang"
    ),
    "provincial CA signs DSC": lambda f, csr: pki.sign_dsc(f.zj, csr, province=ZJ, name="a"),
    "root signs trust-list signer": lambda f, csr: pki.sign_trust_list_signer(f.root, csr),
}


@pytest.mark.parametrize("signer", SIGNERS.values(), ids=list(SIGNERS))
def test_csr_with_bad_signature_refused(fed: Federation, signer: Callable[..., object]) -> None:
    with pytest.raises(PkiError, match="CSR signature does not verify"):
        signer(fed, _tampered_csr())


def test_csr_asking_for_another_province_refused(fed: Federation) -> None:
    key = pki.generate_private_key()
    san = x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier("spiffe://hcx/province/510000")]
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .add_extension(san, critical=False)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(PkiError, match="the issuer grants spiffe://hcx/province/330000"):
        pki.sign_provincial_ca(fed.root, csr, province=ZJ, name="Zhejiang")


@pytest.mark.parametrize(
    ("province", "name", "message"),
    [
        pytest.param(SC, "a", "cannot issue for province 510000", id="CA of another province"),
        pytest.param("330100", "a", "not a provincial-level", id="prefecture code"),
        pytest.param(ZJ, "a/b", "not a valid certificate name", id="slash in name"),
    ],
)
def test_sign_dsc_refuses_bad_identity(
    fed: Federation, province: str, name: str, message: str
) -> None:
    csr = pki.make_csr(pki.generate_private_key(), common_name="x")
    with pytest.raises(PkiError, match=message):
        pki.sign_dsc(fed.zj, csr, province=province, name=name)


def test_certificates_follow_the_profile(fed: Federation) -> None:
    root, ca, dsc = fed.root.certificate, fed.zj.certificate, fed.dsc
    bc = x509.BasicConstraints
    assert root.extensions.get_extension_for_class(bc).value.path_length == 1
    assert root.extensions.get_extension_for_class(bc).critical
    assert ca.extensions.get_extension_for_class(bc).value.path_length == 0
    assert not dsc.extensions.get_extension_for_class(bc).value.ca
    dsc_usage = dsc.extensions.get_extension_for_class(x509.KeyUsage)
    assert dsc_usage.critical and dsc_usage.value.digital_signature
    assert not dsc_usage.value.key_cert_sign
    eku = dsc.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [pki.HEALTH_CODE_SIGNING_OID]
    aki = ca.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert root.subject.rfc4514_string() == "CN=hcx national root CA,O=hcx"
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "hcx province 330000 CA"
    )
    assert 0 < dsc.serial_number < 2**159
    assert dsc.not_valid_after_utc - dsc.not_valid_before_utc == pki.DSC_VALIDITY


def test_no_certificate_outlives_its_issuer(fed: Federation) -> None:
    dsc, _ = _issue(fed.zj, validity=50 * 365 * DAY)
    assert dsc.not_valid_after_utc == fed.zj.certificate.not_valid_after_utc


def test_oids_are_minted_under_the_uuid_arc() -> None:
    assert pki.HCX_OID_UUID.version == 4
    arc = f"2.25.{pki.HCX_OID_UUID.int}"
    assert pki.HEALTH_CODE_SIGNING_OID.dotted_string == f"{arc}.1"
    assert pki.TRUST_LIST_SIGNING_OID.dotted_string == f"{arc}.2"
    assert uuid.UUID(int=int(arc.split(".")[2])) == pki.HCX_OID_UUID


# --- Identities, kid, encodings, key files -----------------------------------------------------


def test_identities_from_san(fed: Federation) -> None:
    table = [
        ("root", fed.root.certificate, pki.NATIONAL_SPIFFE_ID, None),
        ("provincial CA", fed.zj.certificate, "spiffe://hcx/province/330000", ZJ),
        ("DSC", fed.dsc, "spiffe://hcx/province/330000/dsc/hz-2026", ZJ),
    ]
    for what, cert, expected_id, expected_province in table:
        assert pki.spiffe_id(cert) == expected_id, what
        assert pki.province_of(cert) == expected_province, what


def test_kid_is_eight_stable_bytes(fed: Federation) -> None:
    kid = pki.kid(fed.dsc)
    assert len(kid) == 8
    assert kid == hashlib.sha256(fed.dsc.public_bytes(serialization.Encoding.DER)).digest()[:8]
    assert pki.kid(pki.load_certificate_pem(pki.certificate_to_pem(fed.dsc))) == kid
    assert pki.kid(pki.load_certificate_der(pki.certificate_to_der(fed.dsc))) == kid
    other, _ = _issue(fed.zj, name="hz-other")
    assert pki.kid(other) != kid


@pytest.mark.parametrize(
    "loader",
    [
        pki.load_certificate_pem,
        pki.load_certificate_der,
        pki.load_csr_pem,
        pki.load_crl_pem,
        pki.load_crl_der,
        pki.load_private_key_pem,
    ],
    ids=lambda f: f.__name__,
)
def test_loaders_turn_garbage_into_pki_error(loader: Callable[[bytes], object]) -> None:
    with pytest.raises(PkiError):
        loader(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")


def test_private_key_file_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    key = pki.generate_private_key()
    path = tmp_path / "dsc.key"
    previous = os.umask(0)  # even with a permissive umask the file must not be readable
    try:
        pki.write_private_key(path, key, password=b"s3cret")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = pki.load_private_key_pem(path.read_bytes(), b"s3cret")
    assert loaded.public_key().public_numbers() == key.public_key().public_numbers()
    with pytest.raises(PkiError):
        pki.load_private_key_pem(path.read_bytes(), b"wrong")
    with pytest.raises(FileExistsError):
        pki.write_private_key(path, pki.generate_private_key())


def test_csr_pem_round_trip() -> None:
    csr = pki.make_csr(pki.generate_private_key(), common_name="hz")
    assert pki.load_csr_pem(pki.csr_to_pem(csr)) == csr


# --- CRLs ---------------------------------------------------------------------------------------


def _crl(
    issuer: pki.Authority, serials: Sequence[int], *, key: pki.PrivateKey | None = None
) -> x509.CertificateRevocationList:
    entries = [
        pki.RevokedEntry(serial, NOW - DAY, x509.ReasonFlags.key_compromise) for serial in serials
    ]
    signer = pki.Authority(issuer.certificate, key) if key else issuer
    return pki.make_crl(
        signer.certificate,
        signer.private_key,
        entries,
        this_update=NOW - DAY,
        next_update=NOW + 7 * DAY,
        crl_number=3,
    )


def test_crl_round_trip(fed: Federation) -> None:
    crl = pki.load_crl_der(pki.crl_to_der(_crl(fed.zj, [fed.dsc.serial_number, 42])))
    crl = pki.load_crl_pem(pki.crl_to_pem(crl))
    pki.verify_crl(crl, fed.zj.certificate, at=NOW)
    assert pki.revoked_at(crl, fed.dsc.serial_number) == NOW - DAY
    assert pki.revoked_at(crl, fed.dsc.serial_number + 1) is None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3


def test_crl_signed_by_another_key_refused(fed: Federation) -> None:
    # make_crl itself refuses a key that does not match the issuer certificate...
    with pytest.raises(PkiError, match="does not belong"):
        _crl(fed.zj, [fed.dsc.serial_number], key=pki.generate_private_key())
    # ...so forge one by hand: Zhejiang's name, another key.
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(fed.zj.certificate.subject)
        .last_update(NOW - DAY)
        .next_update(NOW + DAY)
        .sign(pki.generate_private_key(), hashes.SHA256())
    )
    with pytest.raises(PkiError, match="CRL signature does not verify"):
        pki.verify_crl(forged, fed.zj.certificate)


def test_crl_from_another_issuer_or_stale_refused(fed: Federation) -> None:
    crl = _crl(fed.sc, [fed.dsc.serial_number])
    with pytest.raises(PkiError, match="CRL issuer"):
        pki.verify_crl(crl, fed.zj.certificate)
    with pytest.raises(PkiError, match="not current"):
        pki.verify_crl(crl, fed.sc.certificate, at=NOW + 30 * DAY)
    with pytest.raises(PkiError, match="not allowed to sign CRLs"):
        pki.verify_crl(_crl(pki.Authority(fed.dsc, fed.dsc_key), []), fed.dsc)


# --- Interoperability with openssl -----------------------------------------------------------


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", *map(str, args)], capture_output=True, text=True, check=False
    )


def test_openssl_verifies_chain_and_sees_revocation(tmp_path: Path) -> None:
    from tests.support import require  # a skip locally, a failure in CI (tests/support.py)

    require(shutil.which("openssl"), what="openssl", install="apt-get install openssl")
    # openssl checks validity against the wall clock, so this federation lives in real time.
    now = datetime.now(UTC)
    root = pki.create_root_ca(now=now - DAY)
    ca = pki.create_provincial_ca(root, province=ZJ, name="Zhejiang", now=now - DAY)
    dsc, _ = _issue(ca, not_before=now - DAY)
    node, _ = _issue(ca, kind="node", name="hz-1", not_before=now - DAY)
    files = {"root.pem": root.certificate, "ca.pem": ca.certificate, "dsc.pem": dsc}
    files["node.pem"] = node
    for name, cert in files.items():
        (tmp_path / name).write_bytes(pki.certificate_to_pem(cert))
    chain: list[str | Path] = ["-CAfile", tmp_path / "root.pem", "-untrusted", tmp_path / "ca.pem"]

    # Without -purpose, OpenSSL 3.0 checks no purpose and accepts the hcx EKU. The TLS
    # purposes (sslclient/sslserver) rightly refuse it, since it lacks clientAuth/serverAuth.
    # "-purpose any" pins the accept-any-EKU behaviour whatever a given openssl's default is;
    # -x509_strict adds the RFC 5280 conformance checks (key identifiers, critical flags...).
    purposes: list[list[str | Path]] = [[], ["-purpose", "any", "-x509_strict"]]
    for args in purposes:
        result = _openssl(*args, *chain, tmp_path / "dsc.pem")
        assert result.returncode == 0 and "dsc.pem: OK" in result.stdout, result.stderr
    result = _openssl("-purpose", "sslserver", "-x509_strict", *chain, tmp_path / "node.pem")
    assert result.returncode == 0 and "node.pem: OK" in result.stdout, result.stderr

    window = {"this_update": now - timedelta(minutes=5), "next_update": now + DAY}
    revoked = [pki.RevokedEntry(dsc.serial_number, now - DAY, x509.ReasonFlags.key_compromise)]
    ca_crl = pki.make_crl(ca.certificate, ca.private_key, revoked, crl_number=1, **window)
    root_crl = pki.make_crl(root.certificate, root.private_key, [], crl_number=1, **window)
    (tmp_path / "ca.crl").write_bytes(pki.crl_to_pem(ca_crl))
    (tmp_path / "root.crl").write_bytes(pki.crl_to_pem(root_crl))
    crls: list[str | Path] = [
        "-crl_check_all",
        "-CRLfile",
        tmp_path / "ca.crl",
        "-CRLfile",
        tmp_path / "root.crl",
    ]

    result = _openssl("-purpose", "any", *crls, *chain, tmp_path / "dsc.pem")
    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr
    result = _openssl("-purpose", "sslserver", *crls, *chain, tmp_path / "node.pem")
    assert result.returncode == 0, result.stdout + result.stderr


# --- Clock skew: certificates are backdated, chain checks allow the same skew -----------------


def _csr_for(uri: str) -> x509.CertificateSigningRequest:
    return pki.make_csr(pki.generate_private_key(), common_name=uri)


def _issued_at(
    fed: Federation, moment: datetime, backdate: timedelta = pki.CLOCK_SKEW
) -> dict[str, x509.Certificate]:
    """One certificate of every kind hcx issues, all issued (by the issuer's clock) at moment."""
    root = pki.create_root_ca(now=moment, backdate=backdate)
    ca = pki.create_provincial_ca(
        fed.root, province=ZJ, name="Zhejiang", now=moment, backdate=backdate
    )
    issued = {"root": root.certificate, "provincial CA": ca.certificate}
    for kind in pki.LEAF_KINDS:
        issued[kind] = pki.sign_leaf(
            fed.zj,
            _csr_for(kind),
            province=ZJ,
            kind=kind,
            name="n-1",
            not_before=moment,
            backdate=backdate,
        )
    for kind in pki.NATIONAL_KINDS:
        issued[kind] = pki.sign_national_leaf(
            fed.root, _csr_for(kind), kind=kind, name="n-1", not_before=moment, backdate=backdate
        )
    issued["dsc (sign_dsc)"] = pki.sign_dsc(
        fed.zj, _csr_for("dsc"), province=ZJ, name="d-1", not_before=moment, backdate=backdate
    )
    issued["trust-list signer"] = pki.sign_trust_list_signer(
        fed.root, _csr_for("tl"), not_before=moment, backdate=backdate
    )
    issued["log signer"] = pki.sign_log_signer(
        fed.root, _csr_for("log"), not_before=moment, backdate=backdate
    )
    return issued


def test_every_certificate_is_backdated_by_the_clock_skew(fed: Federation) -> None:
    assert pki.CLOCK_SKEW.total_seconds() == 5 * 60
    for what, cert in _issued_at(fed, NOW).items():
        assert cert.not_valid_before_utc == NOW - pki.CLOCK_SKEW, what


def test_a_certificate_issued_now_is_backdated_too(fed: Federation) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    dsc = pki.sign_dsc(fed.zj, _csr_for("dsc"), province=ZJ, name="d-0")
    assert dsc.not_valid_before_utc <= before - pki.CLOCK_SKEW + timedelta(seconds=1)


@pytest.mark.parametrize(
    "backdate",
    [timedelta(0), timedelta(seconds=2), timedelta(hours=1)],
    ids=["none", "2 s", "1 h (Let's Encrypt)"],
)
def test_backdating_is_configurable(fed: Federation, backdate: timedelta) -> None:
    for what, cert in _issued_at(fed, NOW, backdate=backdate).items():
        assert cert.not_valid_before_utc == NOW - backdate, what


def test_backdating_keeps_the_validity_period(fed: Federation) -> None:
    dsc = pki.sign_dsc(fed.zj, _csr_for("dsc"), province=ZJ, name="d-2", not_before=NOW)
    assert dsc.not_valid_after_utc == NOW - pki.CLOCK_SKEW + pki.DSC_VALIDITY


def test_a_certificate_is_never_postdated(fed: Federation) -> None:
    with pytest.raises(PkiError, match="backdated"):
        pki.sign_dsc(
            fed.zj, _csr_for("dsc"), province=ZJ, name="d-3", backdate=-timedelta(seconds=1)
        )


# The verifier's clock reads NOW; the issuer's clock was ahead by ``ahead`` when it issued.
@pytest.mark.parametrize(
    ("ahead", "backdate", "skew", "valid"),
    [
        pytest.param(timedelta(seconds=2), pki.CLOCK_SKEW, pki.CLOCK_SKEW, True, id="2 s ahead"),
        pytest.param(timedelta(seconds=60), pki.CLOCK_SKEW, pki.CLOCK_SKEW, True, id="60 s ahead"),
        pytest.param(
            timedelta(seconds=2), timedelta(0), timedelta(0), False, id="2 s, no margin anywhere"
        ),
        pytest.param(
            timedelta(seconds=60), timedelta(0), pki.CLOCK_SKEW, True, id="60 s, verifier skew only"
        ),
        pytest.param(
            timedelta(seconds=60), pki.CLOCK_SKEW, timedelta(0), True, id="60 s, backdate only"
        ),
        pytest.param(
            timedelta(minutes=10), pki.CLOCK_SKEW, pki.CLOCK_SKEW, True, id="10 min: both margins"
        ),
        pytest.param(
            timedelta(minutes=10, seconds=1), pki.CLOCK_SKEW, pki.CLOCK_SKEW, False, id="beyond"
        ),
    ],
)
def test_chains_from_an_issuer_whose_clock_is_ahead(
    ahead: timedelta, backdate: timedelta, skew: timedelta, valid: bool
) -> None:
    issued = NOW + ahead
    root = pki.create_root_ca(now=issued, backdate=backdate)
    ca = pki.create_provincial_ca(root, province=ZJ, name="Zhejiang", now=issued, backdate=backdate)
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name="dsc")
    dsc = pki.sign_dsc(ca, csr, province=ZJ, name="d", not_before=issued, backdate=backdate)
    roots = [root.certificate]
    if valid:
        assert pki.verify_dsc_chain(dsc, ca.certificate, roots, at=NOW, clock_skew=skew) == ZJ
    else:
        with pytest.raises(PkiError, match="not yet valid") as caught:
            pki.verify_dsc_chain(dsc, ca.certificate, roots, at=NOW, clock_skew=skew)
        assert caught.value.reason is Reason.KEY_NOT_VALID_AT_ISSUANCE


def test_the_skew_does_not_extend_a_certificate_past_its_not_after(fed: Federation) -> None:
    dsc, _ = _issue(fed.zj, not_before=NOW - 30 * DAY, validity=30 * DAY)
    end = dsc.not_valid_after_utc
    roots = [fed.root.certificate]
    pki.verify_dsc_chain(dsc, fed.zj.certificate, roots, at=end)
    with pytest.raises(PkiError, match="expired"):
        pki.verify_dsc_chain(dsc, fed.zj.certificate, roots, at=end + timedelta(seconds=1))


Verify = Callable[[dict[str, x509.Certificate], list[x509.Certificate], timedelta], object]
_CHECKS: dict[str, Verify] = {
    "trust-list signer": lambda c, roots, skew: pki.verify_trust_list_signer(
        c["trust-list signer"], roots, at=NOW, clock_skew=skew
    ),
    "log signer": lambda c, roots, skew: pki.verify_log_signer(
        c["log signer"], roots, at=NOW, clock_skew=skew
    ),
    "gateway": lambda c, roots, skew: pki.verify_national_leaf(
        c["gateway"], roots, at=NOW, kind="gateway", clock_skew=skew
    ),
    "provincial CA": lambda c, roots, skew: pki.verify_provincial_ca(
        c["provincial CA"], roots, at=NOW, clock_skew=skew
    ),
    "node": lambda c, roots, skew: pki.verify_leaf_chain(
        c["node"], c["provincial CA"], roots, at=NOW, kind="node", clock_skew=skew
    ),
    "root": lambda c, roots, skew: pki.verify_root(c["root"], at=NOW, clock_skew=skew),
}


@pytest.mark.parametrize("what", list(_CHECKS))
def test_every_chain_check_takes_the_skew(fed: Federation, what: str) -> None:
    # Issued 2 s after the reference time and not backdated: valid only with a skew.
    issued = _issued_at(fed, NOW + timedelta(seconds=2), backdate=timedelta(0))
    if what == "node":  # issued by a provincial CA of the same (2 s ahead) moment
        ca = pki.create_provincial_ca(
            fed.root,
            province=ZJ,
            name="Zhejiang",
            now=NOW + timedelta(seconds=2),
            backdate=timedelta(0),
        )
        issued["provincial CA"] = ca.certificate
        issued["node"] = pki.sign_leaf(
            ca,
            _csr_for("node"),
            province=ZJ,
            kind="node",
            name="n-2",
            not_before=NOW + timedelta(seconds=2),
            backdate=timedelta(0),
        )
    _CHECKS[what](issued, [fed.root.certificate], pki.CLOCK_SKEW)
    with pytest.raises(PkiError, match="not yet valid"):
        _CHECKS[what](issued, [fed.root.certificate], timedelta(0))


def test_crl_issued_by_a_clock_ahead_is_current(fed: Federation) -> None:
    crl = pki.make_crl(
        fed.zj.certificate,
        fed.zj.private_key,
        [],
        this_update=NOW + timedelta(seconds=60),
        next_update=NOW + DAY,
        crl_number=9,
    )
    pki.verify_crl(crl, fed.zj.certificate, at=NOW)
    with pytest.raises(PkiError, match="not current"):
        pki.verify_crl(crl, fed.zj.certificate, at=NOW, clock_skew=timedelta(0))
