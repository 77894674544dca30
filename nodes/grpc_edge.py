"""The edge between the domain and gRPC: one table from hcx errors to status codes.

Handlers raise hcx errors; ``ErrorMappingInterceptor`` turns them into a gRPC status with a
``google.rpc.ErrorInfo`` detail whose ``reason`` is the stable hcx reason name. An unexpected
exception is logged and answered as INTERNAL, never leaked as UNKNOWN.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from nodes.handlers import rewrap
from nodes.identity import PermissionDenied, Unauthenticated
from trust.errors import (
    Conflict,
    DecodeError,
    HcxError,
    InvalidRequest,
    NotFound,
    PkiError,
    ResourceExhausted,
    StoreUnavailable,
    VerificationError,
)
from trust.model import Reason

log = logging.getLogger(__name__)

ERROR_DOMAIN = "hcx.healthcode.v1"

# Most specific class first; the first match wins.
STATUS_OF: tuple[tuple[type[HcxError], grpc.StatusCode], ...] = (
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


def status_code_of(error: HcxError) -> grpc.StatusCode:
    for kind, code in STATUS_OF:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


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


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], error: Exception, method: str
) -> None:
    if isinstance(error, HcxError):
        retry_after = error.retry_after if isinstance(error, ResourceExhausted) else None
        await context.abort_with_status(
            to_status(status_code_of(error), error.message, error.reason, retry_after=retry_after)
        )
    log.exception("unexpected error in %s", method, exc_info=error)
    await context.abort_with_status(
        to_status(grpc.StatusCode.INTERNAL, "internal error (logged by the server)", Reason.NONE)
    )


def _wrap_unary(behaviour: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Any]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behaviour(request, context)
        except (grpc.aio.AbortError, grpc.RpcError):
            raise
        except Exception as error:  # the edge: map, never leak
            await _abort(context, error, method)

    return wrapped


def _wrap_stream(behaviour: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., Any]:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            async for response in behaviour(request, context):
                yield response
        except (grpc.aio.AbortError, grpc.RpcError):
            raise
        except Exception as error:
            await _abort(context, error, method)

    return wrapped


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Maps hcx errors raised by any handler to rich gRPC statuses (see STATUS_OF)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        return rewrap(
            handler,
            lambda behaviour, streaming: (_wrap_stream if streaming else _wrap_unary)(
                behaviour, method
            ),
        )
