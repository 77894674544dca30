"""Issuing: the national root, provincial CAs, DSCs and other end-entity certificates, the
national service signers; always from a CSR (private keys never travel), the issuer deciding
every name, backdated by the clock-skew margin."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import (
    NameOID,
)

from trust.errors import PkiError
from trust.pki.encoding import generate_private_key, make_csr
from trust.pki.profile import (
    _LOOPBACK,
    _NATIONAL_PROFILES,
    _SERVICE_SIGNERS,
    CLOCK_SKEW,
    DSC_VALIDITY,
    IDENTITY_DNS_SUFFIX,
    LEAF_VALIDITY,
    NATIONAL_SPIFFE_ID,
    ORGANIZATION,
    PROVINCIAL_CA_VALIDITY,
    ROOT_COMMON_NAME,
    ROOT_VALIDITY,
    TRUST_LIST_SIGNER_VALIDITY,
    Authority,
    _authority_key_identifier,
    _aware,
    _leaf_profile,
    _LeafProfile,
    _now,
    _p256,
    _ServiceSigner,
    leaf_spiffe_id,
    national_spiffe_id,
    node_dns_name,
    province_of,
    provincial_ca_spiffe_id,
)

# --- Issuing --------------------------------------------------------------------------------


def create_root_ca(
    *,
    now: datetime | None = None,
    validity: timedelta = ROOT_VALIDITY,
    backdate: timedelta = CLOCK_SKEW,
) -> Authority:
    """A new self-signed national root CA (path length 1: provincial CAs below, then leaves).

    Like every issuing function here: ``now`` (or ``not_before``) is the issuer's clock,
    default the current time, and the certificate is valid from ``backdate`` before it."""
    key = generate_private_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, ROOT_COMMON_NAME),
        ]
    )
    start = _issuing_start(now, backdate)
    builder = _builder(name, name, key.public_key(), start, start + validity)
    builder = _add_ca_extensions(builder, path_length=1, uri=NATIONAL_SPIFFE_ID)
    return Authority(builder.sign(key, hashes.SHA256()), key)


def sign_provincial_ca(
    root: Authority,
    csr: x509.CertificateSigningRequest,
    *,
    province: str,
    name: str,
    now: datetime | None = None,
    validity: timedelta = PROVINCIAL_CA_VALIDITY,
    backdate: timedelta = CLOCK_SKEW,
) -> x509.Certificate:
    """Issue a province's CA certificate from the CSR the province made.

    ``name`` is the province's human-readable name (subject ST). The root decides the
    subject and SAN from ``province``; a CSR asking for another identity is refused.
    """
    uri = provincial_ca_spiffe_id(province)
    public_key = _checked_csr(csr, expected_uri=uri)
    if not name.strip():
        raise PkiError("provincial CA needs a non-empty province name")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, f"hcx province {province} CA"),
        ]
    )
    start, end = _validity(root.certificate, now, validity, backdate)
    builder = _builder(subject, root.certificate.subject, public_key, start, end)
    builder = _add_ca_extensions(builder, path_length=0, uri=uri)
    return _sign(builder, root)


def create_provincial_ca(
    root: Authority,
    *,
    province: str,
    name: str,
    now: datetime | None = None,
    backdate: timedelta = CLOCK_SKEW,
) -> Authority:
    """Convenience for tests and the demo: key, CSR and root signature in one step."""
    key = generate_private_key()
    csr = make_csr(key, common_name=f"hcx province {province} CA")
    certificate = sign_provincial_ca(
        root, csr, province=province, name=name, now=now, backdate=backdate
    )
    return Authority(certificate, key)


def sign_leaf(
    provincial_ca: Authority,
    csr: x509.CertificateSigningRequest,
    *,
    province: str,
    kind: str,
    name: str,
    not_before: datetime | None = None,
    validity: timedelta = LEAF_VALIDITY,
    dns_names: Sequence[str] = (),
    backdate: timedelta = CLOCK_SKEW,
) -> x509.Certificate:
    """Issue an end-entity certificate of ``kind`` ("dsc", "node", "checkpoint") from a CSR.

    ``dns_names`` adds host names a TLS server is reached by (nodes only), e.g. in a compose
    network; loopback names are always present on node certificates.
    """
    profile = _leaf_profile(kind)
    uri = leaf_spiffe_id(province, kind=kind, name=name)
    for given in dns_names:  # identity names are made here, never asked for
        if given.lower().rstrip(".").endswith(IDENTITY_DNS_SUFFIX):
            raise PkiError(
                f"{given!r} is under {IDENTITY_DNS_SUFFIX}, where the names that stand for "
                "identities live: a provincial CA issues them only as a node's own name"
            )
    if kind == "node":  # the name the national gateway dials this node by (its identity)
        dns_names = [*dns_names, node_dns_name(province, name)]
    ca_province = province_of(provincial_ca.certificate)
    if ca_province != province:
        raise PkiError(f"CA of province {ca_province} cannot issue for province {province}")
    return _issue_end_entity(
        provincial_ca,
        _checked_csr(csr, expected_uri=uri),
        common_name=f"hcx province {province} {kind} {name}",
        profile=profile,
        uri=uri,
        dns_names=dns_names,
        not_before=not_before,
        validity=validity,
        backdate=backdate,
    )


def sign_dsc(
    provincial_ca: Authority,
    csr: x509.CertificateSigningRequest,
    *,
    province: str,
    name: str,
    not_before: datetime | None = None,
    validity: timedelta = DSC_VALIDITY,
    backdate: timedelta = CLOCK_SKEW,
) -> x509.Certificate:
    """Issue a document signing certificate (signs health codes) from a CSR."""
    return sign_leaf(
        provincial_ca,
        csr,
        province=province,
        kind="dsc",
        name=name,
        not_before=not_before,
        validity=validity,
        backdate=backdate,
    )


def sign_trust_list_signer(
    root: Authority,
    csr: x509.CertificateSigningRequest,
    *,
    not_before: datetime | None = None,
    validity: timedelta = TRUST_LIST_SIGNER_VALIDITY,
    backdate: timedelta = CLOCK_SKEW,
) -> x509.Certificate:
    """Issue the national trust-list signing certificate from a CSR."""
    signer = _SERVICE_SIGNERS["trust-list"]
    return _sign_service_signer(
        root, csr, signer, not_before=not_before, validity=validity, backdate=backdate
    )


def sign_log_signer(
    root: Authority,
    csr: x509.CertificateSigningRequest,
    *,
    not_before: datetime | None = None,
    validity: timedelta = TRUST_LIST_SIGNER_VALIDITY,
    backdate: timedelta = CLOCK_SKEW,
) -> x509.Certificate:
    """Issue the registry log's tree-head signing certificate from a CSR."""
    signer = _SERVICE_SIGNERS["log"]
    return _sign_service_signer(
        root, csr, signer, not_before=not_before, validity=validity, backdate=backdate
    )


