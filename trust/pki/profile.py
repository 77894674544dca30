"""What the federation's certificates are: object identifiers, SPIFFE identities, the
profile of each kind of certificate, validity periods and the clock-skew margin, and the small
checks on names and keys that issuing and checking share."""

from __future__ import annotations

import functools
import ipaddress
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import (
    ExtendedKeyUsageOID,
    ExtensionOID,
)

from trust.errors import PkiError
from trust.model import is_province_code

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


def provincial_ca_spiffe_id(province: str) -> str:
    """SPIFFE id of a province's CA."""
    return f"spiffe://hcx/province/{_checked_province(province)}"


def leaf_spiffe_id(province: str, *, kind: str, name: str) -> str:
    """SPIFFE id of a DSC, node or checkpoint of a province."""
    profile = _leaf_profile(kind)
    return f"{provincial_ca_spiffe_id(province)}/{profile.kind}/{_checked_name(name)}"


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


def national_spiffe_id(*, kind: str, name: str) -> str:
    """SPIFFE id of a national gateway or coordinator."""
    if kind not in _NATIONAL_PROFILES:
        raise PkiError(f"unknown national certificate kind {kind!r}")
    return f"{NATIONAL_SPIFFE_ID}/{kind}/{_checked_name(name)}"


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


def _authority_key_identifier(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = _extension(issuer_cert, x509.SubjectKeyIdentifier)
    if ski is not None:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(_p256(issuer_cert.public_key()))
