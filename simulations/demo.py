"""The walking skeleton on one machine: a gateway and provincial nodes as separate processes.

Onboards each province (CA from a CSR signed by the root, 2 of 3 coordinators approving, a DSC
signed by the province's own CA), issues codes,
changes colours, verifies every code at checkpoints of the other provinces through the national
gateway, and prints what each checkpoint saw.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from healthcode.v1 import (
    common_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    node_pb2,
    node_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from nodes.provincial.issuance import with_check_character
from nodes.provincial.keys import ProvinceDir, new_signing_certificate
from simulations import national
from simulations.federation import wait_listed
from simulations.identities import LocalPki
from simulations.processes import ServerProcess, Supervisor
from simulations.provinces import all_provinces
from trust.base45 import b45decode, b45encode

DEFAULT_PROVINCES = ("330000", "510000", "460000")
SURNAMES = "王李张刘陈杨黄赵吴周"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平"


@dataclass(frozen=True)
class Row:
    issuer: str
    checkpoint: str
    expected: str
    verdict: str
    colour: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.expected == f"{self.verdict} {self.colour}".strip()


def colour_name(value: int) -> str:
    return common_pb2.Colour.Name(value) if value else ""


class Federation:
    """A gateway and one node per province, as real processes on 127.0.0.1."""

    def __init__(self, workdir: Path, provinces: Sequence[str], supervisor: Supervisor) -> None:
        self.workdir = workdir
        self.provinces = list(provinces)
        self.supervisor = supervisor
        self.gateway: ServerProcess | None = None
        self.nodes: dict[str, ServerProcess] = {}
        self.pki = LocalPki(workdir)

    def gateway_args(self) -> list[str]:
        """The national gateway: the log and trust-list keys, never the root key."""
        national = self.pki.national
        return [
            "gateway", "serve", "--registry", f"sqlite:///{national}/registry.db",
            "--root-cert", str(national / "root.pem"),
            "--listen", "127.0.0.1:0", *self.pki.gateway_flags("gw-1"),
            # One process: the benchmarks pin it to a core, and the scenarios kill it.
            "--workers", "1",
        ]  # fmt: skip

    def node_args(self, province: str, node_id: str) -> list[str]:
        assert self.gateway is not None
        return [
            "node", "serve", "--province", province, "--dir", str(self.workdir / province),
            "--gateway", self.gateway.address, "--node-id", node_id,
            "--tls-dir", str(self.pki.provincial_tls(province, "node", node_id)),
        ]  # fmt: skip

    def start(self) -> None:
        self.pki.create()
        self.supervisor.client = self.pki.coordinator()  # health checks over mTLS
        self.gateway = self.supervisor.start("gateway", self.gateway_args())
        national.submit_genesis(self.pki, self.gateway.address)
        for province in self.provinces:
            self._onboard(province)
            self.start_node(province)

    def start_node(self, province: str, *, node_id: str | None = None) -> ServerProcess:
        """Start (or restart) a replica of ``province``."""
        node_id = node_id or f"{province}-1"
        child = self.supervisor.start(
            f"node-{province}-{node_id}", self.node_args(province, node_id)
        )
        self.nodes[province] = child
        return child

    def _onboard(self, province: str) -> None:
        """The root signs the CA, 2 of 3 coordinators approve, the operator submits a DSC."""
        assert self.gateway is not None
        files = ProvinceDir(self.workdir / province)
        name = all_provinces()[province].name_zh
        national.onboard(self.pki, self.gateway.address, files, province=province, name=name)
        with self.pki.coordinator().sync_channel(self.gateway.address) as channel:
            wait_listed(registry_pb2_grpc.RegistryStub(channel), province)
        dsc = new_signing_certificate(files, province=province, name="dsc-1")
        national.upload(self.pki, self.gateway.address, files, province=province, certificate=dsc)


def random_holder(rng: random.Random, province: str) -> tuple[str, str]:
    first17 = (
        province[:6]
        + f"{rng.randint(1950, 2010)}{rng.randint(1, 12):02d}"
        + (f"{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}")
    )
    name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
    return with_check_character(first17), name


def run_demo(workdir: Path, provinces: Sequence[str], *, seed: int = 2020) -> list[Row]:
    """Start the federation, run the scripted checks, return one row per verification."""
    rng = random.Random(seed)
    with Supervisor(workdir) as supervisor:
        federation = Federation(workdir, provinces, supervisor)
        federation.start()
        return exercise(federation, rng)


def exercise(federation: Federation, rng: random.Random) -> list[Row]:
    assert federation.gateway is not None
    rows: list[Row] = []
    colours = [common_pb2.GREEN, common_pb2.YELLOW, common_pb2.RED]
    with contextlib.ExitStack() as channels:
        # Each province's checkpoint verifies with its own identity (mTLS).
        checkpoints = {
            p: gateway_pb2_grpc.GatewayStub(
                channels.enter_context(
                    federation.pki.checkpoint(p).sync_channel(federation.gateway.address)
                )
            )
            for p in federation.provinces
        }
        wait_routable(federation)
        for i, issuer in enumerate(federation.provinces):
            target = colours[i % len(colours)]
            issued = issue_and_colour(federation, issuer, target, rng)
            for checkpoint in federation.provinces:
                if checkpoint != issuer:
                    rows.append(
                        verify_row(
                            checkpoints[checkpoint], issued.token, issuer, checkpoint, target
                        )
                    )
            foreign = next(p for p in federation.provinces if p != issuer)
            rows.append(tampered_row(checkpoints[foreign], issued.token, issuer, foreign))
    return rows


def issue_and_colour(
    federation: Federation, issuer: str, target: int, rng: random.Random
) -> node_pb2.IssueCodeResponse:
    """The province's operator issues a code, then changes its colour after issuance."""
    address = federation.nodes[issuer].address
    with federation.pki.operator(issuer).sync_channel(address) as node_channel:
        node = node_pb2_grpc.ProvincialNodeStub(node_channel)
        id_number, name = random_holder(rng, issuer)
        issued = node.IssueCode(
            node_pb2.IssueCodeRequest(id_number=id_number, full_name=name), timeout=5
        )
        if target != common_pb2.GREEN:
            node.SetStatus(
                node_pb2.SetStatusRequest(
                    code_id=issued.code_id,
                    colour=common_pb2.Colour.Name(target),
                    reason="exposure event",
                    request_id=str(uuid.uuid4()),
                ),
                timeout=5,
            )
    return issued


