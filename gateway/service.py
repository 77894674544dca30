"""Gateway servicer: translate protobuf, call the domain, translate back."""

from __future__ import annotations

import logging
import time
from typing import Any

from gateway.metrics import VERIFICATIONS, VERIFY_SECONDS
from gateway.relay import StatusRelay
from gateway.verification import Outcome, VerifyPolicy, verify_token
from healthcode.v1 import gateway_pb2, gateway_pb2_grpc
from trust.errors import InvalidRequest
from trust.kv import KvStore
from trust.model import Reason, Verdict, is_province_code
from trust.registry import RegistryOperations
from trust.view import TrustView

log = logging.getLogger(__name__)


def outcome_to_proto(outcome: Outcome) -> gateway_pb2.VerifyResponse:
    response = gateway_pb2.VerifyResponse(
        verdict=int(outcome.verdict),
        reason=int(outcome.reason),
        message=outcome.message,
        kid=outcome.kid,
        status_version=outcome.status_version,
        colour_age_seconds=outcome.colour_age,
    )
    if outcome.colour is not None:
        response.colour = int(outcome.colour)
    if outcome.claims is not None:
        response.issuer = outcome.claims.issuer
        response.masked_name = outcome.claims.masked_name
        response.id_tail = outcome.claims.id_tail
        response.expires_at = outcome.claims.expires_at
    return response


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    """Verification for checkpoints, registration for provincial nodes."""

    def __init__(
        self,
        *,
        view: TrustView,
        relay: StatusRelay,
        registry: RegistryOperations,
        store: KvStore,
        policy: VerifyPolicy,
    ) -> None:
        self._view = view
        self._relay = relay
        self._registry = registry
        self._store = store
        self._policy = policy

    async def Verify(self, request: Any, context: Any) -> gateway_pb2.VerifyResponse:
        if request.checkpoint_province and not is_province_code(request.checkpoint_province):
            raise InvalidRequest("checkpoint_province must be a GB/T 2260 province code")
        began = time.perf_counter()
        remaining = context.time_remaining()
        deadline = time.monotonic() + remaining - 0.01 if remaining is not None else None
        outcome = await verify_token(
            request.token,
            view=self._view,
            relay=self._relay,
            policy=self._policy,
            deadline=deadline,
        )
        VERIFY_SECONDS.observe(time.perf_counter() - began)
        issuer = outcome.claims.issuer if outcome.claims else "unknown"
        VERIFICATIONS.labels(issuer, outcome.verdict.name, outcome.reason.name).inc()
        if outcome.verdict is Verdict.INVALID and outcome.reason is not Reason.UNKNOWN_CODE:
            log.info("invalid code: %s (%s)", outcome.reason.name, outcome.message)
        return outcome_to_proto(outcome)

    async def RegisterNode(self, request: Any, context: Any) -> gateway_pb2.RegisterNodeResponse:
        lease, ttl = await self._registry.register_node(
            province=request.province,
            node_id=request.node_id,
            endpoint=request.endpoint,
            ttl_seconds=request.ttl_seconds,
        )
        return gateway_pb2.RegisterNodeResponse(lease_id=lease, ttl_seconds=ttl)

    async def KeepAliveNode(self, request: Any, context: Any) -> gateway_pb2.KeepAliveNodeResponse:
        ttl = await self._store.keep_alive(request.lease_id)
        return gateway_pb2.KeepAliveNodeResponse(ttl_seconds=ttl)

    async def DeregisterNode(
        self, request: Any, context: Any
    ) -> gateway_pb2.DeregisterNodeResponse:
        await self._store.revoke_lease(request.lease_id)
        return gateway_pb2.DeregisterNodeResponse()
