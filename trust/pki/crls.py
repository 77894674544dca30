"""Certificate revocation lists: made by a CA, checked against it, and read for a serial."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from trust.errors import PkiError
from trust.pki.profile import (
    CLOCK_SKEW,
    PrivateKey,
    RevokedEntry,
    _authority_key_identifier,
    _aware,
    _extension,
    _p256,
    _same_public_key,
)

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
