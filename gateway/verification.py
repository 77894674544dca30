"""One verification, end to end: trust checks first, then the issuer's live colour.

Split in two so batches can run the CPU part off the event loop: ``check_token`` (sync: decode,
kid, chain, signature, times; touches only the in-memory TrustView, whose signers hold keys
parsed once per kid) and ``resolve`` (async: the live status through the coalescer, or the
offline verdict when the issuer does not answer by the deadline).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

from gateway.options import GatewayOptions
from gateway.relay import IssuerUnavailable
from trust.errors import HcxError, RelayError, ResourceExhausted
from trust.model import Reason, Verdict
from trust.verify import CodeCheck, LiveStatus, Outcome, check_code
from trust.view import TrustView

log = logging.getLogger(__name__)

# Time kept back from the caller's deadline to build and send the answer.
ANSWER_MARGIN_S = 0.01


@dataclass(frozen=True)
class VerifyPolicy:
    relay_timeout: float = GatewayOptions.relay_timeout  # longest wait for the issuer's live status
    max_offline_age: int = GatewayOptions.max_offline_age  # oldest token still VALID_OFFLINE
    allow_offline: bool = True  # False: ISSUER_UNAVAILABLE instead of VALID_OFFLINE


class StatusSource(Protocol):
    """Where live statuses come from (the coalescer in production)."""

    async def lookup(self, province: str, code_id: bytes, *, deadline: float) -> LiveStatus: ...

    def submit(
        self, province: str, code_id: bytes, *, deadline: float
    ) -> asyncio.Future[LiveStatus]: ...


def invalid(error: HcxError, check: CodeCheck | None = None) -> Outcome:
    claims = check.claims if check else None
    return Outcome(Verdict.INVALID, error.reason, error.message, claims=claims)


def check_token(token: str, view: TrustView, now: float) -> CodeCheck | Outcome:
    """The offline part: a CodeCheck, or the INVALID outcome (CPU only, no I/O)."""
    try:
        return check_code(token, view, now=now)
    except HcxError as e:
        return invalid(e)


def check_tokens(tokens: Sequence[str], view: TrustView, now: float) -> list[CodeCheck | Outcome]:
    """``check_token`` for a slice of a batch (run in a worker thread: ECDSA drops the GIL)."""
    return [check_token(t, view, now) for t in tokens]


def relay_deadline(policy: VerifyPolicy, deadline: float | None) -> float:
    """The moment (monotonic) by which the issuer must have answered."""
    own = time.monotonic() + policy.relay_timeout
    return own if deadline is None else min(own, deadline - ANSWER_MARGIN_S)


async def resolve(
    checked: CodeCheck | Outcome,
    *,
    statuses: StatusSource,
    policy: VerifyPolicy,
    now: float,
    deadline: float,
) -> Outcome:
    """The verdict for a checked code: live colour, or offline when the issuer is silent."""
    if isinstance(checked, Outcome):
        return checked
    claims = checked.claims
    try:
        live = await statuses.lookup(claims.issuer, claims.code_id, deadline=deadline)
    except IssuerUnavailable as e:
        return offline(checked, now=now, policy=policy, why=e.message)
    except RelayError as e:
        return failed(checked, e)
    return live_outcome(checked, live)


async def verify_token(
    token: str,
    *,
    view: TrustView,
    statuses: StatusSource,
    policy: VerifyPolicy,
    clock: Callable[[], float] = time.time,
    deadline: float | None = None,
) -> Outcome:
    """Verify signature, chain and validity; then ask the issuer for the live colour."""
    now = clock()
    checked = check_token(token, view, now)
    return await resolve(
        checked,
        statuses=statuses,
        policy=policy,
        now=now,
        deadline=relay_deadline(policy, deadline),
    )


async def verify_tokens(
    tokens: Sequence[str],
    *,
    view: TrustView,
    statuses: StatusSource,
    policy: VerifyPolicy,
    executor: Executor | None,
    workers: int,
    deadline: float | None = None,
    clock: Callable[[], float] = time.time,
) -> list[Outcome]:
    """A batch: signature checks in ``workers`` slices on ``executor``, look-ups coalesced."""
    now = clock()
    checked = await check_in_slices(tokens, view, now, executor=executor, workers=workers)
    until = relay_deadline(policy, deadline)
    # One future per code joins the coalescer's batches; the whole call waits once, by the
    # deadline (no task or timer per code: at 100 codes a call those dominated the CPU).
    asked: dict[int, asyncio.Future[LiveStatus] | IssuerUnavailable] = {}
    try:
        for i, c in enumerate(checked):
            if isinstance(c, CodeCheck):
                try:
                    asked[i] = statuses.submit(c.claims.issuer, c.claims.code_id, deadline=until)
                except IssuerUnavailable as e:  # circuit open: answered offline at once
                    asked[i] = e
    except ResourceExhausted:  # the call is refused (queue full); nobody waits for the asked
        for answer in asked.values():
            if isinstance(answer, asyncio.Future):
                answer.cancel()
        raise
    waiting = [f for f in asked.values() if isinstance(f, asyncio.Future)]
    if waiting:
        await asyncio.wait(waiting, timeout=max(0.0, until - time.monotonic()))
    return [settle(c, asked.get(i), now=now, policy=policy) for i, c in enumerate(checked)]


def settle(
    checked: CodeCheck | Outcome,
    answer: asyncio.Future[LiveStatus] | IssuerUnavailable | None,
    *,
    now: float,
    policy: VerifyPolicy,
) -> Outcome:
    """The verdict of one batched code once the call's wait is over."""
    if isinstance(checked, Outcome):
        return checked
    if isinstance(answer, asyncio.Future) and answer.done() and not answer.cancelled():
        error = answer.exception()
        if error is None:
            return live_outcome(checked, answer.result())
        if not isinstance(error, IssuerUnavailable):  # only transport or deadline is offline
            return failed(checked, error)
        answer = error
    elif isinstance(answer, asyncio.Future):
        answer.cancel()  # the issuer missed the deadline; its late answer is dropped
        answer = None
    why = (
        answer.message
        if isinstance(answer, IssuerUnavailable)
        else (f"province {checked.claims.issuer} did not answer in time")
    )
    return offline(checked, now=now, policy=policy, why=why)


