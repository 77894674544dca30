"""Server assembly shared by every hcx process: servicers, health, reflection, and the edge
(error mapping, authorization, request ids) wrapped once around every method."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from prometheus_client import start_http_server

from nodes.authz import Authorizer
from nodes.handlers import EdgePolicy, GuardedRegistrar
from nodes.tls import Transport

log = logging.getLogger(__name__)

# Keep messages small: a token is < 4 KiB and a batch of 1000 stays far below this.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ServiceBinding:
    """One servicer and how to attach it: its registration function and full service name."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    service_name: str


class ComposedServicer:
    """One servicer of a contract's service, made of parts: each rpc is the same-named method
    of exactly one part. What it serves is checked once, when it is made (``compose``)."""

    def __init__(self, service: ServiceDescriptor, parts: Sequence[object]) -> None:
        rpcs = {method.name for method in service.methods}
        served: dict[str, Callable[..., Any]] = {}
        for part in parts:
            for name in _rpc_like_names(part):
                where = f"{type(part).__name__}.{name}"
                if name not in rpcs:
                    raise TypeError(f"{where} is no rpc of {service.full_name}")
                if name in served:
                    raise TypeError(f"{service.full_name}.{name} is served twice (also {where})")
                served[name] = getattr(part, name)
        missing = sorted(rpcs - served.keys())
        if missing:
            raise TypeError(f"no part serves {', '.join(missing)} of {service.full_name}")
        self.service_name = service.full_name
        self._served = served

    def __getattr__(self, name: str) -> Callable[..., Any]:
        try:
            return self.__dict__["_served"][name]
        except KeyError:
            raise AttributeError(f"{self.service_name} has no rpc {name}") from None


def _rpc_like_names(part: object) -> list[str]:
    """A part's public methods named like rpcs (CamelCase); a part that is a generated
    servicer base brings all of them, each of which then must be its own."""
    return [
        name
        for name in dir(type(part))
        if name[:1].isupper() and callable(getattr(part, name, None))
    ]


def compose(
    add_to_server: Callable[[Any, grpc.aio.Server], None],
    service: ServiceDescriptor,
    *parts: object,
) -> ServiceBinding:
    """Serve ``service`` (its descriptor in the generated ``*_pb2``) from ``parts``, attached by
    the generated ``add_to_server``: refused at start-up (TypeError) if an rpc has no part, two
    parts serve one, or a part has a method named like an rpc the service does not have."""
    return ServiceBinding(add_to_server, ComposedServicer(service, parts), service.full_name)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    _cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def on_stop(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Run ``cleanup`` (e.g. stop a background task) when the server stops."""
        self._cleanups.append(cleanup)

    async def stop(self, grace: float | None) -> None:
        await self.server.stop(grace)
        for cleanup in reversed(self._cleanups):
            await cleanup()

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set("", status)


async def build_server(
    bindings: Sequence[ServiceBinding],
    *,
    listen: str,
    transport: Transport,
    authorizer: Authorizer | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    maximum_concurrent_rpcs: int | None = None,
    request_ids: bool = False,
    reuse_port: bool = False,
) -> RunningServer:
    """Create, bind and start a grpc.aio server with health, reflection and error mapping.

    With mTLS every call passes the ``authorizer`` (authentication, revocation, the
    authorization table, rate limits) before its handler runs; with ``request_ids`` its logs
    carry the call's request id. Both are wrapped around each method once, here (see
    nodes.handlers), not by interceptors on every call. Any ``interceptors`` run before the edge.
    """
    edge = EdgePolicy(
        authorizer=(authorizer or Authorizer()) if transport.secure else None,
        request_ids=request_ids,
    )
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Off unless sibling processes are meant to share the port (gateway --workers):
            # otherwise a second server started on a busy port would silently share it.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
        # Past this many calls in progress gRPC answers RESOURCE_EXHAUSTED: bounded memory.
        maximum_concurrent_rpcs=maximum_concurrent_rpcs,
    )
    registrar: Any = GuardedRegistrar(server, edge)  # stands in for the server: guards methods
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar)
    names = [b.service_name for b in bindings]
    for binding in bindings:
        binding.add_to_server(binding.servicer, registrar)
    # The asyncio servicer, named: enable_server_reflection picks the synchronous one for
    # anything that is not a grpc.aio.Server, and the guarded registrar is not one.
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ]
        ),
        registrar,
    )
    port = transport.add_port(server, listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    running = RunningServer(server=server, port=port, health=health_servicer)
    for name in names:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    await running.set_serving(True)
    log.info("listening", extra={"port": port, "services": names})
    return running


def start_metrics(port: int | None, *, host: str = "127.0.0.1") -> int | None:
    """Serve Prometheus /metrics on ``host:port`` (0 picks a free port); returns the port."""
    if port is None:
        return None
    httpd, _thread = start_http_server(port, addr=host)
    return int(httpd.server_port)


def listen_host(listen: str) -> str:
    """The host part of a ``host:port`` listen address: /metrics is served on the same
    interface as gRPC, so a server listening on 0.0.0.0 in a container can be scraped."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    return host or "0.0.0.0"
