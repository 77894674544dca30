"""gateway/verification.py without a server: a real in-memory TrustView, a scripted issuer.

One named row per behaviour. The issuer is a fake StatusSource (the Protocol in
gateway/verification.py) that answers each code id from a script and records what it was
asked; the trust checks run for real against a TrustView holding one province and its DSC.
Time is a fixed reference (``NOW``): a code's age is set by its ``iat``, never by waiting.
The view is built by simulations/registry_builder.py, as the federation builds its registry.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509

from gateway.relay import IssuerUnavailable
from gateway.verification import (
    ANSWER_MARGIN_S,
    VerifyPolicy,
    check_token,
    invalid,
    relay_deadline,
    resolve,
    settle,
    verify_token,
    verify_tokens,
)
from simulations.registry_builder import RegistryBuilder
from trust import pki, statements
from trust.codeformat import CodeClaims, issue_token
from trust.errors import RelayError, ResourceExhausted, VerificationError
from trust.model import Colour, Reason, Verdict
from trust.verify import CodeCheck, LiveStatus, Outcome
from trust.view import TrustView

ZJ = "330000"
# Every check runs at this reference time (within the certificates' validity, which starts now).
NOW = int(time.time()) + 3600
DAY = timedelta(days=1)
LIFETIME = 360  # a code's exp - iat: long enough to be past the offline limit (300 s) unexpired
AT_ISSUANCE = (Colour.YELLOW, 2)  # colour and status version a code carries
LIVE = LiveStatus(found=True, colour=Colour.RED, status_version=4, updated_at=NOW - 5)
NOT_KNOWN = LiveStatus(found=False, colour=None, status_version=0, updated_at=0)
POLICY = VerifyPolicy(relay_timeout=5.0, max_offline_age=300)


# --- the trust side: a real view of one province -------------------------------------------


@dataclass
class Province:
    """Zhejiang onboarded in an in-memory registry log, and the view that trusts it."""

    view: TrustView
    dsc_key: Any
    kid: bytes

    def token(self, *, age: int = 10, kid: bytes | None = None) -> str:
        """A code issued ``age`` seconds before NOW, with a fresh code id."""
        claims = CodeClaims(
            issuer=ZJ,
            code_id=secrets.token_bytes(16),
            issued_at=NOW - age,
            expires_at=NOW - age + LIFETIME,
            colour=AT_ISSUANCE[0],
            status_version=AT_ISSUANCE[1],
            masked_name="张*明",
            id_tail="123X",
        )
        return issue_token(claims, signing_key=self.dsc_key, kid=kid or self.kid)


def trusted_province() -> Province:
    """The one place that builds the view: the registry as the federation builds it
    (simulations/registry_builder.py), with a DSC valid for a day already at NOW."""
    builder = RegistryBuilder()
    province = builder.onboard(ZJ)
    dsc, key = _dsc_valid_since(province.ca, datetime.fromtimestamp(NOW, UTC) - DAY)
    builder.accept(builder.sign(statements.DscUpload(dsc), province.ca))
    view = builder.view()
    kid = pki.kid(dsc)
    assert view.signer(kid) is not None, "the test view does not trust its own DSC"
    return Province(view, key, kid)


def _dsc_valid_since(ca: pki.Authority, start: datetime) -> tuple[x509.Certificate, Any]:
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name="hcx province 330000 DSC d2")
    return pki.sign_dsc(ca, csr, province=ZJ, name="d2", not_before=start), key


@pytest.fixture(scope="module")
def zj() -> Province:
    return trusted_province()


def checked(zj: Province, *, age: int = 10) -> CodeCheck:
    result = check_token(zj.token(age=age), zj.view, NOW)
    assert isinstance(result, CodeCheck), result
    return result


# --- the issuer side: a scripted StatusSource ----------------------------------------------

PENDING = "never answers"
REFUSED = "circuit open"  # submit raises IssuerUnavailable at once
Script = LiveStatus | BaseException | str


@dataclass
class ScriptedIssuer:
    """A StatusSource answering each code id from ``script`` (default: ``default``), on the
    next turn of the loop as the coalescer does; remembers every question."""

    default: Script = LIVE
    script: dict[bytes, Script] = field(default_factory=dict)
    asked: list[tuple[str, bytes, float]] = field(default_factory=list)
    futures: list[asyncio.Future[LiveStatus]] = field(default_factory=list)

    def answer(self, token_claims: CodeClaims, what: Script) -> None:
        self.script[token_claims.code_id] = what

    async def lookup(self, province: str, code_id: bytes, *, deadline: float) -> LiveStatus:
        return await self.submit(province, code_id, deadline=deadline)

    def submit(
        self, province: str, code_id: bytes, *, deadline: float
    ) -> asyncio.Future[LiveStatus]:
        self.asked.append((province, code_id, deadline))
        what = self.script.get(code_id, self.default)
        if what == REFUSED:
            raise IssuerUnavailable(f"province {province}: circuit open")
        if isinstance(what, ResourceExhausted):
            raise what
        future: asyncio.Future[LiveStatus] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        if isinstance(what, LiveStatus):
            asyncio.get_running_loop().call_soon(future.set_result, what)
        elif isinstance(what, BaseException):
            asyncio.get_running_loop().call_soon(future.set_exception, what)
        return future


def claims_of(token: str, zj: Province) -> CodeClaims:
    result = check_token(token, zj.view, NOW)
    assert isinstance(result, CodeCheck), result
    return result.claims


# --- verify_token / resolve: one code ------------------------------------------------------


@dataclass(frozen=True)
class One:
    name: str
    age: int  # seconds from the code's issuance to NOW
    issuer: Script  # what the issuing province answers
    verdict: Verdict
    reason: Reason
    colour: Colour | None = None
    status_version: int = 0
    colour_age: int = 0
    message: str = ""  # the outcome's whole message
    policy: VerifyPolicy = POLICY
    logged: str = ""  # the error the gateway logs (only for a look-up that failed)


LIVE_COLOUR = "live colour from the issuing province"
NOT_KNOWN_HERE = "province 330000 does not know this code"
INTERNAL = "internal error while asking the issuer (logged); retry"
LOGGED = "status look-up error answered as INTERNAL_ERROR: "

ONE_CODE = [
    One("the issuer answers: VALID with its live colour", 10, LIVE, Verdict.VALID, Reason.NONE,
        Colour.RED, 4, message=LIVE_COLOUR),
    One("the issuer does not know the code: INVALID UNKNOWN_CODE", 10, NOT_KNOWN,
        Verdict.INVALID, Reason.UNKNOWN_CODE, message=NOT_KNOWN_HERE),
    One("the issuer is unavailable, young code: VALID_OFFLINE with the colour at issuance", 120,
        IssuerUnavailable("province 330000 did not answer in time"), Verdict.VALID_OFFLINE,
        Reason.NONE, *AT_ISSUANCE, colour_age=120,
        message="province 330000 did not answer in time; colour at issuance"),
    One("the issuer is unavailable, code exactly at the offline limit: VALID_OFFLINE", 300,
        IssuerUnavailable("down"), Verdict.VALID_OFFLINE, Reason.NONE, *AT_ISSUANCE,
        colour_age=300, message="down; colour at issuance"),
    One("the issuer is unavailable, code past the offline limit: INVALID TOKEN_TOO_OLD", 301,
        IssuerUnavailable("down"), Verdict.INVALID, Reason.TOKEN_TOO_OLD,
        message="down; token is 301 s old (offline limit 300 s)"),
    One("the issuer is unavailable, offline verdicts disabled: INVALID ISSUER_UNAVAILABLE", 10,
        IssuerUnavailable("down"), Verdict.INVALID, Reason.ISSUER_UNAVAILABLE,
        message="down; offline verdicts disabled",
        policy=VerifyPolicy(relay_timeout=5.0, max_offline_age=300, allow_offline=False)),
    One("offline disabled is said even for a code past the offline limit", 301,
        IssuerUnavailable("down"), Verdict.INVALID, Reason.ISSUER_UNAVAILABLE,
        message="down; offline verdicts disabled",
        policy=VerifyPolicy(relay_timeout=5.0, max_offline_age=300, allow_offline=False)),
    One("a code issued just ahead of our clock (within the skew) is 0 s old offline", -30,
        IssuerUnavailable("down"), Verdict.VALID_OFFLINE, Reason.NONE, *AT_ISSUANCE,
        colour_age=0, message="down; colour at issuance"),
    One("the issuer refuses the look-up: INVALID INTERNAL_ERROR, logged, never offline", 10,
        RelayError("province 330000 refused the status look-up (PERMISSION_DENIED)"),
        Verdict.INVALID, Reason.INTERNAL_ERROR, message=INTERNAL,
        logged=LOGGED + "RelayError('province 330000 refused the status look-up "
        "(PERMISSION_DENIED)')"),
]  # fmt: skip


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What gateway/verification.py logged as errors."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gateway.verification" and r.levelno == logging.ERROR
    ]


@pytest.mark.parametrize("case", ONE_CODE, ids=lambda c: c.name)
async def test_one_code(zj: Province, case: One, caplog: pytest.LogCaptureFixture) -> None:
    token = zj.token(age=case.age)
    claims = claims_of(token, zj)
    issuer = ScriptedIssuer(default=case.issuer)
    with caplog.at_level(logging.ERROR, logger="gateway.verification"):
        outcome = await verify_token(
            token, view=zj.view, statuses=issuer, policy=case.policy, clock=lambda: NOW
        )
    got = (outcome.verdict, outcome.reason, outcome.colour, outcome.status_version)
    assert got == (case.verdict, case.reason, case.colour, case.status_version)
    assert outcome.colour_age == case.colour_age
    assert outcome.message == case.message
    assert errors_logged(caplog) == ([case.logged] if case.logged else [])
    assert (outcome.claims, outcome.kid) == (claims, zj.kid)
    assert [(p, c) for p, c, _ in issuer.asked] == [(ZJ, claims.code_id)]


@pytest.mark.parametrize(
    ("name", "token", "reason", "message"),
    [
        pytest.param(
            "garbage",
            lambda zj: "HCX1:not-a-code",
            Reason.BAD_ENCODING,
            "base45 text ends with a dangling character",
            id="garbage",
        ),
        pytest.param(
            "a kid nobody trusts",
            lambda zj: zj.token(kid=b"\x01" * 8),
            Reason.UNKNOWN_KID,
            "no trusted signing certificate with kid 0101010101010101",
            id="a kid nobody trusts",
        ),
        pytest.param(
            "expired at NOW",
            lambda zj: zj.token(age=LIFETIME),
            Reason.EXPIRED,
            "code expired 0 s ago",
            id="expired at NOW",
        ),
    ],
)
async def test_an_invalid_check_passes_through_resolve_unchanged_and_asks_nobody(
    zj: Province, name: str, token: Callable[[Province], str], reason: Reason, message: str
) -> None:
    result = check_token(token(zj), zj.view, NOW)
    assert isinstance(result, Outcome)
    assert (result.verdict, result.reason) == (Verdict.INVALID, reason), name
    assert result.message == message, name
    assert (result.claims, result.kid, result.colour) == (None, b"", None)
    issuer = ScriptedIssuer()
    resolved = await resolve(
        result, statuses=issuer, policy=POLICY, now=NOW, deadline=time.monotonic() + 5
    )
    assert resolved is result
    assert issuer.asked == []


def test_check_token_gives_what_it_established(zj: Province) -> None:
    token = zj.token(age=42)
    result = check_token(token, zj.view, NOW)
    assert isinstance(result, CodeCheck)
    assert (result.claims.issuer, result.signer.kid, result.checked_at) == (ZJ, zj.kid, NOW)
    assert result.claims.issued_at == NOW - 42


# --- the deadline given to the issuer -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "caller_in", "expected_from_caller"),
    [
        pytest.param(
            "no caller deadline: the relay timeout",
            None,
            False,
            id="no caller deadline: the relay timeout",
        ),
        pytest.param(
            "a caller deadline after the relay timeout: the relay timeout",
            60.0,
            False,
            id="a caller deadline after the relay timeout: the relay timeout",
        ),
        pytest.param(
            "a caller deadline before it: the caller's, less the answer margin",
            0.5,
            True,
            id="a caller deadline before it: the caller's, less the answer margin",
        ),
    ],
)
async def test_the_issuer_is_asked_by_the_earlier_deadline(
    zj: Province, name: str, caller_in: float | None, expected_from_caller: bool
) -> None:
    issuer = ScriptedIssuer()
    before = time.monotonic()
    caller = None if caller_in is None else before + caller_in
    await verify_token(
        zj.token(), view=zj.view, statuses=issuer, policy=POLICY, clock=lambda: NOW,
        deadline=caller,
    )  # fmt: skip
    after = time.monotonic()
    [(_, _, asked)] = issuer.asked
    if expected_from_caller:
        assert caller is not None
        assert asked == caller - ANSWER_MARGIN_S, name
    else:
        assert before + POLICY.relay_timeout <= asked <= after + POLICY.relay_timeout, name


def test_relay_deadline_is_the_earlier_of_the_relay_timeout_and_the_callers() -> None:
    before = time.monotonic()
    own = relay_deadline(POLICY, None)
    after = time.monotonic()
    assert before + POLICY.relay_timeout <= own <= after + POLICY.relay_timeout
    soon = before + 0.25
    assert relay_deadline(POLICY, soon) == soon - ANSWER_MARGIN_S
    assert relay_deadline(POLICY, before + 600) <= time.monotonic() + POLICY.relay_timeout


# --- settle: one code of a batch once the call's wait is over -------------------------------


def _done(result: LiveStatus | BaseException) -> asyncio.Future[LiveStatus]:
    future: asyncio.Future[LiveStatus] = asyncio.get_running_loop().create_future()
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
    return future


def _pending() -> asyncio.Future[LiveStatus]:
    return asyncio.get_running_loop().create_future()


def _cancelled() -> asyncio.Future[LiveStatus]:
    future = _pending()
    future.cancel()
    return future


@dataclass(frozen=True)
class Settled:
    name: str
    answer: Callable[[], asyncio.Future[LiveStatus] | IssuerUnavailable]
    verdict: Verdict
    reason: Reason
    message: str  # the outcome's whole message
    colour: Colour | None
    logged: str = ""  # the error the gateway logs (only for a look-up that failed)


SETTLE = [
    Settled("answered: the live colour", lambda: _done(LIVE), Verdict.VALID, Reason.NONE,
            LIVE_COLOUR, Colour.RED),
    Settled("answered, code unknown: UNKNOWN_CODE", lambda: _done(NOT_KNOWN), Verdict.INVALID,
            Reason.UNKNOWN_CODE, NOT_KNOWN_HERE, None),
    Settled("failed with IssuerUnavailable: offline, saying why",
            lambda: _done(IssuerUnavailable("no replica of 330000 answered")),
            Verdict.VALID_OFFLINE, Reason.NONE,
            "no replica of 330000 answered; colour at issuance", Colour.YELLOW),
    Settled("failed with another error: a fault of ours, never offline",
            lambda: _done(RuntimeError("relay bug")), Verdict.INVALID, Reason.INTERNAL_ERROR,
            INTERNAL, None, logged=LOGGED + "RuntimeError('relay bug')"),
    Settled("failed with a relay error: never offline",
            lambda: _done(RelayError("province 330000 refused the status look-up (INTERNAL)")),
            Verdict.INVALID, Reason.INTERNAL_ERROR, INTERNAL, None,
            logged=LOGGED + "RelayError('province 330000 refused the status look-up "
            "(INTERNAL)')"),
    Settled("missed the deadline: offline, as not answered in time", _pending,
            Verdict.VALID_OFFLINE, Reason.NONE,
            "province 330000 did not answer in time; colour at issuance", Colour.YELLOW),
    Settled("cancelled: offline, as not answered in time", _cancelled, Verdict.VALID_OFFLINE,
            Reason.NONE, "province 330000 did not answer in time; colour at issuance",
            Colour.YELLOW),
    Settled("refused at submit (circuit open): offline, saying why",
            lambda: IssuerUnavailable("province 330000: circuit open"), Verdict.VALID_OFFLINE,
            Reason.NONE, "province 330000: circuit open; colour at issuance", Colour.YELLOW),
]  # fmt: skip


@pytest.mark.parametrize("case", SETTLE, ids=lambda c: c.name)
async def test_settle(zj: Province, case: Settled, caplog: pytest.LogCaptureFixture) -> None:
    check = checked(zj, age=60)
    answer = case.answer()
    with caplog.at_level(logging.ERROR, logger="gateway.verification"):
        outcome = settle(check, answer, now=NOW, policy=POLICY)
    assert (outcome.verdict, outcome.reason, outcome.colour) == (
        case.verdict,
        case.reason,
        case.colour,
    )
    assert outcome.message == case.message
    assert errors_logged(caplog) == ([case.logged] if case.logged else [])
    assert (outcome.claims, outcome.kid) == (check.claims, zj.kid)
    if outcome.verdict is Verdict.VALID_OFFLINE:
        assert outcome.colour_age == 60
    if isinstance(answer, asyncio.Future):
        assert answer.done()  # a late answer is dropped, never left waiting


async def test_settle_applies_the_offline_policy(zj: Province) -> None:
    strict = VerifyPolicy(max_offline_age=300, allow_offline=False)
    too_old = settle(checked(zj, age=301), _pending(), now=NOW, policy=POLICY)
    disabled = settle(checked(zj), _pending(), now=NOW, policy=strict)
    assert (too_old.verdict, too_old.reason) == (Verdict.INVALID, Reason.TOKEN_TOO_OLD)
    assert (disabled.verdict, disabled.reason) == (Verdict.INVALID, Reason.ISSUER_UNAVAILABLE)


def test_an_invalid_outcome_keeps_what_the_checks_established(zj: Province) -> None:
    """``invalid`` of a refusal after the checks (say, at a node) keeps the code's claims."""
    check = checked(zj)
    too_old = "token is 301 s old (offline limit 300 s)"
    error = VerificationError(too_old, reason=Reason.TOKEN_TOO_OLD)
    after_checks = invalid(error, check)
    before_checks = invalid(error)
    assert (after_checks.verdict, after_checks.reason, after_checks.message) == (
        Verdict.INVALID,
        Reason.TOKEN_TOO_OLD,
        too_old,
    )
    assert (after_checks.claims, before_checks.claims) == (check.claims, None)


