"""Fixtures that start a real federation in this process: gRPC servers on 127.0.0.1:0.

``federation`` gives a national gateway (embedded registry in a temporary folder) and one node
per province, each onboarded the way an operator would: CA from a CSR, DSC signed by the
province's own CA and uploaded through the Registry API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.main import GatewayConfig, RunningGateway, start_gateway
from gateway.verification import VerifyPolicy
from healthcode.v1 import (
    gateway_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from nodes.provincial.issuance import with_check_character
from nodes.provincial.keys import ProvinceDir, init_province, new_signing_certificate, write_public
from nodes.provincial.main import NodeConfig, start_node
from nodes.tls import Transport
from trust import pki

pytestmark = pytest.mark.integration


@dataclass
class RunningNode:
    province: str
    config: NodeConfig
    parts: tuple  # (RunningServer, NodeRegistration, store)
    channel: grpc.aio.Channel
    stub: node_pb2_grpc.ProvincialNodeStub

    async def stop(self) -> None:
        server, registration, store = self.parts
        await registration.stop()
        await server.server.stop(grace=0.5)
        await self.channel.close()
        store.close()


@dataclass
class Federation:
    workdir: Path
    root: pki.Authority
    gateway: RunningGateway
    gateway_channel: grpc.aio.Channel
    gateway_stub: gateway_pb2_grpc.GatewayStub
    registry_stub: registry_pb2_grpc.RegistryStub
    nodes: dict[str, RunningNode] = field(default_factory=dict)
    _holders: int = 0

    async def onboard(self, province: str, name: str = "测试省") -> ProvinceDir:
        files = ProvinceDir(self.workdir / province)
        csr = init_province(files, province=province)
        reply = await self.registry_stub.OnboardProvince(
            registry_pb2.OnboardProvinceRequest(
                province=province, name=name, csr_pem=csr.public_bytes(Encoding.PEM)
            ),
            timeout=5,
        )
        write_public(files.ca_cert, reply.ca_certificate_pem)
        dsc = new_signing_certificate(files, province=province, name="dsc-1")
        await self.registry_stub.UploadSigningCertificate(
            registry_pb2.UploadSigningCertificateRequest(
                certificate_pem=dsc.public_bytes(Encoding.PEM)
            ),
            timeout=5,
        )
        return files

    async def start_node(self, province: str, *, node_id: str = "n1") -> RunningNode:
        config = NodeConfig(
            province=province,
            directory=self.workdir / province,
            gateway=f"127.0.0.1:{self.gateway.port}",
            node_id=node_id,
            lease_ttl=3,
        )
        parts = await start_node(config)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{parts[0].port}")
        node = RunningNode(
            province, config, parts, channel, node_pb2_grpc.ProvincialNodeStub(channel)
        )
        self.nodes[province] = node
        await self.wait_routable(province)
        return node

    async def wait_routable(self, province: str, timeout: float = 5.0) -> None:
        """Wait until the gateway's view has the province's signer and a node."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        view = self.gateway.view
        while loop.time() < deadline:
            if view.nodes(province) and any(s.province == province for s in view.signers()):
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"province {province} not routable")

    def holder(self, province: str) -> tuple[str, str]:
        self._holders += 1
        first17 = f"{province}1990{(self._holders % 12) + 1:02d}01{self._holders % 1000:03d}"
        return with_check_character(first17), "张三明"

    async def issue(self, province: str) -> node_pb2.IssueCodeResponse:
        id_number, name = self.holder(province)
        return await self.nodes[province].stub.IssueCode(
            node_pb2.IssueCodeRequest(id_number=id_number, full_name=name), timeout=5
        )


@pytest.fixture
async def empty_federation(tmp_path: Path) -> AsyncIterator[Federation]:
    """A national gateway with an embedded registry and no provinces yet."""
    national = tmp_path / "national"
    national.mkdir()
    root = pki.create_root_ca()
    pki.write_private_key(national / "root-key.pem", root.private_key)
    write_public(national / "root.pem", root.certificate.public_bytes(Encoding.PEM))
    gateway = await start_gateway(
        GatewayConfig(
            registry=f"sqlite:///{national}/registry.db",
            root_cert=national / "root.pem",
            root_key=national / "root-key.pem",
            policy=VerifyPolicy(relay_timeout=0.5, max_offline_age=300),
            transport=Transport.insecure_dev_only(),
        )
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")
    federation = Federation(
        workdir=tmp_path,
        root=root,
        gateway=gateway,
        gateway_channel=channel,
        gateway_stub=gateway_pb2_grpc.GatewayStub(channel),
        registry_stub=registry_pb2_grpc.RegistryStub(channel),
    )
    yield federation
    for node in federation.nodes.values():
        await node.stop()
    await channel.close()
    await gateway.stop()


@pytest.fixture
async def federation(empty_federation: Federation) -> Federation:
    """Zhejiang (330000), Sichuan (510000) and Hainan (460000), each with one node."""
    for province in ("330000", "510000", "460000"):
        await empty_federation.onboard(province)
        await empty_federation.start_node(province)
    return empty_federation
