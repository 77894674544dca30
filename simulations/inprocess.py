"""A real federation in one process, for tests and benchmarks: gRPC servers on 127.0.0.1:0,
mTLS (the test fixtures in tests/integration/conftest.py start it).

``federation`` gives a national gateway (embedded registry in a temporary folder) and one node
per province, each onboarded the way operators do it: the province makes its CA key and CSR,
the root signs the CA on the offline station, coordinator alice proposes the onboarding and bob
approves it (2 of 3), and the province's operator submits its DSC, signed by its own CA. The
gateway holds no root key: only the log and trust-list keys. Every link is mutual TLS with
identities from the federation's PKI (docs/security.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.main import GatewayConfig, RunningGateway, start_gateway
from gateway.verification import VerifyPolicy
from hcx.registry_client import load_authority
from healthcode.v1 import (
    gateway_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from nodes.credentials import (
    issue_national_identity,
    issue_provincial_identity,
    issue_service_signer,
)
from nodes.provincial.issuance import with_check_character
from nodes.provincial.keys import (
    ProvinceDir,
    crl_statement,
    init_province,
    load_ca,
    new_signing_certificate,
    province_crl,
    upload_statement,
)
from nodes.provincial.main import NodeConfig, shutdown, start_node
from nodes.tls import Transport
from trust import pki, statements
from trust.files import replace_file


@dataclass
class RunningNode:
    province: str
    config: NodeConfig
    parts: tuple  # (RunningServer, NodeRegistration, store)
    channel: grpc.aio.Channel  # the province's operator, connected to this node
    stub: node_pb2_grpc.ProvincialNodeStub

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.parts[0].port}"

    async def stop(self) -> None:
        await shutdown(*self.parts, drain_seconds=0.0)
        await self.channel.close()


@dataclass
class Federation:
    workdir: Path
    root: pki.Authority
    gateway: RunningGateway
    coordinator: Transport
    gateway_stub: gateway_pb2_grpc.GatewayStub
    registry_stub: registry_pb2_grpc.RegistryStub
    coordinators: dict[str, pki.Authority] = field(default_factory=dict)
    config: GatewayConfig | None = None
    nodes: dict[str, RunningNode] = field(default_factory=dict)
    etcd: object | None = None  # the tests.integration.etcd cluster, when the store is etcd
    extra_gateways: list[RunningGateway] = field(default_factory=list)
    _holders: int = 0
    _identities: dict[tuple[str, str, str], Transport] = field(default_factory=dict)
    _channels: list[grpc.aio.Channel] = field(default_factory=list)
    _checkpoints: dict[str, gateway_pb2_grpc.GatewayStub] = field(default_factory=dict)

    @property
    def gateway_address(self) -> str:
        return f"127.0.0.1:{self.gateway.port}"

    @property
    def gateway_url(self) -> str:
        """The registry store URL the gateway uses (to tamper with it as an attacker would)."""
        assert self.config is not None
        return self.config.registry

    async def add_gateway(self, **overrides: object) -> RunningGateway:
        """Another gateway on the same store (its own port), e.g. a fresh one or a second one."""
        assert self.config is not None
        values: dict[str, object] = {"listen": "127.0.0.1:0", "view_file": None}
        values.update(overrides)
        gateway = await start_gateway(replace(self.config, **values))  # type: ignore[arg-type]
        self.extra_gateways.append(gateway)
        return gateway

    async def restart_gateway(self) -> None:
        """Stop the gateway and start it again on the same port and store (a rolling restart)."""
        assert self.config is not None
        port = self.gateway.port
        await self.gateway.stop()
        self.config = replace(self.config, listen=f"127.0.0.1:{port}")
        self.gateway = await start_gateway(self.config)

    def tls_dir(self, kind: str, province: str, name: str) -> Path:
        """The --tls-dir of an identity issued by the province's own CA (made once)."""
        out = self.workdir / "tls" / province / f"{kind}-{name}"
        if not (out / "cert.pem").exists():
            issue_provincial_identity(
                load_ca(ProvinceDir(self.workdir / province)),
                self.root.certificate,
                province=province,
                kind=kind,
                name=name,
                out=out,
            )
        return out

    def identity(self, kind: str, province: str, name: str) -> Transport:
        """An mTLS identity issued by the province's own CA (made once, then reused)."""
        key = (kind, province, name)
        if key not in self._identities:
            self._identities[key] = Transport.mtls(self.tls_dir(kind, province, name))
        return self._identities[key]

    def operator(self, province: str) -> Transport:
        return self.identity("operator", province, "ops")

    def checkpoint(self, province: str, name: str = "station") -> Transport:
        return self.identity("checkpoint", province, name)

    def channel(self, transport: Transport, address: str | None = None) -> grpc.aio.Channel:
        """A channel (closed with the federation) to the gateway or to ``address``."""
        channel = transport.aio_channel(address or self.gateway_address)
        self._channels.append(channel)
        return channel

    def checkpoint_stub(self, province: str) -> gateway_pb2_grpc.GatewayStub:
        """The gateway as a checkpoint of ``province`` sees it (one channel, reused)."""
        if province not in self._checkpoints:
            channel = self.channel(self.checkpoint(province))
            self._checkpoints[province] = gateway_pb2_grpc.GatewayStub(channel)
        return self._checkpoints[province]

    def node_stub(self, province: str, transport: Transport) -> node_pb2_grpc.ProvincialNodeStub:
        """The province's running node, called with ``transport``'s identity."""
        channel = self.channel(transport, self.nodes[province].address)
        return node_pb2_grpc.ProvincialNodeStub(channel)

    def signed(self, body: statements.Body, signer: str | pki.Authority = "alice") -> bytes:
        """A statement signed now by a coordinator (by name) or by ``signer`` itself."""
        authority = self.coordinators[signer] if isinstance(signer, str) else signer
        statement = statements.make(body, signed_at=int(time.time()))
        return statements.sign(statement, authority.private_key, authority.certificate)

    async def submit(
        self, statement: bytes, *, stub: registry_pb2_grpc.RegistryStub | None = None
    ) -> registry_pb2.SubmitResponse:
        """Submit through the Registry API (as coordinator alice unless ``stub`` says else)."""
        reply: registry_pb2.SubmitResponse = await (stub or self.registry_stub).Submit(
            registry_pb2.SubmitRequest(statement=statement), timeout=5
        )
        return reply

    async def propose_and_approve(self, change: statements.Change, base: int) -> None:
        """alice proposes, bob approves: 2 of 3, the change applies."""
        body = statements.Proposal(change, base, int(time.time()) + 3600)
        proposed = await self.submit(self.signed(body, "alice"))
        await self.submit(self.signed(statements.Approval(proposed.proposal_id), "bob"))

    async def onboard(self, province: str, name: str = "测试省") -> ProvinceDir:
        files = ProvinceDir(self.workdir / province)
        csr = init_province(files, province=province)
        ca = pki.sign_provincial_ca(self.root, csr, province=province, name=name)
        replace_file(files.ca_cert, pki.certificate_to_pem(ca))
        replace_file(files.root / "root.pem", pki.certificate_to_pem(self.root.certificate))
        await self.propose_and_approve(statements.Onboard(province, name, ca), base=0)
        await self.wait_province(province)
        dsc = new_signing_certificate(files, province=province, name="dsc-1")
        await self.upload(province, dsc)
        return files

    async def upload(self, province: str, dsc: x509.Certificate) -> None:
        """The province's operator submits its DSC and a fresh CRL, both signed by the
        province's own CA (what `hcx node keys upload` does)."""
        operator = registry_pb2_grpc.RegistryStub(self.channel(self.operator(province)))
        files = ProvinceDir(self.workdir / province)
        await self.submit(upload_statement(files, dsc), stub=operator)
        await self.submit(crl_statement(files, province_crl(files)), stub=operator)

    def node_config(self, province: str, node_id: str) -> NodeConfig:
        return NodeConfig(
            province=province,
            directory=self.workdir / province,
            gateway=self.gateway_address,
            transport=self.identity("node", province, node_id),
            node_id=node_id,
            lease_ttl=3,
        )

    async def start_node(
        self, province: str, *, node_id: str = "n1", **overrides: object
    ) -> RunningNode:
        config = replace(self.node_config(province, node_id), **overrides)  # type: ignore[arg-type]
        parts = await start_node(config)
        channel = self.operator(province).aio_channel(f"127.0.0.1:{parts[0].port}")
        node = RunningNode(
            province, config, parts, channel, node_pb2_grpc.ProvincialNodeStub(channel)
        )
        self.nodes[province] = node
        await self.wait_routable(province)
        return node

    async def wait_province(self, province: str, timeout: float = 5.0) -> None:
        """Wait until the gateway's view knows the province (its callers are unknown before)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.gateway.view.province(province) is None:
            if loop.time() > deadline:
                raise TimeoutError(f"province {province} not in the gateway's view")
            await asyncio.sleep(0.02)

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

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.stop()
        for gateway in self.extra_gateways:
            await gateway.stop()
        for channel in self._channels:
            await channel.close()
        await self.gateway.stop()


COORDINATORS = ("alice", "bob", "carol")


def make_national(directory: Path) -> tuple[pki.Authority, dict[str, pki.Authority]]:
    """Root CA, trust-list and log signers, the gateway's identity and three coordinators
    (what `hcx registry init` makes, in its layout). The root key stays in the directory, the
    coordinators' offline station for the runbook's sign-ca; no server is ever given it."""
    directory.mkdir(parents=True)
    root = pki.create_root_ca()
    replace_file(directory / "root.pem", root.certificate.public_bytes(Encoding.PEM))
    pki.write_private_key(directory / "root-key.pem", root.private_key)
    issue_service_signer(root, kind="trust-list", out=directory / "trust-list")
    issue_service_signer(root, kind="log", out=directory / "log")
    issue_national_identity(root, kind="gateway", name="gw-1", out=directory / "gw-1")
    coordinators = {}
    for name in COORDINATORS:
        out = directory / "coordinators" / name
        issue_national_identity(root, kind="coordinator", name=name, out=out)
        coordinators[name] = load_authority(out)
    return root, coordinators


def genesis(root: pki.Authority, coordinators: dict[str, pki.Authority]) -> bytes:
    """Root metadata v1: this root, these coordinators, 2 of 3."""
    certs = tuple(c.certificate for c in coordinators.values())
    body = statements.RootMetadata(1, (root.certificate,), 2, certs)
    statement = statements.make(body, signed_at=int(time.time()))
    return statements.sign(statement, root.private_key, root.certificate)


def gateway_config(national: Path, registry: str, **overrides: object) -> GatewayConfig:
    """A gateway with the log and trust-list keys (and no root key)."""
    values: dict[str, object] = {
        "registry": registry,
        "root_cert": national / "root.pem",
        "trust_list_cert": national / "trust-list" / "cert.pem",
        "trust_list_key": national / "trust-list" / "key.pem",
        "log_cert": national / "log" / "cert.pem",
        "log_key": national / "log" / "key.pem",
        "policy": VerifyPolicy(relay_timeout=0.5, max_offline_age=300),
        "transport": Transport.mtls(national / "gw-1"),
    }
    values.update(overrides)
    return GatewayConfig(**values)  # type: ignore[arg-type]


async def start_federation(tmp_path: Path, registry: str | None = None) -> Federation:
    """A national gateway (mTLS) on ``registry`` (default: an embedded SQLite file), with the
    root's genesis submitted by coordinator alice; no provinces yet."""
    national = tmp_path / "national"
    root, coordinators = make_national(national)
    url = registry or f"sqlite:///{national}/registry.db"
    config = gateway_config(national, url, view_file=national / "view-gw-1.cbor")
    gateway = await start_gateway(config)
    coordinator = Transport.mtls(national / "coordinators" / "alice")
    channel = coordinator.aio_channel(f"127.0.0.1:{gateway.port}")
    federation = Federation(
        workdir=tmp_path,
        root=root,
        gateway=gateway,
        coordinator=coordinator,
        gateway_stub=gateway_pb2_grpc.GatewayStub(channel),
        registry_stub=registry_pb2_grpc.RegistryStub(channel),
        coordinators=coordinators,
        config=config,
        _channels=[channel],
    )
    await federation.submit(genesis(root, coordinators))
    return federation