async def test_settle_passes_an_invalid_check_through(zj: Province) -> None:
    invalid = check_token("HCX1:x", zj.view, NOW)
    assert isinstance(invalid, Outcome)
    assert settle(invalid, None, now=NOW, policy=POLICY) is invalid


# --- verify_tokens: a batch -----------------------------------------------------------------


async def run_batch(
    zj: Province,
    tokens: list[str],
    issuer: ScriptedIssuer,
    *,
    policy: VerifyPolicy = POLICY,
    executor: ThreadPoolExecutor | None = None,
    workers: int = 1,
) -> list[Outcome]:
    # The outer bound only turns a hang into a failure; the batch's own wait is the deadline.
    return await asyncio.wait_for(
        verify_tokens(
            tokens,
            view=zj.view,
            statuses=issuer,
            policy=policy,
            executor=executor,
            workers=workers,
            clock=lambda: NOW,
        ),
        timeout=30,
    )


async def test_a_mixed_batch_is_answered_code_by_code_in_order(zj: Province) -> None:
    live, unknown, refused, failed, silent, old = (zj.token(age=a) for a in (5, 5, 5, 5, 5, 301))
    tokens = [live, "HCX1:not-a-code", unknown, refused, failed, silent, old]
    issuer = ScriptedIssuer()
    answers: list[tuple[str, Script]] = [
        (unknown, NOT_KNOWN),
        (refused, REFUSED),
        (failed, IssuerUnavailable("no replica of 330000 answered")),
        (silent, PENDING),
        (old, IssuerUnavailable("down")),
    ]
    for token, what in answers:
        issuer.answer(claims_of(token, zj), what)
    short = VerifyPolicy(relay_timeout=0.2, max_offline_age=300)  # the silent one's wait

    outcomes = await run_batch(zj, tokens, issuer, policy=short)

    assert [(o.verdict, o.reason) for o in outcomes] == [
        (Verdict.VALID, Reason.NONE),
        (Verdict.INVALID, Reason.BAD_ENCODING),
        (Verdict.INVALID, Reason.UNKNOWN_CODE),
        (Verdict.VALID_OFFLINE, Reason.NONE),
        (Verdict.VALID_OFFLINE, Reason.NONE),
        (Verdict.VALID_OFFLINE, Reason.NONE),
        (Verdict.INVALID, Reason.TOKEN_TOO_OLD),
    ]
    assert outcomes[0].colour is Colour.RED  # live, not the colour at issuance
    assert "circuit open" in outcomes[3].message
    assert "no replica of 330000 answered" in outcomes[4].message
    assert "did not answer in time" in outcomes[5].message
    # Every decodable code was asked once, the garbage never; the silent one's question was
    # withdrawn when the call stopped waiting.
    decodable = [live, unknown, refused, failed, silent, old]
    assert [c for _, c, _ in issuer.asked] == [claims_of(t, zj).code_id for t in decodable]
    assert all(f.done() for f in issuer.futures)
    assert [f.cancelled() for f in issuer.futures] == [False, False, False, True, False]


