"""One verification, end to end: trust checks first, then the issuer's live colour."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.relay import IssuerUnavailable, StatusRelay
from trust.codeformat import CodeClaims
from trust.errors import HcxError
from trust.model import Colour, Reason, Verdict
from trust.verify import CodeCheck, check_code
from trust.view import TrustView

DEFAULT_RELAY_TIMEOUT_S = 0.5
DEFAULT_MAX_OFFLINE_AGE_S = 300


@dataclass(frozen=True)
class VerifyPolicy:
    relay_timeout: float = DEFAULT_RELAY_TIMEOUT_S
    max_offline_age: int = DEFAULT_MAX_OFFLINE_AGE_S


@dataclass(frozen=True)
class Outcome:
    """A verdict and what it rests on (claims are present once the code decoded)."""

    verdict: Verdict
    reason: Reason
    message: str
    claims: CodeClaims | None = None
    kid: bytes = b""
    colour: Colour | None = None
    status_version: int = 0
    colour_age: int = 0


def invalid(error: HcxError, check: CodeCheck | None = None) -> Outcome:
    claims = check.claims if check else None
    return Outcome(Verdict.INVALID, error.reason, error.message, claims=claims)


async def verify_token(
    token: str,
    *,
    view: TrustView,
    relay: StatusRelay,
    policy: VerifyPolicy,
    clock: Callable[[], float] = time.time,
    deadline: float | None = None,
) -> Outcome:
    """Verify signature, chain and validity; then ask the issuer for the live colour."""
    now = clock()
    try:
        check = check_code(token, view, now=now)
    except HcxError as e:
        return invalid(e)
    claims = check.claims
    relay_deadline = time.monotonic() + policy.relay_timeout
    if deadline is not None:
        relay_deadline = min(relay_deadline, deadline)
    try:
        live = await relay.status(claims.issuer, claims.code_id, deadline=relay_deadline)
    except IssuerUnavailable as e:
        return offline(check, now=now, policy=policy, why=e.message)
    if not live.found:
        return Outcome(
            Verdict.INVALID,
            Reason.UNKNOWN_CODE,
            f"province {claims.issuer} does not know this code",
            claims=claims,
            kid=check.signer.kid,
        )
    return Outcome(
        Verdict.VALID,
        Reason.NONE,
        "live colour from the issuing province",
        claims=claims,
        kid=check.signer.kid,
        colour=live.colour,
        status_version=live.status_version,
    )


def offline(check: CodeCheck, *, now: float, policy: VerifyPolicy, why: str) -> Outcome:
    """The issuer did not answer: the colour at issuance, if the token is young enough."""
    claims = check.claims
    age = max(0, int(now - claims.issued_at))
    if age > policy.max_offline_age:
        return Outcome(
            Verdict.INVALID,
            Reason.TOKEN_TOO_OLD,
            f"{why}; token is {age} s old (offline limit {policy.max_offline_age} s)",
            claims=claims,
            kid=check.signer.kid,
        )
    return Outcome(
        Verdict.VALID_OFFLINE,
        Reason.NONE,
        f"{why}; colour at issuance",
        claims=claims,
        kid=check.signer.kid,
        colour=claims.colour,
        status_version=claims.status_version,
        colour_age=age,
    )
