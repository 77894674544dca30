"""The trust registry on a real etcd: tampering, revocation propagation, retirement, export."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from gateway.feed import VIEW_HEALTH_SERVICE
from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.integration.etcd import EtcdCluster, etcd  # noqa: F401  (fixture)
from tests.integration.registry_world import World, make_world, reason_of
from trust import pki, records
from trust.model import Reason

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(tmp_path: Path, etcd: EtcdCluster) -> AsyncIterator[World]:  # noqa: F811
    made = await make_world(tmp_path / "national", etcd.url())
    yield made
    await made.close()


def rejected_count() -> float:
    return REGISTRY.get_sample_value("hcx_gateway_registry_rejected_values_total") or 0.0


async def eventually(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_forged_values_put_with_etcdctl_are_rejected_and_last_good_serves(
    world: World,
    etcd: EtcdCluster,  # noqa: F811
) -> None:
    zj = await world.province("330000")
    gateway = await world.gateway()
    token = zj.token()
    assert reason_of(token, gateway.view) is Reason.NONE
    before = rejected_count()
    prefix = world.url.rsplit("/", 2)[-2] + "/"

    # 1. A forged DSC under the real kid: a self-made CA signed it, not Zhejiang's.
    rogue_root = pki.create_root_ca()
    rogue_ca = pki.create_provincial_ca(rogue_root, province="330000", name="假")
    rogue_key = pki.generate_private_key()
    rogue_dsc = pki.sign_dsc(
        rogue_ca, pki.make_csr(rogue_key, common_name="x"), province="330000", name="dsc-1"
    )
    forged = records.encode_signing_cert(
        records.SigningCertRecord(pki.kid(rogue_dsc), "330000", rogue_dsc)
    )
    etcd.etcdctl("put", f"{prefix}dsc/{pki.kid(rogue_dsc).hex()}", input_bytes=forged)
    # 2. The province record with "suspended" flipped but the old signature kept.
    entry = await world.coordinator._store.get(records.province_key("330000"))
    assert entry is not None
    import cbor2

    sealed = cbor2.loads(entry.value)
    body = cbor2.loads(sealed["body"])
    body["suspended"] = True
    sealed["body"] = cbor2.dumps(body)
    etcd.etcdctl("put", f"{prefix}provinces/330000", input_bytes=cbor2.dumps(sealed))
    # 3. The province's CRL deleted behind the registry's back.
    etcd.etcdctl("del", f"{prefix}crl/330000")

    await eventually(lambda: rejected_count() >= before + 3)
    assert pki.kid(rogue_dsc) not in {s.kid for s in gateway.view.signers()}
    province = gateway.view.province("330000")
    assert province is not None and not province.suspended  # last good value keeps serving
    assert reason_of(token, gateway.view) is Reason.NONE
    assert any(key == "crl/330000" for key, _, _ in gateway.view.accepted_entries())


async def test_a_revocation_reaches_two_gateways_within_one_second(world: World) -> None:
    zj = await world.province("330000")
    first, second = await world.gateway(), await world.gateway()
    token = zj.token()
    for gateway in (first, second):
        assert reason_of(token, gateway.view) is Reason.NONE
    started = time.monotonic()
    await world.coordinator.revoke(kid=zj.kid, reason="key_compromise")
    for gateway in (first, second):
        await eventually(lambda g=gateway: reason_of(token, g.view) is Reason.KEY_REVOKED, 1.0)
    assert time.monotonic() - started < 1.0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
        reply = await gateway_pb2_grpc.GatewayStub(channel).Verify(
            gateway_pb2.VerifyRequest(token=token), timeout=5
        )
    assert (reply.verdict, reply.reason) == (common_pb2.INVALID, common_pb2.KEY_REVOKED)


async def test_suspension_and_resumption_reach_the_gateway(world: World) -> None:
    zj = await world.province("330000")
    gateway = await world.gateway()
    token = zj.token()
    await world.coordinator.set_suspended("330000", True, why="incident 42")
    await eventually(lambda: reason_of(token, gateway.view) is Reason.PROVINCE_SUSPENDED)
    await world.coordinator.set_suspended("330000", False)
    await eventually(lambda: reason_of(token, gateway.view) is Reason.NONE)


async def test_rotation_with_overlap_old_codes_verify_new_codes_use_the_new_key(
    world: World,
) -> None:
    zj = await world.province("330000")
    gateway = await world.gateway()
    old_code = zj.token(issued_at=time.time() - 10)
    new_keys = await world.new_dsc(zj.ca, "330000", "dsc-2")
    retired_at = time.time() - 5
    key = records.retired_key(zj.kid)
    sealed = records.seal(
        key,
        records.encode_retirement(records.Retirement(zj.kid, retired_at)),
        zj.ca.private_key,
    )
    await world.coordinator.retire(sealed, zj.kid, actor="province-330000")
    late_code_with_old_key = zj.token()
    new_code = new_keys.token()
    await eventually(lambda: reason_of(late_code_with_old_key, gateway.view) is Reason.KEY_RETIRED)
    assert reason_of(old_code, gateway.view) is Reason.NONE
    assert reason_of(new_code, gateway.view) is Reason.NONE


async def test_audit_log_records_every_change_and_detects_edits_and_deletions(
    world: World,
    etcd: EtcdCluster,  # noqa: F811
) -> None:
    zj = await world.province("330000")
    await world.coordinator.set_suspended("330000", True, actor="coordinator-li")
    await world.coordinator.revoke(kid=zj.kid, reason="superseded")
    report = await world.coordinator.audit_log()
    assert report.intact
    assert [(e.action, e.actor) for e in report.entries][-2:] == [
        ("suspend", "coordinator-li"),
        ("revoke-dsc", "coordinator-cli"),
    ]
    assert [e.action for e in report.entries][:3] == [
        "onboard-province",
        "upload-dsc",
        "upload-crl",
    ]
    prefix = world.url.rsplit("/", 2)[-2] + "/"
    etcd.etcdctl("del", f"{prefix}audit/000000000002")
    report = await world.coordinator.audit_log()
    assert not report.intact and "deleted" in " ".join(report.problems)
    etcd.etcdctl("put", f"{prefix}audit/000000000003", input_bytes=b"\xa0")
    report = await world.coordinator.audit_log()
    assert any("audit/000000000003" in p for p in report.problems)


async def test_gateway_started_while_etcd_is_down_serves_its_persisted_view(
    world: World,
    etcd: EtcdCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    zj = await world.province("330000")
    view_file = tmp_path / "view.cbor"
    first = await world.gateway(view_file=view_file)
    await world.coordinator.revoke(kid=zj.kid, reason="key_compromise")
    await eventually(lambda: reason_of(zj.token(), first.view) is Reason.KEY_REVOKED)
    await first.stop()
    world.gateways.remove(first)
    assert view_file.stat().st_mode & 0o777 == 0o600

    etcd.kill(0)
    second = await world.gateway(view_file=view_file)
    assert second.feed.from_disk
    assert REGISTRY.get_sample_value("hcx_gateway_view_from_disk") == 1.0
    assert reason_of(zj.token(), second.view) is Reason.KEY_REVOKED
    async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=VIEW_HEALTH_SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        etcd.restart(0)
        await eventually(lambda: not second.feed.from_disk, 10)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=VIEW_HEALTH_SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_exported_pem_files_pass_openssl_verify_and_a_revoked_dsc_fails(
    world: World, tmp_path: Path
) -> None:
    from trust.export import export_pem

    zj = await world.province("330000")
    sc = await world.province("510000")
    zj.revoked.append(
        pki.RevokedEntry(
            zj.dsc.serial_number, zj.dsc.not_valid_before_utc, pki.x509.ReasonFlags.key_compromise
        )
    )
    await world.coordinator.upload_crl("330000", zj.crl())
    gateway = await world.gateway()
    await eventually(lambda: reason_of(zj.token(), gateway.view) is Reason.KEY_REVOKED)
    out = tmp_path / "export"
    export_pem(gateway.view, world.root.certificate, out)

    def openssl_verify(keys_code: str, kid: bytes) -> subprocess.CompletedProcess[str]:
        d = out / keys_code
        return subprocess.run(
            ["openssl", "verify", "-crl_check", "-CAfile", str(out / "root.pem"),
             "-untrusted", str(d / "ca.pem"), "-CRLfile", str(d / "crl.pem"),
             str(d / "dsc" / f"{kid.hex()}.pem")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    good = openssl_verify("510000", sc.kid)
    assert good.returncode == 0, good.stdout + good.stderr
    revoked = openssl_verify("330000", zj.kid)
    assert revoked.returncode != 0 and "revoked" in (revoked.stdout + revoked.stderr)
