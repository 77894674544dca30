"""Checking chains, written out for the fixed depth of this federation (no generic path
building): each check raises PkiError with a specific message and a stable Reason."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import (
    SignatureAlgorithmOID,
)

from trust.errors import PkiError
from trust.model import Reason
from trust.pki.encoding import certificate_to_der
from trust.pki.profile import (
    _NATIONAL_PROFILES,
    _PROVINCE_URI_RE,
    _SERVICE_SIGNERS,
    _UNDERSTOOD_CRITICAL,
    CLOCK_SKEW,
    NATIONAL_SPIFFE_ID,
    _aware,
    _extension,
    _extensions,
    _leaf_profile,
    _p256,
    _ServiceSigner,
    province_of,
    provincial_ca_spiffe_id,
    spiffe_id,
)


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


def is_pinned_root(cert: x509.Certificate, roots: Sequence[x509.Certificate]) -> bool:
    """True if ``cert`` is byte-for-byte one of the pinned national roots."""
    der = certificate_to_der(cert)
    return any(certificate_to_der(root) == der for root in roots)
