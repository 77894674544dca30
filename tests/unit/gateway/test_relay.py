"""gateway/relay.py without a network: a real TrustView, scripted replicas behind fake channels.

The relay's Transport is a fake whose ``node_channel`` opens a channel to a scripted replica
(``Replica``). The generated ProvincialNodeStub runs over it unchanged: the request is
serialised and the answer parsed as on a real channel. The fake channel plays the TLS handshake
the relay relies on: it opens only when its anchor is the replica's provincial CA and its name
is the replica's identity name (trust.pki.node_dns_name); otherwise the call fails UNAVAILABLE
with a handshake error, as grpc reports one.

A replica answers from its table, fails with a gRPC status, hangs until it is cancelled, stays
silent until its call's timeout (then DEADLINE_EXCEEDED, as gRPC ends a call), or answers once
the test releases it. Every call is recorded: the ids asked, the timeout given, how it ended.
The view is built by simulations/registry_builder.py with 330000 and 510000 onboarded; routes
are put in it as a gateway's watch puts them. Deadlines are real monotonic times, either
generous (an answer is expected long before) or short where running into them is the point; no test
asserts how long anything took, and waiting for an event uses tests/support.wait_for.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import REGISTRY

from gateway.relay import (
    MAX_STATUS_BATCH,
    IssuerUnavailable,
    LiveStatus,
    RelayError,
    RelayPolicy,
    StatusRelay,
)
from healthcode.v1 import node_pb2
from simulations.registry_builder import RegistryBuilder
from tests.support import wait_for
from trust import pki, statements
from trust.model import Colour, Reason
from trust.reader import LogReader
from trust.routes import NodeRoute, encode_route, route_key
from trust.view import TrustView

ZJ, SC, GD = "330000", "510000", "440000"  # GD is never onboarded
GET_STATUS_BATCH = "/healthcode.v1.ProvincialNode/GetStatusBatch"
FAR = 120.0  # a deadline that is never reached: the answer is expected long before
BOUND = 30.0  # the outer bound that turns a hang into a failure (shorter than FAR on purpose)
SHORT = 0.5  # a deadline the test runs into on purpose
QUICK_HEDGE = RelayPolicy(hedge_after=0.01)
NO_HEDGE = RelayPolicy(hedge_after=3600.0)  # only a failure makes the relay ask another replica
HANDSHAKE_FAILED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.0.9:7443: "
    "Ssl handshake failed: SSL_ERROR_SSL: error:1000007d:SSL routines:"
    "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED"
)


def ids(n: int) -> list[bytes]:
    return [i.to_bytes(16, "big") for i in range(n)]


# --- scripted replicas ---------------------------------------------------------------------

ANSWER = "answers from its table"
HANG = "hangs until cancelled"  # ignores its timeout: the relay must stop waiting by itself
SILENT = "silent until its timeout"  # then DEADLINE_EXCEEDED, as gRPC ends a call
HELD = "answers once released"


@dataclass(frozen=True)
class Fail:
    code: grpc.StatusCode
    details: str | None = "boom"


Behaviour = str | Fail


def rpc_error(code: grpc.StatusCode, details: str | None) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@dataclass
class Call:
    """One GetStatusBatch call a replica received."""

    ids: list[bytes]
    timeout: float | None
    ended: str = "running"  # answered, failed, cancelled, timed out


@dataclass
class Replica:
    """A node replica: its identity, where it listens, and what it does on each call (one
    behaviour per call, the last one repeating)."""

    province: str
    node_id: str
    ca_pem: bytes
    script: list[Behaviour] = field(default_factory=lambda: [ANSWER])
    endpoint: str = ""
    table: dict[bytes, tuple[Colour, int, int]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    journal: list[str] = field(default_factory=list)  # node ids in the order asked (shared)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.endpoint = self.endpoint or f"{self.node_id}.{self.province}.example:7443"

    @property
    def identity_name(self) -> str:
        return pki.node_dns_name(self.province, self.node_id)

    def ended(self) -> list[str]:
        return [c.ended for c in self.calls]

    async def serve(self, raw: bytes, timeout: float | None) -> bytes:
        request = node_pb2.GetStatusBatchRequest.FromString(raw)
        call = Call(list(request.code_ids), timeout)
        self.calls.append(call)
        self.journal.append(self.node_id)
        behaviour = self.script[min(len(self.calls), len(self.script)) - 1]
        try:
            if isinstance(behaviour, Fail):
                call.ended = "failed"
                raise rpc_error(behaviour.code, behaviour.details)
            if behaviour == HANG:
                await asyncio.Event().wait()
            elif behaviour == SILENT:
                await asyncio.sleep(timeout or 0)
                call.ended = "timed out"
                raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
            elif behaviour == HELD:
                await self.released.wait()
        except asyncio.CancelledError:
            call.ended = "cancelled"
            raise
        call.ended = "answered"
        return self.answer(request.code_ids).SerializeToString()

    def answer(self, code_ids: Sequence[bytes]) -> node_pb2.GetStatusBatchResponse:
        response = node_pb2.GetStatusBatchResponse()
        for code_id in code_ids:
            status = response.statuses.add(code_id=code_id)
            if code_id in self.table:
                colour, version, updated_at = self.table[code_id]
                status.found = True
                status.colour = int(colour)
                status.status_version = version
                status.updated_at = updated_at
        return response


@dataclass(frozen=True)
class Opened:
    """A channel the relay asked its transport for."""

    target: str
    anchor: bytes
    name: str


class FakeChannel:
    """A channel to the replica at an address; it opens only to the identity it was given."""

    def __init__(self, replica: Replica | None, anchor: bytes, name: str) -> None:
        self._replica = replica
        self._anchor = anchor
        self._name = name
        self.closed = False

    def _opens(self) -> bool:
        r = self._replica
        return r is not None and self._anchor == r.ca_pem and self._name == r.identity_name

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        **kwargs: Any,
    ) -> Callable[..., Any]:
        async def call(request: Any, *, timeout: float | None = None, **kw: Any) -> Any:
            assert method == GET_STATUS_BATCH, f"the relay called {method}"
            assert request_serializer is not None and response_deserializer is not None
            if not self._opens():
                raise rpc_error(grpc.StatusCode.UNAVAILABLE, HANDSHAKE_FAILED)
            assert self._replica is not None
            raw = await self._replica.serve(request_serializer(request), timeout)
            return response_deserializer(raw)

        return call

    async def close(self) -> None:
        self.closed = True


class FakeTransport:
    """Replicas by address; several at one address are told apart by the name asked for (as a
    TLS front end routes by server name). Remembers every channel it opened."""

    def __init__(self, replicas: Sequence[Replica]) -> None:
        self._at: dict[str, list[Replica]] = {}
        for r in replicas:
            self.listen(r)
        self.opened: list[Opened] = []
        self.channels: list[FakeChannel] = []

    def listen(self, replica: Replica) -> None:
        """``replica`` now listens at its endpoint (a moved node, a new certificate)."""
        for here in self._at.values():
            if replica in here:
                here.remove(replica)
        self._at.setdefault(replica.endpoint, []).append(replica)

    def node_channel(self, target: str, *, anchor: bytes, name: str) -> FakeChannel:
        self.opened.append(Opened(target, anchor, name))
        here = self._at.get(target, [])
        named = [r for r in here if r.identity_name == name]
        found = (named or here)[0] if here else None
        channel = FakeChannel(found, anchor, name)
        self.channels.append(channel)
        return channel


# --- the federation: a real view, routes as a gateway's watch puts them --------------------


@pytest.fixture(scope="module")
def world() -> RegistryBuilder:
    builder = RegistryBuilder()
    builder.onboard(ZJ, "浙江省")
    builder.onboard(SC, "四川省")
    return builder


def ca_pem(world: RegistryBuilder, province: str) -> bytes:
    return world.provinces[province].ca.certificate.public_bytes(Encoding.PEM)


def replica(world: RegistryBuilder, node_id: str, *script: Behaviour, **kw: Any) -> Replica:
    province = kw.pop("province", ZJ)
    pem = ca_pem(world, province) if province in world.provinces else b""
    return Replica(province, node_id, pem, list(script) or [ANSWER], **kw)


def put_route(view: TrustView, province: str, node_id: str, endpoint: str) -> None:
    owner = f"spiffe://hcx/province/{province}/node/{node_id}"
    route = NodeRoute(province, node_id, endpoint, owner, lease=1)
    view.put_route(route_key(province, node_id), encode_route(route))


@dataclass
class Setup:
    relay: StatusRelay
    transport: FakeTransport
    view: TrustView
    journal: list[str]  # every replica's node id, in the order they were asked


def relay_to(
    world: RegistryBuilder, replicas: Sequence[Replica], policy: RelayPolicy | None = None
) -> Setup:
    """A relay over a fresh view in which every replica is routed at its own address."""
    view = world.view()
    journal: list[str] = []
    for r in replicas:
        put_route(view, r.province, r.node_id, r.endpoint)
        r.journal = journal
    transport = FakeTransport(replicas)
    relay = StatusRelay(view, policy, transport=transport)  # type: ignore[arg-type]
    return Setup(relay, transport, view, journal)


async def ask(
    relay: StatusRelay, code_ids: Sequence[bytes], *, province: str = ZJ, deadline: float = FAR
) -> dict[bytes, LiveStatus]:
    """``statuses`` by a deadline ``deadline`` seconds from now, bounded from outside."""
    when = time.monotonic() + deadline
    return await asyncio.wait_for(relay.statuses(province, code_ids, deadline=when), BOUND)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass(frozen=True)
class Counters:
    """The relay's metrics for one province, read before and after a call."""

    refused: float
    errors: float
    hedges: float
    ok: float
    failed: float
    batches: float
    batched_ids: float

    @classmethod
    def of(cls, province: str) -> Counters:
        return cls(
            sample("hcx_gateway_relay_refused_peers_total", province=province),
            sample("hcx_gateway_relay_errors_total", province=province),
            sample("hcx_gateway_relay_hedges_total", province=province),
            sample("hcx_gateway_relay_seconds_count", province=province, outcome="ok"),
            sample("hcx_gateway_relay_seconds_count", province=province, outcome="error"),
            sample("hcx_gateway_relay_batch_size_count", province=province),
            sample("hcx_gateway_relay_batch_size_sum", province=province),
        )

    def since(self, before: Counters) -> dict[str, float]:
        """What changed, by counter name (unchanged counters left out)."""
        return {
            name: getattr(self, name) - getattr(before, name)
            for name in self.__dataclass_fields__
            if getattr(self, name) != getattr(before, name)
        }


