"""docs/operations.md runs as written (tests.integration.runbook), and does what it says.

Every procedure runs against a federation whose gateway holds the log and trust-list keys and
no root key: the root key is on the coordinators' station (the test directory), used only by
the commands that say so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from healthcode.v1 import common_pb2, gateway_pb2
from nodes.provincial.keys import ProvinceDir
from tests.integration.federation import Federation
from tests.integration.postgres import postgres_dsn, postgres_server  # noqa: F401 (fixtures)
from tests.integration.runbook import Runbook
from tests.support import wait_for
from trust import pki
from trust.codeformat import decode_token
from trust.log import leaf_key
from trust.stores import open_store

pytestmark = pytest.mark.integration


@pytest.fixture
async def runbook(
    federation: Federation, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runbook]:
    monkeypatch.chdir(federation.workdir)  # relative files (code.png, code.txt) land here
    book = Runbook(federation)
    try:
        yield book
    finally:
        book.stop()


async def verdict(federation: Federation, token: str) -> tuple[int, int]:
    reply = await federation.gateway_stub.Verify(
        gateway_pb2.VerifyRequest(token=token, checkpoint_province="510000"), timeout=5
    )
    return reply.verdict, reply.reason


def kid_of(federation: Federation, province: str) -> bytes:
    files = ProvinceDir(federation.workdir / province)
    return pki.kid(pki.load_certificate_pem(files.dsc_cert.read_bytes()))


async def test_1_onboarding_ends_with_a_cross_province_valid_code(
    federation: Federation,
    runbook: Runbook,
    postgres_dsn: str,  # noqa: F811
) -> None:
    runbook.postgres = postgres_dsn
    ran = await runbook.run(1, until="hcx node issue")
    approve = next(r for r in ran if r.argv[1:3] == ["registry", "approve"])
    assert "approved by alice, bob; province 440000 (广东省) onboarded" in approve.out
    listing = next(r for r in ran if r.argv[1:3] == ["registry", "list"])
    assert "440000  广东省  active" in listing.out
    view = federation.gateway.view
    await wait_for(lambda: len(view.nodes("440000")) == 2, timeout=30, what="two 440000 replicas")
    ran = await runbook.run(1, start="hcx node issue")
    verify = ran[-1]
    assert verify.out.startswith("VALID GREEN issuer 440000 holder 李*红"), verify.out


async def test_2_rotation_restarts_nothing(federation: Federation, runbook: Runbook) -> None:
    old = kid_of(federation, "330000")
    node = federation.nodes["330000"]
    await runbook.run(2)
    new = kid_of(federation, "330000")
    assert new != old

    async def signs_with_the_new_key() -> bool:
        return decode_token((await federation.issue("330000")).token).kid == new

    await wait_for(signs_with_the_new_key, timeout=20, what="the running node on the new key")
    assert federation.nodes["330000"] is node  # the same running node: nothing restarted
    signer = federation.gateway.view.signer(old)
    assert signer is not None and signer.retired_at is not None


async def test_3_key_compromise_from_the_coordinators_stations(
    federation: Federation, runbook: Runbook
) -> None:
    """Revoke a DSC, a TLS certificate and a provincial CA; onboard a replacement CA 2 of 3 and
    resume the province, against a gateway that holds no root key."""
    leaked = (await federation.issue("330000")).token
    node_identity = federation.identity("node", "330000", "n1")
    serial = pki.load_certificate_pem(node_identity.tls.certificate_chain).serial_number  # type: ignore[union-attr]
    view = federation.gateway.view
    ca = view.province("330000").ca_certificate  # type: ignore[union-attr]
    runbook.variables = {
        "KID": kid_of(federation, "330000").hex(),
        "SERIAL": f"0x{serial:x}",
        "CA_SERIAL": f"0x{ca.serial_number:x}",
    }
    assert config_has_no_root_key(federation)
    await runbook.run(3, until="hcx registry suspend")
    assert await verdict(federation, leaked) == (common_pb2.INVALID, common_pb2.KEY_REVOKED)
    assert view.certificate_revoked(issuer_province="330000", serial=serial)
    other = (await federation.issue("510000")).token

    await runbook.run(3, start="hcx registry suspend", until="hcx registry revoke --serial")
    assert view.province("330000").suspended  # type: ignore[union-attr]
    ran = await runbook.run(3, start="hcx registry revoke --serial")
    province = view.province("330000")
    assert province is not None and not province.suspended
    assert province.ca_certificate != ca  # the replacement CA, approved 2 of 3
    new_dir = ProvinceDir(federation.workdir / "srv" / "330000-new")
    new_kid = pki.kid(pki.load_certificate_pem(new_dir.dsc_cert.read_bytes()))
    assert view.signer(new_kid) is not None and view.signer(new_kid).revoked_at is None  # type: ignore[union-attr]
    assert (await verdict(federation, leaked))[1] == common_pb2.KEY_REVOKED
    assert (await verdict(federation, other))[0] == common_pb2.VALID  # other provinces unharmed
    assert ran[-1].argv[1:3] == ["registry", "audit"] and ran[-1].code == 0


def config_has_no_root_key(federation: Federation) -> bool:
    assert federation.config is not None
    return not any("root-key" in str(v) for v in vars(federation.config).values())


async def test_4_a_new_gateway_starts_from_a_pinned_head_and_agrees(
    federation: Federation, runbook: Runbook
) -> None:
    token = (await federation.issue("330000")).token
    (federation.workdir / "code.txt").write_text(token + "\n")
    await runbook.run(4, until="hcx checkpoint verify")
    address = f"127.0.0.1:{runbook.extra_gateway_port}"
    await wait_for(lambda: _serving(federation, address), timeout=60, what="gateway-3 serving")
    ran = await runbook.run(4, start="hcx checkpoint verify")
    assert ran[-1].out.startswith("VALID GREEN issuer 330000"), ran[-1].out


def _serving(federation: Federation, address: str) -> bool:
    try:
        with federation.coordinator.sync_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="hcx.registry-view"), timeout=2
            )
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


async def test_5_repair_re_appends_a_deleted_entry(
    federation: Federation, runbook: Runbook
) -> None:
    token = (await federation.issue("330000")).token
    gateway = federation.gateway
    store = open_store(federation.gateway_url)
    try:
        await store.delete(leaf_key(3))
    finally:
        await store.close()
    await wait_for(lambda: gateway.feed.reader.inconsistent, timeout=15, what="the deletion seen")
    await gateway.feed.flush()
    ran = await runbook.run(5)
    assert (
        "would restore log/leaf/000000000003" in ran[0].out
        and "restored log/leaf/000000000003" in ran[1].out
    )
    await wait_for(lambda: gateway.feed.healthy, timeout=15, what="the gateway recovering")
    assert (await verdict(federation, token))[0] == common_pb2.VALID


async def test_6_the_audit_log_reads_in_words_and_verifies(
    federation: Federation, runbook: Runbook
) -> None:
    ran = await runbook.run(6)
    assert "onboarded" in ran[0].out and "coordinator/alice" in ran[0].out
