"""Asks the issuing province for live statuses: GetStatusBatch, round-robin, hedged, deadline-bound.

One call goes to the next live replica of the province. If it has not answered after
``hedge_after`` seconds and the province has another replica, the same batch is sent there too
and the first good answer wins (the loser is cancelled). A replica that fails fast is replaced
at once by the next one. Every call carries the caller's deadline as its gRPC timeout.

The relay checks who answers: a route in the registry is only an address, so the channel to it
trusts nothing but the province's own CA (from the verified view) and verifies the server's
certificate against the node's identity name (``<node>.node.<province>.hcx.internal``, see
trust.pki.node_dns_name). A server holding any other certificate — another province's node, a
gateway, anything chained to the root — fails the handshake, is counted in
``hcx_gateway_relay_refused_peers_total`` and is never asked. Only transport and deadline
failures mean "issuer unavailable" (and may end as VALID_OFFLINE); any other failure, ours or the
node's, is :class:`RelayError`: logged, counted, answered as an error.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import Counter

from gateway.metrics import RELAY_BATCH_SIZE, RELAY_HEDGES, RELAY_SECONDS
from gateway.options import GatewayOptions
from healthcode.v1 import node_pb2, node_pb2_grpc
from nodes.convert import live_statuses_from_proto
from nodes.failover import NoAnswer, first_answer, in_turn
from nodes.tls import Transport
from trust import pki
from trust.errors import HcxError, IssuerUnavailable, RelayError
from trust.routes import NodeRoute
from trust.verify import LiveStatus
from trust.view import TrustView

log = logging.getLogger(__name__)

MAX_STATUS_BATCH = 1000  # node.proto: GetStatusBatch takes 1 to 1000 ids


# Codes that mean "the issuer did not answer": transport trouble, deadline, its own overload.
UNAVAILABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
RELAY_REFUSED_PEERS = Counter(
    "hcx_gateway_relay_refused_peers",
    "Relay connections refused because the server there is not the registered node.",
    ["province"],
)
RELAY_ERRORS = Counter(
    "hcx_gateway_relay_errors",
    "Status look-ups that failed for another reason than transport or deadline.",
    ["province"],
)


@dataclass(frozen=True)
class RelayPolicy:
    hedge_after: float = (
        GatewayOptions.hedge_after
    )  # before a second replica is asked the same batch


@dataclass(frozen=True)
class _ProvinceMetrics:
    """A province's metric children, looked up once: ``labels()`` costs on every call."""

    batch_size: Any
    ok_seconds: Any
    error_seconds: Any

    @classmethod
    def of(cls, province: str) -> _ProvinceMetrics:
        return cls(
            RELAY_BATCH_SIZE.labels(province),
            RELAY_SECONDS.labels(province, "ok"),
            RELAY_SECONDS.labels(province, "error"),
        )