async def test_a_batch_refused_for_a_full_queue_withdraws_what_it_asked(zj: Province) -> None:
    first, second, third = (zj.token() for _ in range(3))
    issuer = ScriptedIssuer(default=PENDING)
    issuer.answer(claims_of(third, zj), ResourceExhausted("queue full"))
    with pytest.raises(ResourceExhausted, match="queue full"):
        await run_batch(zj, [first, second, third], issuer)
    assert len(issuer.futures) == 2
    assert all(f.cancelled() for f in issuer.futures)


class CountingExecutor(ThreadPoolExecutor):
    """A thread pool that counts the slices of a batch it was given."""

    def __init__(self) -> None:
        super().__init__(3, thread_name_prefix="check")
        self.slices: list[int] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.slices.append(len(args[0]))
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize(
    ("name", "codes", "workers", "slices"),
    [
        pytest.param(
            "7 codes: checked inline, no thread hop",
            7,
            3,
            [],
            id="7 codes: checked inline, no thread hop",
        ),
        pytest.param(
            "8 codes, 3 workers: three slices",
            8,
            3,
            [3, 3, 2],
            id="8 codes, 3 workers: three slices",
        ),
        pytest.param(
            "9 codes, 2 workers: two slices", 9, 2, [5, 4], id="9 codes, 2 workers: two slices"
        ),
        pytest.param("one worker: inline", 9, 1, [], id="one worker: inline"),
    ],
)
async def test_large_batches_are_checked_in_slices_and_answered_in_order(
    zj: Province, name: str, codes: int, workers: int, slices: list[int]
) -> None:
    # Every third code is garbage, so a slice answered out of place shows.
    tokens = [zj.token() if i % 3 else f"HCX1:bad{i}" for i in range(codes)]
    issuer = ScriptedIssuer()
    with CountingExecutor() as executor:
        outcomes = await run_batch(zj, tokens, issuer, executor=executor, workers=workers)
    assert executor.slices == slices, name
    expected = [Verdict.VALID if i % 3 else Verdict.INVALID for i in range(codes)]
    assert [o.verdict for o in outcomes] == expected
    assert [o.claims.code_id for o in outcomes if o.claims] == [
        claims_of(t, zj).code_id for t in tokens if not t.startswith("HCX1:bad")
    ]