async def check_in_slices(
    tokens: Sequence[str],
    view: TrustView,
    now: float,
    *,
    executor: Executor | None,
    workers: int,
) -> list[CodeCheck | Outcome]:
    """Small batches are checked inline: a thread hop costs more than it saves below ~8."""
    if executor is None or workers <= 1 or len(tokens) < 8:
        return check_tokens(tokens, view, now)
    loop = asyncio.get_running_loop()
    size = -(-len(tokens) // workers)
    slices = [tokens[i : i + size] for i in range(0, len(tokens), size)]
    parts = await asyncio.gather(
        *(loop.run_in_executor(executor, check_tokens, s, view, now) for s in slices)
    )
    return [c for part in parts for c in part]


def live_outcome(check: CodeCheck, live: LiveStatus) -> Outcome:
    """VALID with the issuer's colour, or INVALID/UNKNOWN_CODE when the issuer has no record."""
    claims = check.claims
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
    if not policy.allow_offline:
        return _unavailable(check, Reason.ISSUER_UNAVAILABLE, f"{why}; offline verdicts disabled")
    if age > policy.max_offline_age:
        return _unavailable(
            check,
            Reason.TOKEN_TOO_OLD,
            f"{why}; token is {age} s old (offline limit {policy.max_offline_age} s)",
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


def failed(check: CodeCheck, error: BaseException) -> Outcome:
    """The look-up failed for another reason than transport or deadline (a refusal by the
    issuer, or a bug): an error the checkpoint retries, never the colour at issuance."""
    log.error("status look-up error answered as INTERNAL_ERROR: %r", error)
    return Outcome(
        Verdict.INVALID,
        Reason.INTERNAL_ERROR,
        "internal error while asking the issuer (logged); retry",
        claims=check.claims,
        kid=check.signer.kid,
    )


def _unavailable(check: CodeCheck, reason: Reason, message: str) -> Outcome:
    return Outcome(Verdict.INVALID, reason, message, claims=check.claims, kid=check.signer.kid)
