"""docs/operations.md runs as written (tests.integration.runbook), and does what it says.

Every procedure runs against a federation whose gateway holds the log and trust-list keys and
no root key: the root key is on the coordinators' station (the test directory), used only by
the commands that say so.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from healthcode.v1 import common_pb2, gateway_pb2
from nodes.provincial.keys import ProvinceDir
from simulations.inprocess import Federation
from tests.integration.postgres import postgres_dsn, postgres_server  # noqa: F401 (fixtures)
from tests.integration.runbook import Runbook, commands, section
from tests.support import wait_for
from trust import pki, statements
from trust.codeformat import decode_token
from trust.log import leaf_key
from trust.stores import open_registry_store

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


@pytest.fixture
async def runbook_on_etcd(
    federation_on_etcd3: Federation, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runbook]:
    monkeypatch.chdir(federation_on_etcd3.workdir)
    book = Runbook(federation_on_etcd3)
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

    await wait_for(signs_with_the_new_key, timeout=40, what="the running node on the new key")
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
    store = open_registry_store(federation.gateway_url)
    try:
        await store.delete(leaf_key(3))
    finally:
        await store.close()
    await wait_for(lambda: gateway.feed.reader.inconsistent, timeout=15, what="the deletion seen")
    await gateway.feed.flush()
    ran = await runbook.run(5, start="hcx registry repair")
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


async def test_5_an_etcd_backup_restored_keeps_every_revocation_and_codes_verify(
    federation_on_etcd3: Federation, runbook_on_etcd: Runbook
) -> None:
    """The snapshot is taken, then a key is revoked; all three members are restored from the
    older snapshot as the text says. The gateway sees a rollback and keeps the revocation;
    the repair re-appends what the snapshot lacks, and codes verify again."""
    federation, runbook = federation_on_etcd3, runbook_on_etcd
    good = (await federation.issue("510000")).token
    leaked = (await federation.issue("330000")).token
    ran = await runbook.run(5, until="etcdutl snapshot restore")
    assert (federation.workdir / "registry-snapshot.db").stat().st_size > 0
    assert "HASH" in ran[1].out and "TOTAL KEYS" in ran[1].out  # the status table

    kid = kid_of(federation, "330000")
    await federation.submit(
        federation.signed(statements.DscRevocation(kid, int(time.time()), "key_compromise"))
    )
    view = federation.gateway.view
    await wait_for(lambda: view.signer(kid).revoked_at, timeout=10, what="the revocation")  # type: ignore[union-attr]
    await federation.gateway.feed.flush()
    assert await verdict(federation, leaked) == (common_pb2.INVALID, common_pb2.KEY_REVOKED)

    cluster: Any = federation.etcd
    for index in range(len(cluster.members)):  # "stop every member, move its data aside"
        cluster.kill(index)
    await runbook.run(5, start="etcdutl snapshot restore", until="hcx registry repair")
    for index, member in enumerate(cluster.members):  # "start each on its restored directory"
        member.data_dir = federation.workdir / "etcd-restored" / member.name
        assert (member.data_dir / "member").is_dir()
        cluster.start(index, state="new")
    cluster.wait_healthy()

    gateway = federation.gateway
    await wait_for(lambda: gateway.feed.reader.inconsistent, timeout=30, what="the rollback seen")
    assert await verdict(federation, leaked) == (common_pb2.INVALID, common_pb2.KEY_REVOKED)
    ran = await runbook.run(5, start="hcx registry repair")
    assert "would restore" in ran[0].out and "restored" in ran[1].out
    await wait_for(lambda: gateway.feed.healthy, timeout=30, what="the gateway recovering")
    assert await verdict(federation, leaked) == (common_pb2.INVALID, common_pb2.KEY_REVOKED)
    await federation.wait_routable("510000", timeout=30)  # leases re-registered by the nodes
    assert await verdict(federation, good) == (common_pb2.VALID, common_pb2.REASON_UNSPECIFIED)


async def test_7_a_colour_change_is_seen_at_a_checkpoint_of_another_province(
    federation: Federation, runbook: Runbook
) -> None:
    ran = await runbook.run(7, until="hcx node set-status")
    code_id = re.match(r"code id ([0-9a-f]{32})  colour GREEN", ran[0].out)
    assert code_id, ran[0].out
    assert ran[1].out.startswith("VALID GREEN issuer 330000 holder 王*华"), ran[1].out
    runbook.variables = {"CODE_ID": code_id.group(1)}
    ran = await runbook.run(7, start="hcx node set-status")
    outputs = [r.out for r in ran]
    assert outputs[0].startswith("RED version 2"), outputs[0]
    assert outputs[1].startswith("VALID RED issuer 330000 holder 王*华"), outputs[1]
    assert outputs[2].startswith("GREEN version 3"), outputs[2]
    assert outputs[3].startswith("GREEN version 3 since "), outputs[3]
    assert outputs[4].startswith("VALID GREEN issuer 330000"), outputs[4]
    red = next(line for line in commands(section(7)) if "--colour RED" in line)
    again = await runbook.run_line(red)  # the operator retries the command: same request id
    assert again.out.startswith("GREEN version 3"), "a retried request id applies once"
