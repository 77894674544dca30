"""Faults with real processes: the issuer's node killed or frozen under load (docs/partitions.md).

The gateway and the node run as subprocesses (simulations.processes.Supervisor). A load of
concurrent Verify calls runs while the node is killed (SIGKILL) or frozen (SIGSTOP); every call
must be answered within its deadline, VALID_OFFLINE while the issuer is away (answered while
it is still dead or frozen, so without waiting for it), VALID once it is back, and the
province's circuit breaker must open and close again. What is asserted is which answers came
and in what order, never how fast: latency belongs to bench/.
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
from simulations.gateway_federation import GatewayFederation
from simulations.processes import Supervisor
from tests.support import wait_for, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PROVINCE = "330000"
RELAY_TIMEOUT = 0.3
# Generous, so a loaded machine does not turn a slow answer into an error; a gateway that
# waited for a frozen issuer would still miss it (the issuer never answers while frozen).
CALL_DEADLINE = 5.0
STAGE_TIMEOUT = 30.0  # how long a stage (a run of one verdict, a breaker state) may take
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
    """Concurrent Verify calls until stopped; remembers every verdict (in the order answered)
    and every error."""

    stub: gateway_pb2_grpc.GatewayStub
    tokens: list[str]
    verdicts: list[tuple[float, int]] = field(default_factory=list)  # (answered at, verdict)
    errors: list[str] = field(default_factory=list)
    running: bool = True

    async def worker(self, offset: int) -> None:
        i = offset
        while self.running:
            try:
                reply = await self.stub.Verify(
                    gateway_pb2.VerifyRequest(token=self.tokens[i % len(self.tokens)]),
                    timeout=CALL_DEADLINE,
                )
                self.verdicts.append((time.monotonic(), reply.verdict))
            except grpc.aio.AioRpcError as e:
                self.errors.append(e.code().name)
            i += 7

    def since(self, moment: float) -> Counter[int]:
        return Counter(v for t, v in self.verdicts if t >= moment)

    def between(self, start: float, end: float) -> Counter[int]:
        return Counter(v for t, v in self.verdicts if start <= t < end)

    async def run_of(self, verdict: int, *, after: float, count: int = 5) -> float:
        """Wait until ``verdict`` was the answer ``count`` times in a row after ``after``;
        the moment that run was seen."""

        def seen() -> bool:
            recent = [v for t, v in self.verdicts if t >= after][-count:]
            return len(recent) == count and set(recent) == {verdict}

        name = common_pb2.Verdict.Name(verdict)
        await wait_for(
            seen, timeout=STAGE_TIMEOUT, what=f"{count} {name} in a row: {self.since(after)}"
        )
        return time.monotonic()

    async def answers(self, verdict: int, *, after: float, count: int) -> None:
        """Wait until ``count`` answers ``verdict`` came after ``after``."""
        name = common_pb2.Verdict.Name(verdict)
        await wait_for(
            lambda: self.since(after)[verdict] >= count,
            timeout=STAGE_TIMEOUT,
            what=f"{count} {name} answers",
        )


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
        await load.run_of(common_pb2.VALID, after=time.monotonic())
        killed_at = time.monotonic()
        processes.supervisor.stop(processes.nodes[PROVINCE], sig=signal.SIGKILL)
        offline_at = await load.run_of(common_pb2.VALID_OFFLINE, after=killed_at)
        await load.answers(common_pb2.VALID_OFFLINE, after=offline_at, count=20)  # an outage
        restarted_at = time.monotonic()
        await restart_node(processes)
        await load.run_of(common_pb2.VALID, after=restarted_at)
    finally:
        await stop_load(load, parts)
    assert load.errors == []
    assert set(load.since(killed_at)) <= {common_pb2.VALID, common_pb2.VALID_OFFLINE}
    # Once offline answers began, the dead issuer gave no live colour until it was restarted.
    assert set(load.between(offline_at, restarted_at)) == {common_pb2.VALID_OFFLINE}


async def test_frozen_issuer_honours_deadline_opens_breaker_and_recovers(
    processes: GatewayFederation,
) -> None:
    tokens = processes.issue(PROVINCE, 20)
    node = processes.nodes[PROVINCE]
    load, parts = await with_load(processes, tokens)
    try:
        await load.run_of(common_pb2.VALID, after=time.monotonic())
        frozen_at = time.monotonic()
        node.process.send_signal(signal.SIGSTOP)
        try:
            offline_at = await load.run_of(common_pb2.VALID_OFFLINE, after=frozen_at)
            await breaker_state(processes, BreakerState.OPEN)
            opened_at = time.monotonic()
            # With the circuit open the issuer is not asked: still answered, still offline.
            await load.answers(common_pb2.VALID_OFFLINE, after=opened_at, count=20)
        finally:
            thawing_at = time.monotonic()
            node.process.send_signal(signal.SIGCONT)
        await load.run_of(common_pb2.VALID, after=thawing_at)
        await breaker_state(processes, BreakerState.CLOSED)
    finally:
        await stop_load(load, parts)
    # Every call was answered within the checkpoint's deadline: a frozen issuer never answers,
    # so each offline answer was given without waiting for it.
    assert load.errors == []
    assert set(load.since(frozen_at)) <= {common_pb2.VALID, common_pb2.VALID_OFFLINE}
    assert set(load.between(offline_at, thawing_at)) == {common_pb2.VALID_OFFLINE}


async def breaker_state(federation: GatewayFederation, state: BreakerState) -> None:
    """Wait until the gateway's /metrics shows the province's breaker in ``state``."""

    def reached() -> bool:
        return breaker(federation) == state

    await asyncio.to_thread(
        wait_until, reached, timeout=STAGE_TIMEOUT, what=f"breaker {state.name}"
    )
