"""Every error hcx raises on purpose says what went wrong and carries a stable reason code: the
family's own, or the one a raiser chose. The gRPC edge answers with that reason.
"""

from __future__ import annotations

import pytest

from trust.errors import (
    Conflict,
    DecodeError,
    HcxError,
    InvalidRequest,
    IssuerUnavailable,
    NotFound,
    PermissionDenied,
    PkiError,
    RelayError,
    ResourceExhausted,
    StoreUnavailable,
    Unauthenticated,
    VerificationError,
)
from trust.model import Reason


@pytest.mark.parametrize(
    ("family", "reason"),
    [
        pytest.param(HcxError, Reason.NONE, id="base"),
        pytest.param(DecodeError, Reason.BAD_ENCODING, id="decode"),
        pytest.param(VerificationError, Reason.NONE, id="verification (reason given by the check)"),
        pytest.param(PkiError, Reason.CHAIN_INVALID, id="pki"),
        pytest.param(InvalidRequest, Reason.INVALID_REQUEST, id="invalid request"),
        pytest.param(NotFound, Reason.NOT_FOUND, id="not found"),
        pytest.param(Conflict, Reason.ALREADY_EXISTS, id="conflict"),
        pytest.param(Unauthenticated, Reason.UNAUTHENTICATED, id="unauthenticated"),
        pytest.param(PermissionDenied, Reason.WRONG_ROLE, id="permission denied"),
        pytest.param(StoreUnavailable, Reason.STORE_UNAVAILABLE, id="store unavailable"),
        pytest.param(ResourceExhausted, Reason.OVERLOADED, id="resource exhausted"),
        pytest.param(IssuerUnavailable, Reason.ISSUER_UNAVAILABLE, id="issuer unavailable"),
        pytest.param(RelayError, Reason.INTERNAL_ERROR, id="relay error"),
    ],
)
def test_each_family_has_its_reason_unless_the_raiser_chose_one(
    family: type[HcxError], reason: Reason
) -> None:
    error = family("the log key is revoked")
    assert issubclass(family, HcxError)
    assert error.reason is reason
    assert error.message == str(error) == "the log key is revoked"
    chosen = family("expired", reason=Reason.EXPIRED)
    assert chosen.reason is Reason.EXPIRED
    assert family("again").reason is reason, "choosing a reason changes one error only"


def test_an_error_without_a_message_is_named_by_its_family() -> None:
    assert StoreUnavailable.__new__(StoreUnavailable).message == "StoreUnavailable"
    assert NotFound("").message == ""


def test_a_message_that_is_not_text_is_shown_as_text() -> None:
    error = HcxError(42)  # type: ignore[arg-type]
    assert error.message == "42"


def test_a_rate_limit_says_when_to_retry() -> None:
    limited = ResourceExhausted("rate limit spent", retry_after=2.5, reason=Reason.RATE_LIMITED)
    assert (limited.retry_after, limited.reason, limited.message) == (
        2.5,
        Reason.RATE_LIMITED,
        "rate limit spent",
    )
    full = ResourceExhausted("queue full")
    assert (full.retry_after, full.reason) == (None, Reason.OVERLOADED)