def wait_routable(federation: Federation) -> None:
    """Wait until the gateway's view lists every province."""
    assert federation.gateway is not None
    with federation.pki.coordinator().sync_channel(federation.gateway.address) as channel:
        registry = registry_pb2_grpc.RegistryStub(channel)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            listed = registry.ListProvinces(registry_pb2.ListProvincesRequest(), timeout=5)
            if len(listed.provinces) == len(federation.provinces):
                return
            time.sleep(0.05)
    raise TimeoutError("provinces did not appear in the gateway's view")


def verify_row(
    gateway: gateway_pb2_grpc.GatewayStub, token: str, issuer: str, checkpoint: str, colour: int
) -> Row:
    reply = gateway.Verify(
        gateway_pb2.VerifyRequest(
            token=token, checkpoint_province=checkpoint, checkpoint_id=f"{checkpoint}-station"
        ),
        timeout=2,
    )
    return Row(
        issuer=issuer,
        checkpoint=checkpoint,
        expected=f"VALID {colour_name(colour)}",
        verdict=common_pb2.Verdict.Name(reply.verdict),
        colour=colour_name(reply.colour),
        reason=common_pb2.Reason.Name(reply.reason) if reply.reason else "",
    )


def tampered_row(
    gateway: gateway_pb2_grpc.GatewayStub, token: str, issuer: str, checkpoint: str
) -> Row:
    """A screenshot edited to another colour: the signature no longer verifies."""
    raw = bytearray(zlib.decompress(b45decode(token.removeprefix("HCX1:"))))
    raw[-10] ^= 0x01
    forged = "HCX1:" + b45encode(zlib.compress(bytes(raw), 0))  # the canonical level
    reply = gateway.Verify(
        gateway_pb2.VerifyRequest(token=forged, checkpoint_province=checkpoint), timeout=2
    )
    return Row(
        issuer=f"{issuer} (tampered)",
        checkpoint=checkpoint,
        expected="INVALID",
        verdict=common_pb2.Verdict.Name(reply.verdict),
        colour=colour_name(reply.colour),
        reason=common_pb2.Reason.Name(reply.reason) if reply.reason else "",
    )


def print_table(rows: Sequence[Row]) -> None:
    names = all_provinces()

    def label(code: str) -> str:
        base = code.split(" ")[0]
        info = names.get(base)
        return f"{code} {info.name_en}" if info else code

    header = f"{'code issuer':<30} {'checkpoint province':<22} {'verdict':<14} {'colour':<8} reason"
    print(header)
    print("-" * len(header))
    for r in rows:
        mark = "" if r.ok else "   <-- unexpected"
        print(
            f"{label(r.issuer):<30} {label(r.checkpoint):<22} {r.verdict:<14} "
            f"{r.colour:<8} {r.reason}{mark}"
        )
