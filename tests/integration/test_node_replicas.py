"""Several replicas of one province behind one gateway, in this process (real gRPC, real stores).

Replicas share the province's status store (one SQLite file, or one PostgreSQL database), so a
colour set through one replica is the colour every replica, and so the gateway, answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, node_pb2, node_pb2_grpc
from nodes.provincial.main import NodeConfig, shutdown, start_node
from nodes.provincial.registration import NodeRegistration
from nodes.provincial.stores import StatusStore
from nodes.server import RunningServer
from nodes.tls import Transport
from simulations.inprocess import Federation
from tests import support
from tests.integration.postgres import postgres_dsn, postgres_server  # noqa: F401

pytestmark = pytest.mark.integration

PROVINCE = "330000"
DRAIN_S = 3.0  # a replica's drain; generous: leaving the routing table needs no timer


class Replica:
    """One node replica started in this process, with a client channel to it."""

    def __init__(
        self,
        parts: tuple[RunningServer, NodeRegistration, StatusStore],
        config: NodeConfig,
        client: Transport,
    ) -> None:
        self.running, self.registration, self.store = parts
        self.config = config
        self.channel = client.aio_channel(f"127.0.0.1:{self.running.port}")
        self.stub = node_pb2_grpc.ProvincialNodeStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.stopped = False

    async def serving(self) -> bool:
        reply = await self.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, *, drain: float = 0.0) -> None:
        if not self.stopped:
            self.stopped = True
            await shutdown(self.running, self.registration, self.store, drain_seconds=drain)
            await self.channel.close()


def node_config(federation: Federation, node_id: str, store: str | None) -> NodeConfig:
    return NodeConfig(
        province=PROVINCE,
        directory=federation.workdir / PROVINCE,
        gateway=f"127.0.0.1:{federation.gateway.port}",
        transport=federation.identity("node", PROVINCE, node_id),
        node_id=node_id,
        lease_ttl=3,
        store=store,
        drain_seconds=0.2,
    )


async def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Until ``predicate()`` holds (tests.support.wait_for, named by the predicate's source)."""
    await support.wait_for(predicate, timeout=timeout, interval=0.05, what=describe(predicate))


def describe(predicate: Callable[[], object]) -> str:
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)


@pytest.fixture(params=["sqlite", "postgresql"])
async def replicas(
    request: pytest.FixtureRequest, empty_federation: Federation
) -> AsyncIterator[tuple[Federation, list[Replica]]]:
    """Two replicas of 330000 on one shared store, both registered with the gateway."""
    store = None if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    await empty_federation.onboard(PROVINCE)
    started = []
    for node_id in ("hz-1", "hz-2"):
        config = node_config(empty_federation, node_id, store)
        started.append(
            Replica(await start_node(config), config, empty_federation.operator(PROVINCE))
        )
    view = empty_federation.gateway.view
    await wait_for(lambda: len(view.nodes(PROVINCE)) == 2 and bool(view.signers()))
    yield empty_federation, started
    for replica in started:
        await replica.stop()


async def issue(replica: Replica, n: int) -> node_pb2.IssueCodeResponse:
    from nodes.provincial.issuance import with_check_character

    return await replica.stub.IssueCode(
        node_pb2.IssueCodeRequest(
            id_number=with_check_character(f"33010219900101{n:03d}"), full_name="王小明"
        ),
        timeout=5,
    )


async def verify(federation: Federation, token: str) -> gateway_pb2.VerifyResponse:
    gateway = federation.checkpoint_stub(PROVINCE)
    return await gateway.Verify(gateway_pb2.VerifyRequest(token=token), timeout=5)


async def test_a_colour_set_through_one_replica_is_what_every_replica_answers(
    replicas: tuple[Federation, list[Replica]],
) -> None:
    federation, (one, two) = replicas
    code = await issue(one, 1)
    await two.stub.SetStatus(
        node_pb2.SetStatusRequest(
            code_id=code.code_id, colour=common_pb2.RED, reason="close contact", request_id="r1"
        ),
        timeout=5,
    )
    for replica in (one, two):
        status = await replica.stub.GetStatus(
            node_pb2.GetStatusRequest(code_id=code.code_id), timeout=5
        )
        assert (status.colour, status.status_version) == (common_pb2.RED, 2)
    # The gateway round-robins over both replicas: every answer must be the new colour.
    verdicts = [await verify(federation, code.token) for _ in range(6)]
    assert {(v.verdict, v.colour, v.status_version) for v in verdicts} == {
        (common_pb2.VALID, common_pb2.RED, 2)
    }


