"""Mutual TLS and the authorization table against real servers (docs/security.md).

Each case is refused the way docs/security.md says: PERMISSION_DENIED for a role or province
the table does not allow, UNAUTHENTICATED for a revoked certificate, a refused TLS handshake
(the client sees UNAVAILABLE) without a client certificate or with one from outside the
federation, RESOURCE_EXHAUSTED with RetryInfo past a caller's rate.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway.main import GatewayConfig, start_gateway
from healthcode.v1 import gateway_pb2, gateway_pb2_grpc, registry_pb2, registry_pb2_grpc
from nodes.credentials import issue_provincial_identity
from nodes.identity import Role
from nodes.provincial.keys import ProvinceDir, init_province, load_ca, province_crl, write_public
from nodes.ratelimit import Limit
from nodes.tls import TlsIdentity, Transport
from trust import pki

from .conftest import Federation, make_national

pytestmark = pytest.mark.integration


async def refused(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def register(province: str, node_id: str) -> gateway_pb2.RegisterNodeRequest:
    return gateway_pb2.RegisterNodeRequest(
        province=province, node_id=node_id, endpoint="127.0.0.1:1", ttl_seconds=5
    )


async def test_a_node_of_zhejiang_cannot_register_for_sichuan(federation: Federation):
    as_node = gateway_pb2_grpc.GatewayStub(
        federation.channel(federation.identity("node", "330000", "hz-9"))
    )
    error = await refused(
        as_node.RegisterNode(register("510000", "hz-9"), timeout=5),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "province 510000" in error.details()
    # ...nor under another replica's name in its own province
    await refused(
        as_node.RegisterNode(register("330000", "n1"), timeout=5), grpc.StatusCode.PERMISSION_DENIED
    )
    reply = await as_node.RegisterNode(register("330000", "hz-9"), timeout=5)
    assert reply.lease_id


async def test_a_province_cannot_upload_or_revoke_another_provinces_signing_certificate(
    federation: Federation,
):
    sichuan = registry_pb2_grpc.RegistryStub(federation.channel(federation.operator("510000")))
    zhejiang_dsc = ProvinceDir(federation.workdir / "330000").dsc_cert.read_bytes()
    await refused(
        sichuan.UploadSigningCertificate(
            registry_pb2.UploadSigningCertificateRequest(certificate_pem=zhejiang_dsc), timeout=5
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    kid = pki.kid(pki.load_certificate_pem(zhejiang_dsc))
    await refused(
        sichuan.RevokeCertificate(
            registry_pb2.RevokeCertificateRequest(kid=kid, reason="key_compromise"), timeout=5
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert federation.gateway.view.signer(kid).revoked_at is None  # type: ignore[union-attr]


async def test_a_checkpoint_cannot_use_the_registry(federation: Federation):
    as_checkpoint = registry_pb2_grpc.RegistryStub(
        federation.channel(federation.checkpoint("510000"))
    )
    await refused(
        as_checkpoint.SuspendProvince(
            registry_pb2.SuspendProvinceRequest(province="330000", suspended=True), timeout=5
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await refused(
        as_checkpoint.ListProvinces(registry_pb2.ListProvincesRequest(), timeout=5),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_no_client_certificate_is_refused(federation: Federation):
    root = federation.root.certificate.public_bytes(Encoding.PEM)
    credentials = grpc.ssl_channel_credentials(root_certificates=root)  # no client certificate
    async with grpc.aio.secure_channel(federation.gateway_address, credentials) as channel:
        await refused(
            gateway_pb2_grpc.GatewayStub(channel).Verify(
                gateway_pb2.VerifyRequest(token="HCX1:x"), timeout=5
            ),
            grpc.StatusCode.UNAVAILABLE,
        )
    async with grpc.aio.insecure_channel(federation.gateway_address) as channel:  # plain text
        await refused(
            gateway_pb2_grpc.GatewayStub(channel).Verify(
                gateway_pb2.VerifyRequest(token="HCX1:x"), timeout=5
            ),
            grpc.StatusCode.UNAVAILABLE,
        )


async def test_a_certificate_from_a_ca_outside_the_federation_is_refused(
    federation: Federation, tmp_path
):
    rogue_root = pki.create_root_ca()
    rogue_ca = pki.create_provincial_ca(rogue_root, province="330000", name="假浙江")
    rogue = issue_provincial_identity(
        rogue_ca, rogue_root.certificate, province="330000", kind="checkpoint", name="x",
        out=tmp_path / "rogue",
    )  # fmt: skip
    # It trusts the real root for the server, but presents a chain to its own root.
    real_root = federation.root.certificate.public_bytes(Encoding.PEM)
    transport = Transport(TlsIdentity(rogue.private_key, rogue.certificate_chain, real_root))
    async with transport.aio_channel(federation.gateway_address) as channel:
        await refused(
            gateway_pb2_grpc.GatewayStub(channel).Verify(
                gateway_pb2.VerifyRequest(token="HCX1:x"), timeout=5
            ),
            grpc.StatusCode.UNAVAILABLE,
        )


async def test_a_revoked_node_certificate_is_refused_on_its_next_call(federation: Federation):
    identity = federation.identity("node", "330000", "hz-7")
    as_node = gateway_pb2_grpc.GatewayStub(federation.channel(identity))
    reply = await as_node.RegisterNode(register("330000", "hz-7"), timeout=5)
    serial = pki.load_certificate_pem(identity.tls.certificate_chain).serial_number  # type: ignore[union-attr]
    crl = province_crl(ProvinceDir(federation.workdir / "330000"), revoke_serial=serial,
                       reason="key_compromise")  # fmt: skip
    operator = registry_pb2_grpc.RegistryStub(federation.channel(federation.operator("330000")))
    await operator.UploadCrl(
        registry_pb2.UploadCrlRequest(province="330000", crl_der=crl), timeout=5
    )
    view = federation.gateway.view
    for _ in range(100):  # the gateway's view follows the registry within ~50 ms
        if view.certificate_revoked(issuer_province="330000", serial=serial):
            break
        await asyncio.sleep(0.02)
    error = await refused(
        as_node.KeepAliveNode(gateway_pb2.KeepAliveNodeRequest(lease_id=reply.lease_id), timeout=5),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "revoked" in error.details()
    # The province's other identities are unaffected.
    await operator.ListProvinces(registry_pb2.ListProvincesRequest(), timeout=5)


async def test_a_flooding_checkpoint_is_limited_while_another_is_served(tmp_path):
    national = tmp_path / "national"
    make_national(national)
    gateway = await start_gateway(
        GatewayConfig(
            registry=f"sqlite:///{national}/registry.db",
            root_cert=national / "root.pem",
            root_key=national / "root-key.pem",
            transport=Transport.mtls(national / "gw-1"),
            rate_limits={
                Role.CHECKPOINT: Limit(rate=20, burst=20),
                Role.COORDINATOR: Limit(1e4, 1e4),
            },
        )
    )
    federation_root = pki.Authority(
        certificate=pki.load_certificate_pem((national / "root.pem").read_bytes()),
        private_key=pki.load_private_key_pem((national / "root-key.pem").read_bytes()),
    )
    try:
        coordinator = Transport.mtls(national / "alice")
        async with coordinator.aio_channel(f"127.0.0.1:{gateway.port}") as channel:
            await onboard_ca(registry_pb2_grpc.RegistryStub(channel), tmp_path, "510000")
        while gateway.view.province("510000") is None:
            await asyncio.sleep(0.02)
        ca = load_ca(ProvinceDir(tmp_path / "510000"))
        noisy, quiet = (
            Transport(issue_provincial_identity(
                ca, federation_root.certificate, province="510000", kind="checkpoint", name=n,
                out=tmp_path / n,
            ))
            for n in ("noisy", "quiet")
        )  # fmt: skip
        address = f"127.0.0.1:{gateway.port}"
        async with noisy.aio_channel(address) as a, quiet.aio_channel(address) as b:
            flood, calm = gateway_pb2_grpc.GatewayStub(a), gateway_pb2_grpc.GatewayStub(b)
            request = gateway_pb2.VerifyRequest(token="HCX1:x")
            outcomes = await asyncio.gather(
                *(flood.Verify(request, timeout=5) for _ in range(100)), return_exceptions=True
            )
            limited = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
            assert limited and all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in limited)
            assert retry_delay(limited[0]) > 0
            for _ in range(10):  # the quiet checkpoint's own bucket is untouched
                reply = await calm.Verify(request, timeout=5)
                assert reply.reason == 1  # BAD_ENCODING: an answer, not a refusal
    finally:
        await gateway.stop()


async def onboard_ca(registry: registry_pb2_grpc.RegistryStub, workdir, province: str) -> None:
    """Onboard a province's CA (its callers' certificates chain to it)."""
    files = ProvinceDir(workdir / province)
    csr = init_province(files, province=province)
    reply = await registry.OnboardProvince(
        registry_pb2.OnboardProvinceRequest(
            province=province, name="四川省", csr_pem=csr.public_bytes(Encoding.PEM)
        ),
        timeout=5,
    )
    write_public(files.ca_cert, reply.ca_certificate_pem)


def retry_delay(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToNanoseconds() / 1e9
    return 0.0


async def test_the_audit_log_records_who_made_each_change(federation: Federation):
    log = await federation.registry_stub.AuditLog(registry_pb2.AuditLogRequest(), timeout=5)
    actors = {(e.action, e.subject): e.actor for e in log.entries}
    assert log.intact
    assert actors[("onboard-province", "330000")] == "spiffe://hcx/national/coordinator/alice"
    uploads = [e for e in log.entries if e.action.startswith("upload") and "330000" in e.subject]
    assert uploads and all(
        e.actor == "spiffe://hcx/province/330000/operator/ops" for e in uploads
    ), [(e.action, e.subject, e.actor) for e in log.entries]


async def test_a_revoked_checkpoint_is_refused_by_its_provinces_node(federation: Federation):
    """Nodes learn revocations from the signed trust list they pull from the gateway."""
    checkpoint = federation.identity("checkpoint", "330000", "gate-3")
    node = federation.node_stub("330000", checkpoint)
    issued = await federation.issue("330000")
    request = gateway_pb2.VerifyRequest(token=issued.token, checkpoint_province="330000")
    assert (await node.Verify(request, timeout=5)).verdict == 1  # VALID, answered by the node
    serial = pki.load_certificate_pem(checkpoint.tls.certificate_chain).serial_number  # type: ignore[union-attr]
    crl = province_crl(
        ProvinceDir(federation.workdir / "330000"), revoke_serial=serial, reason="key_compromise"
    )
    operator = registry_pb2_grpc.RegistryStub(federation.channel(federation.operator("330000")))
    await operator.UploadCrl(
        registry_pb2.UploadCrlRequest(province="330000", crl_der=crl), timeout=5
    )
    deadline = asyncio.get_running_loop().time() + 10  # the node pulls every 2 s
    while True:
        try:
            await node.Verify(request, timeout=5)
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in e.details()
            break
        assert asyncio.get_running_loop().time() < deadline, "the node never refused it"
        await asyncio.sleep(0.2)
