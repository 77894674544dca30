"""Faults with real processes: the issuer's node killed or frozen under load (DESIGN §7).

The gateway and the node run as subprocesses (simulations.processes.Supervisor). A load of
concurrent Verify calls runs while the node is killed (SIGKILL) or frozen (SIGSTOP); every call
must be answered within its deadline, VALID_OFFLINE while the issuer is away, VALID once it is
back, and the province's circuit breaker must open and close again.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from gateway.breaker import BreakerState
from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from simulations.gateway_federation import GatewayFederation, wait_until
from simulations.processes import Supervisor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PROVINCE = "330000"
RELAY_TIMEOUT = 0.3
CALL_DEADLINE = 1.0
GATEWAY_ARGS = [
    f"--relay-timeout={RELAY_TIMEOUT}",
    "--breaker-failures=3",
    "--breaker-open=0.5",
    "--hedge-after=0.1",
]


# Children get SIGTERM when the thread that started them exits (PR_SET_PDEATHSIG), so nodes
# restarted during a test are started from this long-lived thread, not asyncio's default pool.
LAUNCHER = ThreadPoolExecutor(1, thread_name_prefix="launcher")


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFederation]:
    workdir: Path = tmp_path_factory.mktemp("faults")
    with Supervisor(workdir) as supervisor:
        federation = GatewayFederation(workdir, [PROVINCE], supervisor, gateway_args=GATEWAY_ARGS)
        federation.start()
        yield federation


async def restart_node(federation: GatewayFederation) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(LAUNCHER, federation.start_node, PROVINCE)


@dataclass
class Load:
    """Concurrent Verify calls until stopped; remembers every verdict, error and latency."""

    stub: gateway_pb2_grpc.GatewayStub
    tokens: list[str]
    verdicts: list[tuple[float, int]] = field(default_factory=list)  # (finished at, verdict)
    errors: list[str] = field(default_factory=list)
    slowest: float = 0.0
    running: bool = True

    async def worker(self, offset: int) -> None:
        i = offset
        while self.running:
            began = time.monotonic()
            try:
                reply = await self.stub.Verify(
                    gateway_pb2.VerifyRequest(token=self.tokens[i % len(self.tokens)]),
                    timeout=CALL_DEADLINE,
                )
                self.verdicts.append((time.monotonic(), reply.verdict))
            except grpc.aio.AioRpcError as e:
                self.errors.append(e.code().name)
            self.slowest = max(self.slowest, time.monotonic() - began)
            i += 7

    def since(self, moment: float) -> Counter[int]:
        return Counter(v for t, v in self.verdicts if t >= moment)

    async def wait_for(self, verdict: int, *, after: float, timeout: float) -> float:
        """Seconds from ``after`` until ``verdict`` was the answer 5 times in a row."""
        loop_deadline = time.monotonic() + timeout
        while time.monotonic() < loop_deadline:
            recent = [v for t, v in self.verdicts if t >= after][-5:]
            if len(recent) == 5 and all(v == verdict for v in recent):
                return time.monotonic() - after
            await asyncio.sleep(0.02)
        raise AssertionError(f"no run of {verdict} within {timeout} s: {self.since(after)}")


async def with_load(federation: GatewayFederation, tokens: list[str]) -> tuple[Load, list]:
    assert federation.gateway is not None
    channel = federation.pki.checkpoint(PROVINCE).aio_channel(federation.gateway.address)
    load = Load(gateway_pb2_grpc.GatewayStub(channel), tokens)
    tasks = [asyncio.create_task(load.worker(i)) for i in range(8)]
    return load, [channel, tasks]


async def stop_load(load: Load, parts: list) -> None:
    load.running = False
    channel, tasks = parts
    await asyncio.gather(*tasks)
    await channel.close()


def breaker(federation: GatewayFederation) -> float | None:
    return federation.metric("hcx_gateway_breaker_state", province=PROVINCE)


async def test_killed_issuer_gives_valid_offline_then_valid_when_back(
    processes: GatewayFederation,
) -> None:
    tokens = processes.issue(PROVINCE, 20)
    load, parts = await with_load(processes, tokens)
    try:
        await load.wait_for(common_pb2.VALID, after=time.monotonic(), timeout=10)
        killed_at = time.monotonic()
        processes.supervisor.stop(processes.nodes[PROVINCE], sig=signal.SIGKILL)
        took = await load.wait_for(common_pb2.VALID_OFFLINE, after=killed_at, timeout=5)
        assert took < 2.0
        await asyncio.sleep(0.5)
        restarted_at = time.monotonic()
        await restart_node(processes)
        await load.wait_for(common_pb2.VALID, after=restarted_at, timeout=10)
    finally:
        await stop_load(load, parts)
    assert load.errors == []
    assert load.slowest < CALL_DEADLINE
    assert set(load.since(killed_at)) <= {common_pb2.VALID, common_pb2.VALID_OFFLINE}


async def test_frozen_issuer_honours_deadline_opens_breaker_and_recovers(
    processes: GatewayFederation,
) -> None:
    tokens = processes.issue(PROVINCE, 20)
    node = processes.nodes[PROVINCE]
    load, parts = await with_load(processes, tokens)
    try:
        await load.wait_for(common_pb2.VALID, after=time.monotonic(), timeout=10)
        frozen_at = time.monotonic()
        node.process.send_signal(signal.SIGSTOP)
        try:
            await load.wait_for(common_pb2.VALID_OFFLINE, after=frozen_at, timeout=5)
            opened = await asyncio.to_thread(
                wait_until, lambda: breaker(processes) == BreakerState.OPEN, timeout=3
            )
            assert opened, f"breaker state {breaker(processes)}"
        finally:
            node.process.send_signal(signal.SIGCONT)
        thawed_at = time.monotonic()
        await load.wait_for(common_pb2.VALID, after=thawed_at, timeout=10)
        closed = await asyncio.to_thread(
            wait_until, lambda: breaker(processes) == BreakerState.CLOSED, timeout=3
        )
        assert closed, f"breaker state {breaker(processes)}"
    finally:
        await stop_load(load, parts)
    assert load.errors == []
    # A frozen issuer costs at most the relay timeout, inside the checkpoint's deadline.
    assert load.slowest < CALL_DEADLINE
    assert set(load.since(frozen_at)) <= {common_pb2.VALID, common_pb2.VALID_OFFLINE}
