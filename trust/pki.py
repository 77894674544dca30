"""The federation's X.509 PKI: national root → provincial CAs → DSC / node / checkpoint certs.

Everything is standard X.509 built with ``cryptography`` (ECDSA P-256, ECDSA-SHA256) so that
every chain also verifies with ``openssl verify``. Identities are SPIFFE-style URI SANs:

* national root CA          ``spiffe://hcx/national``
* trust-list signer         ``spiffe://hcx/national/trust-list``
* provincial CA             ``spiffe://hcx/province/<code>``
* document signer (DSC)     ``spiffe://hcx/province/<code>/dsc/<name>``
* node TLS certificate      ``spiffe://hcx/province/<code>/node/<name>``
* checkpoint client cert    ``spiffe://hcx/province/<code>/checkpoint/<name>``

Issuers sign certificate signing requests (CSRs): private keys never travel. The issuer
decides every name in the certificate; the CSR only contributes its public key.

Chain verification is written out explicitly for the fixed depth of this federation (no
generic path building): each check raises :class:`PkiError` with a specific message and a
stable :class:`Reason`.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import (
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)

from trust.errors import PkiError
from trust.model import Reason, is_province_code

# --- Object identifiers -------------------------------------------------------------------
# hcx has no registered enterprise arc, so its OIDs live under the UUID arc 2.25 (ITU-T X.667 /
# RFC 4122 §1): anyone may mint ``2.25.<uuid as a decimal integer>`` from a random UUID without
# registration, and a uuid4 makes collisions practically impossible. The UUID below was
# generated once with uuid.uuid4() and must never change: the OIDs are inside every issued
# certificate. Children of the arc are numbered by purpose and only ever appended.
HCX_OID_UUID = uuid.UUID("f6efd4c9-be21-4357-918c-ec02c6c12897")
HCX_OID_ARC = f"2.25.{HCX_OID_UUID.int}"
HEALTH_CODE_SIGNING_OID = x509.ObjectIdentifier(f"{HCX_OID_ARC}.1")
TRUST_LIST_SIGNING_OID = x509.ObjectIdentifier(f"{HCX_OID_ARC}.2")
# A coordinator signs registry statements with the key of its certificate (trust.authority).
STATEMENT_SIGNING_OID = x509.ObjectIdentifier(f"{HCX_OID_ARC}.3")
# The registry log's signed tree heads (trust.log): a key that attests order, not content.
LOG_SIGNING_OID = x509.ObjectIdentifier(f"{HCX_OID_ARC}.4")

# --- Identities and defaults ----------------------------------------------------------------
SPIFFE_PREFIX = "spiffe://hcx/"
NATIONAL_SPIFFE_ID = "spiffe://hcx/national"
TRUST_LIST_SPIFFE_ID = "spiffe://hcx/national/trust-list"
LOG_SPIFFE_ID = "spiffe://hcx/national/log"
ORGANIZATION = "hcx"
ROOT_COMMON_NAME = "hcx national root CA"

ROOT_VALIDITY = timedelta(days=20 * 365 + 5)  # 20 years including leap days
PROVINCIAL_CA_VALIDITY = timedelta(days=5 * 365 + 1)
DSC_VALIDITY = timedelta(days=730)
LEAF_VALIDITY = timedelta(days=365)
TRUST_LIST_SIGNER_VALIDITY = timedelta(days=730)
# Clocks disagree: every certificate issued here is valid from CLOCK_SKEW before the moment
# its issuer issues it (Let's Encrypt backdates by an hour), and every chain check accepts a
# not-before up to CLOCK_SKEW after the time it checks at. A peer whose clock is behind then
# accepts a certificate issued a moment ago (gRPC's TLS clock lags Python's by a few ms after
# each second boundary, enough to refuse a certificate whose not-before is the issuing second).
CLOCK_SKEW = timedelta(minutes=5)

KID_LENGTH = 8

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PROVINCE_URI_RE = re.compile(
    r"^spiffe://hcx/province/(?P<province>[0-9]{6})"
    r"(?:/(?P<kind>[a-z]+)/(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,62}))?$"
)
# Extensions this verifier understands; any other extension marked critical is refused,
# as RFC 5280 §4.2 requires.
_UNDERSTOOD_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)

PrivateKey = ec.EllipticCurvePrivateKey
_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
_E = TypeVar("_E", bound=x509.ExtensionType)


@dataclass(frozen=True)
class _LeafProfile:
    """What distinguishes one kind of end-entity certificate issued by a provincial CA."""

    kind: str
    usages: tuple[x509.ObjectIdentifier, ...]
    loopback_names: bool  # node certs also name localhost/127.0.0.1 for loopback TLS
    label: str
    host_names: bool = False  # a TLS server reached by the host names (or addresses) given


_LEAF_PROFILES: dict[str, _LeafProfile] = {
    "dsc": _LeafProfile("dsc", (HEALTH_CODE_SIGNING_OID,), False, "DSC"),
    "node": _LeafProfile(
        "node",
        (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
        True,
        "node certificate",
    ),
    "checkpoint": _LeafProfile(
        "checkpoint", (ExtendedKeyUsageOID.CLIENT_AUTH,), False, "checkpoint certificate"
    ),
    # A provincial operator's client certificate (uploads and retires the province's DSCs).
    "operator": _LeafProfile(
        "operator", (ExtendedKeyUsageOID.CLIENT_AUTH,), False, "operator certificate"
    ),
    # The province's health authority (imports risk areas and close contacts, asks other
    # provinces for assistance).
    "authority": _LeafProfile(
        "authority", (ExtendedKeyUsageOID.CLIENT_AUTH,), False, "health-authority certificate"
    ),
    # A check-in station (an employer's, a community's): daily check-ins and nothing else.
    "checkin": _LeafProfile(
        "checkin", (ExtendedKeyUsageOID.CLIENT_AUTH,), False, "check-in station certificate"
    ),
    # The HTTPS certificate of a web front (a checkpoint station's staff page, the residents'
    # page): a TLS server only, named by the site's host names or LAN addresses. It is never an
    # mTLS client of the federation (no clientAuth), and names no loopback it was not given.
    "web": _LeafProfile(
        "web", (ExtendedKeyUsageOID.SERVER_AUTH,), False, "web server certificate", True
    ),
}
LEAF_KINDS = tuple(_LEAF_PROFILES)

# End-entity certificates the national root issues directly (no provincial CA in between).
_NATIONAL_PROFILES: dict[str, _LeafProfile] = {
    "gateway": _LeafProfile(
        "gateway",
        (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
        True,
        "gateway certificate",
    ),
    "coordinator": _LeafProfile(
        "coordinator",
        (ExtendedKeyUsageOID.CLIENT_AUTH, STATEMENT_SIGNING_OID),
        False,
        "coordinator certificate",
    ),
}
NATIONAL_KINDS = tuple(_NATIONAL_PROFILES)


@dataclass
class Authority:
    """A certificate together with its private key: something that can issue certificates."""

    certificate: x509.Certificate
    private_key: PrivateKey


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate to put on a CRL."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags


# --- Keys, CSRs and encodings -------------------------------------------------------------


def generate_private_key() -> PrivateKey:
    """A fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(private_key: PrivateKey, *, common_name: str) -> x509.CertificateSigningRequest:
    """A CSR for ``private_key``; the issuer ignores its names and decides them itself."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return builder.sign(private_key, hashes.SHA256())


def kid(cert: x509.Certificate) -> bytes:
    """Key id of a certificate: the first 8 bytes of SHA-256 over its DER (as in the EU DCC)."""
    return hashlib.sha256(certificate_to_der(cert)).digest()[:KID_LENGTH]


def certificate_to_pem(cert: x509.Certificate) -> bytes:
    """PEM encoding of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_to_der(cert: x509.Certificate) -> bytes:
    """DER encoding of a certificate."""
    return cert.public_bytes(serialization.Encoding.DER)