# --- one batch: its size, the province, the answer -----------------------------------------


@pytest.mark.parametrize(
    ("count", "refused"),
    [
        pytest.param(0, True, id="no id: refused"),
        pytest.param(1, False, id="one id: asked"),
        pytest.param(MAX_STATUS_BATCH, False, id="1000 ids: asked in one call"),
        pytest.param(MAX_STATUS_BATCH + 1, True, id="1001 ids: refused"),
    ],
)
async def test_a_batch_holds_1_to_1000_ids(world: RegistryBuilder, count: int, refused: bool):
    node = replica(world, "hz-1")
    setup = relay_to(world, [node])
    before = Counters.of(ZJ)
    if refused:
        with pytest.raises(ValueError, match="a status batch holds 1 to 1000 ids"):
            await ask(setup.relay, ids(count))
        assert node.calls == []
        assert Counters.of(ZJ).since(before) == {}
        return
    answered = await ask(setup.relay, ids(count))
    assert [c.ids for c in node.calls] == [ids(count)]
    assert sorted(answered) == ids(count)
    assert Counters.of(ZJ).since(before) == {"ok": 1, "batches": 1, "batched_ids": count}


@pytest.mark.parametrize(
    ("province", "routed", "message"),
    [
        pytest.param(
            ZJ, [], "no live node registered for province 330000", id="no replica registered"
        ),
        pytest.param(
            SC, ["hz-1"], "no live node registered for province 510000", id="only others routed"
        ),
        pytest.param(GD, ["gz-1"], "province 440000 is not onboarded", id="not onboarded"),
    ],
)
async def test_a_province_nobody_can_answer_for_is_unavailable(
    world: RegistryBuilder, province: str, routed: list[str], message: str
):
    replicas = [replica(world, n, province=GD if province == GD else ZJ) for n in routed]
    setup = relay_to(world, replicas)
    with pytest.raises(IssuerUnavailable, match=message) as caught:
        await ask(setup.relay, ids(1), province=province)
    assert caught.value.reason is Reason.ISSUER_UNAVAILABLE
    assert setup.transport.opened == []