async def test_refresh_gives_a_new_token_for_the_same_code(
    replicas: tuple[Federation, list[Replica]],
) -> None:
    federation, (one, two) = replicas
    code = await issue(one, 2)
    fresh = await two.stub.RefreshCode(node_pb2.RefreshCodeRequest(code_id=code.code_id), timeout=5)
    assert fresh.code_id == code.code_id and fresh.token != code.token
    assert fresh.expires_at >= code.expires_at
    reply = await verify(federation, fresh.token)
    assert reply.verdict == common_pb2.VALID
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await one.stub.RefreshCode(node_pb2.RefreshCodeRequest(code_id=b"\x00" * 16), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_graceful_shutdown_leaves_the_routing_table_at_once_and_says_not_serving(
    replicas: tuple[Federation, list[Replica]],
) -> None:
    """A replica that stops deregisters, then drains: gateways stop sending it work while it
    still answers. Its lease is kept alive from outside meanwhile, so only the deregistration,
    not the lease running out, can take it out of the routing table."""
    federation, (one, two) = replicas
    view = federation.gateway.view
    assert await one.serving()
    lease = one.registration.lease
    assert lease is not None
    as_node = gateway_pb2_grpc.GatewayStub(federation.channel(one.config.transport))

    async def keep_lease_alive() -> grpc.StatusCode:
        while True:
            try:
                await as_node.KeepAliveNode(
                    gateway_pb2.KeepAliveNodeRequest(handle=lease), timeout=5
                )
            except grpc.aio.AioRpcError as e:
                return e.code()
            await asyncio.sleep(0.2)  # pacing, well inside the 3 s TTL

    keeper = asyncio.create_task(keep_lease_alive())
    stopping = asyncio.create_task(one.stop(drain=DRAIN_S))
    try:
        await wait_for(lambda: [n.node_id for n in view.nodes(PROVINCE)] == ["hz-2"])
        assert not stopping.done(), "the replica left the routing table only after its drain"
        assert not await one.serving()  # draining: NOT_SERVING, still answering
        assert await asyncio.wait_for(keeper, timeout=30) == grpc.StatusCode.NOT_FOUND
    finally:
        keeper.cancel()
        await stopping
    code = await issue(two, 3)
    assert (await verify(federation, code.token)).verdict == common_pb2.VALID


async def test_lost_lease_means_not_serving_then_registering_again(
    replicas: tuple[Federation, list[Replica]],
) -> None:
    federation, (one, _two) = replicas
    seen: list[bool] = []
    original = one.registration._on_change

    async def record(serving: bool) -> None:
        seen.append(serving)
        assert original is not None
        await original(serving)

    one.registration._on_change = record
    # The gateway forgets the lease (as after a gateway-side expiry).
    as_node = gateway_pb2_grpc.GatewayStub(federation.channel(one.config.transport))
    await as_node.DeregisterNode(
        gateway_pb2.DeregisterNodeRequest(handle=one.registration.lease or b""), timeout=5
    )
    await wait_for(lambda: one.registration.registrations == 2)
    assert seen[:2] == [False, True]
    assert await one.serving()
    view = federation.gateway.view
    await wait_for(lambda: len(view.nodes(PROVINCE)) == 2)


async def test_not_serving_until_registered(empty_federation: Federation) -> None:
    """A node whose gateway is unreachable says NOT_SERVING and keeps trying."""
    await empty_federation.onboard(PROVINCE)
    config = replace(
        node_config(empty_federation, "lonely", None),
        gateway="127.0.0.1:9",
        lease_ttl=2,
        register_wait=0.2,
    )
    parts = await asyncio.wait_for(start_node(config), timeout=5)
    replica = Replica(parts, config, empty_federation.operator(PROVINCE))
    try:
        assert not await replica.serving()
        assert not replica.registration.registered
    finally:
        with contextlib.suppress(Exception):
            await replica.stop()


async def test_set_status_through_two_replicas_is_idempotent(
    replicas: tuple[Federation, list[Replica]],
) -> None:
    _federation, (one, two) = replicas
    code = await issue(one, 4)
    request_id = str(uuid.uuid4())
    request = node_pb2.SetStatusRequest(
        code_id=code.code_id, colour=common_pb2.YELLOW, reason="test", request_id=request_id
    )
    first = await one.stub.SetStatus(request, timeout=5)
    again = await two.stub.SetStatus(request, timeout=5)
    assert first.status.status_version == again.status.status_version == 2