def load_certificate_pem(data: bytes) -> x509.Certificate:
    """Parse one PEM certificate; :class:`PkiError` on anything else."""
    try:
        return x509.load_pem_x509_certificate(data)
    except (ValueError, TypeError) as e:
        raise PkiError(f"not a PEM certificate: {e}") from e


def load_certificates_pem(data: bytes) -> list[x509.Certificate]:
    """Parse a PEM bundle of one or more certificates (a root file during a root rotation)."""
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except (ValueError, TypeError) as e:
        raise PkiError(f"not a PEM certificate bundle: {e}") from e
    if not certificates:
        raise PkiError("no certificate in the PEM bundle")
    return certificates


def load_certificate_der(data: bytes) -> x509.Certificate:
    """Parse one DER certificate; :class:`PkiError` on anything else."""
    try:
        return parse_der(bytes(data))
    except (ValueError, TypeError) as e:
        raise PkiError(f"not a DER certificate: {e}") from e


@functools.lru_cache(maxsize=4096)
def parse_der(der: bytes) -> x509.Certificate:
    """``x509.load_der_x509_certificate``, one parsed object per distinct certificate: the
    registry log carries the same few signer certificates in thousands of statements, and a
    parsed certificate keeps its decoded extensions (ValueError, never cached, as there)."""
    return x509.load_der_x509_certificate(der)


