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
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

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
    look_alike: pki.Authority  # a root with the pinned root's name and another key


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
    return Federation(root, zj, sc, dsc, dsc_key, pki.create_root_ca(now=NOW - 10 * DAY))


# --- Hand-made certificates for what the issuing functions rightly refuse to produce --------

Extensions = list[tuple[x509.ExtensionType, bool]]
# The digests a certificate may be signed with (cryptography's x509.base._AllowedHashTypes).
SignatureHash = (
    hashes.SHA224
    | hashes.SHA256
    | hashes.SHA384
    | hashes.SHA512
    | hashes.SHA3_224
    | hashes.SHA3_256
    | hashes.SHA3_384
    | hashes.SHA3_512
)


def _forge(
    *,
    subject_cn: str,
    issuer: x509.Name | None,
    signer: pki.PrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    extensions: Extensions,
    not_before: datetime = NOW - DAY,
    not_after: datetime = NOW + 365 * DAY,
    algorithm: SignatureHash | None = None,
    subject: x509.Name | None = None,
) -> x509.Certificate:
    """Sign an arbitrary certificate; ``issuer=None`` makes it self-issued."""
    subject = subject or x509.Name(
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
    return builder.sign(signer, algorithm or hashes.SHA256())


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


WEB_NAMES = ("station.example", "192.168.1.20")


def test_a_web_certificate_names_its_hosts_and_is_no_client_identity(fed: Federation) -> None:
    key = pki.generate_private_key()
    with pytest.raises(PkiError, match="needs the host names"):
        pki.sign_leaf(fed.zj, pki.make_csr(key, common_name="w"), province=ZJ, kind="web",
                      name="w-1", not_before=NOW - DAY)  # fmt: skip
    cert = pki.sign_leaf(fed.zj, pki.make_csr(key, common_name="w"), province=ZJ, kind="web",
                         name="w-1", dns_names=["10.0.0.7"], not_before=NOW - DAY)  # fmt: skip
    roots = [fed.root.certificate]
    assert pki.verify_leaf_chain(cert, fed.zj.certificate, roots, at=NOW, kind="web") == ZJ
    for kind in ("checkpoint", "node", "operator", "authority", "checkin"):
        with pytest.raises(PkiError):  # never taken for a client of the federation
            pki.verify_leaf_chain(cert, fed.zj.certificate, roots, at=NOW, kind=kind)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    with pytest.raises(PkiError, match="not a valid host name"):
        pki.sign_leaf(fed.zj, pki.make_csr(key, common_name="w"), province=ZJ, kind="web",
                      name="w-2", dns_names=["bad name!"])  # fmt: skip


@pytest.mark.parametrize("kind", ["web", "node"])
@pytest.mark.parametrize(
    "name", ["hz-1.node.330000.hcx.internal", "HZ-1.NODE.330000.HCX.INTERNAL.", "hcx.internal"]
)
def test_no_provincial_certificate_may_ask_for_an_identity_name(
    fed: Federation, kind: str, name: str
) -> None:
    """A web front's key sits on a LAN box: a certificate of it naming a node's identity name
    would let it answer the gateway as that node. Identity names are only made, never given."""
    key = pki.generate_private_key()
    with pytest.raises(PkiError, match=r"hcx\.internal"):
        pki.sign_leaf(fed.zj, pki.make_csr(key, common_name="w"), province=ZJ, kind=kind,
                      name="w-3", dns_names=[name], not_before=NOW - DAY)  # fmt: skip


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
            dns_names=WEB_NAMES if kind == "web" else (),
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


# --- Loading: every refusal names what was expected ----------------------------------------

LOADERS = [
    pytest.param(pki.load_certificate_pem, "not a PEM certificate: ", id="certificate PEM"),
    pytest.param(pki.load_certificates_pem, "not a PEM certificate bundle: ", id="bundle PEM"),
    pytest.param(pki.load_certificate_der, "not a DER certificate: ", id="certificate DER"),
    pytest.param(pki.load_csr_pem, "not a PEM certificate signing request: ", id="CSR PEM"),
    pytest.param(pki.load_crl_pem, "not a PEM CRL: ", id="CRL PEM"),
    pytest.param(pki.load_crl_der, "not a DER CRL: ", id="CRL DER"),
    pytest.param(pki.load_private_key_pem, "not a usable PEM private key: ", id="key PEM"),
]


@pytest.mark.parametrize(("loader", "prefix"), LOADERS)
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", id="pem"
        ),
        pytest.param(b"\x30\x03\x02\x01\x01", id="der of something else"),
        pytest.param("-----BEGIN CERTIFICATE-----", id="text, not bytes"),
    ],
)
def test_loaders_name_what_they_expected(
    loader: Callable[[bytes], object], prefix: str, data: bytes
) -> None:
    with pytest.raises(PkiError) as caught:
        loader(data)
    assert caught.value.message.startswith(prefix)
    assert len(caught.value.message) > len(prefix)  # and why cryptography refused it
    assert caught.value.reason is Reason.CHAIN_INVALID


def test_a_pem_bundle_loads_every_certificate_in_order(fed: Federation) -> None:
    bundle = b"".join(pki.certificate_to_pem(c) for c in (fed.root.certificate, fed.zj.certificate))
    assert pki.load_certificates_pem(bundle) == [fed.root.certificate, fed.zj.certificate]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview], ids=lambda k: k.__name__)
def test_a_der_certificate_loads_from_any_bytes_like(fed: Federation, kind: type) -> None:
    assert pki.load_certificate_der(kind(pki.certificate_to_der(fed.dsc))) == fed.dsc


@pytest.mark.parametrize(
    ("password", "encrypted"),
    [
        pytest.param(None, False, id="no password: plain PKCS#8"),
        pytest.param(b"", False, id="empty password: plain PKCS#8"),
        pytest.param(b"s3cret", True, id="password: encrypted PKCS#8"),
    ],
)
def test_private_key_pem(password: bytes | None, encrypted: bool) -> None:
    key = pki.generate_private_key()
    pem = pki.private_key_to_pem(key, password=password)
    assert pem.startswith(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----" if encrypted else b"-----BEGIN PRIVATE KEY-----"
    )
    loaded = pki.load_private_key_pem(pem, password if encrypted else None)
    assert pki.same_public_key(loaded.public_key(), key.public_key())
    wrong = None if encrypted else b"unexpected"
    with pytest.raises(PkiError, match=r"^not a usable PEM private key: "):
        pki.load_private_key_pem(pem, wrong)


@pytest.mark.parametrize(
    "generate",
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="P-384"),
        pytest.param(ed25519.Ed25519PrivateKey.generate, id="Ed25519"),
    ],
)
def test_a_private_key_of_another_kind_is_refused(generate: Callable[[], Any]) -> None:
    pem = generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(PkiError) as caught:
        pki.load_private_key_pem(pem)
    assert caught.value.message == "private key is not ECDSA P-256"


# --- Identities ----------------------------------------------------------------------------


def _with_san(fed: Federation, names: list[x509.GeneralName] | None) -> x509.Certificate:
    extensions: Extensions = [(x509.BasicConstraints(ca=False, path_length=None), True)]
    if names is not None:
        extensions.append((x509.SubjectAlternativeName(names), False))
    key = pki.generate_private_key()
    return _forge(
        subject_cn="named",
        issuer=fed.zj.certificate.subject,
        signer=fed.zj.private_key,
        public_key=key.public_key(),
        extensions=extensions,
    )


URI = x509.UniformResourceIdentifier


@pytest.mark.parametrize(
    ("names", "spiffe_id", "province"),
    [
        pytest.param(
            [URI("spiffe://hcx/province/330000/node/a")],
            "spiffe://hcx/province/330000/node/a",
            ZJ,
            id="node",
        ),
        pytest.param(
            [URI("spiffe://hcx/province/510000")], "spiffe://hcx/province/510000", SC, id="CA"
        ),
        pytest.param(
            [URI("spiffe://hcx/province/330100")],
            "spiffe://hcx/province/330100",
            None,
            id="prefecture",
        ),
        pytest.param(
            [URI("spiffe://hcx/province/330000/x")],
            "spiffe://hcx/province/330000/x",
            None,
            id="no kind",
        ),
        pytest.param(
            [URI("spiffe://hcx/national/gateway/g")],
            "spiffe://hcx/national/gateway/g",
            None,
            id="national",
        ),
        pytest.param([URI("https://hcx/province/330000")], None, None, id="not spiffe"),
        pytest.param(
            [URI("spiffe://other/province/330000")], None, None, id="another trust domain"
        ),
        pytest.param(
            [URI("spiffe://hcx/province/330000"), URI("spiffe://hcx/province/510000")],
            None,
            None,
            id="two identities",
        ),
        pytest.param([x509.DNSName("hcx")], None, None, id="DNS only"),
        pytest.param(None, None, None, id="no SAN"),
    ],
)
def test_identity_of_a_certificate(
    fed: Federation,
    names: list[x509.GeneralName] | None,
    spiffe_id: str | None,
    province: str | None,
) -> None:
    cert = _with_san(fed, names)
    assert pki.spiffe_id(cert) == spiffe_id
    assert pki.province_of(cert) == province