def _sign_service_signer(
    root: Authority,
    csr: x509.CertificateSigningRequest,
    signer: _ServiceSigner,
    *,
    not_before: datetime | None,
    validity: timedelta,
    backdate: timedelta,
) -> x509.Certificate:
    public_key = _checked_csr(csr, expected_uri=signer.uri)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, f"hcx national {signer.label}"),
        ]
    )
    start, end = _validity(root.certificate, not_before, validity, backdate)
    builder = _builder(subject, root.certificate.subject, public_key, start, end)
    builder = _add_end_entity_extensions(
        builder, usages=(signer.usage,), names=[x509.UniformResourceIdentifier(signer.uri)]
    )
    return _sign(builder, root)


def sign_national_leaf(
    root: Authority,
    csr: x509.CertificateSigningRequest,
    *,
    kind: str,
    name: str,
    not_before: datetime | None = None,
    validity: timedelta = LEAF_VALIDITY,
    dns_names: Sequence[str] = (),
    backdate: timedelta = CLOCK_SKEW,
) -> x509.Certificate:
    """Issue a gateway (TLS server + client) or coordinator (TLS client) certificate."""
    profile = _NATIONAL_PROFILES.get(kind)
    if profile is None:
        raise PkiError(f"unknown national certificate kind {kind!r}")
    uri = national_spiffe_id(kind=kind, name=name)
    return _issue_end_entity(
        root,
        _checked_csr(csr, expected_uri=uri),
        common_name=f"hcx national {kind} {name}",
        profile=profile,
        uri=uri,
        dns_names=dns_names,
        not_before=not_before,
        validity=validity,
        backdate=backdate,
    )


