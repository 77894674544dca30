"""Mutual TLS, the authorization table and the authority table against real servers.

Each case is refused the way docs/security.md says: PERMISSION_DENIED for a role or province
the tables do not allow, UNAUTHENTICATED for a revoked certificate, a refused TLS handshake
(the client sees UNAVAILABLE) without a client certificate or with one from outside the
federation, RESOURCE_EXHAUSTED with RetryInfo past a caller's rate, NOT_FOUND for a
registration that does not exist. The regressions of issue "Registry authority" are named
after the attack they reproduce; they run over real mTLS on the embedded store and on etcd.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gateway.main import start_gateway
from healthcode.v1 import (
    common_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from nodes.credentials import issue_provincial_identity
from nodes.grpc_edge import reason_of
from nodes.identity import Role
from nodes.provincial.keys import (
    ProvinceDir,
    crl_statement,
    load_ca,
    province_crl,
    province_statement,
)
from nodes.ratelimit import Limit
from nodes.tls import TlsIdentity, Transport
from simulations.inprocess import Federation, gateway_config, genesis, make_national
from tests.support import wait_for
from trust import pki, statements
from trust.model import Reason
from trust.routes import NodeRoute, encode_route, route_key
from trust.stores import open_registry_store

pytestmark = pytest.mark.integration


async def refused(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return caught.value


def register(
    province: str, node_id: str, endpoint: str = "127.0.0.1:1"
) -> gateway_pb2.RegisterNodeRequest:
    return gateway_pb2.RegisterNodeRequest(
        province=province, node_id=node_id, endpoint=endpoint, ttl_seconds=5
    )


def as_node(federation: Federation, province: str, name: str) -> gateway_pb2_grpc.GatewayStub:
    return gateway_pb2_grpc.GatewayStub(
        federation.channel(federation.identity("node", province, name))
    )


def operator_registry(federation: Federation, province: str) -> registry_pb2_grpc.RegistryStub:
    return registry_pb2_grpc.RegistryStub(federation.channel(federation.operator(province)))


async def verdict(federation: Federation, token: str) -> gateway_pb2.VerifyResponse:
    reply: gateway_pb2.VerifyResponse = await federation.gateway_stub.Verify(
        gateway_pb2.VerifyRequest(token=token, checkpoint_province="510000"), timeout=5
    )
    return reply


# -- registrations belong to the node that made them -----------------------------------------------
async def test_a_node_of_zhejiang_cannot_register_for_sichuan(federation: Federation) -> None:
    stub = as_node(federation, "330000", "hz-9")
    error = await refused(
        stub.RegisterNode(register("510000", "hz-9"), timeout=5), grpc.StatusCode.PERMISSION_DENIED
    )
    assert "province 510000" in error.details()
    # ...nor under another replica's name in its own province
    await refused(
        stub.RegisterNode(register("330000", "n1"), timeout=5), grpc.StatusCode.PERMISSION_DENIED
    )
    reply = await stub.RegisterNode(register("330000", "hz-9"), timeout=5)
    assert len(reply.handle) >= 8  # at least 64 random bits, and never the store's lease id


async def test_an_empty_deregister_erases_nothing(federation_on_each_store: Federation) -> None:
    """Regression: DeregisterNode with lease id 0 (the protobuf default) erased every key of the
    embedded registry without a lease; after a gateway restart every checkpoint was refused."""
    federation = federation_on_each_store
    issued = await federation.issue("330000")
    stub = as_node(federation, "330000", "n1")
    before = federation.gateway.view.revision
    for handle in (b"", b"\x00" * 16, secrets.token_bytes(16)):
        for call in (
            stub.DeregisterNode(gateway_pb2.DeregisterNodeRequest(handle=handle), timeout=5),
            stub.KeepAliveNode(gateway_pb2.KeepAliveNodeRequest(handle=handle), timeout=5),
        ):
            error = await refused(call, grpc.StatusCode.NOT_FOUND)
            assert reason_of(error) is Reason.UNKNOWN_LEASE
    store = open_registry_store(federation.gateway_url)
    try:
        snapshot = await store.read_prefix("log/")
        assert len(snapshot.entries) == before + 1  # every leaf and the head are still there
    finally:
        await store.close()
    await federation.restart_gateway()
    assert federation.gateway.view.revision == before
    assert (await verdict(federation, issued.token)).verdict == common_pb2.VALID


async def test_a_handle_of_another_node_is_permission_denied(
    federation_on_each_store: Federation,
) -> None:
    """Regression: lease ids acted as capabilities; a 510000 certificate dropped 330000's."""
    federation = federation_on_each_store
    mine = as_node(federation, "330000", "hz-2")
    reply = await mine.RegisterNode(register("330000", "hz-2"), timeout=5)
    thief = as_node(federation, "510000", "cd-2")
    for call in (
        thief.KeepAliveNode(gateway_pb2.KeepAliveNodeRequest(handle=reply.handle), timeout=5),
        thief.DeregisterNode(gateway_pb2.DeregisterNodeRequest(handle=reply.handle), timeout=5),
    ):
        error = await refused(call, grpc.StatusCode.PERMISSION_DENIED)
        assert reason_of(error) is Reason.LEASE_NOT_YOURS
    kept = await mine.KeepAliveNode(
        gateway_pb2.KeepAliveNodeRequest(handle=reply.handle), timeout=5
    )
    assert kept.ttl_seconds > 0
    scans = await asyncio.gather(*(
        thief.KeepAliveNode(gateway_pb2.KeepAliveNodeRequest(handle=secrets.token_bytes(16)),
                            timeout=5) for _ in range(200)), return_exceptions=True)  # fmt: skip
    assert all(isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.NOT_FOUND
               for e in scans)  # fmt: skip


