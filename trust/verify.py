"""Verification of a code against the verified trust view: the checks made before anything else.

``check_code`` takes the token text, the view and a reference time, and either returns a
``CodeCheck`` saying what was established, or raises DecodeError / VerificationError with a
stable reason. The live colour is asked of the issuer afterwards (gateway/), never before.
"""

from __future__ import annotations

from dataclasses import dataclass

from trust.codeformat import CodeClaims, decode_token, verify_token_signature
from trust.errors import VerificationError
from trust.model import Colour, Reason, Verdict
from trust.view import TrustedSigner, TrustView

DEFAULT_CLOCK_SKEW_S = 60


@dataclass(frozen=True)
class CodeCheck:
    """A code whose signature, chain, issuer and validity were verified at ``checked_at``."""

    claims: CodeClaims
    signer: TrustedSigner
    checked_at: float

    def explain(self) -> str:
        c = self.claims
        return (
            f"code of province {c.issuer} signed by kid {self.signer.kid.hex()}, "
            f"issued {int(self.checked_at - c.issued_at)} s ago, colour at issuance "
            f"{c.colour.name}, expires in {int(c.expires_at - self.checked_at)} s"
        )


def check_code(
    token: str, view: TrustView, *, now: float, clock_skew: int = DEFAULT_CLOCK_SKEW_S
) -> CodeCheck:
    """Decode ``token`` and verify kid, province, signature, issuer and validity, in that order."""
    decoded = decode_token(token)
    signer = view.signer(decoded.kid)
    if signer is None:
        raise VerificationError(
            f"no trusted signing certificate with kid {decoded.kid.hex()}",
            reason=Reason.UNKNOWN_KID,
        )
    province = view.province(signer.province)
    if province is None:
        raise VerificationError(
            f"province {signer.province} is not onboarded", reason=Reason.UNKNOWN_PROVINCE
        )
    if province.suspended:
        raise VerificationError(
            f"province {province.code} is suspended", reason=Reason.PROVINCE_SUSPENDED
        )
    if signer.revoked_at is not None and now >= signer.revoked_at:
        raise VerificationError(
            f"signing key {signer.kid.hex()} is revoked ({signer.revocation_reason})",
            reason=Reason.KEY_REVOKED,
        )
    verify_token_signature(decoded, signer.public_key)
    claims = decoded.claims
    if claims.issuer != signer.province:
        raise VerificationError(
            f"code claims issuer {claims.issuer} but was signed by a key of {signer.province}",
            reason=Reason.ISSUER_MISMATCH,
        )
    _check_times(claims, signer, now=now, clock_skew=clock_skew)
    return CodeCheck(claims=claims, signer=signer, checked_at=now)


def _check_times(claims: CodeClaims, signer: TrustedSigner, *, now: float, clock_skew: int) -> None:
    check_validity(
        claims,
        not_before=signer.not_before,
        not_after=signer.not_after,
        now=now,
        clock_skew=clock_skew,
    )
    if signer.retired_at is not None and claims.issued_at > signer.retired_at:
        raise VerificationError(
            f"code issued after its signing key {signer.kid.hex()} was retired",
            reason=Reason.KEY_RETIRED,
        )


def check_validity(
    claims: CodeClaims, *, not_before: float, not_after: float, now: float, clock_skew: int
) -> None:
    """The code's own lifetime at ``now``, and its key's validity when it was issued."""
    if claims.expires_at <= now:
        raise VerificationError(
            f"code expired {int(now - claims.expires_at)} s ago", reason=Reason.EXPIRED
        )
    if claims.issued_at > now + clock_skew:
        raise VerificationError("code issued in the future", reason=Reason.NOT_YET_VALID)
    if not not_before - clock_skew <= claims.issued_at <= not_after:
        raise VerificationError(
            "the signing certificate was not valid when the code was issued",
            reason=Reason.KEY_NOT_VALID_AT_ISSUANCE,
        )


@dataclass(frozen=True)
class Outcome:
    """A verdict and what it rests on (claims are present once the code decoded); what both
    the gateway and a node's local verification answer."""

    verdict: Verdict
    reason: Reason
    message: str
    claims: CodeClaims | None = None
    kid: bytes = b""
    colour: Colour | None = None
    status_version: int = 0
    colour_age: int = 0
