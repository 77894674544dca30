"""The registration state machine against a scripted gateway (no network).

SERVING exactly while a lease is held: lost on NOT_FOUND or when no keep-alive got through for
a whole TTL; registering again as soon as the gateway answers; deregistering on stop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import grpc
import pytest

from healthcode.v1 import gateway_pb2
from nodes.provincial.main import store_answers
from nodes.provincial.registration import NodeRegistration


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), code.name)


class ScriptedGateway:
    """Answers like the gateway; ``down`` makes every call UNAVAILABLE, ``forget`` drops leases."""

    def __init__(self) -> None:
        self.down = False
        self.leases: set[bytes] = set()
        self.next_lease = 100
        self.deregistered: list[bytes] = []

    def _check(self) -> None:
        if self.down:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE)

    async def RegisterNode(self, request: Any, timeout: float) -> Any:
        self._check()
        self.next_lease += 1
        handle = self.next_lease.to_bytes(16, "big")
        self.leases.add(handle)
        return gateway_pb2.RegisterNodeResponse(handle=handle, ttl_seconds=1)

    async def KeepAliveNode(self, request: Any, timeout: float) -> Any:
        self._check()
        if request.handle not in self.leases:
            raise rpc_error(grpc.StatusCode.NOT_FOUND)
        return gateway_pb2.KeepAliveNodeResponse(ttl_seconds=1)

    async def DeregisterNode(self, request: Any, timeout: float) -> Any:
        self._check()
        self.leases.discard(request.handle)
        self.deregistered.append(request.handle)
        return gateway_pb2.DeregisterNodeResponse()


async def until(predicate: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.fixture
async def registered() -> Any:
    gateway = ScriptedGateway()
    states: list[bool] = []

    async def record(serving: bool) -> None:
        states.append(serving)

    registration = NodeRegistration(
        gateways=[gateway],
        province="330000",
        node_id="hz-1",
        endpoint="127.0.0.1:1",
        ttl_seconds=1,
        on_change=record,
    )
    await registration.start(wait=2)
    yield gateway, registration, states
    await registration.stop()


async def test_a_forgotten_lease_is_replaced(registered: Any) -> None:
    gateway, registration, states = registered
    first = registration.lease
    gateway.leases.clear()
    await until(lambda: registration.registrations == 2)
    assert states == [True, False, True] and registration.lease != first


async def test_an_unreachable_gateway_ends_serving_after_one_ttl_then_recovers(
    registered: Any,
) -> None:
    gateway, registration, states = registered
    gateway.down = True
    await until(lambda: not registration.registered, timeout=4)
    assert states == [True, False]
    gateway.down = False
    await until(lambda: registration.registered, timeout=4)
    assert states == [True, False, True]


async def test_stop_deregisters(registered: Any) -> None:
    gateway, registration, states = registered
    lease = registration.lease
    await registration.stop()
    assert gateway.deregistered == [lease] and states[-1] is False


async def test_a_failing_gateway_is_left_for_the_next_which_renews_the_same_lease() -> None:
    """Gateway A answers until it cannot (cut from its registry's quorum, say) while B still
    can: the lease lives in the shared registry, so B renews it and the node stays SERVING
    with the same lease; none of A's failures costs the registration."""
    shared: set[bytes] = set()
    first, second = ScriptedGateway(), ScriptedGateway()
    first.leases = second.leases = shared  # one registry behind both gateways
    states: list[bool] = []

    async def record(serving: bool) -> None:
        states.append(serving)

    registration = NodeRegistration(
        gateways=[first, second], province="330000", node_id="hz-1", endpoint="127.0.0.1:1",
        ttl_seconds=1, on_change=record,
    )  # fmt: skip
    await registration.start(wait=2)
    lease = registration.lease
    first.down = True
    await until(lambda: registration.failovers >= 1)
    renewed = len(second.leases)
    await asyncio.sleep(1.5)  # longer than the TTL: renewals went through B
    assert registration.lease == lease and states == [True] and renewed == len(second.leases)
    second.down, first.down = True, False  # and back to A when B fails in turn
    await until(lambda: registration.failovers >= 2)
    await asyncio.sleep(1.5)
    assert registration.lease == lease and states == [True]
    await registration.stop()


async def test_with_every_gateway_failing_the_lease_ends_after_one_ttl() -> None:
    gateways = [ScriptedGateway(), ScriptedGateway()]
    registration = NodeRegistration(
        gateways=gateways, province="330000", node_id="hz-1", endpoint="127.0.0.1:1",
        ttl_seconds=1,
    )  # fmt: skip
    await registration.start(wait=2)
    for gateway in gateways:
        gateway.down = True
    await until(lambda: not registration.registered, timeout=4)
    assert registration.failovers >= 2
    await registration.stop()


def test_a_target_naming_several_gateways_is_split_in_its_order() -> None:
    from nodes.tls import split_target

    assert split_target("ipv4:10.0.0.2:5,10.0.0.1:6") == ["ipv4:10.0.0.2:5", "ipv4:10.0.0.1:6"]
    assert split_target("ipv4:10.0.0.2:5") == ["ipv4:10.0.0.2:5"]
    assert split_target("127.0.0.1:50051") == ["127.0.0.1:50051"]
    assert split_target("dns:///gw.example:443") == ["dns:///gw.example:443"]


class _PingDone:
    """A status store whose ping has returned in its thread by the time the test goes on."""

    def __init__(self) -> None:
        self.pinged = threading.Event()

    def ping(self) -> None:
        self.pinged.set()


async def test_a_cancel_that_meets_a_finished_store_ping_is_not_swallowed() -> None:
    """Python 3.11's ``asyncio.wait_for`` returns the inner result when a cancellation arrives
    just as the inner call finished, losing the cancellation: the registration loop then never
    stopped and a node's shutdown hung (seen in CI, 120 s). The store check must let the
    cancellation through whatever the timing."""
    store = _PingDone()
    check = asyncio.create_task(store_answers(store, timeout=5))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the ping starts in its thread
    assert store.pinged.wait(5)
    time.sleep(0.2)  # the thread has handed its result to the loop: it is queued, not yet seen
    check.cancel()
    with pytest.raises(asyncio.CancelledError):
        await check


async def test_stop_ends_a_loop_whose_check_swallows_a_cancellation() -> None:
    """However a cancellation gets lost below it, stopping the registration ends its loop."""
    gateway = ScriptedGateway()
    checking = asyncio.Event()

    async def stubborn() -> bool:
        if gateway.leases:  # registered: from now on every check is slow and stubborn
            checking.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                return True  # what the old wait_for did when the ping had just finished
        return True

    registration = NodeRegistration(
        gateways=[gateway], province="330000", node_id="hz-1", endpoint="127.0.0.1:1",
        ttl_seconds=1, ready=stubborn,
    )  # fmt: skip
    await registration.start(wait=2)
    assert registration.registered
    await asyncio.wait_for(checking.wait(), 5)  # the loop is inside the check
    async with asyncio.timeout(10):
        await registration.stop()
    assert not registration.registered
    assert gateway.deregistered
