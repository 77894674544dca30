"""Node routes: where a province's node replicas listen (routing, not trust).

A route is written by the gateway that received the node's RegisterNode, under a store lease,
and names the verified mTLS identity that made it. Routes are not signed: the gateway that
relays to a route checks, in the TLS handshake, that the server there holds a certificate of
that node of that province (gateway.relay), so a route edited in the store leads nowhere.

Store layout: ``nodes/<province>/<node id>`` → route; ``handles/<sha-256(handle) hex>`` → the
route key it belongs to. Both live under the registration's lease, so they vanish together.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from trust import cbor
from trust.errors import DecodeError
from trust.log import HANDLES_PREFIX, NODES_PREFIX
from trust.model import Reason, is_province_code

HANDLE_BYTES = 16  # 128 random bits: a handle is a capability (only its owner may use it)
_NODE_ID_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MAX_ENDPOINT_CHARS = 255


@dataclass(frozen=True)
class NodeRoute:
    province: str
    node_id: str
    endpoint: str
    owner: str  # SPIFFE id of the node that registered (its verified mTLS identity)
    lease: int  # the store's lease (never shown to nodes)

    @property
    def key(self) -> str:
        return route_key(self.province, self.node_id)


def route_key(province: str, node_id: str) -> str:
    return f"{NODES_PREFIX}{province}/{node_id}"


def handle_key(handle: bytes) -> str:
    return f"{HANDLES_PREFIX}{hashlib.sha256(handle).hexdigest()}"


def is_node_id(value: str) -> bool:
    return bool(_NODE_ID_RE.fullmatch(value))


def encode_route(route: NodeRoute) -> bytes:
    return cbor.encode(
        {"province": route.province, "node_id": route.node_id, "endpoint": route.endpoint,
         "owner": route.owner, "lease": route.lease}
    )  # fmt: skip


def decode_route(key: str, value: bytes) -> NodeRoute:
    """A route as stored under ``key`` (DecodeError if it is not one, or not for that key)."""
    doc = cbor.expect_map(cbor.decode_canonical(value, what="route"), what="route")
    cbor.exact_keys(doc, ("province", "node_id", "endpoint", "owner", "lease"), what="route")
    route = NodeRoute(
        province=cbor.field(doc, "province", str, what="route"),
        node_id=cbor.field(doc, "node_id", str, what="route"),
        endpoint=cbor.field(doc, "endpoint", str, what="route"),
        owner=cbor.field(doc, "owner", str, what="route"),
        lease=cbor.field(doc, "lease", int, what="route"),
    )
    expected_owner = f"spiffe://hcx/province/{route.province}/node/{route.node_id}"
    if (
        not is_province_code(route.province)
        or not is_node_id(route.node_id)
        or not 0 < len(route.endpoint) <= MAX_ENDPOINT_CHARS
        or route.owner != expected_owner
        or key != route.key
    ):
        raise DecodeError(f"{key} is not a route of its own node", reason=Reason.MALFORMED)
    return route


def encode_handle(route_key_: str, lease: int) -> bytes:
    """What a handle refers to: a route, and the lease that registration holds."""
    return cbor.encode({"route": route_key_, "lease": lease})


def decode_handle(value: bytes) -> tuple[str, int]:
    doc = cbor.expect_map(cbor.decode_canonical(value, what="handle"), what="handle")
    cbor.exact_keys(doc, ("route", "lease"), what="handle")
    return (
        str(cbor.field(doc, "route", str, what="handle")),
        int(cbor.field(doc, "lease", int, what="handle")),
    )