def test_pinned_roots_are_compared_byte_for_byte(fed: Federation) -> None:
    root, look_alike = fed.root.certificate, fed.look_alike.certificate  # same name
    assert pki.is_pinned_root(root, [root])
    assert pki.is_pinned_root(root, [look_alike, root])
    assert not pki.is_pinned_root(look_alike, [root])
    assert not pki.is_pinned_root(fed.zj.certificate, [root])
    assert not pki.is_pinned_root(root, [])


def test_fingerprint_is_sha256_of_the_der(fed: Federation) -> None:
    der = pki.certificate_to_der(fed.zj.certificate)
    assert pki.fingerprint(fed.zj.certificate) == hashlib.sha256(der).digest()
    assert pki.fingerprint(fed.zj.certificate) != pki.fingerprint(fed.sc.certificate)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda k: (k.public_key(), k.public_key()), True, id="same key"),
        pytest.param(
            lambda k: (k.public_key(), pki.generate_private_key().public_key()), False, id="other"
        ),
        pytest.param(
            lambda k: (k.public_key(), ed25519.Ed25519PrivateKey.generate().public_key()),
            False,
            id="Ed25519 second",
        ),
        pytest.param(
            lambda k: (ed25519.Ed25519PrivateKey.generate().public_key(), k.public_key()),
            False,
            id="Ed25519 first",
        ),
        pytest.param(lambda k: (k, k), False, id="private keys"),
    ],
)
def test_same_public_key(
    make: Callable[[pki.PrivateKey], tuple[object, object]], expected: bool
) -> None:
    a, b = make(pki.generate_private_key())
    assert pki.same_public_key(a, b) is expected


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(
            lambda: pki.provincial_ca_spiffe_id(ZJ), "spiffe://hcx/province/330000", id="CA"
        ),
        pytest.param(
            lambda: pki.leaf_spiffe_id(SC, kind="checkpoint", name="cd.east_1"),
            "spiffe://hcx/province/510000/checkpoint/cd.east_1",
            id="checkpoint",
        ),
        pytest.param(
            lambda: pki.leaf_spiffe_id(ZJ, kind="operator", name="a" * 63),
            f"spiffe://hcx/province/330000/operator/{'a' * 63}",
            id="63-character name",
        ),
        pytest.param(
            lambda: pki.national_spiffe_id(kind="coordinator", name="c-1"),
            "spiffe://hcx/national/coordinator/c-1",
            id="coordinator",
        ),
        pytest.param(
            lambda: pki.node_dns_name(ZJ, "hz-1"), "hz-1.node.330000.hcx.internal", id="node DNS"
        ),
        pytest.param(
            lambda: pki.node_dns_name(SC, "A" + "b" * 61 + "9"),
            f"A{'b' * 61}9.node.510000.hcx.internal",
            id="63-character DNS label",
        ),
    ],
)
def test_identity_names(make: Callable[[], str], expected: str) -> None:
    assert make() == expected


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: pki.provincial_ca_spiffe_id("330100"),
            "'330100' is not a provincial-level GB/T 2260 code",
            id="prefecture",
        ),
        pytest.param(
            lambda: pki.leaf_spiffe_id("990000", kind="dsc", name="a"),
            "'990000' is not a provincial-level GB/T 2260 code",
            id="no such province",
        ),
        pytest.param(
            lambda: pki.leaf_spiffe_id(ZJ, kind="gateway", name="a"),
            "unknown certificate kind 'gateway'; expected one of "
            "('dsc', 'node', 'checkpoint', 'operator', 'authority', 'checkin', 'web')",
            id="national kind for a province",
        ),
        pytest.param(
            lambda: pki.leaf_spiffe_id(ZJ, kind="dsc", name="a" * 64),
            f"'{'a' * 64}' is not a valid certificate name (letters, digits, . _ -)",
            id="64-character name",
        ),
        pytest.param(
            lambda: pki.leaf_spiffe_id(ZJ, kind="dsc", name="-a"),
            "'-a' is not a valid certificate name (letters, digits, . _ -)",
            id="leading hyphen",
        ),
        pytest.param(
            lambda: pki.leaf_spiffe_id(ZJ, kind="dsc", name=""),
            "'' is not a valid certificate name (letters, digits, . _ -)",
            id="empty name",
        ),
        pytest.param(
            lambda: pki.national_spiffe_id(kind="dsc", name="a"),
            "unknown national certificate kind 'dsc'",
            id="provincial kind for the nation",
        ),
        pytest.param(
            lambda: pki.national_spiffe_id(kind="gateway", name="a/b"),
            "'a/b' is not a valid certificate name (letters, digits, . _ -)",
            id="national name",
        ),
        pytest.param(
            lambda: pki.node_dns_name(ZJ, "hz_1"),
            "node name 'hz_1' must be a DNS label (letters, digits, hyphens)",
            id="underscore",
        ),
        pytest.param(
            lambda: pki.node_dns_name(ZJ, "hz.1"),
            "node name 'hz.1' must be a DNS label (letters, digits, hyphens)",
            id="dot",
        ),
        pytest.param(
            lambda: pki.node_dns_name(ZJ, "hz-"),
            "node name 'hz-' must be a DNS label (letters, digits, hyphens)",
            id="trailing hyphen",
        ),
        pytest.param(
            lambda: pki.node_dns_name("330100", "hz-1"),
            "'330100' is not a provincial-level GB/T 2260 code",
            id="node of a prefecture",
        ),
    ],
)
def test_identity_names_refused(make: Callable[[], str], message: str) -> None:
    with pytest.raises(PkiError) as caught:
        make()
    assert caught.value.message == message


# --- Issuing: the exact profile of every kind of certificate ---------------------------------

SKI, AKI = ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER
BC, KU = ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE
EKU, SAN = ExtensionOID.EXTENDED_KEY_USAGE, ExtensionOID.SUBJECT_ALTERNATIVE_NAME
LOOPBACK = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]


@dataclass(frozen=True)
class Profile:
    subject: str
    issuer: str  # "root" or "provincial CA"
    ca_path_length: int | None  # None: an end entity
    usages: list[x509.ObjectIdentifier] | None  # None: no extended key usage (a CA)
    names: list[x509.GeneralName]
    validity: timedelta


