"""The node's Verify for local checkpoints, and the ``hcx node`` commands against a real node."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from hcx.cli import main as hcx
from healthcode.v1 import common_pb2, gateway_pb2, node_pb2_grpc
from nodes.provincial.issuance import with_check_character
from nodes.provincial.main import NodeConfig, shutdown, start_node
from simulations.inprocess import Federation

pytestmark = pytest.mark.integration

ID_NUMBER = with_check_character("33010219900101123")


def verify_request(token: str) -> gateway_pb2.VerifyRequest:
    return gateway_pb2.VerifyRequest(token=token, checkpoint_province="330000")


async def test_node_verifies_own_codes_and_forwards_foreign_ones(federation: Federation) -> None:
    own = await federation.issue("330000")
    foreign = await federation.issue("510000")
    node = federation.node_stub("330000", federation.checkpoint("330000"))
    local = await node.Verify(verify_request(own.token), timeout=5)
    assert (local.verdict, local.issuer, local.colour) == (common_pb2.VALID, "330000", 1)
    assert "own store" in local.message
    relayed = await node.Verify(verify_request(foreign.token), timeout=5)
    assert (relayed.verdict, relayed.issuer) == (common_pb2.VALID, "510000")
    assert "own store" not in relayed.message
    garbage = await node.Verify(verify_request("HCX1:???"), timeout=5)
    assert garbage.verdict == common_pb2.INVALID and garbage.reason == common_pb2.BAD_ENCODING


async def test_own_codes_verify_without_the_national_tier(federation: Federation) -> None:
    """A replica cut off from the gateway still checks its province's codes, on the trust list
    its province keeps (verified again at start); other provinces' codes fail."""
    own = await federation.issue("330000")
    foreign = await federation.issue("510000")
    config: NodeConfig = replace(
        federation.nodes["330000"].config,
        gateway="127.0.0.1:9",
        node_id="isolated",
        register_wait=0.1,
    )
    parts = await start_node(config)
    checkpoint = federation.checkpoint("330000")
    async with checkpoint.aio_channel(f"127.0.0.1:{parts[0].port}") as channel:
        stub = node_pb2_grpc.ProvincialNodeStub(channel)
        reply = await stub.Verify(verify_request(own.token), timeout=5)
        assert reply.verdict == common_pb2.VALID
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Verify(verify_request(foreign.token), timeout=2)
        assert caught.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
    await shutdown(*parts, drain_seconds=0)


async def run_cli(federation: Federation, *argv: str) -> int:
    """An ``hcx node`` command run by the province's operator (its mTLS identity)."""
    tls_dir = federation.tls_dir("operator", "330000", "ops")
    return await asyncio.to_thread(hcx, [*argv, "--tls-dir", str(tls_dir)])


async def test_cli_issue_with_qr_then_set_status_and_status(
    federation: Federation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"127.0.0.1:{federation.nodes['330000'].parts[0].port}"
    png = tmp_path / "code.png"
    assert (
        await run_cli(federation, "node", "issue", "--node", address, "--id-number", ID_NUMBER,
                      "--name", "张三明", "--png", str(png))
        == 0
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    code_id = lines[0].split()[2]
    assert lines[1].startswith("HCX1:")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert await run_cli(
        federation, "node", "set-status", "--node", address, "--code-id", code_id,
        "--colour", "red", "--reason", "confirmed case",
    ) == 0  # fmt: skip
    assert "RED version 2" in capsys.readouterr().out
    assert await run_cli(federation, "node", "status", "--node", address, "--code-id", code_id) == 0
    assert "RED version 2" in capsys.readouterr().out
    verdict = await federation.gateway_stub.Verify(verify_request(lines[1]), timeout=5)
    assert verdict.colour == common_pb2.RED


async def test_cli_refuses_a_bad_code_id(federation: Federation) -> None:
    address = f"127.0.0.1:{federation.nodes['330000'].parts[0].port}"
    with pytest.raises(SystemExit) as caught:
        await run_cli(federation, "node", "status", "--node", address, "--code-id", "abc")
    assert caught.value.code == 2
    unknown = "00" * 16
    assert await run_cli(federation, "node", "status", "--node", address, "--code-id", unknown) == 1
