"""Standard tools work unchanged: gRPC server reflection and health on every hcx server.

The client is grpcio-reflection's own descriptor database (what grpcurl and grpcui use): it
lists the services, then describes each one and every message it names, from the server alone.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from nodes.tls import Transport
from tests.integration.federation import Federation

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
