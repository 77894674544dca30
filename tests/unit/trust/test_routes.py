"""Node routes as the store holds them: the keys they live under, the node ids a route may
name, and what a reader refuses when a value under ``nodes/`` or ``handles/`` was edited (a
route of another node, a foreign owner, a handle that names something else). One named row per
edit; every refusal is MALFORMED and names the key, so the view reports it and routes nowhere.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from trust import cbor
from trust.errors import DecodeError
from trust.model import Reason
from trust.routes import (
    HANDLE_BYTES,
    MAX_ENDPOINT_CHARS,
    NodeRoute,
    decode_handle,
    decode_route,
    encode_handle,
    encode_route,
    handle_key,
    is_node_id,
    route_key,
)

ZJ = "330000"
OWNER = f"spiffe://hcx/province/{ZJ}/node/n1"
ROUTE = NodeRoute(ZJ, "n1", "127.0.0.1:7001", OWNER, 42)


def _route_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "province": ZJ, "node_id": "n1", "endpoint": "127.0.0.1:7001", "owner": OWNER, "lease": 42
    }  # fmt: skip
    doc.update(changes)
    return doc


def test_route_key_and_handle_key_are_the_documented_layout() -> None:
    """``nodes/<province>/<node id>`` and ``handles/<sha-256 of the handle, hex>``."""
    handle = bytes(range(HANDLE_BYTES))
    assert route_key(ZJ, "n1") == "nodes/330000/n1"
    assert ROUTE.key == "nodes/330000/n1"
    assert handle_key(handle) == "handles/" + hashlib.sha256(handle).hexdigest()
    assert HANDLE_BYTES == 16  # 128 random bits: a capability


@pytest.mark.parametrize(
    ("node_id", "valid"),
    [
        pytest.param("n1", True, id="letters and digits"),
        pytest.param("a", True, id="one character"),
        pytest.param("node-1", True, id="inner hyphen"),
        pytest.param("A" * 63, True, id="63 characters (a DNS label)"),
        pytest.param("A" * 64, False, id="64 characters"),
        pytest.param("", False, id="empty"),
        pytest.param("-n1", False, id="leading hyphen"),
        pytest.param("n1-", False, id="trailing hyphen"),
        pytest.param("n_1", False, id="underscore"),
        pytest.param("n1/evil", False, id="a slash (another key)"),
        pytest.param("n1\n", False, id="trailing newline"),
    ],
)
def test_node_ids_are_dns_labels(node_id: str, valid: bool) -> None:
    assert is_node_id(node_id) is valid


def test_a_route_survives_the_store() -> None:
    assert decode_route(ROUTE.key, encode_route(ROUTE)) == ROUTE


def test_a_route_is_stored_under_its_documented_field_names() -> None:
    """Another implementation (or an operator's tool) reads the same map."""
    assert cbor.decode_canonical(encode_route(ROUTE), what="route") == _route_doc()


@pytest.mark.parametrize(
    ("key", "doc"),
    [
        pytest.param(ROUTE.key, _route_doc(owner="spiffe://hcx/province/330000/node/n2"),
                     id="owner is another node"),
        pytest.param(ROUTE.key, _route_doc(owner="spiffe://hcx/province/510000/node/n1"),
                     id="owner is the same node id of another province"),
        pytest.param("nodes/330000/n2", _route_doc(), id="stored under another node's key"),
        pytest.param("nodes/510000/n1", _route_doc(), id="stored under another province's key"),
        pytest.param("nodes/330001/n1",
                     _route_doc(province="330001",
                                owner="spiffe://hcx/province/330001/node/n1"),
                     id="not a province code"),
        pytest.param("nodes/330000/-n1", _route_doc(node_id="-n1",
                                                    owner="spiffe://hcx/province/330000/node/-n1"),
                     id="not a node id"),
        pytest.param(ROUTE.key, _route_doc(endpoint=""), id="empty endpoint"),
        pytest.param(ROUTE.key, _route_doc(endpoint="h" * (MAX_ENDPOINT_CHARS + 1)),
                     id="endpoint too long"),
    ],
)  # fmt: skip
def test_a_route_of_another_node_is_refused(key: str, doc: dict[str, Any]) -> None:
    with pytest.raises(DecodeError, match=f"^{key} is not a route of its own node$") as caught:
        decode_route(key, cbor.encode(doc))
    assert caught.value.reason is Reason.MALFORMED


def test_the_longest_endpoint_is_a_route() -> None:
    endpoint = "h" * MAX_ENDPOINT_CHARS
    route = decode_route(ROUTE.key, cbor.encode(_route_doc(endpoint=endpoint)))
    assert route.endpoint == endpoint


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(cbor.encode([1, 2]), "^route must be a map$", id="not a map"),
        pytest.param(cbor.encode({**_route_doc(), "extra": 1}),
                     r"^route must have exactly the keys \['endpoint', 'lease', 'node_id', "
                     r"'owner', 'province'\]$", id="an unknown field"),
        pytest.param(cbor.encode(_route_doc(lease="42")), "^route: 'lease' must be int$",
                     id="lease is text"),
        pytest.param(cbor.encode(_route_doc(province=330000)),
                     "^route: 'province' must be str$", id="province is a number"),
        pytest.param(cbor.encode(_route_doc(node_id=b"n1")), "^route: 'node_id' must be str$",
                     id="node id is bytes"),
        pytest.param(cbor.encode(_route_doc(endpoint=7001)), "^route: 'endpoint' must be str$",
                     id="endpoint is a number"),
        pytest.param(cbor.encode(_route_doc(owner=None)), "^route: 'owner' must be str$",
                     id="owner is null"),
        pytest.param(b"\xb9\x00\x01\x61a\x01", "^route is not in deterministic CBOR form$",
                     id="non-canonical CBOR"),
    ],
)  # fmt: skip
def test_a_value_that_is_not_a_route_is_refused(value: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_route(ROUTE.key, value)


def test_a_handle_names_its_route_and_lease() -> None:
    value = encode_handle(ROUTE.key, 42)
    assert decode_handle(value) == (ROUTE.key, 42)
    assert cbor.decode_canonical(value, what="handle") == {"route": ROUTE.key, "lease": 42}


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(cbor.encode("nodes/330000/n1"), "^handle must be a map$", id="not a map"),
        pytest.param(cbor.encode({"route": ROUTE.key}),
                     r"^handle must have exactly the keys \['lease', 'route'\]$",
                     id="lease missing"),
        pytest.param(cbor.encode({"route": ROUTE.key, "lease": 1, "owner": OWNER}),
                     r"^handle must have exactly the keys \['lease', 'route'\]$",
                     id="an unknown field"),
        pytest.param(cbor.encode({"route": b"nodes/330000/n1", "lease": 1}),
                     "^handle: 'route' must be str$", id="route is bytes"),
        pytest.param(cbor.encode({"route": ROUTE.key, "lease": True}),
                     "^handle: 'lease' must be int$", id="lease is a boolean"),
        pytest.param(b"\xa2\x65route\x60\x65lease\x18\x01", "^handle is not in deterministic",
                     id="non-canonical CBOR"),
    ],
)  # fmt: skip
def test_a_value_that_is_not_a_handle_is_refused(value: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_handle(value)