async def test_live_statuses_are_the_nodes_answer_code_by_code(world: RegistryBuilder):
    red, green, unknown = ids(3)
    node = replica(world, "hz-1")
    node.table = {red: (Colour.RED, 7, 1_700_000_001), green: (Colour.GREEN, 2, 1_700_000_002)}
    setup = relay_to(world, [node])
    answered = await ask(setup.relay, [red, green, unknown])
    assert answered == {
        red: LiveStatus(found=True, colour=Colour.RED, status_version=7, updated_at=1_700_000_001),
        green: LiveStatus(True, Colour.GREEN, 2, 1_700_000_002),
        unknown: LiveStatus(found=False, colour=None, status_version=0, updated_at=0),
    }
    one = await asyncio.wait_for(
        setup.relay.status(ZJ, red, deadline=time.monotonic() + FAR), BOUND
    )
    assert one == answered[red]
    assert [c.ids for c in node.calls] == [[red, green, unknown], [red]]


# --- deadlines ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "replicas", [pytest.param(1, id="one replica"), pytest.param(2, id="two replicas")]
)
async def test_a_deadline_already_passed_asks_nobody(world: RegistryBuilder, replicas: int):
    nodes = [replica(world, f"hz-{i}") for i in range(1, replicas + 1)]
    setup = relay_to(world, nodes)
    with pytest.raises(IssuerUnavailable, match="province 330000 did not answer in time"):
        await setup.relay.statuses(ZJ, ids(1), deadline=time.monotonic() - 1)
    assert [n.calls for n in nodes] == [[]] * replicas