ROOT_SUBJECT = "CN=hcx national root CA,O=hcx"
PROFILES = {
    "root": Profile(
        ROOT_SUBJECT, "root", 1, None, [URI(pki.NATIONAL_SPIFFE_ID)], pki.ROOT_VALIDITY
    ),
    "provincial CA": Profile(
        "CN=hcx province 330000 CA,O=hcx,ST=Zhejiang",
        "root",
        0,
        None,
        [URI("spiffe://hcx/province/330000")],
        pki.PROVINCIAL_CA_VALIDITY,
    ),
    "dsc": Profile(
        "CN=hcx province 330000 dsc n-1,O=hcx",
        "provincial CA",
        None,
        [pki.HEALTH_CODE_SIGNING_OID],
        [URI("spiffe://hcx/province/330000/dsc/n-1")],
        pki.LEAF_VALIDITY,
    ),
    "dsc (sign_dsc)": Profile(
        "CN=hcx province 330000 dsc d-1,O=hcx",
        "provincial CA",
        None,
        [pki.HEALTH_CODE_SIGNING_OID],
        [URI("spiffe://hcx/province/330000/dsc/d-1")],
        pki.DSC_VALIDITY,
    ),
    "node": Profile(
        "CN=hcx province 330000 node n-1,O=hcx",
        "provincial CA",
        None,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [
            URI("spiffe://hcx/province/330000/node/n-1"),
            *LOOPBACK,
            x509.DNSName("n-1.node.330000.hcx.internal"),
        ],
        pki.LEAF_VALIDITY,
    ),
    "checkpoint": Profile(
        "CN=hcx province 330000 checkpoint n-1,O=hcx",
        "provincial CA",
        None,
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        [URI("spiffe://hcx/province/330000/checkpoint/n-1")],
        pki.LEAF_VALIDITY,
    ),
    "web": Profile(
        "CN=hcx province 330000 web n-1,O=hcx",
        "provincial CA",
        None,
        [ExtendedKeyUsageOID.SERVER_AUTH],  # a TLS server only: never an mTLS client
        [
            URI("spiffe://hcx/province/330000/web/n-1"),
            x509.DNSName("station.example"),
            x509.IPAddress(ipaddress.IPv4Address("192.168.1.20")),
        ],
        pki.LEAF_VALIDITY,
    ),
    "operator": Profile(
        "CN=hcx province 330000 operator n-1,O=hcx",
        "provincial CA",
        None,
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        [URI("spiffe://hcx/province/330000/operator/n-1")],
        pki.LEAF_VALIDITY,
    ),
    "gateway": Profile(
        "CN=hcx national gateway n-1,O=hcx",
        "root",
        None,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [URI("spiffe://hcx/national/gateway/n-1"), *LOOPBACK],
        pki.LEAF_VALIDITY,
    ),
    "coordinator": Profile(
        "CN=hcx national coordinator n-1,O=hcx",
        "root",
        None,
        [ExtendedKeyUsageOID.CLIENT_AUTH, pki.STATEMENT_SIGNING_OID],
        [URI("spiffe://hcx/national/coordinator/n-1")],
        pki.LEAF_VALIDITY,
    ),
    "trust-list signer": Profile(
        "CN=hcx national trust-list signer,O=hcx",
        "root",
        None,
        [pki.TRUST_LIST_SIGNING_OID],
        [URI(pki.TRUST_LIST_SPIFFE_ID)],
        pki.TRUST_LIST_SIGNER_VALIDITY,
    ),
    "log signer": Profile(
        "CN=hcx national log signer,O=hcx",
        "root",
        None,
        [pki.LOG_SIGNING_OID],
        [URI(pki.LOG_SPIFFE_ID)],
        pki.TRUST_LIST_SIGNER_VALIDITY,
    ),
}


@pytest.fixture(scope="module")
def issued(fed: Federation) -> dict[str, x509.Certificate]:
    return _issued_at(fed, NOW)


@pytest.mark.parametrize("what", list(PROFILES))
def test_each_certificate_has_exactly_its_profile(
    fed: Federation, issued: dict[str, x509.Certificate], what: str
) -> None:
    cert, profile = issued[what], PROFILES[what]
    issuer = fed.zj.certificate if profile.issuer == "provincial CA" else fed.root.certificate
    if what == "root":
        issuer = cert  # a new root of its own
    assert cert.subject.rfc4514_string() == profile.subject
    assert cert.issuer == issuer.subject
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == profile.validity
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    expected_critical = {SKI: False, BC: True, KU: True, SAN: False}
    if what != "root":
        expected_critical[AKI] = False  # the root is self-signed: nothing above it to name
    if profile.usages is not None:
        expected_critical[EKU] = False
    assert {e.oid: e.critical for e in cert.extensions} == expected_critical
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value == x509.BasicConstraints(
        ca=profile.ca_path_length is not None, path_length=profile.ca_path_length
    )
    assert ext.get_extension_for_class(x509.KeyUsage).value == _usage(
        ca=profile.ca_path_length is not None
    )
    if profile.usages is not None:
        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == profile.usages
    assert list(ext.get_extension_for_class(x509.SubjectAlternativeName).value) == profile.names
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(_p256_key(cert))
    if what != "root":
        aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki == x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)


def _p256_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    return key


def test_serial_numbers_are_random_and_positive(issued: dict[str, x509.Certificate]) -> None:
    serials = [cert.serial_number for cert in issued.values()]
    assert len(set(serials)) == len(serials)
    assert all(0 < serial < 2**159 for serial in serials)


def test_the_issuer_decides_the_names_not_the_csr(fed: Federation) -> None:
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name="hcx national root CA")  # asks for the root's name
    assert csr.subject.rfc4514_string() == "CN=hcx national root CA"
    dsc = pki.sign_dsc(fed.zj, csr, province=ZJ, name="d-9", not_before=NOW)
    assert dsc.subject.rfc4514_string() == "CN=hcx province 330000 dsc d-9,O=hcx"
    assert pki.same_public_key(dsc.public_key(), key.public_key())


def _csr_with_san(names: list[x509.GeneralName], key: Any = None) -> x509.CertificateSigningRequest:
    key = key or pki.generate_private_key()
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_a_csr_asking_for_the_granted_identity_is_issued(fed: Federation) -> None:
    csr = _csr_with_san([URI("spiffe://hcx/province/330000/dsc/d-5")])
    dsc = pki.sign_dsc(fed.zj, csr, province=ZJ, name="d-5", not_before=NOW)
    assert pki.spiffe_id(dsc) == "spiffe://hcx/province/330000/dsc/d-5"


@pytest.mark.parametrize(
    ("names", "asked"),
    [
        pytest.param(
            [URI("spiffe://hcx/province/330000/dsc/d-5"), URI("spiffe://hcx/national")],
            "['spiffe://hcx/province/330000/dsc/d-5', 'spiffe://hcx/national']",
            id="the granted identity and another",
        ),
        pytest.param(
            [URI("spiffe://hcx/province/330000/dsc/other")],
            "['spiffe://hcx/province/330000/dsc/other']",
            id="another name",
        ),
        pytest.param([x509.DNSName("dsc.example")], "[]", id="a host name only"),
    ],
)
def test_a_csr_asking_for_another_identity_is_refused(
    fed: Federation, names: list[x509.GeneralName], asked: str
) -> None:
    with pytest.raises(PkiError) as caught:
        pki.sign_dsc(fed.zj, _csr_with_san(names), province=ZJ, name="d-5", not_before=NOW)
    assert caught.value.message == (
        f"CSR asks for identity {asked}, the issuer grants spiffe://hcx/province/330000/dsc/d-5"
    )


def test_a_csr_for_another_curve_is_refused(fed: Federation) -> None:
    csr = pki.make_csr(ec.generate_private_key(ec.SECP384R1()), common_name="x")
    with pytest.raises(PkiError) as caught:
        pki.sign_dsc(fed.zj, csr, province=ZJ, name="d-6", not_before=NOW)
    assert caught.value.message == "key is not an ECDSA P-256 public key"


def test_a_tampered_csr_is_refused_by_every_issuer(fed: Federation) -> None:
    issuers: dict[str, Callable[[x509.CertificateSigningRequest], object]] = {
        "log signer": lambda csr: pki.sign_log_signer(fed.root, csr),
        "gateway": lambda csr: pki.sign_national_leaf(fed.root, csr, kind="gateway", name="g"),
        "node": lambda csr: pki.sign_leaf(fed.zj, csr, province=ZJ, kind="node", name="n"),
    }
    for what, issue in issuers.items():
        with pytest.raises(PkiError) as caught:
            issue(_tampered_csr())
        assert caught.value.message == (
            "CSR signature does not verify: the requester does not hold the key"
        ), what


