"""nodes/grpc_edge.py: what a refusal looks like on the wire.

Every refusal carries a google.rpc.ErrorInfo with the stable hcx reason (docs/verdicts.md), a
RetryInfo where a retry may pass, and an unexpected exception is INTERNAL_ERROR, never NONE. A
node that forwards a foreign code passes the gateway's status on with its details.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from nodes.grpc_edge import abort_with_error, forwarded_status, reason_of, to_status
from trust.errors import (
    IssuerUnavailable,
    NotConfigured,
    PermissionDenied,
    ResourceExhausted,
    StoreUnavailable,
)
from trust.model import Reason


class Aborted(Exception):
    def __init__(self, status: grpc.Status) -> None:
        self.status = status


class Context:
    """What a grpc.aio servicer context does on abort_with_status: end the handler."""

    async def abort_with_status(self, status: grpc.Status) -> None:
        raise Aborted(status)


def failed_call(status: grpc.Status) -> grpc.aio.AioRpcError:
    """The client side of a call answered with ``status``, as grpc.aio raises it."""
    return grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
    )  # fmt: skip


def retry_delay(status: grpc.Status) -> float | None:
    decoded = rpc_status.from_call(failed_call(status))
    assert decoded is not None
    for detail in decoded.details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            return retry.retry_delay.ToNanoseconds() / 1e9
    return None


async def answered(error: Exception) -> grpc.Status:
    with pytest.raises(Aborted) as aborted:
        await abort_with_error(Context(), error, "/healthcode.v1.Gateway/Verify")
    return aborted.value.status


CASES = [
    pytest.param(PermissionDenied("checkpoint may not", reason=Reason.WRONG_PROVINCE),
                 grpc.StatusCode.PERMISSION_DENIED, Reason.WRONG_PROVINCE, None,
                 id="a refusal keeps its own reason"),
    pytest.param(ResourceExhausted("slow down", retry_after=0.25, reason=Reason.RATE_LIMITED),
                 grpc.StatusCode.RESOURCE_EXHAUSTED, Reason.RATE_LIMITED, 0.25,
                 id="rate limited: RetryInfo with the bucket's delay"),
    pytest.param(StoreUnavailable("etcd is down"), grpc.StatusCode.UNAVAILABLE,
                 Reason.STORE_UNAVAILABLE, 1.0, id="store unavailable: retry after a second"),
    pytest.param(IssuerUnavailable("no replica answered"), grpc.StatusCode.UNAVAILABLE,
                 Reason.ISSUER_UNAVAILABLE, 1.0, id="issuer unavailable: retry after a second"),
    pytest.param(NotConfigured("no trust-list key"), grpc.StatusCode.FAILED_PRECONDITION,
                 Reason.NOT_CONFIGURED, None, id="not configured: no retry helps"),
    pytest.param(KeyError("bug"), grpc.StatusCode.INTERNAL, Reason.INTERNAL_ERROR, None,
                 id="an unexpected exception is INTERNAL_ERROR, not NONE"),
]  # fmt: skip


@pytest.mark.parametrize(("error", "code", "reason", "retry"), CASES)
async def test_every_refusal_carries_its_reason(
    error: Exception, code: grpc.StatusCode, reason: Reason, retry: float | None
) -> None:
    status = await answered(error)
    assert status.code == code
    assert reason_of(failed_call(status)) is reason
    assert retry_delay(status) == retry


async def test_an_unexpected_exception_does_not_leak_its_message() -> None:
    status = await answered(RuntimeError("password=hunter2 in a traceback"))
    assert "hunter2" not in status.details
    assert status.details == "internal error (logged by the server)"


def test_a_forwarded_refusal_keeps_code_reason_and_retry_advice() -> None:
    upstream = to_status(
        grpc.StatusCode.UNAVAILABLE, "etcd is down", Reason.STORE_UNAVAILABLE, retry_after=1.0
    )
    status = forwarded_status(failed_call(upstream), "national gateway")
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.details == "national gateway: etcd is down"
    assert reason_of(failed_call(status)) is Reason.STORE_UNAVAILABLE
    assert retry_delay(status) == 1.0


def test_the_upstreams_rate_limit_of_this_server_is_an_overload_for_the_caller() -> None:
    upstream = to_status(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit of node-1 exceeded", Reason.RATE_LIMITED,
        retry_after=0.5,
    )  # fmt: skip
    status = forwarded_status(failed_call(upstream), "national gateway")
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(failed_call(status)) is Reason.OVERLOADED  # not the checkpoint's own rate
    assert retry_delay(status) == 0.5


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, Reason.CALLER_REVOKED),
        (grpc.StatusCode.PERMISSION_DENIED, Reason.WRONG_ROLE),
        (grpc.StatusCode.INTERNAL, Reason.INTERNAL_ERROR),
    ],
)
def test_the_upstreams_refusal_of_this_server_is_not_passed_on_as_the_callers(
    code: grpc.StatusCode, reason: Reason
) -> None:
    """A checkpoint must not read the node's revocation at the gateway as its own."""
    upstream = to_status(code, "certificate of spiffe://hcx/.../node/n1 is revoked", reason)
    status = forwarded_status(failed_call(upstream), "national gateway")
    assert status.code == grpc.StatusCode.INTERNAL
    assert reason_of(failed_call(status)) is Reason.INTERNAL_ERROR
    assert status.details == "national gateway refused this server"


def test_a_forwarded_status_without_details_keeps_its_code_and_message() -> None:
    plain: Any = grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(),
        details="Deadline Exceeded",
    )  # fmt: skip
    status = forwarded_status(plain, "national gateway")
    assert status.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert status.details == "national gateway: Deadline Exceeded"
    assert reason_of(failed_call(status)) is None
