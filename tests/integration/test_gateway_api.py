"""VerifyBatch, VerifyStream, coalescing and /metrics through real gRPC servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import grpc
import pytest
from prometheus_client import REGISTRY, generate_latest

from healthcode.v1 import common_pb2, gateway_pb2
from nodes.grpc_edge import reason_of

from .conftest import Federation

pytestmark = pytest.mark.integration


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


async def test_batch_answers_every_token_in_order(federation: Federation) -> None:
    valid = [(await federation.issue(p)).token for p in ("330000", "510000", "460000")]
    tokens = [valid[0], "HCX1:not-a-code", valid[1], "", valid[2]]
    reply = await federation.gateway_stub.VerifyBatch(
        gateway_pb2.VerifyBatchRequest(tokens=tokens, checkpoint_province="510000"), timeout=5
    )
    got = [(r.verdict, r.issuer) for r in reply.results]
    assert got == [
        (common_pb2.VALID, "330000"),
        (common_pb2.INVALID, ""),
        (common_pb2.VALID, "510000"),
        (common_pb2.INVALID, ""),
        (common_pb2.VALID, "460000"),
    ]
    assert reply.results[1].reason == common_pb2.BAD_ENCODING


@pytest.mark.parametrize("count", [0, 1001])
async def test_batch_size_outside_1_to_1000_is_invalid_argument(
    federation: Federation, count: int
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await federation.gateway_stub.VerifyBatch(
            gateway_pb2.VerifyBatchRequest(tokens=["HCX1:x"] * count), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) is not None


async def test_stream_answers_match_requests_by_sequence(federation: Federation) -> None:
    tokens = {i: (await federation.issue("330000")).token for i in range(1, 21)}
    tokens[99] = "HCX1:garbage"

    async def requests():
        for sequence, token in tokens.items():
            yield gateway_pb2.VerifyStreamRequest(
                sequence=sequence, request=gateway_pb2.VerifyRequest(token=token)
            )

    answers = {}
    async for answer in federation.gateway_stub.VerifyStream(requests(), timeout=10):
        answers[answer.sequence] = answer.result.verdict
    assert set(answers) == set(tokens)
    assert answers.pop(99) == common_pb2.INVALID
    assert set(answers.values()) == {common_pb2.VALID}


async def test_concurrent_lookups_for_one_province_are_coalesced(federation: Federation) -> None:
    tokens = [(await federation.issue("460000")).token for _ in range(40)]
    calls_before = sample("hcx_gateway_relay_batch_size_count", province="460000")
    ids_before = sample("hcx_gateway_relay_batch_size_sum", province="460000")
    replies = await asyncio.gather(
        *(
            federation.gateway_stub.Verify(gateway_pb2.VerifyRequest(token=t), timeout=5)
            for t in tokens
        )
    )
    assert {r.verdict for r in replies} == {common_pb2.VALID}
    calls = sample("hcx_gateway_relay_batch_size_count", province="460000") - calls_before
    ids = sample("hcx_gateway_relay_batch_size_sum", province="460000") - ids_before
    assert ids == 40
    assert calls < 40  # several travellers shared a GetStatusBatch call


async def test_request_id_from_metadata_reaches_the_servers_logs(
    federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    from nodes.logging import REQUEST_ID, JsonFormatter

    seen: list[str] = []

    class Spy:
        def __call__(self, record: object) -> bool:
            seen.append(REQUEST_ID.get())
            return True

    caplog.set_level("INFO", logger="gateway.service")
    caplog.handler.addFilter(Spy())
    await federation.gateway_stub.Verify(
        gateway_pb2.VerifyRequest(token="HCX1:xyz"),
        metadata=(("x-request-id", "req-abc-123"),),
        timeout=5,
    )
    assert "req-abc-123" in seen
    line = JsonFormatter().format(caplog.records[-1])
    assert "张" not in line and "masked_name" not in line


async def test_metrics_pass_promtool(federation: Federation) -> None:
    issued = await federation.issue("330000")
    await federation.gateway_stub.VerifyBatch(
        gateway_pb2.VerifyBatchRequest(tokens=[issued.token, "HCX1:x"]), timeout=5
    )
    text = generate_latest(REGISTRY)
    for name in (
        b"hcx_gateway_verifications_total",
        b"hcx_gateway_verify_seconds_bucket",
        b"hcx_gateway_relay_batch_size_bucket",
        b"hcx_gateway_breaker_state",
        b"hcx_gateway_registry_revision",
        b"hcx_gateway_registry_age_seconds",
    ):
        assert name in text
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (Debian package prometheus); CI must install it")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
