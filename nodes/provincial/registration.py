"""Keeps a provincial node registered with the national gateway under a lease.

The node is SERVING (grpc health) exactly while it holds a lease: before the first
registration, after the lease is lost (the gateway says NOT_FOUND, or no keep-alive got
through for a whole TTL, so the gateway has certainly dropped it) and while draining.

A node knows every gateway and calls one at a time. A gateway that fails a call (unreachable,
overloaded, or up but cut from its registry's quorum, which a pick-first channel would keep
choosing) is left for the next: the lease lives in the shared registry, so any gateway renews
it, and a lost gateway costs no registration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import grpc

from healthcode.v1 import gateway_pb2, gateway_pb2_grpc
from nodes.provincial import metrics
from nodes.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0
CALL_TIMEOUT_S = 2.0
NOT_READY_RECHECK_S = 1.0  # a node out of routing asks its store again this often


class NodeRegistration:
    """Registers, keeps the lease alive, re-registers after loss, deregisters on stop."""

    def __init__(
        self,
        *,
        gateways: Sequence[gateway_pb2_grpc.GatewayStub],
        province: str,
        node_id: str,
        endpoint: str,
        ttl_seconds: int = 10,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
        channels: Sequence[grpc.aio.Channel] = (),
        ready: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        if not gateways:
            raise ValueError("a node registers through at least one gateway")
        self._gateways = list(gateways)  # in the order of preference
        self._current = 0
        self._channels = list(channels)
        self._request = gateway_pb2.RegisterNodeRequest(
            province=province, node_id=node_id, endpoint=endpoint, ttl_seconds=ttl_seconds
        )
        self._on_change = on_change
        self._ready = ready  # can this node answer for its codes (its store reachable)?
        self._labels = (province, node_id)
        metrics.REGISTERED.labels(*self._labels).set(0)
        self._lease: bytes | None = None  # the gateway's handle of our registration
        self._ttl = ttl_seconds
        self._last_renewal = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False  # set by stop(): the loop ends even if a cancellation is lost
        self.registrations = 0  # how many times a lease was obtained (re-registrations + 1)
        self.failovers = 0  # how many times a failed call moved it to the next gateway

    @property
    def _gateway(self) -> gateway_pb2_grpc.GatewayStub:
        return self._gateways[self._current]

    def _next_gateway(self) -> None:
        """The gateway in use failed a call: the next one takes the following calls."""
        if len(self._gateways) > 1:
            self._current = (self._current + 1) % len(self._gateways)
            self.failovers += 1
            metrics.GATEWAY_FAILOVERS.labels(*self._labels).inc()

    @property
    def registered(self) -> bool:
        return self._lease is not None

    @property
    def lease(self) -> bytes | None:
        return self._lease

    async def start(self, *, wait: float = 10.0, stopping: asyncio.Event | None = None) -> None:
        """Start the keep-alive loop and wait until the first registration succeeds (at most
        ``wait`` seconds, and no longer once ``stopping`` is set: a SIGTERM during start-up)."""
        self._stopping = False
        self._task = asyncio.create_task(self._run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self._lease is None and loop.time() < deadline:
            if stopping is not None and stopping.is_set():
                return
            await asyncio.sleep(0.05)
        if self._lease is None:
            log.warning("not registered yet; will keep trying")

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            if self._ready is not None and not await self._ready():
                await self._leave_routing()
                await asyncio.sleep(NOT_READY_RECHECK_S)
                continue
            try:
                await self._step()
                backoff = 0.2
                await asyncio.sleep(max(self._ttl / 3, 0.5))
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND and self._lease is not None:
                    log.warning("lease lost; registering again")
                    metrics.LEASES_LOST.labels(*self._labels).inc()
                    await self._set_lease(None)
                    continue
                log.warning("gateway call failed: %s %s", e.code().name, e.details())
                self._next_gateway()
                await self._expire_if_stale()
                if self._current == 0:  # every gateway tried since the last pause
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _step(self) -> None:
        if self._lease is None:
            await self._register()
            return
        await self._gateway.KeepAliveNode(
            gateway_pb2.KeepAliveNodeRequest(handle=self._lease), timeout=CALL_TIMEOUT_S
        )
        self._last_renewal = asyncio.get_running_loop().time()

    async def _leave_routing(self) -> None:
        """This node cannot answer for its codes (its store is unreachable): out of the
        gateways' routes at once, NOT_SERVING, and registered again once it can."""
        if self._lease is None:
            return
        log.warning("status store unreachable: leaving routing until it answers again")
        metrics.LEFT_ROUTING.labels(*self._labels).inc()
        lease, self._lease = self._lease, None
        await self._set_lease(None)
        try:
            await self._gateway.DeregisterNode(
                gateway_pb2.DeregisterNodeRequest(handle=lease), timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as e:  # it lapses by itself at its TTL then
            log.warning("deregistration failed: %s", e.code().name)

    async def _expire_if_stale(self) -> None:
        """No renewal for a whole TTL: the gateway has dropped us, so stop claiming SERVING."""
        if self._lease is None:
            return
        if asyncio.get_running_loop().time() - self._last_renewal > self._ttl:
            log.warning("no keep-alive for %d s; lease considered lost", self._ttl)
            metrics.LEASES_LOST.labels(*self._labels).inc()
            await self._set_lease(None)

    async def _register(self) -> None:
        response = await self._gateway.RegisterNode(self._request, timeout=CALL_TIMEOUT_S)
        self._ttl = response.ttl_seconds
        self._last_renewal = asyncio.get_running_loop().time()
        self.registrations += 1
        metrics.REGISTRATIONS.labels(*self._labels).inc()
        await self._set_lease(response.handle)
        log.info("registered with the gateway (ttl %d s)", self._ttl)

    async def _set_lease(self, lease: bytes | None) -> None:
        self._lease = lease
        metrics.REGISTERED.labels(*self._labels).set(1 if lease is not None else 0)
        if self._on_change is not None:
            await self._on_change(lease is not None)

    async def stop(self, *, close_channel: bool = True) -> None:
        """Stop keeping alive, remove the registration at once, close the gateway channel."""
        self._stopping = True
        task, self._task = self._task, None
        try:
            await cancel_and_wait(task)
        except Exception:  # it had failed before the stop: still deregister below
            log.exception("the registration loop had failed")
        if self._lease is not None:
            try:
                await self._gateway.DeregisterNode(
                    gateway_pb2.DeregisterNodeRequest(handle=self._lease),
                    timeout=CALL_TIMEOUT_S,
                )
            except grpc.aio.AioRpcError as e:
                log.warning("deregistration failed: %s", e.code().name)
            await self._set_lease(None)
        if close_channel:
            await self.close()

    async def close(self) -> None:
        """Close the gateway channels (after the server stopped forwarding on them)."""
        channels, self._channels = self._channels, []
        for channel in channels:
            await channel.close()