async def test_a_second_registration_replaces_the_first(
    federation_on_each_store: Federation,
) -> None:
    """Regression: a second RegisterNode moved the key to a new lease; when that expired the
    province stayed unroutable while the real node's KeepAlive kept succeeding."""
    federation = federation_on_each_store
    stub = as_node(federation, "330000", "hz-3")
    first = await stub.RegisterNode(register("330000", "hz-3", "127.0.0.1:11"), timeout=5)
    second = await stub.RegisterNode(register("330000", "hz-3", "127.0.0.1:12"), timeout=5)
    error = await refused(
        stub.KeepAliveNode(gateway_pb2.KeepAliveNodeRequest(handle=first.handle), timeout=5),
        grpc.StatusCode.NOT_FOUND,
    )
    assert reason_of(error) is Reason.UNKNOWN_LEASE  # the old holder re-registers at once
    await stub.KeepAliveNode(gateway_pb2.KeepAliveNodeRequest(handle=second.handle), timeout=5)
    view = federation.gateway.view

    def routes() -> list[str]:
        return [n.endpoint for n in view.nodes("330000") if n.node_id == "hz-3"]

    # The view follows the store: it may show the first registration for a moment.
    await wait_for(lambda: routes() == ["127.0.0.1:12"], timeout=10, what="hz-3 at its new route")


# -- the registry: who may submit, who must have signed ------------------------------------------
async def test_a_province_cannot_upload_or_revoke_another_provinces_signing_certificate(
    federation_on_each_store: Federation,
) -> None:
    federation = federation_on_each_store
    sichuan = operator_registry(federation, "510000")
    zhejiang = ProvinceDir(federation.workdir / "330000")
    zj_dsc = pki.load_certificate_pem(zhejiang.dsc_cert.read_bytes())
    sc = ProvinceDir(federation.workdir / "510000")
    upload = province_statement(sc, statements.DscUpload(zj_dsc))
    error = await refused(
        federation.submit(upload, stub=sichuan), grpc.StatusCode.PERMISSION_DENIED
    )
    assert reason_of(error) is Reason.WRONG_PROVINCE
    kid = pki.kid(zj_dsc)
    revoke = province_statement(
        sc, statements.DscRevocation(kid, int(time.time()), "key_compromise")
    )
    error = await refused(
        federation.submit(revoke, stub=sichuan), grpc.StatusCode.PERMISSION_DENIED
    )
    assert reason_of(error) is Reason.WRONG_ROLE
    assert federation.gateway.view.signer(kid).revoked_at is None  # type: ignore[union-attr]


