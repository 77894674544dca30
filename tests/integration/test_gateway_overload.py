"""A gateway flooded past its limits sheds early: RESOURCE_EXHAUSTED, never a timeout.

A real gateway process (``hcx gateway serve --workers 1``, mTLS, the federation's registry and
node) is sent far more work than it holds at once: batches whose codes add up to several times
its in-flight limit, and unary calls beside them, every caller sending again as soon as it is
answered, for a few seconds. Every call must end in a verdict or in RESOURCE_EXHAUSTED with
reason OVERLOADED and a RetryInfo delay; none may run out of its deadline or fail otherwise.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from simulations.inprocess import Federation
from tests.support import wait_until

pytestmark = pytest.mark.integration

FLOOD_S = 4.0
DEADLINE_S = 5.0
BATCH = 500
BATCH_CALLERS = 16  # 8,000 codes offered at once: four times the in-flight limit (2,048)
UNARY_CALLERS = 200


@pytest.fixture
def gateway(federation: Federation) -> Iterator[str]:
    national = federation.workdir / "national"
    port_file = federation.workdir / "flooded.port"
    log = federation.workdir / "flooded.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "hcx", "gateway", "serve", "--workers", "1",
         "--registry", federation.gateway_url, "--root-cert", str(national / "root.pem"),
         "--tls-dir", str(national / "gw-1"), "--listen", "127.0.0.1:0",
         "--rate-limit", "checkpoint=1000000", "--port-file", str(port_file)],
        cwd=federation.workdir, stderr=log.open("wb"),
    )  # fmt: skip
    try:
        wait_until(
            lambda: (port_file.exists() and port_file.read_text()) or process.poll() is not None,
            timeout=60, what="the gateway serving",
        )  # fmt: skip
        assert process.poll() is None, log.read_text()
        yield f"127.0.0.1:{port_file.read_text()}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def retry_delay(error: grpc.aio.AioRpcError) -> tuple[str, float | None]:
    """The reason and RetryInfo delay a refusal carries."""
    status = rpc_status.from_call(error)
    reason, delay = "", None
    for detail in status.details if status else ():
        info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(retry):
            delay = retry.retry_delay.ToNanoseconds() / 1e9
    return reason, delay


async def test_a_flood_is_shed_with_retry_info_and_admitted_calls_meet_their_deadline(
    federation: Federation, gateway: str
) -> None:
    tokens = [(await federation.issue("330000")).token for _ in range(20)]
    outcomes: Counter[str] = Counter()
    refusals: list[tuple[str, float | None]] = []
    slowest = 0.0
    until = time.monotonic() + FLOOD_S

    async def caller(stub: gateway_pb2_grpc.GatewayStub, batch: bool) -> None:
        nonlocal slowest
        while time.monotonic() < until:
            began = time.monotonic()
            try:
                if batch:
                    request = gateway_pb2.VerifyBatchRequest(
                        tokens=[tokens[i % len(tokens)] for i in range(BATCH)],
                        checkpoint_province="510000",
                    )
                    reply = await stub.VerifyBatch(request, timeout=DEADLINE_S)
                    outcomes.update(common_pb2.Verdict.Name(r.verdict) for r in reply.results)
                else:
                    one = gateway_pb2.VerifyRequest(token=tokens[0], checkpoint_province="510000")
                    answer = await stub.Verify(one, timeout=DEADLINE_S)
                    outcomes[common_pb2.Verdict.Name(answer.verdict)] += 1
                slowest = max(slowest, time.monotonic() - began)
            except grpc.aio.AioRpcError as e:
                outcomes[e.code().name] += 1
                if e.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refusals.append(retry_delay(e))
                    await asyncio.sleep(0.01)  # a polite checkpoint waits a moment

    async with federation.checkpoint("510000").aio_channel(gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        await stub.Verify(
            gateway_pb2.VerifyRequest(token=tokens[0], checkpoint_province="510000"),
            timeout=10, wait_for_ready=True,
        )  # fmt: skip
        await asyncio.gather(
            *(caller(stub, batch=True) for _ in range(BATCH_CALLERS)),
            *(caller(stub, batch=False) for _ in range(UNARY_CALLERS)),
        )
        after = await stub.Verify(
            gateway_pb2.VerifyRequest(token=tokens[0], checkpoint_province="510000"), timeout=10
        )

    print(f"flood outcomes {dict(outcomes)}; slowest admitted call {slowest * 1000:.0f} ms")
    assert refusals, f"nothing was shed: {dict(outcomes)}"
    assert set(refusals) <= {("OVERLOADED", 0.1)}, set(refusals)
    unexpected = set(outcomes) - {"VALID", "VALID_OFFLINE", "RESOURCE_EXHAUSTED"}
    assert not unexpected, dict(outcomes)  # no DEADLINE_EXCEEDED, no UNAVAILABLE, no INTERNAL
    assert outcomes["VALID"] > 0
    assert after.verdict == common_pb2.VALID  # and it serves normally once the flood ends


async def test_a_shed_stream_item_is_answered_and_the_stream_goes_on(
    federation: Federation,
) -> None:
    """At capacity a stream item gets its own INVALID/OVERLOADED answer (retry it); the
    stream is not torn down, so the items already admitted on it are not lost."""
    token = (await federation.issue("330000")).token
    admission = federation.gateway.admission
    assert admission is not None
    await admission.lag.stop()  # the test sets the lag itself
    queue: asyncio.Queue[gateway_pb2.VerifyStreamRequest | None] = asyncio.Queue()

    async def requests():
        while (item := await queue.get()) is not None:
            yield item

    def item(sequence: int) -> gateway_pb2.VerifyStreamRequest:
        return gateway_pb2.VerifyStreamRequest(
            sequence=sequence, request=gateway_pb2.VerifyRequest(token=token)
        )

    try:
        call = federation.gateway_stub.VerifyStream(requests(), timeout=10)
        admission.lag.seconds = 1.0  # far behind: batches and stream items are refused
        for sequence in (1, 2):
            await queue.put(item(sequence))
        shed = [await call.read(), await call.read()]
        admission.lag.seconds = 0.0  # caught up
        await queue.put(item(3))
        served = await call.read()
        await queue.put(None)
        assert await call.read() is grpc.aio.EOF
    finally:
        admission.lag.seconds = 0.0
        admission.lag.start()
    assert {(a.sequence, a.result.verdict, a.result.reason) for a in shed} == {
        (1, common_pb2.INVALID, common_pb2.OVERLOADED),
        (2, common_pb2.INVALID, common_pb2.OVERLOADED),
    }
    assert (served.sequence, served.result.verdict) == (3, common_pb2.VALID)
    assert admission.in_flight == 0