def csr_to_pem(csr: x509.CertificateSigningRequest) -> bytes:
    """PEM encoding of a CSR."""
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr_pem(data: bytes) -> x509.CertificateSigningRequest:
    """Parse one PEM CSR; :class:`PkiError` on anything else."""
    try:
        return x509.load_pem_x509_csr(data)
    except (ValueError, TypeError) as e:
        raise PkiError(f"not a PEM certificate signing request: {e}") from e


def crl_to_pem(crl: x509.CertificateRevocationList) -> bytes:
    """PEM encoding of a CRL."""
    return crl.public_bytes(serialization.Encoding.PEM)


def crl_to_der(crl: x509.CertificateRevocationList) -> bytes:
    """DER encoding of a CRL."""
    return crl.public_bytes(serialization.Encoding.DER)


def load_crl_pem(data: bytes) -> x509.CertificateRevocationList:
    """Parse one PEM CRL; :class:`PkiError` on anything else."""
    try:
        return x509.load_pem_x509_crl(data)
    except (ValueError, TypeError) as e:
        raise PkiError(f"not a PEM CRL: {e}") from e


def load_crl_der(data: bytes) -> x509.CertificateRevocationList:
    """Parse one DER CRL; :class:`PkiError` on anything else."""
    try:
        return x509.load_der_x509_crl(data)
    except (ValueError, TypeError) as e:
        raise PkiError(f"not a DER CRL: {e}") from e


