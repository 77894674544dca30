"""Registry changes end to end on the embedded store and on a real etcd: revocation reaching two
gateways, suspension and resumption (2 of 3), rotation with overlap, a gateway started while
the store is down, and an export that openssl verifies."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from gateway.feed import VIEW_HEALTH_SERVICE
from gateway.main import RunningGateway
from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from nodes.provincial.keys import (
    ProvinceDir,
    crl_statement,
    load_ca,
    new_signing_certificate,
    province_crl,
    retirement_statement,
)
from simulations.inprocess import Federation
from tests.support import require_tool, wait_for
from trust import pki, statements
from trust.export import export_pem
from trust.model import Reason
from trust.verify import check_code


def reason_of(token: str, gateway: RunningGateway) -> Reason:
    from trust.errors import VerificationError

    try:
        check_code(token, gateway.view, now=time.time())
    except VerificationError as e:
        return e.reason
    return Reason.NONE


def dsc_kid(federation: Federation, province: str) -> bytes:
    files = ProvinceDir(federation.workdir / province)
    return pki.kid(pki.load_certificate_pem(files.dsc_cert.read_bytes()))


async def test_a_revocation_reaches_two_gateways(federation_on_each_store: Federation) -> None:
    """The propagation time itself is measured by `make bench BENCH=registry`."""
    federation = federation_on_each_store
    issued = await federation.issue("330000")
    second = await federation.add_gateway()
    gateways = (federation.gateway, second)
    for gateway in gateways:

        def trusting(g: RunningGateway = gateway) -> bool:
            return reason_of(issued.token, g) is Reason.NONE

        await wait_for(trusting, timeout=10, what="both gateways trusting the key")
    order = statements.DscRevocation(
        dsc_kid(federation, "330000"), int(time.time()), "key_compromise"
    )
    await federation.submit(federation.signed(order, "alice"))
    for gateway in gateways:

        def revoked(g: RunningGateway = gateway) -> bool:
            return reason_of(issued.token, g) is Reason.KEY_REVOKED

        await wait_for(revoked, timeout=10, what=f"the revocation at gateway {gateway.port}")
    async with federation.checkpoint("510000").aio_channel(f"127.0.0.1:{second.port}") as channel:
        reply = await gateway_pb2_grpc.GatewayStub(channel).Verify(
            gateway_pb2.VerifyRequest(token=issued.token), timeout=5
        )
    assert (reply.verdict, reply.reason) == (common_pb2.INVALID, common_pb2.KEY_REVOKED)


async def test_suspension_by_one_and_resumption_by_two(
    federation_on_each_store: Federation,
) -> None:
    federation = federation_on_each_store
    issued = await federation.issue("330000")
    gateway = federation.gateway
    await federation.submit(
        federation.signed(statements.Suspension("330000", "incident 42"), "carol")
    )
    await wait_for(lambda: reason_of(issued.token, gateway) is Reason.PROVINCE_SUSPENDED,
                   timeout=10, what="the suspension")  # fmt: skip
    version = gateway.view.province("330000").version  # type: ignore[union-attr]
    await federation.propose_and_approve(statements.Resume("330000", "over"), base=version)
    await wait_for(lambda: reason_of(issued.token, gateway) is Reason.NONE, timeout=10,
                   what="the resumption")  # fmt: skip


async def test_rotation_with_overlap_old_codes_verify_new_codes_use_the_new_key(
    federation_on_each_store: Federation,
) -> None:
    federation = federation_on_each_store
    old_code = (await federation.issue("330000")).token
    files = ProvinceDir(federation.workdir / "330000")
    old_kid = dsc_kid(federation, "330000")
    new_dsc = new_signing_certificate(files, province="330000", name="dsc-2")
    await federation.upload("330000", new_dsc)
    operator = federation.channel(federation.operator("330000"))
    from healthcode.v1 import registry_pb2_grpc

    retires = time.time() + 2  # announced ahead: codes issued until then keep verifying
    await federation.submit(retirement_statement(files, old_kid, retires),
                            stub=registry_pb2_grpc.RegistryStub(operator))  # fmt: skip
    gateway = federation.gateway
    await wait_for(lambda: gateway.view.signer(old_kid).retired_at, timeout=10, what="retirement")  # type: ignore[union-attr]
    assert reason_of(old_code, gateway) is Reason.NONE  # issued before the retirement
    from trust.codeformat import decode_token

    async def signs_with_the_new_key() -> bool:
        token = (await federation.issue("330000")).token
        return decode_token(token).kid == pki.kid(new_dsc)

    await wait_for(signs_with_the_new_key, timeout=40, what="the node signing with dsc-2")
    new_code = (await federation.issue("330000")).token
    assert reason_of(new_code, gateway) is Reason.NONE


async def test_gateway_started_while_the_store_is_down_serves_its_persisted_view(
    federation_on_etcd: Federation, tmp_path: Path
) -> None:
    federation = federation_on_etcd
    cluster = federation.etcd
    issued = await federation.issue("330000")
    sichuan = (await federation.issue("510000")).token
    view_file = tmp_path / "view.cbor"
    first = await federation.add_gateway(view_file=view_file)
    order = statements.DscRevocation(
        dsc_kid(federation, "330000"), int(time.time()), "key_compromise"
    )
    await federation.submit(federation.signed(order, "alice"))
    await wait_for(lambda: reason_of(issued.token, first) is Reason.KEY_REVOKED, timeout=10,
                   what="the revocation")  # fmt: skip
    routes = first.view.nodes("510000")
    assert routes
    await first.stop()
    federation.extra_gateways.remove(first)
    assert view_file.stat().st_mode & 0o777 == 0o600
    cluster.kill(0)  # type: ignore[attr-defined]
    second = await federation.add_gateway(view_file=view_file)
    assert second.feed.from_disk
    assert REGISTRY.get_sample_value("hcx_gateway_view_from_disk") == 1.0
    assert reason_of(issued.token, second) is Reason.KEY_REVOKED
    # The routes came back with the view (re-checked on load): the store is down, and the
    # gateway still asks Sichuan's node for the live colour.
    assert [(r.node_id, r.endpoint) for r in second.view.nodes("510000")] == [
        (r.node_id, r.endpoint) for r in routes
    ]
    checkpoint = federation.checkpoint("330000")
    async with checkpoint.aio_channel(f"127.0.0.1:{second.port}") as channel:
        live = await gateway_pb2_grpc.GatewayStub(channel).Verify(
            gateway_pb2.VerifyRequest(token=sichuan, checkpoint_province="330000",
                                      checkpoint_id="hz-1"), timeout=5)  # fmt: skip
    assert (live.verdict, live.message) == (
        common_pb2.VALID,
        "live colour from the issuing province",
    )
    async with federation.coordinator.aio_channel(f"127.0.0.1:{second.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=VIEW_HEALTH_SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        cluster.restart(0)  # type: ignore[attr-defined]
        await wait_for(lambda: not second.feed.from_disk, timeout=20, what="the store back")
        reply = await health.Check(health_pb2.HealthCheckRequest(service=VIEW_HEALTH_SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_exported_pem_files_pass_openssl_verify_and_a_revoked_dsc_fails(
    federation_on_each_store: Federation, tmp_path: Path
) -> None:
    openssl = require_tool("openssl", install="apt-get install openssl")
    federation = federation_on_each_store
    files = ProvinceDir(federation.workdir / "330000")
    dsc = pki.load_certificate_pem(files.dsc_cert.read_bytes())
    crl = province_crl(files, revoke_serial=dsc.serial_number, reason="key_compromise")
    from healthcode.v1 import registry_pb2_grpc

    operator = registry_pb2_grpc.RegistryStub(federation.channel(federation.operator("330000")))
    await federation.submit(crl_statement(files, crl), stub=operator)
    gateway = federation.gateway
    await wait_for(lambda: gateway.view.signer(pki.kid(dsc)).revoked_at, timeout=10,  # type: ignore[union-attr]
                   what="the CRL")  # fmt: skip
    out = tmp_path / "export"
    export_pem(gateway.view, out)
    assert load_ca(files).certificate == pki.load_certificate_pem(
        (out / "330000" / "ca.pem").read_bytes()
    )

    def openssl_verify(code: str, kid: bytes) -> subprocess.CompletedProcess[str]:
        d = out / code
        return subprocess.run(
            [openssl, "verify", "-crl_check", "-CAfile", str(out / "root.pem"),
             "-untrusted", str(d / "ca.pem"), "-CRLfile", str(d / "crl.pem"),
             str(d / "dsc" / f"{kid.hex()}.pem")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    good = openssl_verify("510000", dsc_kid(federation, "510000"))
    assert good.returncode == 0, good.stdout + good.stderr
    revoked = openssl_verify("330000", pki.kid(dsc))
    assert revoked.returncode != 0 and "revoked" in (revoked.stdout + revoked.stderr)
