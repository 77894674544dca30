"""VerifyBatch, VerifyStream, coalescing and /metrics through real gRPC servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import time
from datetime import UTC, datetime

import grpc
import pytest
from prometheus_client import REGISTRY, generate_latest

from healthcode.v1 import common_pb2, gateway_pb2, node_pb2
from nodes.grpc_edge import reason_of
from nodes.logging import JsonFormatter, code_ref
from nodes.provincial.issuance import Issuer
from nodes.provincial.keys import ProvinceDir, load_ca
from simulations.inprocess import Federation, RunningNode
from tests.support import require_tool, wait_for
from trust import pki
from trust.codeformat import id_tail, mask_name
from trust.verify import DEFAULT_MAX_OFFLINE_AGE_S

pytestmark = pytest.mark.integration

PROVINCE = "330000"
HOLDER_NAME = "欧阳晓东"
HOLDER_ID = "33010619780923009X"  # a Hangzhou ID number whose tail, 009X, is easy to spot


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


class WrittenLines(logging.Filter):
    """Every record as the servers would write it: the JSON line (formatted as it is emitted,
    while the call's request id is set) and the plain message of a console handler."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._json = JsonFormatter()

    def filter(self, record: logging.LogRecord) -> bool:
        self.lines.append(self._json.format(record) + "\n" + record.getMessage())
        return True

    def json_entries(self, message: str) -> list[dict[str, object]]:
        entries = [json.loads(line.split("\n", 1)[0]) for line in self.lines]
        return [e for e in entries if e["msg"] == message]


async def test_logs_name_a_code_by_its_hash_never_by_its_holder(
    federation: Federation, caplog: pytest.LogCaptureFixture
) -> None:
    """A real holder's code is issued and then refused with a logged verdict (TOKEN_TOO_OLD:
    its issuer is down and the code is older than the offline limit). No record of any server,
    at any level, carries the holder's name, masked name, ID number or ID tail; the verdict's
    record names the code by its hashed reference and carries the call's request id."""
    written = WrittenLines()
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(written)
    node = federation.nodes[PROVINCE]
    issued = await node.stub.IssueCode(
        node_pb2.IssueCodeRequest(id_number=HOLDER_ID, full_name=HOLDER_NAME), timeout=5
    )
    # The same holder's code (same code id), signed with a DSC valid since an hour ago, at a
    # moment past the offline limit (300 s) and within its lifetime.
    issuer = await aged_issuer(federation, node, seconds=DEFAULT_MAX_OFFLINE_AGE_S + 30)
    aged = issuer.issue(id_number=HOLDER_ID, full_name=HOLDER_NAME)
    assert aged.record.code_id == issued.code_id
    await federation.nodes.pop(PROVINCE).stop()

    reply = await federation.gateway_stub.Verify(
        gateway_pb2.VerifyRequest(token=aged.token),
        metadata=(("x-request-id", "req-abc-123"),),
        timeout=5,
    )

    assert (reply.verdict, reply.reason) == (common_pb2.INVALID, common_pb2.TOKEN_TOO_OLD)
    assert reply.masked_name == mask_name(HOLDER_NAME)  # the checkpoint is told; logs are not
    [logged] = written.json_entries("invalid code")
    assert logged["code"] == code_ref(issued.code_id)
    assert (logged["reason"], logged["request_id"]) == ("TOKEN_TOO_OLD", "req-abc-123")
    personal = {
        "full name": HOLDER_NAME,
        "given name": HOLDER_NAME[2:],
        "masked name": mask_name(HOLDER_NAME),
        "ID number": HOLDER_ID,
        "ID tail": id_tail(HOLDER_ID),
    }
    assert len(written.lines) > 1  # the issuance and the refusal were both logged about
    for what, value in personal.items():
        leaks = [line for line in written.lines if value in line]
        assert leaks == [], f"the holder's {what} is in the logs"


async def aged_issuer(federation: Federation, node: RunningNode, *, seconds: int) -> Issuer:
    """The province's issuer (holder key, store) with a clock ``seconds`` back, signing with a
    new DSC valid since before then, uploaded by the province's operator."""
    files = ProvinceDir(federation.workdir / PROVINCE)
    signed_at = time.time() - seconds
    key = pki.generate_private_key()
    dsc = pki.sign_dsc(
        load_ca(files),
        pki.make_csr(key, common_name=f"hcx province {PROVINCE} DSC aged"),
        province=PROVINCE,
        name="dsc-aged",
        not_before=datetime.fromtimestamp(signed_at - 3600, UTC),
    )
    await federation.upload(PROVINCE, dsc)
    kid = pki.kid(dsc)
    view = federation.gateway.view
    await wait_for(lambda: view.signer(kid), timeout=30, what=f"the gateway trusting {kid.hex()}")
    return Issuer(
        province=PROVINCE,
        signing_key=key,
        kid=kid,
        holder_key=files.holder_key.read_bytes(),
        store=node.parts[2],
        clock=lambda: signed_at,
        # 360 s: still unexpired, and no longer than verifiers allow (300 s + 60 s of margin).
        token_lifetime=DEFAULT_MAX_OFFLINE_AGE_S + 60,
    )


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
    promtool = require_tool("promtool", install="apt-get install prometheus")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
