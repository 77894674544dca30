"""The authorization table (docs/security.md) and the Authorizer that enforces it.

Every call is authenticated by mTLS (the client certificate's SPIFFE id), checked against the
revocation lists, rate limited per caller, and matched against ``RULES``: a method not in the
table is denied. Rules that depend on the request (a node registering for a province, a
province uploading a DSC) are checked in the handler with nodes.identity.require_province.
The Authorizer runs before every handler, in the edge wrapper of each method (nodes.handlers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from nodes.identity import Identity, PermissionDenied, Role, Unauthenticated
from nodes.ratelimit import RateLimiter
from nodes.tls import peer_identity
from trust.errors import ResourceExhausted
from trust.model import Reason

DENIALS = Counter(
    "hcx_authz_denials", "Calls refused by authentication or authorization.", ["method", "why"]
)

C, G, N, OP, K = Role.COORDINATOR, Role.GATEWAY, Role.NODE, Role.OPERATOR, Role.CHECKPOINT
HA, CI = Role.AUTHORITY, Role.CHECKIN


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    own_province: bool = False  # a provincial caller must belong to the serving node's province


def rule(*roles: Role, own_province: bool = False) -> Rule:
    return Rule(frozenset(roles), own_province)


RULES: Mapping[str, Rule] = {
    # Gateway: checkpoints and nodes verify; nodes register (for their own province).
    "/healthcode.v1.Gateway/Verify": rule(K, N, C),
    "/healthcode.v1.Gateway/VerifyBatch": rule(K, N, C),
    "/healthcode.v1.Gateway/VerifyStream": rule(K, N, C),
    "/healthcode.v1.Gateway/GetTrustList": rule(K, N, C, G),
    "/healthcode.v1.Gateway/WatchTrustList": rule(K, N, C, G),
    "/healthcode.v1.Gateway/RegisterNode": rule(N),
    "/healthcode.v1.Gateway/KeepAliveNode": rule(N),
    "/healthcode.v1.Gateway/DeregisterNode": rule(N),
    # Cross-province assistance: a province's node (for its health authority) or the
    # authority itself; the requesting province is the caller's, never the request's.
    "/healthcode.v1.Gateway/RequestAssistance": rule(N, HA),
    # Registry: coordinators and operators submit statements they signed themselves; which
    # statement each may submit, and who must have signed it, is trust.authority.AUTHORITY.
    "/healthcode.v1.Registry/Submit": rule(C, OP),
    "/healthcode.v1.Registry/ListProvinces": rule(C, OP),
    "/healthcode.v1.Registry/ListCertificates": rule(C, OP),
    "/healthcode.v1.Registry/ListCoordinators": rule(C, OP),
    "/healthcode.v1.Registry/ListProposals": rule(C),
    "/healthcode.v1.Registry/AuditLog": rule(C),
    # The log itself is public to the federation: monitors and auditors check it.
    "/healthcode.v1.Registry/GetLog": rule(C, OP, G, K),
    # ProvincialNode: the province's operators issue and colour; the gateway reads status.
    "/healthcode.v1.ProvincialNode/IssueCode": rule(OP, own_province=True),
    "/healthcode.v1.ProvincialNode/RefreshCode": rule(OP, own_province=True),
    "/healthcode.v1.ProvincialNode/SetStatus": rule(OP, own_province=True),
    "/healthcode.v1.ProvincialNode/GetStatus": rule(G, OP, own_province=True),
    "/healthcode.v1.ProvincialNode/GetStatusBatch": rule(G, OP, own_province=True),
    "/healthcode.v1.ProvincialNode/Verify": rule(K, own_province=True),
    # Colours by rules (docs/colour-policy.md): residents apply and check in through the
    # province's front ends (operators); its health authority imports risk data and asks
    # other provinces; other provinces' requests arrive only through the national gateway.
    "/healthcode.v1.ProvincialNode/ApplyCode": rule(OP, own_province=True),
    # Employers' and communities' check-in stations: check-ins and the state they answer.
    "/healthcode.v1.ProvincialNode/CheckIn": rule(OP, CI, own_province=True),
    "/healthcode.v1.ProvincialNode/GetCodeState": rule(OP, HA, CI, own_province=True),
    "/healthcode.v1.ProvincialNode/ExplainCode": rule(OP, HA, own_province=True),
    "/healthcode.v1.ProvincialNode/ImportRiskAreas": rule(HA, own_province=True),
    "/healthcode.v1.ProvincialNode/ImportCloseContacts": rule(HA, own_province=True),
    "/healthcode.v1.ProvincialNode/SendAssistance": rule(HA, own_province=True),
    "/healthcode.v1.ProvincialNode/ReceiveAssistance": rule(G),
    "/healthcode.v1.ProvincialNode/GetStatistics": rule(HA, OP, own_province=True),
}
ANY_AUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class Authorizer:
    """Decides one call: authenticated, not revoked, allowed, within its rate."""

    def __init__(
        self,
        *,
        rules: Mapping[str, Rule] = RULES,
        local_province: str | None = None,
        is_revoked: Callable[[Identity], bool] = lambda identity: False,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._rules = rules
        self._province = local_province
        self._is_revoked = is_revoked
        self._limiter = limiter or RateLimiter()

    def charge(self, caller: Identity, cost: float) -> None:
        """Spend ``cost`` more of the caller's rate (each code of a batch or stream counts)."""
        self._limiter.take(caller, cost)

    def check(self, method: str, context: Any, *, cost: float = 1.0) -> Identity:
        try:
            identity = peer_identity(context)
        except Unauthenticated:
            DENIALS.labels(method, "unauthenticated").inc()
            raise
        if self._is_revoked(identity):
            DENIALS.labels(method, "revoked").inc()
            raise Unauthenticated(
                f"certificate of {identity} is revoked (or its province is not onboarded)",
                reason=Reason.CALLER_REVOKED,
            )
        self._check_rule(method, identity)
        try:
            self._limiter.take(identity, cost)
        except ResourceExhausted:
            DENIALS.labels(method, "rate").inc()
            raise
        return identity

    def _check_rule(self, method: str, identity: Identity) -> None:
        if method.startswith(ANY_AUTHENTICATED_PREFIXES):
            return
        found = self._rules.get(method)
        if found is None or identity.role not in found.roles:
            DENIALS.labels(method, "role").inc()
            raise PermissionDenied(
                f"{identity.role.value} {identity} may not call {method}", reason=Reason.WRONG_ROLE
            )
        national = identity.province is None
        if found.own_province and not national and identity.province != self._province:
            DENIALS.labels(method, "province").inc()
            raise PermissionDenied(
                f"{identity} is not of province {self._province}", reason=Reason.WRONG_PROVINCE
            )


def opening_cost(request: Any) -> float:
    """Rate cost of opening a call: one per code of a batch, else one."""
    tokens = getattr(request, "tokens", None)
    return float(max(1, len(tokens))) if tokens is not None else 1.0


def charged(request: Any, authorizer: Authorizer, caller: Identity) -> Any:
    """A request stream whose every message is charged to the caller's rate."""
    if not hasattr(request, "__aiter__"):
        return request

    async def messages() -> AsyncIterator[Any]:
        async for message in request:
            authorizer.charge(caller, 1.0)
            yield message

    return messages()
