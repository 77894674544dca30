"""The one verdict module: every check a code must pass before anyone asks for its live colour.

``check_code`` takes the token text, the verified trust view, a reference time and the
verifier's :class:`TokenPolicy`, and either returns a ``CodeCheck`` saying what was established,
or raises DecodeError / VerificationError with a stable reason. Every verifier calls it (the
gateway's unary, batch and stream calls, a node's local verification, the offline checkpoint
CLI), each with its own policy values; the live colour is asked of the issuer afterwards
(gateway/), never before.

Order (docs/code-format.md): decode (text, base45, zlib, COSE, claims, one form), kid, province
onboarded and not suspended, key not revoked, signature, issuer, then the token's own times:
expired, issued in the future, key valid at issuance, key retired at issuance, and lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from cryptography import x509

from trust.codeformat import CodeClaims, decode_token, verify_token_signature
from trust.cose import VerifyingKey
from trust.errors import VerificationError
from trust.model import Colour, Reason, Verdict

# A verifier's clock may lag or lead the issuer's by this much (iat in the future, iat just
# before the signing certificate's not-before).
DEFAULT_CLOCK_SKEW_S = 60
# Issuers make codes that live this long (docs/code-format.md); nodes default to it.
DEFAULT_TOKEN_LIFETIME_S = 300
# exp - iat may exceed the issuance lifetime by this much before a code is refused: room for
# an issuer configured a little longer, never for a code that lives for days.
LIFETIME_MARGIN_S = 60
DEFAULT_MAX_LIFETIME_S = DEFAULT_TOKEN_LIFETIME_S + LIFETIME_MARGIN_S
# Oldest code (now - iat) given the colour at issuance when its issuer cannot be asked.
DEFAULT_MAX_OFFLINE_AGE_S = 300


@dataclass(frozen=True)
class TokenPolicy:
    """A verifier's own values for the checks on a code's times (all in seconds)."""

    clock_skew: int = DEFAULT_CLOCK_SKEW_S
    max_lifetime: int = DEFAULT_MAX_LIFETIME_S

    def __post_init__(self) -> None:
        for name in ("clock_skew", "max_lifetime"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative number of seconds")
        if self.max_lifetime == 0:
            raise ValueError("max_lifetime must be positive: every code lives a while")


DEFAULT_POLICY = TokenPolicy()


class TrustedKey(Protocol):
    """What the checks read of a signing certificate in the verified trust view."""

    @property
    def kid(self) -> bytes: ...
    @property
    def province(self) -> str: ...
    @property
    def certificate(self) -> x509.Certificate: ...
    @property
    def public_key(self) -> VerifyingKey: ...
    @property
    def not_before(self) -> float: ...
    @property
    def not_after(self) -> float: ...
    @property
    def revoked_at(self) -> float | None: ...
    @property
    def revocation_reason(self) -> str: ...
    @property
    def retired_at(self) -> float | None: ...


class ProvinceState(Protocol):
    """What the checks read of a province in the verified trust view."""

    @property
    def code(self) -> str: ...
    @property
    def suspended(self) -> bool: ...


class CodeTrust(Protocol):
    """The verified national view the checks consult (trust.view.TrustView, a trust list's
    view, or a test's fake): signing certificates by kid, provinces by code."""

    def signer(self, kid: bytes, /) -> TrustedKey | None: ...
    def province(self, code: str, /) -> ProvinceState | None: ...


@dataclass(frozen=True)
class CodeCheck:
    """A code whose signature, chain, issuer and validity were verified at ``checked_at``."""

    claims: CodeClaims
    signer: TrustedKey
    checked_at: float

    @property
    def age(self) -> int:
        """Seconds since the code was issued (0 for a code issued within the clock skew)."""
        return max(0, int(self.checked_at - self.claims.issued_at))

    def explain(self) -> str:
        c = self.claims
        return (
            f"code of province {c.issuer} signed by kid {self.signer.kid.hex()}, "
            f"issued {int(self.checked_at - c.issued_at)} s ago, colour at issuance "
            f"{c.colour.name}, expires in {int(c.expires_at - self.checked_at)} s"
        )


def check_code(
    token: str,
    view: CodeTrust,
    *,
    now: float,
    clock_skew: int | None = None,
    policy: TokenPolicy = DEFAULT_POLICY,
) -> CodeCheck:
    """Decode ``token`` and verify kid, province, revocation, signature, issuer and times.

    ``clock_skew`` (if given) overrides ``policy.clock_skew``, for callers of the old API."""
    if clock_skew is not None:
        policy = replace(policy, clock_skew=clock_skew)
    decoded = decode_token(token)
    signer = view.signer(decoded.kid)
    if signer is None:
        raise VerificationError(
            f"no trusted signing certificate with kid {decoded.kid.hex()}",
            reason=Reason.UNKNOWN_KID,
        )
    _check_province(view, signer.province)
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
    check_validity(
        claims,
        not_before=signer.not_before,
        not_after=signer.not_after,
        now=now,
        clock_skew=policy.clock_skew,
        max_lifetime=policy.max_lifetime,
        retired_at=signer.retired_at,
    )
    return CodeCheck(claims=claims, signer=signer, checked_at=now)


def _check_province(view: CodeTrust, code: str) -> None:
    province = view.province(code)
    if province is None:
        raise VerificationError(f"province {code} is not onboarded", reason=Reason.UNKNOWN_PROVINCE)
    if province.suspended:
        raise VerificationError(f"province {code} is suspended", reason=Reason.PROVINCE_SUSPENDED)


def check_validity(
    claims: CodeClaims,
    *,
    not_before: float,
    not_after: float,
    now: float,
    clock_skew: int = DEFAULT_CLOCK_SKEW_S,
    max_lifetime: int = DEFAULT_MAX_LIFETIME_S,
    retired_at: float | None = None,
) -> None:
    """The code's own times at ``now``: not expired, not issued in the future, issued while its
    key was valid and not yet retired, and no longer-lived than ``max_lifetime``."""
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
    if retired_at is not None and claims.issued_at > retired_at:
        raise VerificationError(
            "code issued after its signing key was retired", reason=Reason.KEY_RETIRED
        )
    lifetime = claims.expires_at - claims.issued_at
    if lifetime > max_lifetime:
        raise VerificationError(
            f"code lives {lifetime} s (exp - iat), longer than the maximum {max_lifetime} s",
            reason=Reason.LIFETIME_TOO_LONG,
        )


def check_offline_age(check: CodeCheck, *, max_offline_age: int) -> None:
    """Refuse (TOKEN_TOO_OLD) an offline verdict on a code older than ``max_offline_age``:
    without the issuer, the colour at issuance is all there is, and it goes stale."""
    if check.age > max_offline_age:
        raise VerificationError(
            f"token is {check.age} s old (offline limit {max_offline_age} s)",
            reason=Reason.TOKEN_TOO_OLD,
        )


@dataclass(frozen=True)
class LiveStatus:
    """What the issuing province says of a code now: whether it knows it, its live colour,
    the status version and when it last changed."""

    found: bool
    colour: Colour | None
    status_version: int
    updated_at: int


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