@pytest.mark.parametrize(
    "replicas", [pytest.param(1, id="one replica"), pytest.param(2, id="two replicas")]
)
async def test_every_call_carries_the_time_left_as_its_timeout(
    world: RegistryBuilder, replicas: int
):
    nodes = [replica(world, f"hz-{i}") for i in range(1, replicas + 1)]
    setup = relay_to(world, nodes, NO_HEDGE)
    before = time.monotonic()
    deadline = before + SHORT
    await asyncio.wait_for(setup.relay.statuses(ZJ, ids(1), deadline=deadline), BOUND)
    after = time.monotonic()
    [call] = [c for n in nodes for c in n.calls]
    assert call.timeout is not None
    assert deadline - after <= call.timeout <= deadline - before


async def test_the_only_replica_silent_ends_when_grpc_ends_the_call(world: RegistryBuilder):
    """One replica: nothing to hedge to, the call's own timeout is the deadline."""
    node = replica(world, "hz-1", SILENT)
    setup = relay_to(world, [node])
    with pytest.raises(IssuerUnavailable, match=r"province 330000 did not answer \(DEADLINE_"):
        await ask(setup.relay, ids(1), deadline=SHORT)
    assert node.ended() == ["timed out"]


async def test_a_slow_replica_within_the_hedge_delay_runs_into_the_deadline(
    world: RegistryBuilder,
):
    """Before ``hedge_after`` nobody else is asked; at the deadline the relay gives up by
    itself (the call is cancelled) even if the channel never would."""
    slow, spare = replica(world, "hz-1", HANG), replica(world, "hz-2")
    setup = relay_to(world, [slow, spare], NO_HEDGE)
    before = Counters.of(ZJ)
    with pytest.raises(IssuerUnavailable, match="province 330000 did not answer in time"):
        await ask(setup.relay, ids(1), deadline=SHORT)
    assert (slow.ended(), spare.ended()) == (["cancelled"], [])
    assert "hedges" not in Counters.of(ZJ).since(before)


# --- failures: which mean "issuer unavailable", which are errors ---------------------------


@dataclass(frozen=True)
class Failure:
    code: grpc.StatusCode
    details: str | None
    error: type[Exception]
    message: str
    refused_peer: bool = False
    log: tuple[int, str] = (logging.WARNING, "status look-up failed")