def private_key_to_pem(key: PrivateKey, *, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM of a private key, encrypted when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key_pem(data: bytes, password: bytes | None = None) -> PrivateKey:
    """Parse a PEM private key, which must be ECDSA P-256; :class:`PkiError` otherwise."""
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        # TypeError: password given for a plain key or missing for an encrypted one.
        raise PkiError(f"not a usable PEM private key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PkiError("private key is not ECDSA P-256")
    return key


def write_private_key(
    path: str | os.PathLike[str], key: PrivateKey, *, password: bytes | None = None
) -> None:
    """Write ``key`` as PEM to a new file that is mode 0600 from the moment it exists.

    O_EXCL refuses to overwrite an existing file or follow a planted symlink; creating the
    file with mode 0600 (instead of chmod afterwards) leaves no window where it is readable.
    """
    pem = private_key_to_pem(key, password=password)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


# --- Identities -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def spiffe_id(cert: x509.Certificate) -> str | None:
    """The certificate's single ``spiffe://hcx/`` URI SAN, or None if absent or ambiguous
    (remembered per certificate: equal certificates are equal DER)."""
    try:
        san = _extension(cert, x509.SubjectAlternativeName)
    except PkiError:
        return None
    if san is None:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1 or not uris[0].startswith(SPIFFE_PREFIX):
        return None
    return uris[0]


def province_of(cert: x509.Certificate) -> str | None:
    """Province code named by the certificate's SPIFFE id, or None for national/other certs."""
    match = _PROVINCE_URI_RE.fullmatch(spiffe_id(cert) or "")
    if match is None or not is_province_code(match["province"]):
        return None
    return match["province"]


def is_pinned_root(cert: x509.Certificate, roots: Sequence[x509.Certificate]) -> bool:
    """True if ``cert`` is byte-for-byte one of the pinned national roots."""
    der = certificate_to_der(cert)
    return any(certificate_to_der(root) == der for root in roots)


def provincial_ca_spiffe_id(province: str) -> str:
    """SPIFFE id of a province's CA."""
    return f"spiffe://hcx/province/{_checked_province(province)}"


def leaf_spiffe_id(province: str, *, kind: str, name: str) -> str:
    """SPIFFE id of a DSC, node or checkpoint of a province."""
    profile = _leaf_profile(kind)
    return f"{provincial_ca_spiffe_id(province)}/{profile.kind}/{_checked_name(name)}"


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


_DNS_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
IDENTITY_DNS_SUFFIX = "hcx.internal"


def node_dns_name(province: str, name: str) -> str:
    """The DNS name in a node certificate that stands for its identity:
    ``<name>.node.<province>.hcx.internal``. Gateways verify a node's server certificate
    against this name (and against the province's own CA only), so the endpoint answering
    is that node of that province, whatever address it was reached at."""
    if not _DNS_LABEL_RE.fullmatch(name):
        raise PkiError(f"node name {name!r} must be a DNS label (letters, digits, hyphens)")
    return f"{name}.node.{_checked_province(province)}.{IDENTITY_DNS_SUFFIX}"


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


@dataclass(frozen=True)
class _ServiceSigner:
    """A national key with one narrow purpose, held online by gateways (it signs no trust)."""

    uri: str
    usage: x509.ObjectIdentifier
    label: str


_SERVICE_SIGNERS = {
    "trust-list": _ServiceSigner(TRUST_LIST_SPIFFE_ID, TRUST_LIST_SIGNING_OID, "trust-list signer"),
    "log": _ServiceSigner(LOG_SPIFFE_ID, LOG_SIGNING_OID, "log signer"),
}


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


def national_spiffe_id(*, kind: str, name: str) -> str:
    """SPIFFE id of a national gateway or coordinator."""
    if kind not in _NATIONAL_PROFILES:
        raise PkiError(f"unknown national certificate kind {kind!r}")
    return f"{NATIONAL_SPIFFE_ID}/{kind}/{_checked_name(name)}"


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


def verify_national_leaf(
    cert: x509.Certificate,
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    kind: str,
    clock_skew: timedelta = CLOCK_SKEW,
) -> None:
    """Check a gateway or coordinator certificate issued directly by a pinned root.

    Like every chain check here: a certificate whose not-before is up to ``clock_skew`` after
    ``at`` is valid (its issuer's clock may be ahead); its not-after is exact."""
    profile = _NATIONAL_PROFILES.get(kind)
    if profile is None:
        raise PkiError(f"unknown national certificate kind {kind!r}")
    moment = _Moment.of(at, clock_skew)
    _check_certificate_basics(cert, moment, what=profile.label)
    _check_end_entity(cert, what=profile.label, usages=profile.usages)
    sid = spiffe_id(cert) or ""
    if not sid.startswith(f"{NATIONAL_SPIFFE_ID}/{kind}/"):
        raise PkiError(f"{profile.label} has SPIFFE id {sid!r}")
    _check_root_for(cert, roots, moment, intermediates=0, what=profile.label)


# --- Verifying chains -----------------------------------------------------------------------


def verify_root(
    root: x509.Certificate, *, at: datetime, clock_skew: timedelta = CLOCK_SKEW
) -> None:
    """A national root as the profile makes it: self-signed CA, valid at ``at``."""
    _check_root(root, _Moment.of(at, clock_skew), intermediates=1)


def fingerprint(cert: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's DER: how the registry names a coordinator's certificate."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def verify_provincial_ca(
    ca: x509.Certificate,
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    clock_skew: timedelta = CLOCK_SKEW,
) -> str:
    """Check a provincial CA against the pinned roots at time ``at``; return its province."""
    moment = _Moment.of(at, clock_skew)
    _check_certificate_basics(ca, moment, what="provincial CA")
    _check_ca(ca, what="provincial CA", path_length=0)
    province = province_of(ca)
    if province is None or spiffe_id(ca) != provincial_ca_spiffe_id(province):
        raise PkiError(f"provincial CA has no province SPIFFE id (got {spiffe_id(ca)!r})")
    _check_root_for(ca, roots, moment, intermediates=1, what="provincial CA")
    return province


def verify_leaf_chain(
    leaf: x509.Certificate,
    provincial_ca: x509.Certificate,
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    kind: str,
    clock_skew: timedelta = CLOCK_SKEW,
) -> str:
    """Check leaf → provincial CA → pinned root at time ``at``; return the province code."""
    profile = _leaf_profile(kind)
    province = verify_provincial_ca(provincial_ca, roots, at=at, clock_skew=clock_skew)
    _check_certificate_basics(leaf, _Moment.of(at, clock_skew), what=profile.label)
    _check_end_entity(leaf, what=profile.label, usages=profile.usages)
    _check_issued_by(leaf, provincial_ca, what=profile.label, issuer_what="provincial CA")
    match = _PROVINCE_URI_RE.fullmatch(spiffe_id(leaf) or "")
    if match is None or match["kind"] != profile.kind:
        raise PkiError(f"{profile.label} has no {kind} SPIFFE id (got {spiffe_id(leaf)!r})")
    if match["province"] != province:
        raise PkiError(
            f"{profile.label} names province {match['province']} "
            f"but was issued by the CA of province {province}"
        )
    return province


def verify_dsc_chain(
    dsc: x509.Certificate,
    provincial_ca: x509.Certificate,
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    clock_skew: timedelta = CLOCK_SKEW,
) -> str:
    """Check DSC → provincial CA → pinned root at time ``at``; return the province code."""
    return verify_leaf_chain(dsc, provincial_ca, roots, at=at, kind="dsc", clock_skew=clock_skew)


def verify_trust_list_signer(
    cert: x509.Certificate,
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    clock_skew: timedelta = CLOCK_SKEW,
) -> None:
    """Check the trust-list signing certificate against the pinned roots at time ``at``."""
    signer = _SERVICE_SIGNERS["trust-list"]
    _verify_service_signer(cert, roots, signer, at=_Moment.of(at, clock_skew))


def verify_log_signer(
    cert: x509.Certificate,
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    clock_skew: timedelta = CLOCK_SKEW,
) -> None:
    """Check a tree-head signing certificate against the pinned roots at time ``at``."""
    _verify_service_signer(cert, roots, _SERVICE_SIGNERS["log"], at=_Moment.of(at, clock_skew))


def _verify_service_signer(
    cert: x509.Certificate,
    roots: Sequence[x509.Certificate],
    signer: _ServiceSigner,
    *,
    at: _Moment,
) -> None:
    what = signer.label
    _check_certificate_basics(cert, at, what=what)
    _check_end_entity(cert, what=what, usages=(signer.usage,))
    if spiffe_id(cert) != signer.uri:
        raise PkiError(f"{what} has SPIFFE id {spiffe_id(cert)!r}, not {signer.uri}")
    _check_root_for(cert, roots, at, intermediates=0, what=what)


# --- CRLs -----------------------------------------------------------------------------------


def make_crl(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    revoked: Sequence[RevokedEntry],
    *,
    this_update: datetime,
    next_update: datetime,
    crl_number: int,
) -> x509.CertificateRevocationList:
    """A signed v2 CRL of ``revoked`` entries issued by a CA (root or provincial)."""
    if not _same_public_key(issuer_key.public_key(), issuer_cert.public_key()):
        raise PkiError("CRL signing key does not belong to the issuer certificate")
    this_update, next_update = _aware(this_update), _aware(next_update)
    if next_update <= this_update or crl_number < 0:
        raise PkiError("CRL needs next_update after this_update and a non-negative number")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(_authority_key_identifier(issuer_cert), critical=False)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(_revoked_certificate(entry))
    return builder.sign(issuer_key, hashes.SHA256())


def verify_crl(
    crl: x509.CertificateRevocationList,
    issuer_cert: x509.Certificate,
    *,
    at: datetime | None = None,
    clock_skew: timedelta = CLOCK_SKEW,
) -> None:
    """Check a CRL's issuer name and signature; with ``at``, also that it is current then
    (a this-update up to ``clock_skew`` after ``at`` is current: the issuer's clock is ahead)."""
    if crl.issuer != issuer_cert.subject:
        raise PkiError(
            f"CRL issuer {crl.issuer.rfc4514_string()} is not "
            f"{issuer_cert.subject.rfc4514_string()}"
        )
    usage = _extension(issuer_cert, x509.KeyUsage)
    if usage is None or not usage.crl_sign:
        raise PkiError("CRL issuer certificate is not allowed to sign CRLs (no cRLSign)")
    if not crl.is_signature_valid(_p256(issuer_cert.public_key(), what="CRL issuer key")):
        raise PkiError("CRL signature does not verify with the issuer's key")
    if at is not None:
        at = _aware(at)
        next_update = crl.next_update_utc
        if at + clock_skew < crl.last_update_utc or next_update is None or at > next_update:
            raise PkiError(f"CRL is not current at {at.isoformat()}")


def revoked_at(crl: x509.CertificateRevocationList, serial: int) -> datetime | None:
    """When the certificate with ``serial`` was revoked according to ``crl``, or None."""
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    return None if entry is None else entry.revocation_date_utc


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


def _authority_key_identifier(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = _extension(issuer_cert, x509.SubjectKeyIdentifier)
    if ski is not None:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(_p256(issuer_cert.public_key()))


def _sign(builder: x509.CertificateBuilder, issuer: Authority) -> x509.Certificate:
    builder = builder.add_extension(_authority_key_identifier(issuer.certificate), False)
    return builder.sign(issuer.private_key, hashes.SHA256())


def _revoked_certificate(entry: RevokedEntry) -> x509.RevokedCertificate:
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(entry.serial)
        .revocation_date(_aware(entry.revoked_at))
    )
    # RFC 5280 §5.3.1: the reason code "unspecified" should be omitted, not encoded.
    if entry.reason != x509.ReasonFlags.unspecified:
        builder = builder.add_extension(x509.CRLReason(entry.reason), critical=False)
    return builder.build()


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


# --- Internals: checking --------------------------------------------------------------------


@dataclass(frozen=True)
class _Moment:
    """When a chain is checked, and how far in that moment's future a not-before may be."""

    time: datetime
    skew: timedelta

    @classmethod
    def of(cls, at: datetime, skew: timedelta) -> _Moment:
        if skew < timedelta(0):
            raise ValueError("clock skew must not be negative")
        return cls(_aware(at), skew)


def _check_certificate_basics(cert: x509.Certificate, at: _Moment, *, what: str) -> None:
    """Algorithm, critical extensions and validity window: the same for every level."""
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise PkiError(f"{what} is not signed with ECDSA-SHA256")
    _p256(cert.public_key(), what=what)
    for extension in _extensions(cert):
        if extension.critical and extension.oid not in _UNDERSTOOD_CRITICAL:
            raise PkiError(
                f"{what} has an unknown critical extension {extension.oid.dotted_string}"
            )
    _check_valid_at(cert, at, what=what)


def _check_valid_at(cert: x509.Certificate, at: _Moment, *, what: str) -> None:
    # The skew only ever moves the not-before: an expired certificate is expired.
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if at.time + at.skew < start or at.time > end:
        state = "not yet valid" if at.time < start else "expired"
        raise PkiError(
            f"{what} is {state} at {at.time.isoformat()} "
            f"(valid {start.isoformat()} to {end.isoformat()})",
            reason=Reason.KEY_NOT_VALID_AT_ISSUANCE,
        )


def _check_ca(cert: x509.Certificate, *, what: str, path_length: int | None) -> None:
    """A CA of the profile: ca=True, keyCertSign and cRLSign, and the exact path length."""
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise PkiError(f"{what} is not a CA (BasicConstraints ca=False or missing)")
    if path_length is not None and constraints.path_length != path_length:
        raise PkiError(
            f"{what} has path length {constraints.path_length}, the profile requires {path_length}"
        )
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not (usage.key_cert_sign and usage.crl_sign):
        raise PkiError(f"{what} key usage lacks keyCertSign/cRLSign")


def _check_end_entity(
    cert: x509.Certificate, *, what: str, usages: Sequence[x509.ObjectIdentifier]
) -> None:
    """Not a CA, digitalSignature only, and exactly the expected extended key usages."""
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise PkiError(f"{what} must not be a CA")
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.digital_signature or usage.key_cert_sign or usage.crl_sign:
        raise PkiError(
            f"{what} key usage must be digitalSignature only", reason=Reason.WRONG_PURPOSE
        )
    extended = _extension(cert, x509.ExtendedKeyUsage)
    found = frozenset(extended) if extended is not None else frozenset()
    if found != frozenset(usages):
        names = sorted(oid.dotted_string for oid in found) or "none"
        raise PkiError(
            f"{what} extended key usage is {names}, expected "
            f"{sorted(oid.dotted_string for oid in usages)}",
            reason=Reason.WRONG_PURPOSE,
        )


def _check_issued_by(
    cert: x509.Certificate, issuer: x509.Certificate, *, what: str, issuer_what: str
) -> None:
    """Issuer name, key identifiers and signature of one link of the chain."""
    if cert.issuer != issuer.subject:
        raise PkiError(
            f"{what} issuer {cert.issuer.rfc4514_string()} does not match the "
            f"{issuer_what} subject {issuer.subject.rfc4514_string()}"
        )
    aki = _extension(cert, x509.AuthorityKeyIdentifier)
    ski = _extension(issuer, x509.SubjectKeyIdentifier)
    if aki is not None and ski is not None and aki.key_identifier not in (None, ski.digest):
        raise PkiError(f"{what} authority key id does not match the {issuer_what} key id")
    try:
        _verify_signature_once(cert, issuer)
    except InvalidSignature as e:
        raise PkiError(f"{what} signature does not verify with the {issuer_what} key") from e
    except (ValueError, TypeError) as e:
        raise PkiError(f"{what} cannot be checked against the {issuer_what}: {e}") from e


_VERIFIED_SIGNATURES: set[tuple[bytes, bytes]] = set()
_MAX_VERIFIED = 1 << 16


def _verify_signature_once(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """``cert.verify_directly_issued_by(issuer)``, remembered when it succeeded: a signature
    over the same bytes by the same key does not change, while the registry re-checks the same
    chains for every statement a coordinator or a province signs (validity times, purposes and
    names are still checked every time by the callers)."""
    key = (cert.fingerprint(hashes.SHA256()), issuer.fingerprint(hashes.SHA256()))
    if key in _VERIFIED_SIGNATURES:
        return
    cert.verify_directly_issued_by(issuer)
    if len(_VERIFIED_SIGNATURES) >= _MAX_VERIFIED:
        _VERIFIED_SIGNATURES.clear()
    _VERIFIED_SIGNATURES.add(key)


def _check_root_for(
    cert: x509.Certificate,
    roots: Sequence[x509.Certificate],
    at: _Moment,
    *,
    intermediates: int,
    what: str,
) -> None:
    """Find the pinned root that issued ``cert`` and check the root itself.

    The root is always taken from the pinned list (never from what the caller presents), so
    the anchor is the pinned DER byte for byte; a look-alike root with the same name but
    another key fails the signature check here.
    """
    candidates = [root for root in roots if root.subject == cert.issuer]
    if not candidates:
        raise PkiError(f"{what} issuer {cert.issuer.rfc4514_string()} is not a pinned root")
    errors: list[str] = []
    for root in candidates:
        try:
            _check_issued_by(cert, root, what=what, issuer_what="national root")
        except PkiError as e:
            errors.append(e.message)
            continue
        _check_root(root, at, intermediates=intermediates)
        return
    raise PkiError(f"{what} is not issued by any pinned root: {'; '.join(errors)}")


def _check_root(root: x509.Certificate, at: _Moment, *, intermediates: int) -> None:
    """A pinned root: self-signed CA, valid at ``at``, whose path length allows the chain."""
    _check_certificate_basics(root, at, what="national root")
    _check_ca(root, what="national root", path_length=None)
    _check_issued_by(root, root, what="national root", issuer_what="national root")
    path_length = _extension(root, x509.BasicConstraints)
    limit = path_length.path_length if path_length is not None else None
    if limit is not None and limit < intermediates:
        raise PkiError(
            f"path length exceeded: the national root allows {limit} intermediate CA(s), "
            f"the chain has {intermediates}"
        )


def _extensions(cert: x509.Certificate) -> x509.Extensions:
    try:
        return cert.extensions
    except (ValueError, x509.DuplicateExtension) as e:
        raise PkiError(f"certificate extensions are malformed: {e}") from e


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return _extensions(cert).get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _p256(key: object, *, what: str = "key") -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PkiError(f"{what} is not an ECDSA P-256 public key")
    return key


def same_public_key(a: object, b: object) -> bool:
    """True when two public keys are the same P-256 key (a key file matches its certificate)."""
    return (
        isinstance(a, ec.EllipticCurvePublicKey)
        and isinstance(b, ec.EllipticCurvePublicKey)
        and a.public_numbers() == b.public_numbers()
    )


def _same_public_key(a: ec.EllipticCurvePublicKey, b: object) -> bool:
    return isinstance(b, ec.EllipticCurvePublicKey) and a.public_numbers() == b.public_numbers()


def _leaf_profile(kind: str) -> _LeafProfile:
    try:
        return _LEAF_PROFILES[kind]
    except KeyError:
        raise PkiError(f"unknown certificate kind {kind!r}; expected one of {LEAF_KINDS}") from None


def _checked_province(province: str) -> str:
    if not is_province_code(province):
        raise PkiError(f"{province!r} is not a provincial-level GB/T 2260 code")
    return province


def _checked_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise PkiError(f"{name!r} is not a valid certificate name (letters, digits, . _ -)")
    return name


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    """``at`` in UTC; a naive datetime is a programming error, not a PKI failure."""
    if at.tzinfo is None:
        raise ValueError("datetimes given to the PKI must be timezone-aware")
    return at.astimezone(UTC)
