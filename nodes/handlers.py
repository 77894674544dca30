"""The edge of every served call, wrapped once per method when the server is assembled.

Each method handler is replaced, at registration, by one wrapper that does in this order what
used to be three interceptors re-wrapping every handler on every call:

1. error mapping (outermost): hcx errors become rich statuses, from the one table
   ``nodes.grpc_edge.STATUS_OF``; anything unexpected is logged and answered INTERNAL;
2. authorization: mTLS identity, revocation, the table ``nodes.authz.RULES`` and the
   per-caller rate limit (``nodes.authz.Authorizer``), the caller exposed as ``CALLER``;
3. the request id of the call for its logs (``nodes.logging.REQUEST_ID``), when enabled.

Wrapping at registration rather than in interceptors saves, per call, the interceptor chain's
coroutines and three fresh method handlers; the behaviour is the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from nodes.authz import Authorizer, charged, opening_cost
from nodes.grpc_edge import abort_with_error
from nodes.identity import CALLER
from nodes.logging import REQUEST_ID, request_id_of

Behaviour = Callable[..., Any]
_MAX_CACHED_METHODS = 1024  # a generic handler answering any name must not grow the cache


@dataclass(frozen=True)
class EdgePolicy:
    """What every call passes before its handler: ``authorizer`` None only without mTLS."""

    authorizer: Authorizer | None = None
    request_ids: bool = False


def rewrap(handler: grpc.RpcMethodHandler, wrap: Callable[[Behaviour, bool], Behaviour]) -> Any:
    """The same handler with its behaviour replaced by ``wrap(behaviour, streams_responses)``."""
    common = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), **common)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), **common)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), **common)
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), **common)


def guard(handler: grpc.RpcMethodHandler, method: str, policy: EdgePolicy) -> Any:
    """``handler`` behind the edge (error mapping, authorization, request id); built once."""
    streams_requests = bool(handler.request_streaming)
    return rewrap(
        handler,
        lambda behaviour, streams: (_guard_stream if streams else _guard_unary)(
            behaviour, method, policy, streams_requests
        ),
    )


def _admit(
    method: str, policy: EdgePolicy, request: Any, context: Any, streams_requests: bool
) -> Any:
    """Authorize the call and set its request id; the request to hand on (charged if a stream)."""
    authorizer = policy.authorizer
    if authorizer is not None:
        caller = authorizer.check(method, context, cost=opening_cost(request))
        CALLER.set(caller)
        if streams_requests:
            request = charged(request, authorizer, caller)
    if policy.request_ids:
        REQUEST_ID.set(request_id_of(context))
    return request


def _guard_unary(
    behaviour: Behaviour, method: str, policy: EdgePolicy, streams_requests: bool
) -> Behaviour:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            request = _admit(method, policy, request, context, streams_requests)
            return await behaviour(request, context)
        except (grpc.aio.AbortError, grpc.RpcError):
            raise
        except Exception as error:  # the edge: map, never leak
            await abort_with_error(context, error, method)

    return guarded


def _guard_stream(
    behaviour: Behaviour, method: str, policy: EdgePolicy, streams_requests: bool
) -> Behaviour:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            request = _admit(method, policy, request, context, streams_requests)
            response: AsyncIterator[Any] = behaviour(request, context)
            async for item in response:
                yield item
        except (grpc.aio.AbortError, grpc.RpcError):
            raise
        except Exception as error:
            await abort_with_error(context, error, method)

    return guarded


class _GuardedGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are guarded once each, then reused."""

    def __init__(self, inner: grpc.GenericRpcHandler, policy: EdgePolicy) -> None:
        self._inner = inner
        self._policy = policy
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler, Any]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None  # unknown method: gRPC answers UNIMPLEMENTED
        method = handler_call_details.method
        known = self._guarded.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        guarded = guard(handler, method, self._policy)
        if len(self._guarded) < _MAX_CACHED_METHODS:
            self._guarded[method] = (handler, guarded)
        return guarded


class GuardedRegistrar:
    """Stands in for the server while servicers register, so every method is guarded.

    Pass it wherever generated code takes a server (``add_XServicer_to_server``, health,
    reflection); it registers the guarded handlers on the real server.
    """

    def __init__(self, server: grpc.aio.Server, policy: EdgePolicy) -> None:
        self._server = server
        self._policy = policy

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            [_GuardedGenericHandler(h, self._policy) for h in handlers]
        )

    def add_registered_method_handlers(
        self, service_name: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(
            service_name,
            {
                name: guard(handler, f"/{service_name}/{name}", self._policy)
                for name, handler in handlers.items()
            },
        )
