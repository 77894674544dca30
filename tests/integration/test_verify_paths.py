"""Regressions of issue "One verification path", over real gRPC: per-item answers in streams,
the same request rules at the node and the gateway, and relay errors that are errors.
"""

from __future__ import annotations

import grpc
import pytest

from gateway.relay import StatusRelay
from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, node_pb2_grpc
from nodes.tls import TlsIdentity
from simulations.inprocess import Federation
from tests.support import wait_for

pytestmark = pytest.mark.integration


def request(
    token: str, *, province: str = "510000", checkpoint: str = "cd-east"
) -> gateway_pb2.VerifyRequest:
    return gateway_pb2.VerifyRequest(
        token=token, checkpoint_province=province, checkpoint_id=checkpoint
    )


async def test_one_bad_item_does_not_end_a_stream(federation: Federation) -> None:
    """Regression: an item with an invalid checkpoint_province ended the whole stream with
    INVALID_ARGUMENT after a dozen answers."""
    good = (await federation.issue("330000")).token
    items = [gateway_pb2.VerifyStreamRequest(sequence=i, request=request(good)) for i in range(12)]
    items.insert(
        5, gateway_pb2.VerifyStreamRequest(sequence=99, request=request(good, province="999999"))
    )
    answers = {}
    async for reply in federation.gateway_stub.VerifyStream(iter(items), timeout=10):
        answers[reply.sequence] = reply.result
    assert len(answers) == 13
    assert (answers[99].verdict, answers[99].reason) == (
        common_pb2.INVALID,
        common_pb2.INVALID_REQUEST,
    )
    assert all(answers[i].verdict == common_pb2.VALID for i in range(12))


@pytest.mark.parametrize(
    ("province", "checkpoint"),
    [
        pytest.param("999999", "cd-east", id="unknown province code"),
        pytest.param("51000", "cd-east", id="five digits"),
        pytest.param("510000", "cd\x00east", id="NUL in the checkpoint id"),
        pytest.param("510000", "x" * 1_000_000, id="1 MB checkpoint id"),
    ],
)
async def test_the_node_and_the_gateway_refuse_the_same_checkpoint_fields(
    federation: Federation, province: str, checkpoint: str
) -> None:
    token = (await federation.issue("330000")).token
    node = federation.node_stub("330000", federation.checkpoint("330000"))
    for stub in (federation.gateway_stub, node):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Verify(request(token, province=province, checkpoint=checkpoint), timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_empty_token_is_the_same_verdict_at_the_node_and_the_gateway(
    federation: Federation,
) -> None:
    """Regression: an empty token was INVALID at the gateway and INVALID_ARGUMENT at the node."""
    node = federation.node_stub("330000", federation.checkpoint("330000"))
    for stub in (federation.gateway_stub, node):
        reply = await stub.Verify(request("", province="330000"), timeout=5)
        assert (reply.verdict, reply.reason) == (common_pb2.INVALID, common_pb2.BAD_ENCODING)


async def test_a_bug_in_the_relay_is_an_error_never_offline(
    federation: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: gateway/relay.py turned any exception, a TypeError included, into
    'issuer unavailable', which could end as VALID_OFFLINE."""
    token = (await federation.issue("330000")).token

    async def broken(self: StatusRelay, *args: object, **kwargs: object) -> object:
        raise TypeError("a bug in the relay")

    monkeypatch.setattr(StatusRelay, "statuses", broken)
    unary = await federation.gateway_stub.Verify(request(token), timeout=5)
    batch = await federation.gateway_stub.VerifyBatch(
        gateway_pb2.VerifyBatchRequest(tokens=[token] * 3, checkpoint_province="510000"), timeout=5
    )
    for reply in (unary, *batch.results):
        assert (reply.verdict, reply.reason) == (common_pb2.INVALID, common_pb2.INTERNAL_ERROR)


async def test_a_node_refusing_the_lookup_is_an_error_never_offline(
    federation: Federation,
) -> None:
    """A node that answers the status look-up with a refusal (here PERMISSION_DENIED) did
    answer: the checkpoint gets an error to retry, not the colour at issuance."""
    token = (await federation.issue("330000")).token
    await federation.nodes["330000"].stop()
    tls = TlsIdentity.load(federation.tls_dir("node", "330000", "n9"))  # a genuine 330000 node
    server = grpc.aio.server()
    node_pb2_grpc.add_ProvincialNodeServicer_to_server(_Refusing(), server)
    port = server.add_secure_port(
        "127.0.0.1:0",
        grpc.ssl_server_credentials([(tls.private_key, tls.certificate_chain)],
                                    root_certificates=tls.root, require_client_auth=True),
    )  # fmt: skip
    await server.start()
    try:
        stub = gateway_pb2_grpc.GatewayStub(
            federation.channel(federation.identity("node", "330000", "n9"))
        )
        registration = gateway_pb2.RegisterNodeRequest(
            province="330000", node_id="n9", endpoint=f"127.0.0.1:{port}", ttl_seconds=30
        )
        await stub.RegisterNode(registration, timeout=5)
        view = federation.gateway.view
        await wait_for(lambda: [n.node_id for n in view.nodes("330000")] == ["n9"], timeout=10,
                       what="the refusing node routed")  # fmt: skip
        reply = await federation.gateway_stub.Verify(request(token), timeout=5)
        assert (reply.verdict, reply.reason) == (common_pb2.INVALID, common_pb2.INTERNAL_ERROR)
    finally:
        await server.stop(None)


class _Refusing(node_pb2_grpc.ProvincialNodeServicer):
    async def GetStatusBatch(self, request, context):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not today")
