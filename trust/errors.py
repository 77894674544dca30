"""One base error for hcx and its families; the gRPC edge maps them to status codes in one table."""

from __future__ import annotations

from trust.model import Reason


class HcxError(Exception):
    """Base of every error hcx raises on purpose; carries a stable reason code."""

    reason: Reason = Reason.NONE
    # Seconds after which the same call may pass (answered as google.rpc.RetryInfo); None
    # when retrying cannot help.
    retry_after: float | None = None

    def __init__(self, message: str, *, reason: Reason | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class DecodeError(HcxError):
    """The bytes or text given are not a well-formed hcx code."""

    reason = Reason.BAD_ENCODING


class VerificationError(HcxError):
    """A well-formed code failed a trust check (signature, chain, validity, revocation)."""


class PkiError(HcxError):
    """A certificate, CSR or key does not meet the federation's PKI profile."""

    reason = Reason.CHAIN_INVALID


class InvalidRequest(HcxError):
    """The request itself is wrong (missing or badly formed field)."""

    reason = Reason.INVALID_REQUEST


class NotFound(HcxError):
    """The thing asked for does not exist."""

    reason = Reason.NOT_FOUND


class Conflict(HcxError):
    """The request conflicts with stored state (already exists, changed concurrently)."""

    reason = Reason.ALREADY_EXISTS


class Unauthenticated(HcxError):
    """No verified client certificate, or one without an hcx identity."""

    reason = Reason.UNAUTHENTICATED


class PermissionDenied(HcxError):
    """The caller's identity (or a statement's signer) may not do this (docs/security.md)."""

    reason = Reason.WRONG_ROLE


class StoreUnavailable(HcxError):
    """A backing store (registry or status store) cannot be reached; nothing was written."""

    reason = Reason.STORE_UNAVAILABLE
    retry_after = 1.0  # an etcd election or a database fail-over takes about a second


class ResourceExhausted(HcxError):
    """Too many requests: a rate limit or a bounded queue is full; retry after ``retry_after``."""

    reason = Reason.OVERLOADED

    def __init__(
        self, message: str, *, retry_after: float | None = None, reason: Reason | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class IssuerUnavailable(HcxError):
    """No replica of the issuing province answered within the deadline (transport trouble)."""

    reason = Reason.ISSUER_UNAVAILABLE
    retry_after = 1.0


class NotConfigured(HcxError):
    """This server was started without what the call needs (a key, an upstream gateway)."""

    reason = Reason.NOT_CONFIGURED


class RelayError(HcxError):
    """A status look-up failed for another reason than transport or deadline: never offline."""

    reason = Reason.INTERNAL_ERROR