def _issue_end_entity(
    issuer: Authority,
    public_key: ec.EllipticCurvePublicKey,
    *,
    common_name: str,
    profile: _LeafProfile,
    uri: str,
    dns_names: Sequence[str],
    not_before: datetime | None,
    validity: timedelta,
    backdate: timedelta,
) -> x509.Certificate:
    """An end-entity certificate of ``profile`` for an already checked CSR key."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    start, end = _validity(issuer.certificate, not_before, validity, backdate)
    builder = _builder(subject, issuer.certificate.subject, public_key, start, end)
    builder = _add_end_entity_extensions(
        builder, usages=profile.usages, names=_leaf_names(uri, profile, dns_names)
    )
    return _sign(builder, issuer)


_DNS_RE = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def _leaf_names(
    uri: str, profile: _LeafProfile, dns_names: Sequence[str]
) -> list[x509.GeneralName]:
    """The SAN: the SPIFFE id, and for TLS servers loopback plus any given host names."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    if dns_names and not (profile.loopback_names or profile.host_names):
        raise PkiError(f"a {profile.label} is not a TLS server: it takes no host names")
    if profile.host_names and not dns_names:
        raise PkiError(f"a {profile.label} needs the host names or addresses it is reached by")
    if profile.loopback_names:
        names += [x509.DNSName("localhost"), x509.IPAddress(_LOOPBACK)]
    for dns in dns_names:
        if (profile.host_names or profile.loopback_names) and (address := _address(dns)):
            names.append(x509.IPAddress(address))
            continue
        if not _DNS_RE.fullmatch(dns) or len(dns) > 253:
            raise PkiError(f"{dns!r} is not a valid host name")
        if dns != "localhost" or not profile.loopback_names:
            names.append(x509.DNSName(dns))
    return names


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# --- Internals: building --------------------------------------------------------------------


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _add_ca_extensions(
    builder: x509.CertificateBuilder, *, path_length: int, uri: str
) -> x509.CertificateBuilder:
    return (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), False)
    )


def _add_end_entity_extensions(
    builder: x509.CertificateBuilder,
    *,
    usages: Sequence[x509.ObjectIdentifier],
    names: list[x509.GeneralName],
) -> x509.CertificateBuilder:
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """keyCertSign+cRLSign for CAs, digitalSignature alone for end entities."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _sign(builder: x509.CertificateBuilder, issuer: Authority) -> x509.Certificate:
    builder = builder.add_extension(_authority_key_identifier(issuer.certificate), False)
    return builder.sign(issuer.private_key, hashes.SHA256())


def _checked_csr(
    csr: x509.CertificateSigningRequest, *, expected_uri: str
) -> ec.EllipticCurvePublicKey:
    """Return the CSR's P-256 key after checking its self-signature and requested SAN."""
    if not csr.is_signature_valid:
        raise PkiError("CSR signature does not verify: the requester does not hold the key")
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    except (ValueError, x509.DuplicateExtension) as e:
        raise PkiError(f"CSR extensions are malformed: {e}") from e
    if san is not None:
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        if uris != [expected_uri]:
            raise PkiError(f"CSR asks for identity {uris!r}, the issuer grants {expected_uri}")
    return _p256(csr.public_key())


def _issuing_start(issued_at: datetime | None, backdate: timedelta) -> datetime:
    """A certificate's not-before: ``backdate`` before the issuer's clock (CLOCK_SKEW)."""
    if backdate < timedelta(0):
        raise PkiError("a certificate is backdated, never postdated (backdate must be >= 0)")
    return (_aware(issued_at) if issued_at is not None else _now()) - backdate


def _validity(
    issuer: x509.Certificate,
    issued_at: datetime | None,
    validity: timedelta,
    backdate: timedelta,
) -> tuple[datetime, datetime]:
    """Validity window from the backdated start, clipped so no certificate outlives its issuer."""
    start = _issuing_start(issued_at, backdate)
    end = min(start + validity, issuer.not_valid_after_utc)
    if end <= start:
        raise PkiError("issuer certificate expires before the requested validity starts")
    return start, end