@pytest.mark.parametrize(
    ("issue", "message"),
    [
        pytest.param(
            lambda f, csr: pki.sign_provincial_ca(f.root, csr, province=ZJ, name="  "),
            "provincial CA needs a non-empty province name",
            id="blank province name",
        ),
        pytest.param(
            lambda f, csr: pki.sign_provincial_ca(f.root, csr, province="330100", name="Hangzhou"),
            "'330100' is not a provincial-level GB/T 2260 code",
            id="prefecture CA",
        ),
        pytest.param(
            lambda f, csr: pki.sign_leaf(f.zj, csr, province=ZJ, kind="gateway", name="g"),
            "unknown certificate kind 'gateway'; expected one of "
            "('dsc', 'node', 'checkpoint', 'operator', 'authority', 'checkin', 'web')",
            id="a gateway from a province",
        ),
        pytest.param(
            lambda f, csr: pki.sign_leaf(f.zj, csr, province=ZJ, kind="node", name="hz_1"),
            "node name 'hz_1' must be a DNS label (letters, digits, hyphens)",
            id="node name not a DNS label",
        ),
        pytest.param(
            lambda f, csr: pki.sign_leaf(f.zj, csr, province=SC, kind="node", name="cd-1"),
            "CA of province 330000 cannot issue for province 510000",
            id="node of another province",
        ),
        pytest.param(
            lambda f, csr: pki.sign_leaf(f.root, csr, province=ZJ, kind="dsc", name="d"),
            "CA of province None cannot issue for province 330000",
            id="the root is no provincial CA",
        ),
        pytest.param(
            lambda f, csr: pki.sign_national_leaf(f.root, csr, kind="dsc", name="d"),
            "unknown national certificate kind 'dsc'",
            id="a DSC from the root",
        ),
        pytest.param(
            lambda f, csr: pki.sign_national_leaf(f.root, csr, kind="gateway", name="g/1"),
            "'g/1' is not a valid certificate name (letters, digits, . _ -)",
            id="gateway name",
        ),
        pytest.param(
            lambda f, csr: pki.sign_leaf(
                f.zj, csr, province=ZJ, kind="checkpoint", name="c", dns_names=["c.example"]
            ),
            "a checkpoint certificate is not a TLS server: it takes no host names",
            id="host name for a checkpoint",
        ),
        pytest.param(
            lambda f, csr: pki.sign_national_leaf(
                f.root, csr, kind="coordinator", name="c", dns_names=["c.example"]
            ),
            "a coordinator certificate is not a TLS server: it takes no host names",
            id="host name for a coordinator",
        ),
        pytest.param(
            lambda f, csr: pki.sign_dsc(f.zj, csr, province=ZJ, name="d", backdate=-DAY),
            "a certificate is backdated, never postdated (backdate must be >= 0)",
            id="postdated",
        ),
    ],
)
def test_issuing_refusals(
    fed: Federation,
    issue: Callable[[Federation, x509.CertificateSigningRequest], object],
    message: str,
) -> None:
    with pytest.raises(PkiError) as caught:
        issue(fed, pki.make_csr(pki.generate_private_key(), common_name="x"))
    assert caught.value.message == message


LABEL_63 = "a" * 63
NAME_253 = ".".join([LABEL_63] * 3 + ["b" * 61])


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        pytest.param(
            "node",
            ["node-1.example.org", "localhost"],
            [
                *LOOPBACK,
                x509.DNSName("node-1.example.org"),
                x509.DNSName("n.node.330000.hcx.internal"),
            ],
            id="node: localhost is not repeated",
        ),
        pytest.param(
            "node",
            [NAME_253, "HZ-1"],
            [
                *LOOPBACK,
                x509.DNSName(NAME_253),
                x509.DNSName("HZ-1"),
                x509.DNSName("n.node.330000.hcx.internal"),
            ],
            id="node: a 253-character name and a bare label",
        ),
        pytest.param(
            "gateway",
            ["gw.hcx.internal"],
            [*LOOPBACK, x509.DNSName("gw.hcx.internal")],
            id="gateway",
        ),
    ],
)
def test_tls_servers_take_host_names(
    fed: Federation, kind: str, given: list[str], expected: list[x509.GeneralName]
) -> None:
    csr = pki.make_csr(pki.generate_private_key(), common_name="x")
    if kind == "gateway":
        cert = pki.sign_national_leaf(fed.root, csr, kind="gateway", name="n", dns_names=given)
    else:
        cert = pki.sign_leaf(fed.zj, csr, province=ZJ, kind="node", name="n", dns_names=given)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san)[1:] == expected


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("bad_host", id="underscore"),
        pytest.param("-a.example", id="leading hyphen"),
        pytest.param("a-.example", id="trailing hyphen"),
        pytest.param("a..example", id="empty label"),
        pytest.param("example.", id="trailing dot"),
        pytest.param("", id="empty"),
        pytest.param("a" * 64 + ".example", id="64-character label"),
        pytest.param(NAME_253 + "b", id="254 characters"),
        pytest.param("127.0.0.1 ", id="trailing space"),
    ],
)
def test_invalid_host_names_are_refused(fed: Federation, host: str) -> None:
    csr = pki.make_csr(pki.generate_private_key(), common_name="x")
    with pytest.raises(PkiError) as caught:
        pki.sign_national_leaf(fed.root, csr, kind="gateway", name="g", dns_names=[host])
    assert caught.value.message == f"{host!r} is not a valid host name"


def test_no_certificate_is_issued_past_its_issuer(fed: Federation) -> None:
    end = fed.zj.certificate.not_valid_after_utc
    # Starting one second before the CA ends: a one-second certificate, clipped to the CA.
    dsc, _ = _issue(fed.zj, not_before=end + pki.CLOCK_SKEW - timedelta(seconds=1))
    assert dsc.not_valid_after_utc == end
    assert dsc.not_valid_after_utc - dsc.not_valid_before_utc == timedelta(seconds=1)
    for start in (end, end + DAY):  # nothing left of the CA's validity
        with pytest.raises(PkiError) as caught:
            _issue(fed.zj, not_before=start + pki.CLOCK_SKEW)
        assert caught.value.message == (
            "issuer certificate expires before the requested validity starts"
        )


def test_issuing_times_are_converted_to_utc(fed: Federation) -> None:
    beijing = timezone(timedelta(hours=8))
    dsc, _ = _issue(fed.zj, not_before=NOW.astimezone(beijing))
    assert dsc.not_valid_before_utc == NOW - pki.CLOCK_SKEW
    with pytest.raises(ValueError, match="must be timezone-aware"):
        _issue(fed.zj, not_before=NOW.replace(tzinfo=None))


# --- Verifying: every refusal names what was wrong -------------------------------------------

DSC_URI = "spiffe://hcx/province/330000/dsc/x"
END_ENTITY = x509.BasicConstraints(ca=False, path_length=None)
PROVINCIAL_CA = x509.BasicConstraints(ca=True, path_length=0)
DSC_EKU = [pki.HEALTH_CODE_SIGNING_OID]
DSC_EKU_TEXT = f"['{pki.HEALTH_CODE_SIGNING_OID.dotted_string}']"


def _key_usage(**flags: bool) -> x509.KeyUsage:
    fields = dict.fromkeys(
        ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
         "key_agreement", "key_cert_sign", "crl_sign"],
        False,
    )  # fmt: skip
    fields.update(flags)
    return x509.KeyUsage(**fields, encipher_only=False, decipher_only=False)


def _dsc_with(
    f: Federation,
    *,
    constraints: x509.BasicConstraints | None = END_ENTITY,
    usage: x509.KeyUsage | None = None,
    eku: list[x509.ObjectIdentifier] | None = DSC_EKU,
    names: list[x509.GeneralName] | None = None,
    aki: x509.AuthorityKeyIdentifier | None = None,
    key: Any = None,
    algorithm: SignatureHash | None = None,
) -> Chain:
    """A DSC of Zhejiang's CA with one part of the profile replaced."""
    extensions: Extensions = []
    if constraints is not None:
        extensions.append((constraints, True))
    if usage is not None or constraints is not None:
        extensions.append((usage or _key_usage(digital_signature=True), True))
    if eku is not None:
        extensions.append((x509.ExtendedKeyUsage(eku), False))
    if names is not None:
        extensions.append((x509.SubjectAlternativeName(names), False))
    else:
        extensions.append((x509.SubjectAlternativeName([URI(DSC_URI)]), False))
    if aki is not None:
        extensions.append((aki, False))
    dsc = _forge(
        subject_cn="forged dsc",
        issuer=f.zj.certificate.subject,
        signer=f.zj.private_key,
        public_key=(key or pki.generate_private_key()).public_key(),
        extensions=extensions,
        algorithm=algorithm,
    )
    return dsc, f.zj.certificate, [f.root.certificate], NOW


def _ca_with(
    f: Federation,
    *,
    constraints: x509.BasicConstraints | None = PROVINCIAL_CA,
    usage: x509.KeyUsage | None = None,
    uri: str = "spiffe://hcx/province/330000",
    root: pki.Authority | None = None,
    not_after: datetime = NOW + 365 * DAY,
) -> Chain:
    """A provincial CA under the root with one part of the profile replaced, and a DSC of it."""
    root = root or f.root
    key = pki.generate_private_key()
    extensions: Extensions = [
        (usage or _key_usage(key_cert_sign=True, crl_sign=True), True),
        (x509.SubjectAlternativeName([URI(uri)]), False),
    ]
    if constraints is not None:
        extensions.append((constraints, True))
    ca = _forge(
        subject_cn="hcx province 330000 CA",
        issuer=root.certificate.subject,
        signer=root.private_key,
        public_key=key.public_key(),
        extensions=extensions,
        not_after=not_after,
    )
    dsc = _forged_dsc(pki.Authority(ca, key), uri=DSC_URI)
    return dsc, ca, [root.certificate], NOW