async def test_a_checkpoint_cannot_use_the_registry(federation: Federation) -> None:
    as_checkpoint = registry_pb2_grpc.RegistryStub(
        federation.channel(federation.checkpoint("510000"))
    )
    suspension = federation.signed(statements.Suspension("330000", "checkpoint"), "alice")
    await refused(
        as_checkpoint.Submit(registry_pb2.SubmitRequest(statement=suspension), timeout=5),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await refused(
        as_checkpoint.ListProvinces(registry_pb2.ListProvincesRequest(), timeout=5),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_an_operator_cannot_submit_a_coordinators_statement(federation: Federation) -> None:
    """Even a genuine coordinator statement may only be submitted by a coordinator."""
    operator = operator_registry(federation, "330000")
    suspension = federation.signed(statements.Suspension("510000", "relayed"), "alice")
    error = await refused(
        federation.submit(suspension, stub=operator), grpc.StatusCode.PERMISSION_DENIED
    )
    assert reason_of(error) is Reason.WRONG_ROLE


async def test_a_province_future_revocation_cannot_block_the_coordinators(
    federation_on_each_store: Federation,
) -> None:
    """Regression: a province revoked its own DSC with revoked_at far in the future; the
    write-once revocation key then refused the coordinators' revocation (ALREADY_EXISTS) and
    codes signed with it stayed VALID."""
    federation = federation_on_each_store
    issued = await federation.issue("330000")
    files = ProvinceDir(federation.workdir / "330000")
    dsc = pki.load_certificate_pem(files.dsc_cert.read_bytes())
    far = datetime.fromtimestamp(time.time() + 10 * 365 * 86400, tz=UTC)
    ca = load_ca(files)
    crl = pki.make_crl(ca.certificate, ca.private_key,
                       [pki.RevokedEntry(dsc.serial_number, far, x509.ReasonFlags.superseded)],
                       this_update=datetime.now(UTC), next_update=far, crl_number=90)  # fmt: skip
    await federation.submit(crl_statement(files, pki.crl_to_der(crl)),
                            stub=operator_registry(federation, "330000"))  # fmt: skip
    order = statements.DscRevocation(pki.kid(dsc), int(time.time()), "key_compromise")
    reply = await federation.submit(federation.signed(order, "carol"))
    assert "revoked" in reply.effect
    view = federation.gateway.view
    await wait_for(lambda: view.signer(pki.kid(dsc)).revoked_at, timeout=10, what="revocation")  # type: ignore[union-attr]
    answer = await verdict(federation, issued.token)
    assert (answer.verdict, answer.reason) == (common_pb2.INVALID, common_pb2.KEY_REVOKED)


async def test_a_replayed_or_backdated_statement_is_refused(
    federation_on_each_store: Federation,
) -> None:
    federation = federation_on_each_store
    suspension = federation.signed(statements.Suspension("510000", "incident"), "bob")
    await federation.submit(suspension)
    error = await refused(federation.submit(suspension), grpc.StatusCode.ALREADY_EXISTS)
    assert reason_of(error) is Reason.REPLAYED
    old = statements.sign(
        statements.make(statements.Suspension("330000", "old"), signed_at=int(time.time()) - 3600),
        federation.coordinators["bob"].private_key, federation.coordinators["bob"].certificate,
    )  # fmt: skip
    error = await refused(federation.submit(old), grpc.StatusCode.INVALID_ARGUMENT)
    assert reason_of(error) is Reason.BAD_TIME


async def test_a_single_coordinator_cannot_resume_or_onboard(federation: Federation) -> None:
    await federation.submit(federation.signed(statements.Suspension("460000", "incident"), "bob"))
    proposal = statements.Proposal(
        statements.Resume("460000", "alone"),
        federation.gateway.view.province("460000").version,  # type: ignore[union-attr]
        int(time.time()) + 600,
    )
    reply = await federation.submit(federation.signed(proposal, "alice"))
    assert "1 of 2" in reply.effect
    error = await refused(
        federation.submit(federation.signed(statements.Approval(reply.proposal_id), "alice")),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert reason_of(error) is Reason.ALREADY_EXISTS
    assert federation.gateway.view.province("460000").suspended  # type: ignore[union-attr]


# -- the relay checks who answers ------------------------------------------------------------------
async def test_the_relay_refuses_a_server_that_is_not_the_registered_node(
    federation: Federation,
) -> None:
    """Regression: the gateway talked to any registered endpoint whose certificate chained to
    the root. A route to 330000 pointing at a server with a 510000 node certificate (written
    straight into the store) must never yield a colour."""
    issued = await federation.issue("330000")
    await federation.nodes["330000"].stop()
    impostor_identity = federation.tls_dir("node", "510000", "n7")
    server = grpc.aio.server()
    node_pb2_grpc.add_ProvincialNodeServicer_to_server(_Impostor(), server)
    tls = TlsIdentity.load(impostor_identity)
    port = server.add_secure_port(
        "127.0.0.1:0",
        grpc.ssl_server_credentials([(tls.private_key, tls.certificate_chain)],
                                    root_certificates=tls.root, require_client_auth=True),
    )  # fmt: skip
    await server.start()
    try:
        store = open_registry_store(federation.gateway_url)
        lease = await store.grant_lease(30)
        route = NodeRoute("330000", "n1", f"127.0.0.1:{port}",
                          "spiffe://hcx/province/330000/node/n1", lease)  # fmt: skip
        await store.put(route_key("330000", "n1"), encode_route(route), lease=lease)
        view = federation.gateway.view
        await wait_for(lambda: [n.endpoint for n in view.nodes("330000")] == [route.endpoint],
                       timeout=10, what="the forged route")  # fmt: skip
        answer = await verdict(federation, issued.token)
        assert answer.verdict == common_pb2.VALID_OFFLINE  # never the impostor's RED
        assert _Impostor.asked == 0
        await store.close()
    finally:
        await server.stop(None)


class _Impostor(node_pb2_grpc.ProvincialNodeServicer):
    asked = 0

    async def GetStatusBatch(self, request, context):
        _Impostor.asked += 1
        return node_pb2.GetStatusBatchResponse(
            statuses=[common_pb2.CodeStatus(code_id=i, found=True, colour=common_pb2.RED)
                      for i in request.code_ids]
        )  # fmt: skip


# -- transport and callers -------------------------------------------------------------------------
async def test_no_client_certificate_is_refused(federation: Federation) -> None:
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
    federation: Federation,
    tmp_path,
) -> None:
    rogue_root = pki.create_root_ca()
    rogue_ca = pki.create_provincial_ca(rogue_root, province="330000", name="假浙江")
    rogue = issue_provincial_identity(
        rogue_ca, rogue_root.certificate, province="330000", kind="checkpoint", name="x",
        out=tmp_path / "rogue",
    )  # fmt: skip
    real_root = federation.root.certificate.public_bytes(Encoding.PEM)
    transport = Transport(TlsIdentity(rogue.private_key, rogue.certificate_chain, real_root))
    async with transport.aio_channel(federation.gateway_address) as channel:
        await refused(
            gateway_pb2_grpc.GatewayStub(channel).Verify(
                gateway_pb2.VerifyRequest(token="HCX1:x"), timeout=5
            ),
            grpc.StatusCode.UNAVAILABLE,
        )


async def test_a_revoked_node_certificate_is_refused_on_its_next_call(
    federation: Federation,
) -> None:
    identity = federation.identity("node", "330000", "hz-7")
    stub = gateway_pb2_grpc.GatewayStub(federation.channel(identity))
    reply = await stub.RegisterNode(register("330000", "hz-7"), timeout=5)
    serial = pki.load_certificate_pem(identity.tls.certificate_chain).serial_number  # type: ignore[union-attr]
    files = ProvinceDir(federation.workdir / "330000")
    crl = province_crl(files, revoke_serial=serial, reason="key_compromise")
    operator = operator_registry(federation, "330000")
    await federation.submit(crl_statement(files, crl), stub=operator)
    view = federation.gateway.view
    await wait_for(lambda: view.certificate_revoked(issuer_province="330000", serial=serial),
                   timeout=10, what="the gateway's view of the CRL")  # fmt: skip
    error = await refused(
        stub.KeepAliveNode(gateway_pb2.KeepAliveNodeRequest(handle=reply.handle), timeout=5),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert "revoked" in error.details() and reason_of(error) is Reason.CALLER_REVOKED
    await operator.ListProvinces(registry_pb2.ListProvincesRequest(), timeout=5)  # others fine


async def test_a_flooding_checkpoint_is_limited_while_another_is_served(tmp_path) -> None:
    national = tmp_path / "national"
    root, coordinators = make_national(national)
    config = gateway_config(
        national, f"sqlite:///{national}/registry.db",
        rate_limits={Role.CHECKPOINT: Limit(rate=20, burst=20), Role.COORDINATOR: Limit(1e4, 1e4)},
    )  # fmt: skip
    gateway = await start_gateway(config)
    try:
        address = f"127.0.0.1:{gateway.port}"
        async with Transport.mtls(national / "coordinators" / "alice").aio_channel(
            address
        ) as channel:
            registry = registry_pb2_grpc.RegistryStub(channel)
            await registry.Submit(registry_pb2.SubmitRequest(statement=genesis(root, coordinators)),
                                  timeout=5)  # fmt: skip
            ca = await _onboard_ca(registry, root, coordinators, tmp_path, "510000")
        await wait_for(lambda: gateway.view.province("510000"), timeout=10, what="510000")
        noisy, quiet = (
            Transport(issue_provincial_identity(ca, root.certificate, province="510000",
                                                kind="checkpoint", name=n, out=tmp_path / n))
            for n in ("noisy", "quiet")
        )  # fmt: skip
        async with noisy.aio_channel(address) as a, quiet.aio_channel(address) as b:
            flood, calm = gateway_pb2_grpc.GatewayStub(a), gateway_pb2_grpc.GatewayStub(b)
            request = gateway_pb2.VerifyRequest(token="HCX1:x")
            outcomes = await asyncio.gather(
                *(flood.Verify(request, timeout=5) for _ in range(100)), return_exceptions=True
            )
            limited = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
            assert limited and all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in limited)
            assert retry_delay(limited[0]) > 0 and reason_of(limited[0]) is Reason.RATE_LIMITED
            for _ in range(10):  # the quiet checkpoint's own bucket is untouched
                reply = await calm.Verify(request, timeout=5)
                assert reply.reason == common_pb2.BAD_ENCODING  # an answer, not a refusal
    finally:
        await gateway.stop()


async def _onboard_ca(registry, root, coordinators, workdir, province: str) -> pki.Authority:
    """Onboard a province's CA, 2 of 3 (its callers' certificates chain to it)."""
    from nodes.provincial.keys import init_province

    files = ProvinceDir(workdir / province)
    csr = init_province(files, province=province)
    ca = pki.sign_provincial_ca(root, csr, province=province, name="四川省")
    now = int(time.time())
    proposal = statements.Proposal(statements.Onboard(province, "四川省", ca), 0, now + 600)

    def signed(body, who):
        c = coordinators[who]
        return statements.sign(statements.make(body, signed_at=now), c.private_key, c.certificate)

    reply = await registry.Submit(
        registry_pb2.SubmitRequest(statement=signed(proposal, "alice")), timeout=5
    )
    await registry.Submit(registry_pb2.SubmitRequest(
        statement=signed(statements.Approval(reply.proposal_id), "bob")), timeout=5)  # fmt: skip
    return pki.Authority(ca, pki.load_private_key_pem(files.ca_key.read_bytes()))


def retry_delay(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToNanoseconds() / 1e9
    return 0.0


# -- audit ---------------------------------------------------------------------------------------
async def test_every_accepted_change_is_audited_with_who_submitted_and_who_signed(
    federation: Federation,
) -> None:
    """Regression: uploads, retirements and CRLs through production gateways left no audit
    entry. Every accepted change is a log leaf naming the verified submitter and the signer."""
    files = ProvinceDir(federation.workdir / "330000")
    operator = operator_registry(federation, "330000")
    dsc = pki.load_certificate_pem(files.dsc_cert.read_bytes())
    await federation.submit(
        province_statement(files, statements.Retirement(pki.kid(dsc), int(time.time()) + 3600)),
        stub=operator,
    )
    await federation.submit(crl_statement(files, province_crl(files)), stub=operator)
    log = await federation.registry_stub.AuditLog(registry_pb2.AuditLogRequest(), timeout=5)
    assert log.intact and all(e.accepted for e in log.entries)
    by_kind: dict[str, list[registry_pb2.AuditEntry]] = {}
    for e in log.entries:
        by_kind.setdefault(e.kind, []).append(e)
    alice = "spiffe://hcx/national/coordinator/alice"
    ops = "spiffe://hcx/province/330000/operator/ops"
    assert {e.actor for e in by_kind["propose"]} == {alice}
    assert {e.actor for e in by_kind["approve"]} == {alice}  # alice submits bob's approvals
    assert {e.signer for e in by_kind["approve"]} == {"spiffe://hcx/national/coordinator/bob"}
    for kind in ("upload-dsc", "retire-dsc", "crl"):
        mine = [e for e in by_kind[kind] if e.province == "330000"]
        assert mine and {e.actor for e in mine} == {ops}, kind
        assert {e.signer for e in mine} == {"spiffe://hcx/province/330000"}


async def test_a_revoked_checkpoint_is_refused_by_its_provinces_node(
    federation: Federation,
) -> None:
    """Nodes learn revocations from the signed trust list they pull from the gateway."""
    checkpoint = federation.identity("checkpoint", "330000", "gate-3")
    node = federation.node_stub("330000", checkpoint)
    issued = await federation.issue("330000")
    request = gateway_pb2.VerifyRequest(token=issued.token, checkpoint_province="330000")
    assert (await node.Verify(request, timeout=5)).verdict == common_pb2.VALID
    serial = pki.load_certificate_pem(checkpoint.tls.certificate_chain).serial_number  # type: ignore[union-attr]
    files = ProvinceDir(federation.workdir / "330000")
    crl = province_crl(files, revoke_serial=serial, reason="key_compromise")
    await federation.submit(crl_statement(files, crl), stub=operator_registry(federation, "330000"))

    async def refused_by_node() -> bool:
        try:
            await node.Verify(request, timeout=5)
        except grpc.aio.AioRpcError as e:
            return e.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in e.details()
        return False

    await wait_for(refused_by_node, timeout=15, what="the node refusing the revoked checkpoint")