async def test_a_batch_without_an_executor_is_checked_inline(zj: Province) -> None:
    tokens = [zj.token() for _ in range(9)]
    issuer = ScriptedIssuer()
    outcomes = await run_batch(zj, tokens, issuer, executor=None, workers=4)
    assert [o.verdict for o in outcomes] == [Verdict.VALID] * 9


@dataclass
class LateIssuer(ScriptedIssuer):
    """Answers every code ``after`` seconds (a slow issuer, late for a deadline already gone)."""

    after: float = 0.5

    def submit(
        self, province: str, code_id: bytes, *, deadline: float
    ) -> asyncio.Future[LiveStatus]:
        self.asked.append((province, code_id, deadline))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LiveStatus] = loop.create_future()
        self.futures.append(future)

        def settle() -> None:
            if not future.done():
                future.set_result(LIVE)

        loop.call_later(self.after, settle)
        return future


async def test_a_batch_asks_the_issuing_province_by_the_callers_deadline(zj: Province) -> None:
    tokens = [zj.token() for _ in range(3)]
    issuer = ScriptedIssuer()
    caller = time.monotonic() + 0.5  # before the relay timeout (5 s)
    outcomes = await asyncio.wait_for(
        verify_tokens(
            tokens, view=zj.view, statuses=issuer, policy=POLICY, executor=None, workers=1,
            deadline=caller, clock=lambda: NOW,
        ),
        timeout=30,
    )  # fmt: skip
    assert [o.verdict for o in outcomes] == [Verdict.VALID] * 3
    assert issuer.asked == [
        (ZJ, claims_of(t, zj).code_id, caller - ANSWER_MARGIN_S) for t in tokens
    ]


async def test_a_batch_past_its_deadline_does_not_wait_for_a_late_answer(zj: Province) -> None:
    """The caller's deadline is gone: the codes are answered offline at once and the issuer's
    answer, half a second later, is dropped."""
    tokens = [zj.token(age=20) for _ in range(2)]
    issuer = LateIssuer(after=0.5)
    outcomes = await asyncio.wait_for(
        verify_tokens(
            tokens, view=zj.view, statuses=issuer, policy=POLICY, executor=None, workers=1,
            deadline=time.monotonic() - 1, clock=lambda: NOW,
        ),
        timeout=30,
    )  # fmt: skip
    assert [(o.verdict, o.colour_age) for o in outcomes] == [(Verdict.VALID_OFFLINE, 20)] * 2
    assert [f.cancelled() for f in issuer.futures] == [True, True]