UNAVAILABLE = "province 330000 did not answer"
REFUSED_LOOKUP = "province 330000 refused the status look-up"
NOT_THAT_NODE = (logging.WARNING, "relay refused the server at a route (not that node)")
NODE_REFUSED = (logging.ERROR, "status look-up refused by the node: boom")

FAILURES = [
    pytest.param(Failure(grpc.StatusCode.UNAVAILABLE, "connection refused", IssuerUnavailable,
                         f"{UNAVAILABLE} (UNAVAILABLE)"), id="UNAVAILABLE: issuer unavailable"),
    pytest.param(Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded",
                         IssuerUnavailable, f"{UNAVAILABLE} (DEADLINE_EXCEEDED)"),
                 id="DEADLINE_EXCEEDED: issuer unavailable"),
    pytest.param(Failure(grpc.StatusCode.CANCELLED, "Cancelled", IssuerUnavailable,
                         f"{UNAVAILABLE} (CANCELLED)"), id="CANCELLED: issuer unavailable"),
    pytest.param(Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "node overloaded",
                         IssuerUnavailable, f"{UNAVAILABLE} (RESOURCE_EXHAUSTED)"),
                 id="RESOURCE_EXHAUSTED (its overload): issuer unavailable"),
    pytest.param(Failure(grpc.StatusCode.UNAVAILABLE, None, IssuerUnavailable,
                         f"{UNAVAILABLE} (UNAVAILABLE)"), id="UNAVAILABLE without details"),
    pytest.param(Failure(grpc.StatusCode.PERMISSION_DENIED, "boom", RelayError,
                         f"{REFUSED_LOOKUP} (PERMISSION_DENIED)", log=NODE_REFUSED),
                 id="PERMISSION_DENIED: a relay error"),
    pytest.param(Failure(grpc.StatusCode.INVALID_ARGUMENT, "boom", RelayError,
                         f"{REFUSED_LOOKUP} (INVALID_ARGUMENT)", log=NODE_REFUSED),
                 id="INVALID_ARGUMENT: a relay error"),
    pytest.param(Failure(grpc.StatusCode.INTERNAL, "boom", RelayError,
                         f"{REFUSED_LOOKUP} (INTERNAL)", log=NODE_REFUSED),
                 id="INTERNAL: a relay error"),
    pytest.param(Failure(grpc.StatusCode.INTERNAL, None, RelayError,
                         f"{REFUSED_LOOKUP} (INTERNAL)",
                         log=(logging.ERROR, "status look-up refused by the node: ")),
                 id="INTERNAL without details: a relay error, logged without details"),
    pytest.param(Failure(grpc.StatusCode.UNAUTHENTICATED, "boom", RelayError,
                         f"{REFUSED_LOOKUP} (UNAUTHENTICATED)", log=NODE_REFUSED),
                 id="UNAUTHENTICATED: a relay error"),
    pytest.param(Failure(grpc.StatusCode.PERMISSION_DENIED, "boom: gateway certificate revoked",
                         RelayError, f"{REFUSED_LOOKUP} (PERMISSION_DENIED)",
                         log=(logging.ERROR, "status look-up refused by the node: boom: gateway "
                              "certificate revoked")),
                 id="a refusal mentioning a certificate is the node's, not a handshake"),
    pytest.param(Failure(grpc.StatusCode.UNAVAILABLE, "Handshake read failed", IssuerUnavailable,
                         f"{UNAVAILABLE} (UNAVAILABLE)", True, NOT_THAT_NODE),
                 id="handshake failed: refused peer"),
    pytest.param(Failure(grpc.StatusCode.UNAVAILABLE, "peer presented no valid Certificate",
                         IssuerUnavailable, f"{UNAVAILABLE} (UNAVAILABLE)", True, NOT_THAT_NODE),
                 id="certificate refused: refused peer"),
    pytest.param(Failure(grpc.StatusCode.UNAVAILABLE, "SSL_ERROR_SSL: error:1000007d",
                         IssuerUnavailable, f"{UNAVAILABLE} (UNAVAILABLE)", True, NOT_THAT_NODE),
                 id="ssl error: refused peer"),
    pytest.param(Failure(grpc.StatusCode.UNAVAILABLE, "TLS alert: bad record mac",
                         IssuerUnavailable, f"{UNAVAILABLE} (UNAVAILABLE)", True, NOT_THAT_NODE),
                 id="tls alert: refused peer"),
    pytest.param(Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "ssl handshake timed out",
                         IssuerUnavailable, f"{UNAVAILABLE} (DEADLINE_EXCEEDED)", True,
                         NOT_THAT_NODE), id="handshake timed out: refused peer"),
]  # fmt: skip