class StatusRelay:
    """Holds one channel per node endpoint and spreads look-ups over a province's replicas."""

    def __init__(
        self, view: TrustView, policy: RelayPolicy | None = None, *, transport: Transport
    ) -> None:
        self._view = view
        self._transport = transport
        self._policy = policy or RelayPolicy()
        self._stubs: dict[tuple[str, str, str, bytes], node_pb2_grpc.ProvincialNodeStub] = {}
        self._channels: dict[tuple[str, str, str, bytes], grpc.aio.Channel] = {}
        self._turn = itertools.count()
        self._by_province: dict[str, _ProvinceMetrics] = {}

    def _metrics(self, province: str) -> _ProvinceMetrics:
        found = self._by_province.get(province)
        if found is None:
            found = self._by_province[province] = _ProvinceMetrics.of(province)
        return found

    def _stub(self, node: NodeRoute) -> node_pb2_grpc.ProvincialNodeStub:
        """A stub to ``node`` over a channel that only the node's own certificate opens."""
        province = self._view.province(node.province)
        if province is None:
            raise IssuerUnavailable(f"province {node.province} is not onboarded")
        ca = province.ca_certificate
        key = (node.endpoint, node.province, node.node_id, pki.fingerprint(ca))
        stub = self._stubs.get(key)
        if stub is None:
            channel = self._transport.node_channel(
                node.endpoint,
                anchor=ca.public_bytes(Encoding.PEM),
                name=pki.node_dns_name(node.province, node.node_id),
            )
            self._channels[key] = channel
            stub = self._stubs[key] = node_pb2_grpc.ProvincialNodeStub(channel)
        return stub

    async def status(self, province: str, code_id: bytes, *, deadline: float) -> LiveStatus:
        """One code's live status (a batch of one); see ``statuses``."""
        return (await self.statuses(province, [code_id], deadline=deadline))[code_id]

    async def statuses(
        self, province: str, code_ids: Sequence[bytes], *, deadline: float
    ) -> dict[bytes, LiveStatus]:
        """Live statuses of up to 1000 codes by ``deadline`` (monotonic) or IssuerUnavailable."""
        if not 0 < len(code_ids) <= MAX_STATUS_BATCH:
            raise ValueError(f"a status batch holds 1 to {MAX_STATUS_BATCH} ids")
        nodes = self._view.nodes(province)
        if not nodes:
            raise IssuerUnavailable(f"no live node registered for province {province}")
        self._metrics(province).batch_size.observe(len(code_ids))
        request = node_pb2.GetStatusBatchRequest(code_ids=code_ids)
        if len(nodes) == 1:
            reply = await self._only(province, nodes[0], request, deadline)
        else:
            reply = await self._hedged(
                province, in_turn(nodes, next(self._turn)), request, deadline
            )
        return live_statuses_from_proto(reply)

    async def _only(
        self,
        province: str,
        node: NodeRoute,
        request: node_pb2.GetStatusBatchRequest,
        deadline: float,
    ) -> node_pb2.GetStatusBatchResponse:
        """A province with a single replica: nothing to hedge to, so no task to race."""
        if deadline <= time.monotonic():
            raise IssuerUnavailable(f"province {province} did not answer in time")
        return await self._call(province, node, request, deadline)

    async def _hedged(
        self,
        province: str,
        order: list[NodeRoute],
        request: node_pb2.GetStatusBatchRequest,
        deadline: float,
    ) -> node_pb2.GetStatusBatchResponse:
        """First good answer among replicas tried in ``order``; a new try on failure or hedge."""
        pending: set[asyncio.Task[node_pb2.GetStatusBatchResponse]] = set()
        untried = list(order)
        try:
            while untried or pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if untried and (not pending or len(pending) < 2):
                    if pending:
                        RELAY_HEDGES.labels(province).inc()
                    node = untried.pop(0)
                    pending.add(asyncio.create_task(self._call(province, node, request, deadline)))
                wait = min(remaining, self._policy.hedge_after) if untried else remaining
                done, pending = await asyncio.wait(
                    pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    error = task.exception()
                    if error is None:
                        return task.result()
                    if not isinstance(error, IssuerUnavailable):
                        raise error  # a bug or a node's refusal: not a reason to try offline
        finally:
            for task in pending:
                task.cancel()
        raise IssuerUnavailable(f"province {province} did not answer in time")

    async def _call(
        self,
        province: str,
        node: NodeRoute,
        request: node_pb2.GetStatusBatchRequest,
        deadline: float,
    ) -> node_pb2.GetStatusBatchResponse:
        began = time.perf_counter()
        try:
            reply: node_pb2.GetStatusBatchResponse = await self._stub(node).GetStatusBatch(
                request, timeout=max(0.001, deadline - time.monotonic())
            )
        except grpc.aio.AioRpcError as e:
            self._metrics(province).error_seconds.observe(time.perf_counter() - began)
            raise self._failure(province, node, e) from e
        self._metrics(province).ok_seconds.observe(time.perf_counter() - began)
        return reply

    def _failure(self, province: str, node: NodeRoute, error: grpc.aio.AioRpcError) -> HcxError:
        """IssuerUnavailable for transport and deadline failures, RelayError for the rest."""
        code, details = error.code(), (error.details() or "")
        extra = {"province": province, "node": node.node_id, "code": code.name}
        if code in UNAVAILABLE_CODES:
            if _handshake_refused(details):
                RELAY_REFUSED_PEERS.labels(province).inc()
                log.warning("relay refused the server at a route (not that node)", extra=extra)
            else:
                log.warning("status look-up failed", extra=extra)
            return IssuerUnavailable(f"province {province} did not answer ({code.name})")
        RELAY_ERRORS.labels(province).inc()
        log.error("status look-up refused by the node: %s", details, extra=extra)
        return RelayError(f"province {province} refused the status look-up ({code.name})")

    async def assistance(self, request: Any, *, deadline: float) -> Any:
        """Relay an assistance request (gateway.proto) to the code's province: its replicas in
        turn until one answers within ``deadline`` (monotonic). At least once: a replica that
        timed out may have applied it, and the province de-duplicates by request id. A node's
        refusal is its answer (the AioRpcError is raised as it came)."""
        province = request.province
        nodes = self._view.nodes(province)
        if not nodes:
            raise IssuerUnavailable(f"no live node registered for province {province}")

        def failed(node: NodeRoute, _: grpc.RpcError) -> None:
            log.warning(
                "assistance relay failed", extra={"province": province, "node": node.node_id}
            )

        try:
            _, ack = await first_answer(
                in_turn(nodes, next(self._turn)),
                lambda node: self._stub(node).ReceiveAssistance(
                    request, timeout=max(0.001, deadline - time.monotonic())
                ),
                fail_over=UNAVAILABLE_CODES,
                deadline=deadline,
                on_failure=failed,
            )
        except NoAnswer:
            raise IssuerUnavailable(
                f"province {province} did not answer the assistance request"
            ) from None
        return ack

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


def _handshake_refused(details: str) -> bool:
    text = details.lower()
    return any(word in text for word in ("handshake", "certificate", "ssl", "tls"))
