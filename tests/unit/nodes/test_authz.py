"""nodes/authz.py decision by decision: who is refused, why, how it is counted, what a call costs.

Callers present real certificates of the test PKI (a root, two provincial CAs) through a fake
call context, as a gRPC server hands them to the Authorizer. One named row per refusal: its
error, reason and message (a refusal names what was wrong), and the ``hcx_authz_denials``
series it counts in. Rate limits run on a RateLimiter with a frozen clock, so a bucket refills
only when a test says so. The table itself (RULES against the contract's methods) is pinned
in tests/unit/security/test_authz.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import REGISTRY

from healthcode.v1 import gateway_pb2
from nodes.authz import Authorizer, Rule, charged, opening_cost, rule
from nodes.identity import Identity, PermissionDenied, Role, Unauthenticated, identity_from_pem
from nodes.ratelimit import Limit, RateLimiter
from trust import pki
from trust.errors import HcxError, ResourceExhausted
from trust.model import Reason

ZJ, SC = "330000", "510000"
VERIFY = "/healthcode.v1.Gateway/Verify"
REGISTER = "/healthcode.v1.Gateway/RegisterNode"
SUBMIT = "/healthcode.v1.Registry/Submit"
ISSUE = "/healthcode.v1.ProvincialNode/IssueCode"
STATUS_BATCH = "/healthcode.v1.ProvincialNode/GetStatusBatch"
HEALTH = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
NODE_ID = "spiffe://hcx/province/330000/node/hz-1"
CHECKPOINT_ID = "spiffe://hcx/province/510000/checkpoint/cd-east"
SC_OPERATOR_ID = "spiffe://hcx/province/510000/operator/ops"


@pytest.fixture(scope="module")
def pems() -> dict[str, bytes]:
    """Client certificates (PEM) by caller, issued as the federation issues them."""
    root = pki.create_root_ca()
    cas = {
        ZJ: pki.create_provincial_ca(root, province=ZJ, name="浙江省"),
        SC: pki.create_provincial_ca(root, province=SC, name="四川省"),
    }

    def provincial(province: str, kind: str, name: str) -> bytes:
        key = pki.generate_private_key()
        csr = pki.make_csr(key, common_name=name)
        cert = pki.sign_leaf(cas[province], csr, province=province, kind=kind, name=name)
        return cert.public_bytes(Encoding.PEM)

    def national(kind: str, name: str) -> bytes:
        key = pki.generate_private_key()
        csr = pki.make_csr(key, common_name=name)
        return pki.sign_national_leaf(root, csr, kind=kind, name=name).public_bytes(Encoding.PEM)

    return {
        "zj-node": provincial(ZJ, "node", "hz-1"),
        "zj-operator": provincial(ZJ, "operator", "ops"),
        "sc-operator": provincial(SC, "operator", "ops"),
        "sc-checkpoint": provincial(SC, "checkpoint", "cd-east"),
        "coordinator": national("coordinator", "alice"),
        "gateway": national("gateway", "gw-1"),
    }


class Call:
    """The auth context of a call, as grpc gives it to a servicer."""

    def __init__(self, pem: bytes | None) -> None:
        self._auth = {"x509_pem_cert": [pem]} if pem else {}

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth


def denials(method: str, why: str) -> float:
    return REGISTRY.get_sample_value("hcx_authz_denials_total", {"method": method, "why": why}) or 0


WHYS = ("unauthenticated", "revoked", "role", "province")


def counted(method: str) -> dict[str, float]:
    return {why: denials(method, why) for why in WHYS}


def frozen_limiter(burst: float) -> RateLimiter:
    """Every role gets ``burst`` tokens that never refill (the clock does not move)."""
    return RateLimiter({role: Limit(rate=1.0, burst=burst) for role in Role}, clock=lambda: 0.0)


# --- refusals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    caller: str | None  # a key of ``pems``; None: no client certificate
    method: str
    error: type[HcxError]
    reason: Reason
    message: str  # the whole message
    why: str  # the denial counter's label
    province: str | None = None  # the serving node's province
    revoked: bool = False


REFUSALS = [
    pytest.param(Refusal(None, VERIFY, Unauthenticated, Reason.UNAUTHENTICATED,
                         "a client certificate is required", "unauthenticated"),
                 id="no client certificate: unauthenticated"),
    pytest.param(Refusal(None, HEALTH, Unauthenticated, Reason.UNAUTHENTICATED,
                         "a client certificate is required", "unauthenticated"),
                 id="health without a certificate: unauthenticated"),
    pytest.param(Refusal("zj-node", REGISTER, Unauthenticated, Reason.CALLER_REVOKED,
                         f"certificate of {NODE_ID} is revoked (or its province is not onboarded)",
                         "revoked", revoked=True),
                 id="a revoked node registering: revoked"),
    pytest.param(Refusal("zj-node", HEALTH, Unauthenticated, Reason.CALLER_REVOKED,
                         f"certificate of {NODE_ID} is revoked (or its province is not onboarded)",
                         "revoked", revoked=True),
                 id="a revoked caller is refused even the health check"),
    pytest.param(Refusal("sc-checkpoint", SUBMIT, PermissionDenied, Reason.WRONG_ROLE,
                         f"checkpoint {CHECKPOINT_ID} may not call {SUBMIT}", "role"),
                 id="a checkpoint submitting a statement: wrong role"),
    pytest.param(Refusal("gateway", ISSUE, PermissionDenied, Reason.WRONG_ROLE,
                         f"gateway spiffe://hcx/national/gateway/gw-1 may not call {ISSUE}",
                         "role", province=ZJ),
                 id="a gateway issuing a code at a node: wrong role"),
    pytest.param(Refusal("coordinator", "/healthcode.v1.Gateway/Shutdown", PermissionDenied,
                         Reason.WRONG_ROLE, "coordinator spiffe://hcx/national/coordinator/alice "
                         "may not call /healthcode.v1.Gateway/Shutdown", "role"),
                 id="a method not in the table: denied to anyone"),
    pytest.param(Refusal("sc-operator", ISSUE, PermissionDenied, Reason.WRONG_PROVINCE,
                         f"{SC_OPERATOR_ID} is not of province 330000", "province", province=ZJ),
                 id="another province's operator issuing: wrong province"),
    pytest.param(Refusal("sc-operator", STATUS_BATCH, PermissionDenied, Reason.WRONG_PROVINCE,
                         f"{SC_OPERATOR_ID} is not of province 330000", "province", province=ZJ),
                 id="another province's operator reading statuses: wrong province"),
]  # fmt: skip


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refusal_names_what_was_wrong_and_is_counted_by_cause(
    pems: dict[str, bytes], case: Refusal
) -> None:
    authorizer = Authorizer(
        local_province=case.province,
        is_revoked=lambda identity: case.revoked,
        limiter=frozen_limiter(burst=100),
    )
    before = counted(case.method)
    with pytest.raises(case.error, match=rf"^{re.escape(case.message)}$") as refused:
        authorizer.check(case.method, Call(pems[case.caller] if case.caller else None))
    assert refused.value.reason is case.reason
    after = counted(case.method)
    assert {why: after[why] - before[why] for why in WHYS} == {
        why: float(why == case.why) for why in WHYS
    }


@pytest.mark.parametrize(
    ("caller", "method", "province"),
    [
        pytest.param("gateway", STATUS_BATCH, ZJ, id="a national gateway reads a node's statuses"),
        pytest.param("zj-operator", ISSUE, ZJ, id="the province's own operator issues"),
        pytest.param("sc-checkpoint", HEALTH, None, id="health: anyone authenticated"),
        pytest.param("sc-checkpoint", REFLECTION, None, id="reflection: anyone authenticated"),
    ],
)
def test_an_allowed_call_gives_the_callers_identity_and_counts_no_denial(
    pems: dict[str, bytes], caller: str, method: str, province: str | None
) -> None:
    authorizer = Authorizer(local_province=province, limiter=frozen_limiter(burst=100))
    before = counted(method)
    identity = authorizer.check(method, Call(pems[caller]))
    assert identity == identity_from_pem(pems[caller])
    assert counted(method) == before


def test_the_revocation_check_is_asked_about_the_caller(pems: dict[str, bytes]) -> None:
    asked: list[Identity] = []

    def is_revoked(identity: Identity) -> bool:
        asked.append(identity)
        return False

    Authorizer(is_revoked=is_revoked).check(REGISTER, Call(pems["zj-node"]))
    assert [i.spiffe_id for i in asked] == [NODE_ID]


# --- a table of one's own: rule() -----------------------------------------------------------


def test_rule_gives_the_roles_and_whether_the_callers_province_must_be_the_nodes() -> None:
    assert rule(Role.GATEWAY, Role.OPERATOR) == Rule(frozenset({Role.GATEWAY, Role.OPERATOR}))
    assert rule(Role.OPERATOR).own_province is False
    assert rule(Role.OPERATOR, own_province=True).own_province is True


@pytest.mark.parametrize(
    ("caller", "method", "refusal"),
    [
        pytest.param("sc-operator", "/t.S/Anyone", None, id="any province's operator"),
        pytest.param(
            "sc-operator",
            "/t.S/Own",
            f"{SC_OPERATOR_ID} is not of province 330000",
            id="own province only: another's refused",
        ),
        pytest.param("zj-operator", "/t.S/Own", None, id="own province only: its own allowed"),
        pytest.param(
            "zj-node", "/t.S/Own", f"node {NODE_ID} may not call /t.S/Own", id="a role not in it"
        ),
    ],
)
def test_a_table_built_with_rule_is_enforced(
    pems: dict[str, bytes], caller: str, method: str, refusal: str | None
) -> None:
    rules = {
        "/t.S/Anyone": rule(Role.OPERATOR),
        "/t.S/Own": rule(Role.OPERATOR, Role.GATEWAY, own_province=True),
    }
    authorizer = Authorizer(rules=rules, local_province=ZJ)
    if refusal is None:
        assert authorizer.check(method, Call(pems[caller])) == identity_from_pem(pems[caller])
    else:
        with pytest.raises(PermissionDenied, match=rf"^{re.escape(refusal)}$"):
            authorizer.check(method, Call(pems[caller]))


# --- what a call costs ----------------------------------------------------------------------

RATE_LIMITED = f"rate limit of {CHECKPOINT_ID} exceeded"


@dataclass(frozen=True)
class Spending:
    spend: Callable[[Authorizer, Identity, Call], object]  # what the caller does first
    refused_next: bool  # whether a following call of cost 1 is refused


SPENDINGS = [
    pytest.param(Spending(lambda a, i, c: [a.check(VERIFY, c) for _ in range(9)], False),
                 id="9 calls at the default cost of one: a 10th fits"),
    pytest.param(Spending(lambda a, i, c: [a.check(VERIFY, c) for _ in range(10)], True),
                 id="10 calls at the default cost of one: the bucket is empty"),
    pytest.param(Spending(lambda a, i, c: a.check(VERIFY, c, cost=9.0), False),
                 id="a call costing 9: one more fits"),
    pytest.param(Spending(lambda a, i, c: a.check(VERIFY, c, cost=10.0), True),
                 id="a call costing 10: the bucket is empty"),
    pytest.param(Spending(lambda a, i, c: a.charge(i, 10.0), True),
                 id="10 charged to the caller: the bucket is empty"),
    pytest.param(Spending(lambda a, i, c: a.charge(i, 9.0), False),
                 id="9 charged to the caller: one more fits"),
    pytest.param(Spending(lambda a, i, c: _refused_calls(a, c, 20), False),
                 id="refused calls spend nothing"),
]  # fmt: skip


def _refused_calls(authorizer: Authorizer, call: Call, count: int) -> None:
    for _ in range(count):
        with pytest.raises(PermissionDenied):
            authorizer.check(SUBMIT, call)


@pytest.mark.parametrize("case", SPENDINGS)
def test_calls_and_charges_spend_the_callers_rate(pems: dict[str, bytes], case: Spending) -> None:
    authorizer = Authorizer(limiter=frozen_limiter(burst=10))
    call = Call(pems["sc-checkpoint"])
    caller = identity_from_pem(pems["sc-checkpoint"])
    case.spend(authorizer, caller, call)
    if case.refused_next:
        before = denials(VERIFY, "rate")
        with pytest.raises(ResourceExhausted, match=RATE_LIMITED) as refused:
            authorizer.check(VERIFY, call)
        assert refused.value.reason is Reason.RATE_LIMITED
        assert refused.value.retry_after is not None and refused.value.retry_after > 0
        assert denials(VERIFY, "rate") == before + 1
    else:
        assert authorizer.check(VERIFY, call) == caller


def test_one_callers_spending_leaves_anothers_rate_alone(pems: dict[str, bytes]) -> None:
    authorizer = Authorizer(limiter=frozen_limiter(burst=10))
    authorizer.check(VERIFY, Call(pems["sc-checkpoint"]), cost=10.0)
    assert authorizer.check(VERIFY, Call(pems["zj-node"])).spiffe_id == NODE_ID


@pytest.mark.parametrize(
    ("request_", "cost"),
    [
        pytest.param(gateway_pb2.VerifyRequest(token="HCX1:x"), 1.0, id="one code: 1"),
        pytest.param(gateway_pb2.VerifyBatchRequest(tokens=["HCX1:x"] * 3), 3.0, id="3 codes: 3"),
        pytest.param(gateway_pb2.VerifyBatchRequest(tokens=["a"]), 1.0, id="a batch of 1: 1"),
        pytest.param(gateway_pb2.VerifyBatchRequest(), 1.0, id="an empty batch still costs 1"),
        pytest.param(
            gateway_pb2.VerifyBatchRequest(tokens=["HCX1:x"] * 1000), 1000.0, id="1000 codes"
        ),
        pytest.param(object(), 1.0, id="a request stream: 1 to open"),
    ],
)
def test_opening_a_call_costs_one_per_code(request_: Any, cost: float) -> None:
    assert opening_cost(request_) == cost


def test_a_single_request_is_handed_on_as_it_is(pems: dict[str, bytes]) -> None:
    authorizer = Authorizer(limiter=frozen_limiter(burst=1))
    caller = identity_from_pem(pems["sc-checkpoint"])
    request = gateway_pb2.VerifyRequest(token="HCX1:x")
    assert charged(request, authorizer, caller) is request
    assert authorizer.check(VERIFY, Call(pems["sc-checkpoint"])) == caller  # nothing was spent


async def _stream(messages: list[Any]) -> AsyncIterator[Any]:
    for message in messages:
        yield message


@pytest.mark.parametrize(
    ("burst", "sent", "through"),
    [
        pytest.param(5, 3, 3, id="3 messages within a rate of 5: all through"),
        pytest.param(3, 3, 3, id="3 messages, a rate of 3: all through"),
        pytest.param(3, 5, 3, id="5 messages, a rate of 3: the 4th refused"),
    ],
)
async def test_every_message_of_a_stream_is_charged_one(
    pems: dict[str, bytes], burst: int, sent: int, through: int
) -> None:
    authorizer = Authorizer(limiter=frozen_limiter(burst=burst))
    caller = identity_from_pem(pems["sc-checkpoint"])
    messages = [gateway_pb2.VerifyRequest(token=f"HCX1:{i}") for i in range(sent)]
    received: list[Any] = []
    stream = charged(_stream(messages), authorizer, caller)
    if through == sent:
        received = [m async for m in stream]
    else:
        with pytest.raises(ResourceExhausted, match=RATE_LIMITED):
            async for message in stream:
                received.append(message)
    assert received == messages[:through]
    assert all(a is b for a, b in zip(received, messages, strict=False))
