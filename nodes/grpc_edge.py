"""The edge between the domain and gRPC: one table from hcx errors to status codes.

Handlers raise hcx errors; the edge wrapper of every served method (nodes.handlers) calls
``abort_with_error``, which turns them into a gRPC status with a ``google.rpc.ErrorInfo`` detail
whose ``reason`` is the stable hcx reason name. An unexpected exception is logged and answered as
INTERNAL, never leaked as UNKNOWN.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from trust.authority import Refused
from trust.errors import (
    Conflict,
    DecodeError,
    HcxError,
    InvalidRequest,
    IssuerUnavailable,
    NotConfigured,
    NotFound,
    PermissionDenied,
    PkiError,
    RelayError,
    ResourceExhausted,
    StoreUnavailable,
    Unauthenticated,
    VerificationError,
)
from trust.log import LogInconsistent
from trust.merkle import ProofError
from trust.model import Reason
from trust.registry import RefusedStatement
from trust.trustlist import TrustListError

log = logging.getLogger(__name__)

ERROR_DOMAIN = "hcx.healthcode.v1"

# Every hcx error has its row (tests/unit/nodes/test_error_table.py raises each through a real
# server). Most specific class first; the first match wins.
STATUS_OF: tuple[tuple[type[HcxError], grpc.StatusCode], ...] = (
    (RelayError, grpc.StatusCode.INTERNAL),
    (IssuerUnavailable, grpc.StatusCode.UNAVAILABLE),
    (LogInconsistent, grpc.StatusCode.FAILED_PRECONDITION),
    (ProofError, grpc.StatusCode.FAILED_PRECONDITION),
    (TrustListError, grpc.StatusCode.FAILED_PRECONDITION),
    (NotConfigured, grpc.StatusCode.FAILED_PRECONDITION),
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (DecodeError, grpc.StatusCode.INVALID_ARGUMENT),
    (PkiError, grpc.StatusCode.INVALID_ARGUMENT),
    (VerificationError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Conflict, grpc.StatusCode.ALREADY_EXISTS),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
)
# A statement the registry (or the authority table judging a leaf) refused.
REFUSALS: tuple[type[HcxError], ...] = (RefusedStatement, Refused)


# A statement the registry refused: the status follows the authority table's reason.
REFUSAL_STATUS: dict[Reason, grpc.StatusCode] = {
    Reason.WRONG_ROLE: grpc.StatusCode.PERMISSION_DENIED,
    Reason.WRONG_PROVINCE: grpc.StatusCode.PERMISSION_DENIED,
    Reason.UNKNOWN_SIGNER: grpc.StatusCode.PERMISSION_DENIED,
    Reason.SIGNER_REVOKED: grpc.StatusCode.PERMISSION_DENIED,
    Reason.REPLAYED: grpc.StatusCode.ALREADY_EXISTS,
    Reason.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Reason.STALE_PROPOSAL: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.PROPOSAL_CLOSED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.UNKNOWN_KID: grpc.StatusCode.NOT_FOUND,
    Reason.UNKNOWN_PROVINCE: grpc.StatusCode.NOT_FOUND,
}


def status_code_of(error: HcxError) -> grpc.StatusCode:
    if isinstance(error, REFUSALS):
        return REFUSAL_STATUS.get(error.reason, grpc.StatusCode.INVALID_ARGUMENT)
    for kind, code in STATUS_OF:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION  # an HcxError of a family without a row


def to_status(
    code: grpc.StatusCode, message: str, reason: Reason, *, retry_after: float | None = None
) -> grpc.Status:
    """A rich gRPC status: the hcx reason as ErrorInfo, and RetryInfo when a retry may pass."""
    info = error_details_pb2.ErrorInfo(reason=reason.name, domain=ERROR_DOMAIN)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    status.details.add().Pack(info)
    if retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(retry_after * 1e9))
        status.details.add().Pack(retry)
    return rpc_status.to_status(status)


# An upstream refusal the caller can act on as if it were its own: the same code and details.
# NOT_FOUND is the request's subject missing there (an assistance request's unknown code).
_FORWARDED = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
})  # fmt: skip


class UpstreamRefused(Exception):
    """A call this server made upstream (to the gateway, to a province) failed, and that failure
    is the answer to its own caller: raised by a handler, answered by ``abort_with_error`` as
    ``forwarded_status`` says. Not an HcxError: its status is the upstream's, not a row of
    STATUS_OF."""

    def __init__(self, error: grpc.RpcError, via: str) -> None:
        super().__init__(f"{via}: {error}")
        self.error = error
        self.via = via


def forwarded_status(error: grpc.RpcError, via: str) -> grpc.Status:
    """An upstream server's failed call as this server's answer, the message prefixed with
    where it came from. A refusal of the request (bad argument, upstream down or slow) passes
    on with its details (ErrorInfo, RetryInfo). A refusal of *this server* by the upstream
    (its certificate revoked, its role, its rate) is not the caller's: told as it were, a
    checkpoint would read CALLER_REVOKED as its own revocation. Those become OVERLOADED (a
    rate, with the upstream's RetryInfo) or INTERNAL_ERROR (a deployment problem, logged)."""
    code = error.code()
    status = rpc_status.from_call(error)
    if status is None:  # the upstream sent no details (e.g. gRPC's own DEADLINE_EXCEEDED)
        status = status_pb2.Status(code=getattr(code_pb2, code.name))
        status.message = error.details() or ""
    message = f"{via}: {status.message}"
    if code in _FORWARDED:
        status.message = message
        return rpc_status.to_status(status)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return to_status(code, message, Reason.OVERLOADED, retry_after=_retry_delay(status))
    log.error("%s refused this server: %s %s", via, code.name, status.message)
    return to_status(grpc.StatusCode.INTERNAL, f"{via} refused this server", Reason.INTERNAL_ERROR)


def _retry_delay(status: status_pb2.Status) -> float | None:
    for detail in status.details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            return retry.retry_delay.ToNanoseconds() / 1e9
    return None


def reason_of(error: grpc.RpcError) -> Reason | None:
    """The hcx reason in a failed call's status details, if any (client side)."""
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if (
            detail.Unpack(info)
            and info.domain == ERROR_DOMAIN
            and info.reason in Reason.__members__
        ):
            return Reason[info.reason]
    return None


async def abort_with_error(
    context: grpc.aio.ServicerContext[Any, Any], error: Exception, method: str
) -> None:
    """Abort the call with the status of ``error`` (see STATUS_OF); an upstream's refusal as
    ``forwarded_status`` passes it on; INTERNAL if unexpected."""
    if isinstance(error, UpstreamRefused):
        await context.abort_with_status(forwarded_status(error.error, error.via))
    if isinstance(error, HcxError):
        await context.abort_with_status(
            to_status(
                status_code_of(error), error.message, error.reason, retry_after=error.retry_after
            )
        )
    log.exception("unexpected error in %s", method, exc_info=error)
    await context.abort_with_status(
        to_status(
            grpc.StatusCode.INTERNAL, "internal error (logged by the server)", Reason.INTERNAL_ERROR
        )
    )