def _root_with(
    *,
    path_length: int | None = 1,
    ca: bool = True,
    not_after: datetime = NOW + 3650 * DAY,
    signer: pki.PrivateKey | None = None,
) -> pki.Authority:
    key = pki.generate_private_key()
    root = _forge(
        subject_cn="hcx national root CA",
        issuer=None,
        signer=signer or key,
        public_key=key.public_key(),
        extensions=[
            (x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), True),
            (_key_usage(key_cert_sign=True, crl_sign=True), True),
            (x509.SubjectAlternativeName([URI(pki.NATIONAL_SPIFFE_ID)]), False),
        ],
        not_before=NOW - 10 * DAY,
        not_after=not_after,
    )
    return pki.Authority(root, key)


def _dsc_at(f: Federation, at: datetime) -> Chain:
    return f.dsc, f.zj.certificate, [f.root.certificate], at


ROOT_AKI_MISMATCH = "provincial CA authority key id does not match the national root key id"
CHECKS = [
    ChainCase(
        "DSC signed with ECDSA-SHA384",
        lambda f: _dsc_with(f, algorithm=hashes.SHA384()),
        Reason.CHAIN_INVALID,
        "DSC is not signed with ECDSA-SHA256",
    ),
    ChainCase(
        "DSC with a P-384 key",
        lambda f: _dsc_with(f, key=ec.generate_private_key(ec.SECP384R1())),
        Reason.CHAIN_INVALID,
        "DSC is not an ECDSA P-256 public key",
    ),
    ChainCase(
        "DSC that is a CA",
        lambda f: _dsc_with(f, constraints=x509.BasicConstraints(ca=True, path_length=None)),
        Reason.CHAIN_INVALID,
        "DSC must not be a CA",
    ),
    ChainCase(
        "DSC without basic constraints is an end entity",
        lambda f: _dsc_with(f, constraints=None, usage=_key_usage(digital_signature=True)),
        None,
    ),
    ChainCase(
        "DSC without key usage or basic constraints",
        lambda f: _dsc_with(f, constraints=None),
        Reason.WRONG_PURPOSE,
        "DSC key usage must be digitalSignature only",
    ),
    ChainCase(
        "DSC key usage without digitalSignature",
        lambda f: _dsc_with(f, usage=_key_usage(key_agreement=True)),
        Reason.WRONG_PURPOSE,
        "DSC key usage must be digitalSignature only",
    ),
    ChainCase(
        "DSC that may sign certificates",
        lambda f: _dsc_with(f, usage=_key_usage(digital_signature=True, key_cert_sign=True)),
        Reason.WRONG_PURPOSE,
        "DSC key usage must be digitalSignature only",
    ),
    ChainCase(
        "DSC that may sign CRLs",
        lambda f: _dsc_with(f, usage=_key_usage(digital_signature=True, crl_sign=True)),
        Reason.WRONG_PURPOSE,
        "DSC key usage must be digitalSignature only",
    ),
    ChainCase(
        "DSC with digitalSignature and nonRepudiation",
        lambda f: _dsc_with(f, usage=_key_usage(digital_signature=True, content_commitment=True)),
        None,
    ),
    ChainCase(
        "DSC without extended key usage",
        lambda f: _dsc_with(f, eku=None),
        Reason.WRONG_PURPOSE,
        f"DSC extended key usage is none, expected {DSC_EKU_TEXT}",
    ),
    ChainCase(
        "DSC that is also a TLS client",
        lambda f: _dsc_with(f, eku=[pki.HEALTH_CODE_SIGNING_OID, ExtendedKeyUsageOID.CLIENT_AUTH]),
        Reason.WRONG_PURPOSE,
        "DSC extended key usage is "
        f"['1.3.6.1.5.5.7.3.2', '{pki.HEALTH_CODE_SIGNING_OID.dotted_string}'], "
        f"expected {DSC_EKU_TEXT}",
    ),
    ChainCase(
        "DSC naming a node",
        lambda f: _dsc_with(f, names=[URI("spiffe://hcx/province/330000/node/x")]),
        Reason.CHAIN_INVALID,
        "DSC has no dsc SPIFFE id (got 'spiffe://hcx/province/330000/node/x')",
    ),
    ChainCase(
        "DSC naming only a host",
        lambda f: _dsc_with(f, names=[x509.DNSName("dsc.example")]),
        Reason.CHAIN_INVALID,
        "DSC has no dsc SPIFFE id (got None)",
    ),
    ChainCase(
        "DSC naming the province's CA",
        lambda f: _dsc_with(f, names=[URI("spiffe://hcx/province/330000")]),
        Reason.CHAIN_INVALID,
        "DSC has no dsc SPIFFE id (got 'spiffe://hcx/province/330000')",
    ),
    ChainCase(
        "DSC whose authority key id is another CA's",
        lambda f: _dsc_with(
            f,
            aki=x509.AuthorityKeyIdentifier.from_issuer_public_key(f.sc.private_key.public_key()),
        ),
        Reason.CHAIN_INVALID,
        "DSC authority key id does not match the provincial CA key id",
    ),
    ChainCase(
        "DSC whose authority key id names only issuer and serial",
        lambda f: _dsc_with(
            f,
            aki=x509.AuthorityKeyIdentifier(
                None, [x509.DirectoryName(f.root.certificate.subject)], 1
            ),
        ),
        None,
    ),
    ChainCase(
        "provincial CA without cRLSign",
        lambda f: _ca_with(f, usage=_key_usage(key_cert_sign=True)),
        Reason.CHAIN_INVALID,
        "provincial CA key usage lacks keyCertSign/cRLSign",
    ),
    ChainCase(
        "provincial CA without keyCertSign",
        lambda f: _ca_with(f, usage=_key_usage(crl_sign=True)),
        Reason.CHAIN_INVALID,
        "provincial CA key usage lacks keyCertSign/cRLSign",
    ),
    ChainCase(
        "provincial CA without basic constraints",
        lambda f: _ca_with(f, constraints=None),
        Reason.CHAIN_INVALID,
        "provincial CA is not a CA (BasicConstraints ca=False or missing)",
    ),
    ChainCase(
        "provincial CA with no path length",
        lambda f: _ca_with(f, constraints=x509.BasicConstraints(ca=True, path_length=None)),
        Reason.CHAIN_INVALID,
        "provincial CA has path length None, the profile requires 0",
    ),
    ChainCase(
        "provincial CA naming a DSC",
        lambda f: _ca_with(f, uri="spiffe://hcx/province/330000/dsc/x"),
        Reason.CHAIN_INVALID,
        "provincial CA has no province SPIFFE id (got 'spiffe://hcx/province/330000/dsc/x')",
    ),
    ChainCase(
        "provincial CA naming the nation",
        lambda f: _ca_with(f, uri=pki.NATIONAL_SPIFFE_ID),
        Reason.CHAIN_INVALID,
        "provincial CA has no province SPIFFE id (got 'spiffe://hcx/national')",
    ),
    ChainCase(
        "CA of a prefecture",
        lambda f: _ca_with(f, uri="spiffe://hcx/province/330100"),
        Reason.CHAIN_INVALID,
        "provincial CA has no province SPIFFE id (got 'spiffe://hcx/province/330100')",
    ),
    ChainCase(
        "provincial CA valid past its root, checked after the root expired",
        lambda f: _ca_with(f, root=_root_with(not_after=NOW - DAY)),
        Reason.KEY_NOT_VALID_AT_ISSUANCE,
        "national root is expired at 2026-03-01T08:00:00+00:00 "
        "(valid 2026-02-19T08:00:00+00:00 to 2026-02-28T08:00:00+00:00)",
    ),
    ChainCase(
        "root that is not self-signed",
        lambda f: _ca_with(f, root=_root_with(signer=pki.generate_private_key())),
        Reason.CHAIN_INVALID,
        "national root signature does not verify with the national root key",
    ),
    ChainCase(
        "root that is not a CA",
        lambda f: _ca_with(f, root=_root_with(ca=False)),
        Reason.CHAIN_INVALID,
        "national root is not a CA (BasicConstraints ca=False or missing)",
    ),
    ChainCase(
        "root without a path length limit",
        lambda f: _ca_with(f, root=_root_with(path_length=None)),
        None,
    ),
    ChainCase(
        "root allowing two levels of CAs",
        lambda f: _ca_with(f, root=_root_with(path_length=2)),
        None,
    ),
    ChainCase(
        "root of path length 0",
        lambda f: _ca_with(f, root=_root_with(path_length=0)),
        Reason.CHAIN_INVALID,
        "path length exceeded: the national root allows 0 intermediate CA(s), the chain has 1",
    ),
    ChainCase(
        "no pinned root of the issuer's name",
        lambda f: (f.dsc, f.zj.certificate, [f.sc.certificate], NOW),
        Reason.CHAIN_INVALID,
        "provincial CA issuer CN=hcx national root CA,O=hcx is not a pinned root",
    ),
    ChainCase(
        "only a look-alike root pinned",
        lambda f: (f.dsc, f.zj.certificate, [f.look_alike.certificate], NOW),
        Reason.CHAIN_INVALID,
        f"provincial CA is not issued by any pinned root: {ROOT_AKI_MISMATCH}",
    ),
    ChainCase(
        "two look-alike roots pinned",
        lambda f: (
            f.dsc,
            f.zj.certificate,
            [f.look_alike.certificate, pki.create_root_ca(now=NOW - DAY).certificate],
            NOW,
        ),
        Reason.CHAIN_INVALID,
        f"provincial CA is not issued by any pinned root: {ROOT_AKI_MISMATCH}; {ROOT_AKI_MISMATCH}",
    ),
    ChainCase(
        "a rotation: the look-alike pinned first, the real root second",
        lambda f: (
            f.dsc,
            f.zj.certificate,
            [f.look_alike.certificate, f.root.certificate],
            NOW,
        ),
        None,
    ),
    ChainCase(
        "a rotation: the real root pinned first",
        lambda f: (
            f.dsc,
            f.zj.certificate,
            [f.root.certificate, f.look_alike.certificate],
            NOW,
        ),
        None,
    ),
    ChainCase(
        "DSC at the last second of its validity",
        lambda f: _dsc_at(f, f.dsc.not_valid_after_utc),
        None,
    ),
    ChainCase(
        "DSC one second after its validity",
        lambda f: _dsc_at(f, f.dsc.not_valid_after_utc + timedelta(seconds=1)),
        Reason.KEY_NOT_VALID_AT_ISSUANCE,
        "DSC is expired at 2028-02-28T07:55:01+00:00 "
        "(valid 2026-02-28T07:55:00+00:00 to 2028-02-28T07:55:00+00:00)",
    ),
    ChainCase(
        "DSC at its not-before minus the clock skew",
        lambda f: _dsc_at(f, f.dsc.not_valid_before_utc - pki.CLOCK_SKEW),
        None,
    ),
    ChainCase(
        "DSC one second before its not-before minus the clock skew",
        lambda f: _dsc_at(f, f.dsc.not_valid_before_utc - pki.CLOCK_SKEW - timedelta(seconds=1)),
        Reason.KEY_NOT_VALID_AT_ISSUANCE,
        "DSC is not yet valid at 2026-02-28T07:49:59+00:00 "
        "(valid 2026-02-28T07:55:00+00:00 to 2028-02-28T07:55:00+00:00)",
    ),
]


