"""Keeps a provincial node registered with the national gateway under a lease."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc

from healthcode.v1 import gateway_pb2, gateway_pb2_grpc

log = logging.getLogger(__name__)


class NodeRegistration:
    """Registers, keeps the lease alive, re-registers after loss, deregisters on stop."""

    def __init__(
        self,
        *,
        gateway: gateway_pb2_grpc.GatewayStub,
        province: str,
        node_id: str,
        endpoint: str,
        ttl_seconds: int = 10,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._gateway = gateway
        self._request = gateway_pb2.RegisterNodeRequest(
            province=province, node_id=node_id, endpoint=endpoint, ttl_seconds=ttl_seconds
        )
        self._on_change = on_change
        self._lease: int | None = None
        self._ttl = ttl_seconds
        self._task: asyncio.Task[None] | None = None

    @property
    def registered(self) -> bool:
        return self._lease is not None

    async def start(self, *, wait: float = 10.0) -> None:
        """Start the keep-alive loop and wait until the first registration succeeds."""
        self._task = asyncio.create_task(self._run())
        deadline = asyncio.get_running_loop().time() + wait
        while self._lease is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if self._lease is None:
            log.warning("not registered yet; will keep trying")

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                if self._lease is None:
                    await self._register()
                else:
                    await self._gateway.KeepAliveNode(
                        gateway_pb2.KeepAliveNodeRequest(lease_id=self._lease), timeout=2.0
                    )
                backoff = 0.2
                await asyncio.sleep(max(self._ttl / 3, 0.5))
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    log.warning("lease lost; registering again")
                    await self._set_lease(None)
                    continue
                log.warning("gateway unreachable: %s", e.code().name)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _register(self) -> None:
        response = await self._gateway.RegisterNode(self._request, timeout=2.0)
        self._ttl = response.ttl_seconds
        await self._set_lease(response.lease_id)
        log.info("registered with the gateway", extra={"lease": response.lease_id})

    async def _set_lease(self, lease: int | None) -> None:
        self._lease = lease
        if self._on_change is not None:
            await self._on_change(lease is not None)

    async def stop(self) -> None:
        """Stop keeping alive and remove the registration at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._lease is not None:
            try:
                await self._gateway.DeregisterNode(
                    gateway_pb2.DeregisterNodeRequest(lease_id=self._lease), timeout=2.0
                )
            except grpc.aio.AioRpcError as e:
                log.warning("deregistration failed: %s", e.code().name)
            await self._set_lease(None)