@pytest.mark.parametrize("case", FAILURES)
async def test_a_failed_call_is_unavailable_or_an_error_by_its_code(
    world: RegistryBuilder, case: Failure, caplog: pytest.LogCaptureFixture
):
    node = replica(world, "hz-1", Fail(case.code, case.details))
    setup = relay_to(world, [node])
    before = Counters.of(ZJ)
    exact = rf"^{re.escape(case.message)}$"
    with (
        caplog.at_level(logging.WARNING, logger="gateway.relay"),
        pytest.raises(case.error, match=exact) as caught,
    ):
        await ask(setup.relay, ids(2))
    assert type(caught.value) is case.error
    assert isinstance(caught.value.__cause__, grpc.aio.AioRpcError)
    expected: dict[str, float] = {"failed": 1, "batches": 1, "batched_ids": 2}
    if case.refused_peer:
        expected["refused"] = 1
    if case.error is RelayError:
        expected["errors"] = 1
    assert Counters.of(ZJ).since(before) == expected
    [record] = [r for r in caplog.records if r.name == "gateway.relay"]
    assert (record.levelno, record.getMessage()) == case.log
    fields = (record.province, record.node, record.code)  # type: ignore[attr-defined]
    assert fields == (ZJ, "hz-1", case.code.name)


async def test_a_route_to_another_provinces_node_is_refused_and_the_next_replica_answers(
    world: RegistryBuilder,
):
    """A route in the registry is only an address: 330000's hz-1 is routed to where 510000's
    node listens. The handshake fails (not that node), it is counted, and hz-2 answers."""
    stranger = replica(world, "hz-1", province=SC, endpoint="10.0.0.9:7443")
    honest = replica(world, "hz-2")
    view = world.view()
    put_route(view, ZJ, "hz-1", stranger.endpoint)
    put_route(view, ZJ, "hz-2", honest.endpoint)
    transport = FakeTransport([stranger, honest])
    relay = StatusRelay(view, NO_HEDGE, transport=transport)  # type: ignore[arg-type]
    before = Counters.of(ZJ)
    answered = await ask(relay, ids(1))
    assert list(answered) == ids(1)
    assert (stranger.calls, honest.ended()) == ([], ["answered"])
    changed = Counters.of(ZJ).since(before)
    assert (changed["refused"], changed.get("errors", 0), changed["ok"]) == (1, 0, 1)


async def test_the_channel_trusts_only_the_provinces_ca_and_the_nodes_name(
    world: RegistryBuilder,
):
    node = replica(world, "hz-1")
    setup = relay_to(world, [node])
    await ask(setup.relay, ids(1))
    assert setup.transport.opened == [
        Opened(node.endpoint, ca_pem(world, ZJ), "hz-1.node.330000.hcx.internal")
    ]
    assert setup.transport.opened[0].name == pki.node_dns_name(ZJ, "hz-1")
    assert setup.transport.opened[0].anchor != world.root.certificate.public_bytes(Encoding.PEM)


# --- several replicas: hedging, failing over, turns -----------------------------------------


async def test_a_slow_replica_is_hedged_and_cancelled_when_the_second_answers(
    world: RegistryBuilder,
):
    slow, fast = replica(world, "hz-1", HANG), replica(world, "hz-2")
    setup = relay_to(world, [slow, fast], QUICK_HEDGE)
    before = Counters.of(ZJ)
    answered = await ask(setup.relay, ids(3))
    assert sorted(answered) == ids(3)
    assert (slow.ended(), fast.ended()) == (["cancelled"], ["answered"])
    assert [c.ids for c in slow.calls + fast.calls] == [ids(3), ids(3)]
    assert Counters.of(ZJ).since(before) == {"hedges": 1, "ok": 1, "batches": 1, "batched_ids": 3}