@pytest.mark.parametrize("case", CHECKS, ids=[c.name for c in CHECKS])
def test_chain_checks_name_what_was_wrong(fed: Federation, case: ChainCase) -> None:
    dsc, ca, roots, at = case.build(fed)
    if case.reason is None:
        assert pki.verify_dsc_chain(dsc, ca, roots, at=at) == ZJ
        return
    with pytest.raises(PkiError) as caught:
        pki.verify_dsc_chain(dsc, ca, roots, at=at)
    assert caught.value.message == case.message
    assert caught.value.reason == case.reason


@pytest.mark.parametrize(
    ("make", "at", "message"),
    [
        pytest.param(lambda f: f.root.certificate, NOW, None, id="the pinned root"),
        pytest.param(lambda f: _root_with(path_length=None).certificate, NOW, None, id="no limit"),
        pytest.param(
            lambda f: _root_with(path_length=0).certificate,
            NOW,
            "path length exceeded: the national root allows 0 intermediate CA(s), the chain has 1",
            id="path length 0",
        ),
        pytest.param(
            lambda f: f.zj.certificate,
            NOW,
            "national root issuer CN=hcx national root CA,O=hcx does not match the national root "
            "subject CN=hcx province 330000 CA,O=hcx,ST=Zhejiang",
            id="a provincial CA",
        ),
        pytest.param(
            lambda f: f.root.certificate,
            NOW - 11 * DAY,
            "national root is not yet valid at 2026-02-18T08:00:00+00:00 "
            "(valid 2026-02-19T07:55:00+00:00 to 2046-02-19T07:55:00+00:00)",
            id="before it was made",
        ),
    ],
)
def test_verify_root(
    fed: Federation,
    make: Callable[[Federation], x509.Certificate],
    at: datetime,
    message: str | None,
) -> None:
    if message is None:
        pki.verify_root(make(fed), at=at)
        return
    with pytest.raises(PkiError) as caught:
        pki.verify_root(make(fed), at=at)
    assert caught.value.message == message


def _national(f: Federation, kind: str) -> x509.Certificate:
    csr = pki.make_csr(pki.generate_private_key(), common_name=kind)
    return pki.sign_national_leaf(f.root, csr, kind=kind, name="n-1", not_before=NOW - DAY)


def _forged_national(
    f: Federation, *, usages: list[x509.ObjectIdentifier], uri: str | None, issuer: pki.Authority
) -> x509.Certificate:
    extensions: Extensions = [
        (END_ENTITY, True),
        (_key_usage(digital_signature=True), True),
        (x509.ExtendedKeyUsage(usages), False),
    ]
    if uri is not None:
        extensions.append((x509.SubjectAlternativeName([URI(uri)]), False))
    return _forge(
        subject_cn="forged",
        issuer=issuer.certificate.subject,
        signer=issuer.private_key,
        public_key=pki.generate_private_key().public_key(),
        extensions=extensions,
    )


TLS = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
TLS_TEXT = "['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']"


@pytest.mark.parametrize(
    ("make", "kind", "reason", "message"),
    [
        pytest.param(lambda f: _national(f, "gateway"), "gateway", None, "", id="gateway"),
        pytest.param(
            lambda f: _national(f, "coordinator"), "coordinator", None, "", id="coordinator"
        ),
        pytest.param(
            lambda f: _national(f, "gateway"),
            "coordinator",
            Reason.WRONG_PURPOSE,
            f"coordinator certificate extended key usage is {TLS_TEXT}, expected "
            f"['1.3.6.1.5.5.7.3.2', '{pki.STATEMENT_SIGNING_OID.dotted_string}']",
            id="gateway as coordinator",
        ),
        pytest.param(
            lambda f: _national(f, "gateway"),
            "dsc",
            Reason.CHAIN_INVALID,
            "unknown national certificate kind 'dsc'",
            id="unknown kind",
        ),
        pytest.param(
            lambda f: _forged_national(
                f, usages=TLS, uri="spiffe://hcx/national/coordinator/c", issuer=f.root
            ),
            "gateway",
            Reason.CHAIN_INVALID,
            "gateway certificate has SPIFFE id 'spiffe://hcx/national/coordinator/c'",
            id="gateway usages, coordinator identity",
        ),
        pytest.param(
            lambda f: _forged_national(
                f, usages=TLS, uri="spiffe://hcx/national/gateway", issuer=f.root
            ),
            "gateway",
            Reason.CHAIN_INVALID,
            "gateway certificate has SPIFFE id 'spiffe://hcx/national/gateway'",
            id="gateway without a name",
        ),
        pytest.param(
            lambda f: _forged_national(f, usages=TLS, uri=None, issuer=f.root),
            "gateway",
            Reason.CHAIN_INVALID,
            "gateway certificate has SPIFFE id ''",
            id="gateway without identity",
        ),
        pytest.param(
            lambda f: _forged_national(
                f, usages=TLS, uri="spiffe://hcx/national/gateway/g", issuer=f.zj
            ),
            "gateway",
            Reason.CHAIN_INVALID,
            "gateway certificate issuer CN=hcx province 330000 CA,O=hcx,ST=Zhejiang "
            "is not a pinned root",
            id="gateway issued by a province",
        ),
        pytest.param(
            lambda f: _forged_national(
                f, usages=TLS, uri="spiffe://hcx/national/gateway/g", issuer=f.look_alike
            ),
            "gateway",
            Reason.CHAIN_INVALID,
            "gateway certificate is not issued by any pinned root: gateway certificate signature "
            "does not verify with the national root key",
            id="gateway issued by a look-alike root",
        ),
    ],
)
def test_verify_national_leaf(
    fed: Federation,
    make: Callable[[Federation], x509.Certificate],
    kind: str,
    reason: Reason | None,
    message: str,
) -> None:
    cert, roots = make(fed), [fed.root.certificate]
    if reason is None:
        pki.verify_national_leaf(cert, roots, at=NOW, kind=kind)
        return
    with pytest.raises(PkiError) as caught:
        pki.verify_national_leaf(cert, roots, at=NOW, kind=kind)
    assert caught.value.message == message
    assert caught.value.reason is reason


