"""Asks the issuing province for a code's live status, round-robin over its live replicas."""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass

import grpc

from gateway.metrics import RELAY_SECONDS
from healthcode.v1 import node_pb2, node_pb2_grpc
from trust.errors import HcxError
from trust.model import Colour, Reason
from trust.view import TrustView

log = logging.getLogger(__name__)


class IssuerUnavailable(HcxError):
    """No replica of the issuing province answered within the deadline."""

    reason = Reason.ISSUER_UNAVAILABLE


@dataclass(frozen=True)
class LiveStatus:
    found: bool
    colour: Colour | None
    status_version: int
    updated_at: int


class StatusRelay:
    """Holds one channel per node endpoint and spreads look-ups over a province's replicas."""

    def __init__(self, view: TrustView) -> None:
        self._view = view
        self._stubs: dict[str, node_pb2_grpc.ProvincialNodeStub] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._turn = itertools.count()

    def _stub(self, endpoint: str) -> node_pb2_grpc.ProvincialNodeStub:
        stub = self._stubs.get(endpoint)
        if stub is None:
            channel = grpc.aio.insecure_channel(endpoint)
            self._channels[endpoint] = channel
            stub = self._stubs[endpoint] = node_pb2_grpc.ProvincialNodeStub(channel)
        return stub

    async def status(self, province: str, code_id: bytes, *, deadline: float) -> LiveStatus:
        """The live status; tries the next replica on failure until ``deadline`` (monotonic)."""
        nodes = self._view.nodes(province)
        if not nodes:
            raise IssuerUnavailable(f"no live node registered for province {province}")
        start = next(self._turn)
        for i in range(len(nodes)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            node = nodes[(start + i) % len(nodes)]
            began = time.perf_counter()
            try:
                reply = await self._stub(node.endpoint).GetStatus(
                    node_pb2.GetStatusRequest(code_id=code_id), timeout=remaining
                )
            except grpc.aio.AioRpcError as e:
                RELAY_SECONDS.labels(province, "error").observe(time.perf_counter() - began)
                log.warning("status look-up failed at %s: %s", node.node_id, e.code().name)
                continue
            RELAY_SECONDS.labels(province, "ok").observe(time.perf_counter() - began)
            colour = Colour(reply.colour) if reply.found else None
            return LiveStatus(reply.found, colour, reply.status_version, reply.updated_at)
        raise IssuerUnavailable(f"province {province} did not answer in time")

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
