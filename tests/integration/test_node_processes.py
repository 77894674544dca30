"""Node replicas as real processes (``hcx node serve``) behind an in-process gateway.

Covers what only a real process shows: a replica killed with SIGKILL mid-load costs no
verification beyond those in flight to it and leaves the routing table when its lease runs out;
a SetStatus acknowledged just before the kill is in the store when it is reopened.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthcode.v1 import common_pb2, gateway_pb2, node_pb2, node_pb2_grpc
from nodes.provincial.issuance import with_check_character
from nodes.provincial.stores import open_status_store
from simulations.inprocess import Federation
from simulations.processes import ServerProcess, Supervisor
from tests.integration.postgres import postgres_dsn, postgres_server  # noqa: F401
from tests.support import wait_for

pytestmark = pytest.mark.integration

PROVINCE = "330000"
LEASE_TTL = 3


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    with Supervisor(tmp_path / "procs") as sup:
        (tmp_path / "procs").mkdir(exist_ok=True)
        yield sup


def start_replica(
    supervisor: Supervisor, federation: Federation, node_id: str, store: str | None = None
) -> ServerProcess:
    args = [
        "node", "serve", "--province", PROVINCE,
        "--dir", str(federation.workdir / PROVINCE),
        "--gateway", f"127.0.0.1:{federation.gateway.port}",
        "--node-id", node_id, "--lease-ttl", str(LEASE_TTL), "--drain-seconds", "0.2",
        "--tls-dir", str(federation.tls_dir("node", PROVINCE, node_id)),
    ]  # fmt: skip
    supervisor.client = federation.operator(PROVINCE)  # health checks over mTLS
    if store:
        args += ["--store", store]
    return supervisor.start(node_id, args)


async def issue_codes(
    federation: Federation, address: str, count: int
) -> list[node_pb2.IssueCodeResponse]:
    async with federation.operator(PROVINCE).aio_channel(address) as channel:
        stub = node_pb2_grpc.ProvincialNodeStub(channel)
        return [
            await stub.IssueCode(
                node_pb2.IssueCodeRequest(
                    id_number=with_check_character(f"33010219850505{i:03d}"), full_name="陈晓东"
                ),
                timeout=5,
            )
            for i in range(count)
        ]


async def test_killing_a_replica_mid_load_fails_only_calls_in_flight(
    empty_federation: Federation, supervisor: Supervisor
) -> None:
    federation = empty_federation
    await federation.onboard(PROVINCE)
    victim = await asyncio.to_thread(start_replica, supervisor, federation, "hz-1")
    survivor = await asyncio.to_thread(start_replica, supervisor, federation, "hz-2")
    view = federation.gateway.view
    await federation.wait_routable(PROVINCE)
    await wait_for(lambda: len(view.nodes(PROVINCE)) == 2, timeout=30, what="both replicas routed")
    codes = await issue_codes(federation, survivor.address, 20)
    gateway = federation.checkpoint_stub(PROVINCE)
    results: list[int] = []
    stop = asyncio.Event()
    workers = 4

    async def checkpoint(n: int) -> None:
        i = n
        while not stop.is_set():
            reply = await gateway.Verify(
                gateway_pb2.VerifyRequest(token=codes[i % len(codes)].token), timeout=5
            )
            results.append(reply.verdict)
            i += workers

    load = [asyncio.create_task(checkpoint(n)) for n in range(workers)]
    try:
        # Counts of answers, not a rate: the load runs until each stage has seen enough.
        await wait_for(lambda: len(results) >= 40, timeout=60, what="40 answers before the kill")
        supervisor.stop(victim, sig=signal.SIGKILL)
        at_kill = len(results)
        await wait_for(
            lambda: not any(n.node_id == "hz-1" for n in view.nodes(PROVINCE)),
            timeout=10 * LEASE_TTL,  # generous: leaving takes the lease TTL, not a timer here
            what="the killed replica to leave the routing table (its lease running out)",
        )
        at_leave = len(results)
        await wait_for(
            lambda: len(results) >= at_leave + 40, timeout=60, what="40 answers after it left"
        )
    finally:
        stop.set()
        await asyncio.gather(*load)
    failed = [v for v in results if v != common_pb2.VALID]
    assert len(failed) <= workers, f"{len(failed)} of {len(results)} verifications not VALID"
    # Only calls in flight to the victim when it died may fail: none before, none after.
    assert set(results[:at_kill]) == {common_pb2.VALID}
    assert set(results[at_leave:]) == {common_pb2.VALID}
    assert [n.node_id for n in view.nodes(PROVINCE)] == ["hz-2"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_acknowledged_colour_changes_survive_a_killed_node(
    backend: str,
    request: pytest.FixtureRequest,
    empty_federation: Federation,
    supervisor: Supervisor,
) -> None:
    federation = empty_federation
    await federation.onboard(PROVINCE)
    store_url = None if backend == "sqlite" else request.getfixturevalue("postgres_dsn")
    node = await asyncio.to_thread(start_replica, supervisor, federation, "hz-1", store_url)
    codes = await issue_codes(federation, node.address, 10)
    acknowledged: dict[bytes, int] = {}
    async with federation.operator(PROVINCE).aio_channel(node.address) as channel:
        stub = node_pb2_grpc.ProvincialNodeStub(channel)
        for round_ in range(5):
            for code in codes:
                reply = await stub.SetStatus(
                    node_pb2.SetStatusRequest(
                        code_id=code.code_id,
                        colour=common_pb2.RED if round_ % 2 == 0 else common_pb2.YELLOW,
                        reason=f"round {round_}",
                        request_id=str(uuid.uuid4()),
                    ),
                    timeout=5,
                )
                acknowledged[code.code_id] = reply.status.status_version
    node.process.send_signal(signal.SIGKILL)  # right after the last acknowledgement
    node.process.wait(5)
    store = open_status_store(store_url or str(federation.workdir / PROVINCE / "status.db"))
    try:
        found = store.get_many(list(acknowledged))
        assert {cid: r.status_version for cid, r in found.items()} == acknowledged
        assert all(r.reason == "round 4" and r.colour.name == "RED" for r in found.values())
    finally:
        store.close()


async def test_a_replica_stopped_with_sigterm_drains_and_starts_again(
    empty_federation: Federation, supervisor: Supervisor
) -> None:
    federation = empty_federation
    await federation.onboard(PROVINCE)
    node = await asyncio.to_thread(start_replica, supervisor, federation, "hz-1")
    view = federation.gateway.view
    await federation.wait_routable(PROVINCE)
    again = await asyncio.to_thread(supervisor.restart, node)
    # Exit status 0: it drained and exited on its own after SIGTERM; a replica that hung in
    # its drain would have been killed by the supervisor (SIGKILL, status -9).
    assert node.process.returncode == 0
    await federation.wait_routable(PROVINCE)
    assert [n.endpoint for n in view.nodes(PROVINCE)] == [again.address]
