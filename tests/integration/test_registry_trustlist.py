"""The trust list over gRPC, and the coordinators' and checkpoints' CLI, on both stores."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hcx.cli import main as hcx
from healthcode.v1 import gateway_pb2_grpc, trustlist_pb2
from nodes.provincial.keys import ProvinceDir
from simulations.inprocess import Federation
from tests.support import wait_for
from trust import pki, statements, trustlist
from trust.log import leaf_key
from trust.stores import open_registry_store


async def run_cli(*argv: str) -> int:
    """``hcx ...`` in a thread: its gRPC client blocks, the servers run on this loop."""
    return await asyncio.to_thread(hcx, list(argv))


def national(federation: Federation, who: str = "alice") -> str:
    return str(federation.workdir / "national" / "coordinators" / who)


async def test_watch_trust_list_streams_deltas_with_proofs_and_offline_checkpoints_verify(
    federation_on_each_store: Federation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    federation = federation_on_each_store
    issued = await federation.issue("330000")
    roots = [federation.root.certificate]
    channel = federation.channel(federation.checkpoint("510000"))
    stream = gateway_pb2_grpc.GatewayStub(channel).WatchTrustList(
        trustlist_pb2.WatchTrustListRequest(), timeout=10
    )
    full = trustlist.verify((await stream.read()).signed_list, roots, now=time.time())
    await federation.submit(federation.signed(statements.Suspension("330000", "drill"), "carol"))
    delta = trustlist.verify((await stream.read()).signed_list, roots, now=time.time())
    stream.cancel()
    assert delta.since == full.revision and delta.revision > full.revision and delta.proof
    merged = trustlist.merge(full, delta, roots).view(roots)
    assert merged.province("330000").suspended  # type: ignore[union-attr]
    version = federation.gateway.view.province("330000").version  # type: ignore[union-attr]
    await federation.propose_and_approve(statements.Resume("330000", "drill over"), base=version)

    tls = str(federation.tls_dir("checkpoint", "510000", "station"))
    list_file = tmp_path / "tl.cbor"
    fetch = ("checkpoint", "fetch", "--gateway", federation.gateway_address, "--tls-dir", tls,
             "--out", str(list_file))  # fmt: skip
    offline = ("checkpoint", "verify", "--offline", "--trust-list", str(list_file),
               "--tls-dir", tls, issued.token)  # fmt: skip
    await wait_for(lambda: not federation.gateway.view.province("330000").suspended,  # type: ignore[union-attr]
                   timeout=10, what="the resumption")  # fmt: skip
    assert await run_cli(*fetch) == 0
    capsys.readouterr()
    assert await run_cli(*offline) == 0
    assert capsys.readouterr().out.startswith("VALID_OFFLINE GREEN")

    old = list_file.read_bytes()
    files = ProvinceDir(federation.workdir / "330000")
    kid = pki.kid(pki.load_certificate_pem(files.dsc_cert.read_bytes()))
    order = statements.DscRevocation(kid, int(time.time()), "key_compromise")
    await federation.submit(federation.signed(order, "alice"))
    await wait_for(lambda: federation.gateway.view.signer(kid).revoked_at, timeout=10,  # type: ignore[union-attr]
                   what="the revocation")  # fmt: skip
    assert await run_cli(*fetch) == 0
    assert await run_cli(*offline) == 1
    assert "KEY_REVOKED" in capsys.readouterr().out
    list_file.write_bytes(old)  # the older list again: the checkpoint has seen a newer one
    assert await run_cli(*offline) == 2
    assert "rollback" in capsys.readouterr().err


async def test_coordinator_cli_suspend_two_of_three_resume_revoke_and_audit(
    federation_on_each_store: Federation, capsys: pytest.CaptureFixture[str]
) -> None:
    federation = federation_on_each_store
    gateway = ("--gateway", federation.gateway_address)
    alice, bob = (
        ("--tls-dir", national(federation, "alice")),
        ("--tls-dir", national(federation, "bob")),
    )
    assert await run_cli("registry", "suspend", *gateway, *alice, "--province", "510000",
                         "--why", "drill") == 0  # fmt: skip
    view = federation.gateway.view
    await wait_for(lambda: view.province("510000").suspended, timeout=10, what="suspended")  # type: ignore[union-attr]
    capsys.readouterr()
    assert await run_cli("registry", "resume", *gateway, *alice, "--province", "510000",
                         "--why", "drill over") == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "1 of 2 approvals" in printed
    proposal = printed.split("proposal id ")[1].split()[0]
    assert view.province("510000").suspended  # type: ignore[union-attr]  # one is not enough
    assert await run_cli("registry", "pending", *gateway, *bob) == 0
    assert proposal[:16] in capsys.readouterr().out
    assert await run_cli("registry", "approve", *gateway, *bob, "--proposal", proposal[:10]) == 0
    await wait_for(lambda: not view.province("510000").suspended, timeout=10, what="resumed")  # type: ignore[union-attr]

    ca_serial = view.province("330000").ca_certificate.serial_number  # type: ignore[union-attr]
    assert await run_cli("registry", "revoke", *gateway, *bob, "--serial", f"0x{ca_serial:x}",
                         "--reason", "ca_compromise") == 0  # fmt: skip
    await wait_for(lambda: view.certificate_revoked(issuer_province="330000", serial=1),
                   timeout=10, what="the CA revocation")  # fmt: skip

    capsys.readouterr()
    assert await run_cli("registry", "audit", *gateway, *alice, "--verify") == 0
    printed = capsys.readouterr().out
    assert "suspended by alice" in printed and "approved by alice, bob" in printed
    assert "revoked by bob" in printed and "coordinator/alice" in printed
    store = open_registry_store(federation.gateway_url)
    try:
        await store.delete(leaf_key(3))
    finally:
        await store.close()
    await wait_for(lambda: federation.gateway.feed.reader.inconsistent, timeout=10,
                   what="the deletion seen")  # fmt: skip
    assert await run_cli("registry", "audit", *gateway, *alice, "--verify") == 1
    assert "INCONSISTENT" in capsys.readouterr().err
