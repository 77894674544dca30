"""The authorization table, identities and rate limits, decided without a network."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from nodes.authz import Authorizer
from nodes.identity import PermissionDenied, Role, Unauthenticated, parse_identity
from nodes.ratelimit import Limit, RateLimiter
from trust import pki
from trust.errors import ResourceExhausted


@pytest.fixture(scope="module")
def pems():
    root = pki.create_root_ca()
    zj = pki.create_provincial_ca(root, province="330000", name="浙江省")
    sc = pki.create_provincial_ca(root, province="510000", name="四川省")

    def leaf(ca, province, kind, name):
        key = pki.generate_private_key()
        cert = pki.sign_leaf(
            ca, pki.make_csr(key, common_name=name), province=province, kind=kind, name=name
        )
        return cert.public_bytes(Encoding.PEM)

    def national(kind, name):
        key = pki.generate_private_key()
        cert = pki.sign_national_leaf(
            root, pki.make_csr(key, common_name=name), kind=kind, name=name
        )
        return cert.public_bytes(Encoding.PEM)

    return {
        "zj-node": leaf(zj, "330000", "node", "hz-1"),
        "zj-operator": leaf(zj, "330000", "operator", "ops"),
        "sc-checkpoint": leaf(sc, "510000", "checkpoint", "cd-east"),
        "sc-operator": leaf(sc, "510000", "operator", "ops"),
        "coordinator": national("coordinator", "alice"),
        "gateway": national("gateway", "gw-1"),
        "dsc": leaf(zj, "330000", "dsc", "dsc-1"),
    }


class FakeContext:
    def __init__(self, pem: bytes | None) -> None:
        self._auth = {"x509_pem_cert": [pem]} if pem else {}

    def auth_context(self):
        return self._auth


@pytest.mark.parametrize(
    ("name", "caller", "method", "province", "allowed"),
    [
        ("checkpoint verifies", "sc-checkpoint", "/healthcode.v1.Gateway/Verify", None, True),
        (
            "checkpoint calls the Registry",
            "sc-checkpoint",
            "/healthcode.v1.Registry/Submit",
            None,
            False,
        ),
        (
            "checkpoint reads the trust list",
            "sc-checkpoint",
            "/healthcode.v1.Gateway/GetTrustList",
            None,
            True,
        ),
        (
            "checkpoint registers a node",
            "sc-checkpoint",
            "/healthcode.v1.Gateway/RegisterNode",
            None,
            False,
        ),
        ("node registers", "zj-node", "/healthcode.v1.Gateway/RegisterNode", None, True),
        ("node submits a statement", "zj-node", "/healthcode.v1.Registry/Submit", None, False),
        ("coordinator submits", "coordinator", "/healthcode.v1.Registry/Submit", None, True),
        ("operator submits", "zj-operator", "/healthcode.v1.Registry/Submit", None, True),
        ("gateway submits", "gateway", "/healthcode.v1.Registry/Submit", None, False),
        (
            "operator lists proposals",
            "zj-operator",
            "/healthcode.v1.Registry/ListProposals",
            None,
            False,
        ),
        ("checkpoint reads the log", "sc-checkpoint", "/healthcode.v1.Registry/GetLog", None, True),
        (
            "coordinator reads the audit log",
            "coordinator",
            "/healthcode.v1.Registry/AuditLog",
            None,
            True,
        ),
        (
            "gateway reads status batch at a node",
            "gateway",
            "/healthcode.v1.ProvincialNode/GetStatusBatch",
            "330000",
            True,
        ),
        (
            "checkpoint reads status batch",
            "sc-checkpoint",
            "/healthcode.v1.ProvincialNode/GetStatusBatch",
            "330000",
            False,
        ),
        (
            "own operator reads status batch",
            "zj-operator",
            "/healthcode.v1.ProvincialNode/GetStatusBatch",
            "330000",
            True,
        ),
        (
            "foreign operator reads status batch",
            "sc-operator",
            "/healthcode.v1.ProvincialNode/GetStatusBatch",
            "330000",
            False,
        ),
        (
            "own operator issues",
            "zj-operator",
            "/healthcode.v1.ProvincialNode/IssueCode",
            "330000",
            True,
        ),
        (
            "foreign operator issues",
            "sc-operator",
            "/healthcode.v1.ProvincialNode/IssueCode",
            "330000",
            False,
        ),
        (
            "foreign checkpoint at a node's Verify",
            "sc-checkpoint",
            "/healthcode.v1.ProvincialNode/Verify",
            "330000",
            False,
        ),
        ("unknown method", "coordinator", "/healthcode.v1.Gateway/Shutdown", None, False),
        (
            "health for anyone authenticated",
            "sc-checkpoint",
            "/grpc.health.v1.Health/Check",
            None,
            True,
        ),
    ],
)
def test_authorization_table(pems, name, caller, method, province, allowed):
    authorizer = Authorizer(local_province=province)
    if allowed:
        assert authorizer.check(method, FakeContext(pems[caller])).spiffe_id.startswith("spiffe")
    else:
        with pytest.raises(PermissionDenied):
            authorizer.check(method, FakeContext(pems[caller]))


def test_no_client_certificate_is_unauthenticated():
    with pytest.raises(Unauthenticated):
        Authorizer().check("/healthcode.v1.Gateway/Verify", FakeContext(None))


def test_a_dsc_is_not_a_caller_identity(pems):
    with pytest.raises(Unauthenticated):
        Authorizer().check("/healthcode.v1.Gateway/Verify", FakeContext(pems["dsc"]))


def test_revoked_caller_is_refused(pems):
    authorizer = Authorizer(is_revoked=lambda identity: identity.name == "hz-1")
    with pytest.raises(Unauthenticated, match="revoked"):
        authorizer.check("/healthcode.v1.Gateway/RegisterNode", FakeContext(pems["zj-node"]))


@pytest.mark.parametrize(
    ("spiffe_id", "role", "province"),
    [
        ("spiffe://hcx/national/coordinator/alice", Role.COORDINATOR, None),
        ("spiffe://hcx/province/330000/node/hz-1", Role.NODE, "330000"),
        ("spiffe://hcx/province/510000/checkpoint/cd-east", Role.CHECKPOINT, "510000"),
    ],
)
def test_identities(spiffe_id, role, province):
    identity = parse_identity(spiffe_id)
    assert (identity.role, identity.province) == (role, province)


@pytest.mark.parametrize(
    "spiffe_id",
    [
        "spiffe://hcx/province/330000/dsc/dsc-1",
        "spiffe://hcx/province/330001/node/x",
        "spiffe://evil/province/330000/node/x",
        "spiffe://hcx/national/coordinator/alice/extra",
        "spiffe://hcx/province/330000/node/x\n",
    ],
)
def test_non_identities_are_refused(spiffe_id):
    with pytest.raises(Unauthenticated):
        parse_identity(spiffe_id)


def test_one_noisy_caller_does_not_drain_another():
    now = [0.0]
    limiter = RateLimiter({Role.CHECKPOINT: Limit(rate=10, burst=5)}, clock=lambda: now[0])
    noisy = parse_identity("spiffe://hcx/province/510000/checkpoint/noisy")
    quiet = parse_identity("spiffe://hcx/province/510000/checkpoint/quiet")
    for _ in range(5):
        limiter.take(noisy)
    with pytest.raises(ResourceExhausted) as refused:
        limiter.take(noisy)
    assert refused.value.retry_after == pytest.approx(0.1)
    limiter.take(quiet)  # its own bucket is full
    now[0] += 0.1
    limiter.take(noisy)  # refilled at 10/s


def test_every_rpc_of_the_contract_has_exactly_one_rule():
    """A new RPC cannot slip through: unknown methods are denied, and the table lists them all."""
    from healthcode.v1 import gateway_pb2, node_pb2, registry_pb2
    from nodes.authz import RULES

    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (gateway_pb2, node_pb2, registry_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert set(RULES) == methods