def test_a_national_leaf_under_a_root_of_path_length_0_verifies(fed: Federation) -> None:
    root = _root_with(path_length=0)
    cert = _forged_national(fed, usages=TLS, uri="spiffe://hcx/national/gateway/g", issuer=root)
    pki.verify_national_leaf(cert, [root.certificate], at=NOW, kind="gateway")


def _service(f: Federation, kind: str) -> x509.Certificate:
    csr = pki.make_csr(pki.generate_private_key(), common_name=kind)
    sign = pki.sign_log_signer if kind == "log" else pki.sign_trust_list_signer
    return sign(f.root, csr, not_before=NOW - DAY)


VERIFY_SERVICE = {"log": pki.verify_log_signer, "trust-list": pki.verify_trust_list_signer}
TRUST_LIST_EKU = f"['{pki.TRUST_LIST_SIGNING_OID.dotted_string}']"
LOG_EKU = f"['{pki.LOG_SIGNING_OID.dotted_string}']"


@pytest.mark.parametrize(
    ("make", "check", "reason", "message"),
    [
        pytest.param(lambda f: _service(f, "log"), "log", None, "", id="log signer"),
        pytest.param(
            lambda f: _service(f, "trust-list"), "trust-list", None, "", id="trust-list signer"
        ),
        pytest.param(
            lambda f: _service(f, "log"),
            "trust-list",
            Reason.WRONG_PURPOSE,
            f"trust-list signer extended key usage is {LOG_EKU}, expected {TRUST_LIST_EKU}",
            id="log signer as trust-list signer",
        ),
        pytest.param(
            lambda f: _service(f, "trust-list"),
            "log",
            Reason.WRONG_PURPOSE,
            f"log signer extended key usage is {TRUST_LIST_EKU}, expected {LOG_EKU}",
            id="trust-list signer as log signer",
        ),
        pytest.param(
            lambda f: _forged_national(
                f, usages=[pki.LOG_SIGNING_OID], uri=pki.TRUST_LIST_SPIFFE_ID, issuer=f.root
            ),
            "log",
            Reason.CHAIN_INVALID,
            "log signer has SPIFFE id 'spiffe://hcx/national/trust-list', "
            "not spiffe://hcx/national/log",
            id="log usage, trust-list identity",
        ),
        pytest.param(
            lambda f: _forged_national(
                f, usages=[pki.TRUST_LIST_SIGNING_OID], uri=None, issuer=f.root
            ),
            "trust-list",
            Reason.CHAIN_INVALID,
            "trust-list signer has SPIFFE id None, not spiffe://hcx/national/trust-list",
            id="trust-list usage, no identity",
        ),
        pytest.param(
            lambda f: _forged_national(
                f, usages=[pki.LOG_SIGNING_OID], uri=pki.LOG_SPIFFE_ID, issuer=f.look_alike
            ),
            "log",
            Reason.CHAIN_INVALID,
            "log signer is not issued by any pinned root: log signer signature does not verify "
            "with the national root key",
            id="log signer of a look-alike root",
        ),
        pytest.param(
            lambda f: _forged_national(
                f, usages=[pki.LOG_SIGNING_OID], uri=pki.LOG_SPIFFE_ID, issuer=f.zj
            ),
            "log",
            Reason.CHAIN_INVALID,
            "log signer issuer CN=hcx province 330000 CA,O=hcx,ST=Zhejiang is not a pinned root",
            id="log signer of a province",
        ),
    ],
)
def test_verify_service_signers(
    fed: Federation,
    make: Callable[[Federation], x509.Certificate],
    check: str,
    reason: Reason | None,
    message: str,
) -> None:
    cert, roots = make(fed), [fed.root.certificate]
    if reason is None:
        VERIFY_SERVICE[check](cert, roots, at=NOW)
        return
    with pytest.raises(PkiError) as caught:
        VERIFY_SERVICE[check](cert, roots, at=NOW)
    assert caught.value.message == message
    assert caught.value.reason is reason


SKEWED: dict[str, Callable[[Federation, timedelta], object]] = {
    "root": lambda f, skew: pki.verify_root(f.root.certificate, at=NOW, clock_skew=skew),
    "provincial CA": lambda f, skew: pki.verify_provincial_ca(
        f.zj.certificate, [f.root.certificate], at=NOW, clock_skew=skew
    ),
    "DSC": lambda f, skew: pki.verify_dsc_chain(
        f.dsc, f.zj.certificate, [f.root.certificate], at=NOW, clock_skew=skew
    ),
}


@pytest.mark.parametrize("what", list(SKEWED))
def test_a_negative_clock_skew_is_a_programming_error(fed: Federation, what: str) -> None:
    SKEWED[what](fed, timedelta(0))
    with pytest.raises(ValueError, match=r"^clock skew must not be negative$"):
        SKEWED[what](fed, -timedelta(seconds=1))


def test_verification_times_in_any_zone_are_the_same_moment(fed: Federation) -> None:
    end = fed.dsc.not_valid_after_utc.astimezone(timezone(timedelta(hours=8)))
    roots = [fed.root.certificate]
    assert pki.verify_dsc_chain(fed.dsc, fed.zj.certificate, roots, at=end) == ZJ
    with pytest.raises(PkiError) as caught:
        pki.verify_dsc_chain(fed.dsc, fed.zj.certificate, roots, at=end + timedelta(seconds=1))
    assert caught.value.message.startswith("DSC is expired at 2028-02-28T07:55:01+00:00 ")


def test_a_remembered_signature_is_remembered_for_its_own_certificate_only(
    fed: Federation,
) -> None:
    roots = [fed.root.certificate]
    good, _ = _issue(fed.zj, name="remembered")
    assert pki.verify_dsc_chain(good, fed.zj.certificate, roots, at=NOW) == ZJ
    assert pki.verify_dsc_chain(good, fed.zj.certificate, roots, at=NOW) == ZJ  # from memory
    # The same issuer, the same names, another key's signature: checked, not remembered.
    forged = _forged_dsc(pki.Authority(fed.zj.certificate, fed.sc.private_key), uri=DSC_URI)
    for _ in range(2):
        with pytest.raises(PkiError) as caught:
            pki.verify_dsc_chain(forged, fed.zj.certificate, roots, at=NOW)
        assert caught.value.message == ("DSC signature does not verify with the provincial CA key")


# --- CRLs: what is signed, and when a CRL is current ------------------------------------------


def test_a_crl_carries_what_its_issuer_signed(fed: Federation) -> None:
    entries = [
        pki.RevokedEntry(101, NOW - 2 * DAY, x509.ReasonFlags.key_compromise),
        pki.RevokedEntry(102, NOW - DAY, x509.ReasonFlags.unspecified),
        pki.RevokedEntry(103, NOW - DAY, x509.ReasonFlags.superseded),
    ]
    crl = pki.make_crl(
        fed.zj.certificate,
        fed.zj.private_key,
        entries,
        this_update=NOW - DAY,
        next_update=NOW + DAY,
        crl_number=0,
    )
    assert crl.issuer == fed.zj.certificate.subject
    assert crl.last_update_utc == NOW - DAY and crl.next_update_utc == NOW + DAY
    assert crl.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert {e.oid: e.critical for e in crl.extensions} == {
        ExtensionOID.CRL_NUMBER: False,
        AKI: False,
    }
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 0
    ski = fed.zj.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    reasons = {}
    for entry in crl:
        assert entry.revocation_date_utc == pki.revoked_at(crl, entry.serial_number)
        found = [e.value for e in entry.extensions]
        reasons[entry.serial_number] = found
    # RFC 5280 §5.3.1: "unspecified" is omitted rather than encoded.
    assert reasons == {
        101: [x509.CRLReason(x509.ReasonFlags.key_compromise)],
        102: [],
        103: [x509.CRLReason(x509.ReasonFlags.superseded)],
    }
    assert pki.revoked_at(crl, 101) == NOW - 2 * DAY