async def test_a_replica_failing_fast_is_replaced_at_once_without_a_hedge(
    world: RegistryBuilder,
):
    """With a hedge delay of an hour, only the failure can make the relay ask hz-2 in time."""
    down = replica(world, "hz-1", Fail(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    up = replica(world, "hz-2")
    setup = relay_to(world, [down, up], NO_HEDGE)
    before = Counters.of(ZJ)
    answered = await ask(setup.relay, ids(1))
    assert list(answered) == ids(1)
    assert (down.ended(), up.ended()) == (["failed"], ["answered"])
    assert Counters.of(ZJ).since(before) == {
        "failed": 1, "ok": 1, "batches": 1, "batched_ids": 1
    }  # fmt: skip


async def test_when_the_hedge_fails_fast_the_first_replicas_late_answer_is_taken(
    world: RegistryBuilder,
):
    late = replica(world, "hz-1", HELD)
    broken = replica(world, "hz-2", Fail(grpc.StatusCode.UNAVAILABLE, "connection reset"))
    setup = relay_to(world, [late, broken], QUICK_HEDGE)
    asking = asyncio.ensure_future(ask(setup.relay, ids(1)))
    await wait_for(lambda: broken.ended() == ["failed"], timeout=BOUND, what="the hedge failing")
    assert not asking.done()
    late.released.set()
    answered = await asking
    assert list(answered) == ids(1)
    assert late.ended() == ["answered"]


async def test_at_most_two_replicas_are_asked_at_once(world: RegistryBuilder):
    """Two slow replicas in flight: the third is not asked, however many hedge delays pass."""
    first, second = replica(world, "hz-1", HANG), replica(world, "hz-2", HANG)
    third = replica(world, "hz-3")
    setup = relay_to(world, [first, second, third], QUICK_HEDGE)
    before = Counters.of(ZJ)
    with pytest.raises(IssuerUnavailable, match="province 330000 did not answer in time"):
        await ask(setup.relay, ids(1), deadline=SHORT)
    assert [first.ended(), second.ended(), third.ended()] == [["cancelled"], ["cancelled"], []]
    assert Counters.of(ZJ).since(before)["hedges"] == 1


async def test_when_every_replica_fails_each_is_asked_once_starting_one_further_each_call(
    world: RegistryBuilder,
):
    down = Fail(grpc.StatusCode.UNAVAILABLE, "connection refused")
    nodes = [replica(world, f"hz-{i}", down) for i in (1, 2, 3)]
    setup = relay_to(world, nodes, NO_HEDGE)
    orders = []
    for _ in range(4):
        setup.journal.clear()
        with pytest.raises(IssuerUnavailable, match="province 330000 did not answer in time"):
            await ask(setup.relay, ids(1))
        orders.append(list(setup.journal))
    assert orders == [
        ["hz-1", "hz-2", "hz-3"],
        ["hz-2", "hz-3", "hz-1"],
        ["hz-3", "hz-1", "hz-2"],
        ["hz-1", "hz-2", "hz-3"],
    ]


async def test_successive_calls_start_at_successive_replicas(world: RegistryBuilder):
    nodes = [replica(world, f"hz-{i}") for i in (1, 2, 3)]
    setup = relay_to(world, nodes, NO_HEDGE)
    for _ in range(4):
        await ask(setup.relay, ids(1))
    assert setup.journal == ["hz-1", "hz-2", "hz-3", "hz-1"]


async def test_a_nodes_refusal_is_an_error_and_no_other_replica_is_asked(world: RegistryBuilder):
    refusing = replica(world, "hz-1", Fail(grpc.StatusCode.PERMISSION_DENIED, "boom"))
    spare = replica(world, "hz-2")
    setup = relay_to(world, [refusing, spare], NO_HEDGE)
    with pytest.raises(RelayError, match=r"refused the status look-up \(PERMISSION_DENIED\)"):
        await ask(setup.relay, ids(1))
    assert (refusing.ended(), spare.ended()) == (["failed"], [])


# --- channels: one per node endpoint and identity, closed with the relay --------------------


def _same_route(world: RegistryBuilder, setup: Setup, nodes: list[Replica]) -> list[Opened]:
    node = nodes[0]
    return [Opened(node.endpoint, node.ca_pem, node.identity_name)]


def _moved(world: RegistryBuilder, setup: Setup, nodes: list[Replica]) -> list[Opened]:
    node = nodes[0]
    old = Opened(node.endpoint, node.ca_pem, node.identity_name)
    node.endpoint = "10.0.0.2:7443"
    setup.transport.listen(node)
    put_route(setup.view, ZJ, node.node_id, node.endpoint)
    return [old, Opened("10.0.0.2:7443", node.ca_pem, node.identity_name)]


def _ca_replaced(world: RegistryBuilder, setup: Setup, nodes: list[Replica]) -> list[Opened]:
    """Coordinators approve a new CA for 330000; the node gets a certificate from it."""
    node = nodes[0]
    old = Opened(node.endpoint, node.ca_pem, node.identity_name)
    new_ca = world.new_ca(ZJ, "浙江省").certificate
    world.propose(statements.Onboard(ZJ, "浙江省", new_ca))
    assert LogReader(setup.view).load(world.snapshot())
    put_route(setup.view, ZJ, node.node_id, node.endpoint)  # the watch puts the route back
    node.ca_pem = new_ca.public_bytes(Encoding.PEM)
    return [old, Opened(node.endpoint, node.ca_pem, node.identity_name)]


def _behind_one_address(world: RegistryBuilder, setup: Setup, nodes: list[Replica]) -> list[Opened]:
    return [Opened(n.endpoint, n.ca_pem, n.identity_name) for n in nodes]


@pytest.mark.parametrize(
    ("between", "replicas"),
    [
        pytest.param(_same_route, 1, id="the same route again: one channel"),
        pytest.param(_moved, 1, id="the node moved: a new channel to its new address"),
        pytest.param(_ca_replaced, 1, id="the province's CA replaced: a channel trusting the new"),
        pytest.param(
            _behind_one_address, 2, id="two nodes behind one address: a channel naming each"
        ),
    ],
)
async def test_a_channel_is_kept_per_address_province_node_and_ca(
    between: Callable[[RegistryBuilder, Setup, list[Replica]], list[Opened]], replicas: int
):
    world = RegistryBuilder()
    world.onboard(ZJ, "浙江省")
    behind = "lb.330000.example:7443"
    nodes = [replica(world, f"hz-{i}", endpoint=behind) for i in range(1, replicas + 1)]
    setup = relay_to(world, nodes, NO_HEDGE)
    await ask(setup.relay, ids(1))
    expected = between(world, setup, nodes)
    await ask(setup.relay, ids(1))
    assert setup.transport.opened == expected
    assert [c.ended for n in nodes for c in n.calls] == ["answered", "answered"]


async def test_close_closes_every_channel(world: RegistryBuilder):
    nodes = [replica(world, f"hz-{i}") for i in (1, 2)]
    setup = relay_to(world, nodes, NO_HEDGE)
    await ask(setup.relay, ids(1))
    await ask(setup.relay, ids(1))
    assert [c.closed for c in setup.transport.channels] == [False, False]
    await setup.relay.close()
    assert [c.closed for c in setup.transport.channels] == [True, True]


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [
        pytest.param(ANSWER, "ok", id="an answer: timed as ok"),
        pytest.param(Fail(grpc.StatusCode.UNAVAILABLE), "error", id="a failure: timed as error"),
    ],
)
async def test_the_time_of_a_look_up_is_observed_under_its_outcome(
    world: RegistryBuilder, behaviour: Behaviour, outcome: str
):
    setup = relay_to(world, [replica(world, "hz-1", behaviour)])
    name = "hcx_gateway_relay_seconds_sum"
    before = sample(name, province=ZJ, outcome=outcome)
    began = time.perf_counter()
    try:
        await ask(setup.relay, ids(1))
    except IssuerUnavailable:
        assert outcome == "error"
    took = time.perf_counter() - began
    observed = sample(name, province=ZJ, outcome=outcome) - before
    assert 0 < observed <= took
