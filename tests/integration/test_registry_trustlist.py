"""Trust list over gRPC and the coordinators' / checkpoints' CLI against a real etcd."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from hcx.cli import main as hcx
from healthcode.v1 import gateway_pb2_grpc, trustlist_pb2
from tests.integration.etcd import EtcdCluster, etcd  # noqa: F401  (fixture)
from tests.integration.registry_world import World, make_world
from trust import trustlist

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(tmp_path: Path, etcd: EtcdCluster) -> AsyncIterator[World]:  # noqa: F811
    made = await make_world(tmp_path / "national", etcd.url())
    yield made
    await made.close()


async def run_cli(*argv: str) -> int:
    """``hcx ...`` in a thread (its gRPC client is blocking; the servers run on this loop).

    The world's gateways serve plain text (these tests are about the registry; mTLS is
    covered by test_security.py), so commands that reach one say --insecure-dev-only."""
    network = ["--insecure-dev-only"] if "--gateway" in argv else []
    return await asyncio.to_thread(hcx, [*argv, *network])


async def test_watch_trust_list_streams_signed_deltas_and_offline_checkpoint_verifies(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zj = await world.province("330000")
    gateway = await world.gateway(coordinator=True)
    address = f"127.0.0.1:{gateway.port}"
    roots = [world.root.certificate]
    async with grpc.aio.insecure_channel(address) as channel:
        stream = gateway_pb2_grpc.GatewayStub(channel).WatchTrustList(
            trustlist_pb2.WatchTrustListRequest(), timeout=10
        )
        first = await stream.read()
        full = trustlist.verify(first.signed_list, roots, now=time.time())
        await world.coordinator.set_suspended("330000", True)
        second = await stream.read()
        delta = trustlist.verify(second.signed_list, roots, now=time.time())
        stream.cancel()
    assert delta.since == full.revision and delta.revision > full.revision
    merged = trustlist.merge(full, delta).view(roots)
    province = merged.province("330000")
    assert province is not None and province.suspended
    await world.coordinator.set_suspended("330000", False)

    list_file, root = tmp_path / "tl.cbor", str(world.root_cert)
    assert await run_cli("checkpoint", "fetch", "--gateway", address, "--root", root,
                         "--out", str(list_file)) == 0  # fmt: skip
    token = zj.token()
    capsys.readouterr()
    assert await run_cli("checkpoint", "verify", "--offline", "--trust-list", str(list_file),
                         "--root", root, token) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("VALID_OFFLINE GREEN")

    # A checkpoint that has seen a newer revision refuses the old file (rollback).
    old = list_file.read_bytes()
    await world.coordinator.revoke(kid=zj.kid, reason="key_compromise")
    await asyncio.sleep(0.3)
    assert await run_cli("checkpoint", "fetch", "--gateway", address, "--root", root,
                         "--out", str(list_file)) == 0  # fmt: skip
    assert await run_cli("checkpoint", "verify", "--offline", "--trust-list", str(list_file),
                         "--root", root, token) == 1  # fmt: skip
    assert "KEY_REVOKED" in capsys.readouterr().out
    list_file.write_bytes(old)
    assert await run_cli("checkpoint", "verify", "--offline", "--trust-list", str(list_file),
                         "--root", root, token) == 2  # fmt: skip
    assert "rollback" in capsys.readouterr().err


async def test_coordinator_cli_revoke_audit_and_export(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    etcd: EtcdCluster,  # noqa: F811
) -> None:
    zj = await world.province("330000")
    sc = await world.province("510000")
    gateway = await world.gateway(coordinator=True)
    address = f"127.0.0.1:{gateway.port}"
    assert await run_cli("registry", "suspend", "--gateway", address, "--province", "510000",
                         "--why", "drill") == 0  # fmt: skip
    assert await run_cli("registry", "resume", "--gateway", address, "--province", "510000") == 0
    ca_serial = str(zj.ca.certificate.serial_number)
    assert await run_cli("registry", "revoke", "--gateway", address, "--serial", ca_serial,
                         "--reason", "ca_compromise") == 0  # fmt: skip
    await asyncio.sleep(0.3)

    out = tmp_path / "export"
    assert await run_cli("registry", "export", "--gateway", address, "--root",
                         str(world.root_cert), "--out", str(out)) == 0  # fmt: skip
    dsc = out / "510000" / "dsc" / f"{sc.kid.hex()}.pem"
    ok = subprocess.run(
        ["openssl", "verify", "-crl_check_all", "-CAfile", str(out / "root.pem"),
         "-untrusted", str(out / "510000" / "ca.pem"), "-CRLfile", str(out / "510000/crl.pem"),
         "-CRLfile", str(out / "root-crl.pem"), str(dsc)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(
        ["openssl", "verify", "-crl_check_all", "-CAfile", str(out / "root.pem"),
         "-untrusted", str(out / "330000" / "ca.pem"), "-CRLfile", str(out / "330000/crl.pem"),
         "-CRLfile", str(out / "root-crl.pem"), str(out / "330000/dsc" / f"{zj.kid.hex()}.pem")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "revoked" in bad.stdout + bad.stderr

    capsys.readouterr()
    assert await run_cli("registry", "audit", "--gateway", address, "--verify") == 0
    printed = capsys.readouterr().out
    assert "suspend" in printed and "revoke-ca" in printed and "peer" in printed
    prefix = world.url.rsplit("/", 2)[-2] + "/"
    etcd.etcdctl("del", f"{prefix}audit/000000000004")
    assert await run_cli("registry", "audit", "--gateway", address, "--verify") == 1
    assert "TAMPERED" in capsys.readouterr().err