def test_a_crl_of_an_issuer_without_a_key_id_names_the_issuer_key(fed: Federation) -> None:
    key = pki.generate_private_key()
    ca = _forge(
        subject_cn="CA without key ids",
        issuer=None,
        signer=key,
        public_key=key.public_key(),
        extensions=[(x509.BasicConstraints(ca=True, path_length=0), True)],
    )
    crl = pki.make_crl(ca, key, [], this_update=NOW, next_update=NOW + DAY, crl_number=1)
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki == x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    # and so does a certificate it issues
    csr = pki.make_csr(pki.generate_private_key(), common_name="g")
    issued = pki.sign_national_leaf(
        pki.Authority(ca, key), csr, kind="gateway", name="g", not_before=NOW
    )
    assert issued.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value == aki


@pytest.mark.parametrize(
    ("this_update", "next_update", "number"),
    [
        pytest.param(NOW, NOW, 1, id="next update at this update"),
        pytest.param(NOW, NOW - timedelta(seconds=1), 1, id="next update before this update"),
        pytest.param(NOW, NOW + DAY, -1, id="negative number"),
    ],
)
def test_make_crl_refuses_an_impossible_crl(
    fed: Federation, this_update: datetime, next_update: datetime, number: int
) -> None:
    with pytest.raises(PkiError) as caught:
        pki.make_crl(
            fed.zj.certificate,
            fed.zj.private_key,
            [],
            this_update=this_update,
            next_update=next_update,
            crl_number=number,
        )
    assert caught.value.message == (
        "CRL needs next_update after this_update and a non-negative number"
    )


def test_make_crl_refuses_a_key_that_is_not_the_issuers(fed: Federation) -> None:
    with pytest.raises(PkiError) as caught:
        pki.make_crl(
            fed.zj.certificate,
            fed.sc.private_key,
            [],
            this_update=NOW,
            next_update=NOW + DAY,
            crl_number=1,
        )
    assert caught.value.message == "CRL signing key does not belong to the issuer certificate"


def test_make_crl_takes_aware_times_only(fed: Federation) -> None:
    with pytest.raises(ValueError, match="must be timezone-aware"):
        pki.make_crl(
            fed.zj.certificate,
            fed.zj.private_key,
            [],
            this_update=NOW.replace(tzinfo=None),
            next_update=NOW + DAY,
            crl_number=1,
        )


def _window_crl(f: Federation) -> x509.CertificateRevocationList:
    return pki.make_crl(
        f.zj.certificate,
        f.zj.private_key,
        [],
        this_update=NOW,
        next_update=NOW + DAY,
        crl_number=5,
    )


SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("at", "current"),
    [
        pytest.param(NOW - pki.CLOCK_SKEW, True, id="this update minus the skew"),
        pytest.param(NOW - pki.CLOCK_SKEW - SECOND, False, id="one second earlier"),
        pytest.param(NOW + DAY, True, id="at its next update"),
        pytest.param(NOW + DAY + SECOND, False, id="one second after its next update"),
    ],
)
def test_a_crl_is_current_from_this_update_to_next_update(
    fed: Federation, at: datetime, current: bool
) -> None:
    crl = _window_crl(fed)
    pki.verify_crl(crl, fed.zj.certificate)  # without a time: issuer and signature only
    if current:
        pki.verify_crl(crl, fed.zj.certificate, at=at)
        return
    with pytest.raises(PkiError) as caught:
        pki.verify_crl(crl, fed.zj.certificate, at=at)
    assert caught.value.message == f"CRL is not current at {at.isoformat()}"


def test_crl_times_in_any_zone_are_the_same_moment(fed: Federation) -> None:
    beijing = timezone(timedelta(hours=8))
    at = (NOW + DAY + SECOND).astimezone(beijing)
    with pytest.raises(PkiError) as caught:
        pki.verify_crl(_window_crl(fed), fed.zj.certificate, at=at)
    assert caught.value.message == "CRL is not current at 2026-03-02T08:00:01+00:00"


def _crl_issuer(
    *, key: Any, usage: x509.KeyUsage | None
) -> tuple[x509.Certificate, x509.CertificateRevocationList]:
    extensions: Extensions = [(x509.BasicConstraints(ca=True, path_length=0), True)]
    if usage is not None:
        extensions.append((usage, True))
    issuer = _forge(
        subject_cn="CRL issuer",
        issuer=None,
        signer=key,
        public_key=key.public_key(),
        extensions=extensions,
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOW)
        .next_update(NOW + DAY)
        .sign(key, hashes.SHA256())
    )
    return issuer, crl


@pytest.mark.parametrize(
    ("key", "usage", "message"),
    [
        pytest.param(
            pki.generate_private_key,
            None,
            "CRL issuer certificate is not allowed to sign CRLs (no cRLSign)",
            id="no key usage",
        ),
        pytest.param(
            pki.generate_private_key,
            _key_usage(key_cert_sign=True),
            "CRL issuer certificate is not allowed to sign CRLs (no cRLSign)",
            id="keyCertSign only",
        ),
        pytest.param(
            lambda: ec.generate_private_key(ec.SECP384R1()),
            _key_usage(crl_sign=True),
            "CRL issuer key is not an ECDSA P-256 public key",
            id="P-384 issuer",
        ),
        pytest.param(pki.generate_private_key, _key_usage(crl_sign=True), None, id="cRLSign only"),
    ],
)
def test_verify_crl_checks_the_issuers_authority(
    key: Callable[[], Any], usage: x509.KeyUsage | None, message: str | None
) -> None:
    issuer, crl = _crl_issuer(key=key(), usage=usage)
    if message is None:
        pki.verify_crl(crl, issuer, at=NOW)
        return
    with pytest.raises(PkiError) as caught:
        pki.verify_crl(crl, issuer, at=NOW)
    assert caught.value.message == message


def test_a_crl_of_another_issuer_names_both(fed: Federation) -> None:
    with pytest.raises(PkiError) as caught:
        pki.verify_crl(_crl(fed.sc, []), fed.zj.certificate, at=NOW)
    assert caught.value.message == (
        "CRL issuer CN=hcx province 510000 CA,O=hcx,ST=Sichuan is not "
        "CN=hcx province 330000 CA,O=hcx,ST=Zhejiang"
    )


# --- Hostile encodings: refused with the layer that failed --------------------------------------


def test_a_pinned_root_of_another_key_type_cannot_check_a_chain(fed: Federation) -> None:
    # The pinned list is trusted as given; a root holding an Ed25519 key (no key id, so the
    # key-id check has nothing to compare) still cannot vouch for an ECDSA signature.
    key = ed25519.Ed25519PrivateKey.generate()
    odd_root = (
        x509.CertificateBuilder()
        .subject_name(fed.root.certificate.subject)
        .issuer_name(fed.root.certificate.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .sign(key, None)
    )
    with pytest.raises(PkiError) as caught:
        pki.verify_provincial_ca(fed.zj.certificate, [odd_root], at=NOW)
    assert caught.value.message.startswith(
        "provincial CA is not issued by any pinned root: "
        "provincial CA cannot be checked against the national root: "
    )


def _malformed_key_usage() -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x00")  # not a BIT STRING


def test_a_certificate_with_a_malformed_extension_is_refused(fed: Federation) -> None:
    dsc = _forge(
        subject_cn="malformed",
        issuer=fed.zj.certificate.subject,
        signer=fed.zj.private_key,
        public_key=pki.generate_private_key().public_key(),
        extensions=[(_malformed_key_usage(), True)],
    )
    with pytest.raises(PkiError) as caught:
        pki.verify_dsc_chain(dsc, fed.zj.certificate, [fed.root.certificate], at=NOW)
    assert caught.value.message.startswith("certificate extensions are malformed: ")
    assert pki.spiffe_id(dsc) is None and pki.province_of(dsc) is None


def test_a_csr_with_a_malformed_extension_is_refused(fed: Federation) -> None:
    san = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x00")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(san, critical=False)
        .sign(pki.generate_private_key(), hashes.SHA256())
    )
    with pytest.raises(PkiError) as caught:
        pki.sign_dsc(fed.zj, csr, province=ZJ, name="d-7")
    assert caught.value.message.startswith("CSR extensions are malformed: ")
