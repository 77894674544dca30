"""A federation on one machine: gateways and provincial node replicas as real processes.

Every province is onboarded the way operators do it: the root signs its CA from its CSR on the
coordinators' station, coordinator alice proposes the onboarding and bob approves it (2 of 3),
and the province's operator submits a DSC signed by the province's own CA. No gateway holds the
root key; every registry change is a signed statement (simulations/national.py).
The gateways share one registry: the embedded SQLite file by default (several processes on one
host may share it; each polls its change log), or whatever ``--registry`` names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.feed import VIEW_HEALTH_SERVICE
from healthcode.v1 import registry_pb2, registry_pb2_grpc
from nodes.provincial.keys import ProvinceDir, new_signing_certificate
from simulations import national
from simulations.identities import LocalPki
from simulations.onbed import Layout
from simulations.processes import ServerProcess, Supervisor
from simulations.provinces import all_provinces
from trust import pki
from trust.log import LEAF_PREFIX, Leaf
from trust.statements import open_statement
from trust.stores import open_registry_store

START_WORKERS = 4  # parallel process start-ups: Python start-up is CPU-bound, 2 cores here


@dataclass(frozen=True)
class Topology:
    """What to start: provinces, replicas per province, gateways, registry store."""

    provinces: Sequence[str]
    replicas: int = 2
    gateways: int = 2
    registry: str | None = None  # None: the embedded SQLite file in the run's folder
    token_lifetime: int = 120
    stores: Mapping[str, str] = field(default_factory=dict)  # province -> --store URL
    relay_timeout: float = 0.5
    day_seconds: float = 86_400.0  # a quarantine day on the nodes' colour clocks
    # On a test bed, where every process has a host of its own:
    metrics_port: int | None = None  # every gateway and node serves /metrics on this port
    behind: Mapping[str, str] = field(default_factory=dict)  # node -> "proxy-ip:port" in front


@dataclass(frozen=True)
class SigningKey:
    """A province's DSC private key as the simulation holds it (to inject bad codes)."""

    province: str
    name: str
    kid: bytes
    private_key: pki.PrivateKey
    not_before: float
    not_after: float


@dataclass
class Federation:
    """The running processes and the key material of every province."""

    workdir: Path
    topology: Topology
    supervisor: Supervisor
    gateways: list[ServerProcess] = field(default_factory=list)
    nodes: dict[str, list[ServerProcess]] = field(default_factory=dict)
    keys: dict[str, list[SigningKey]] = field(default_factory=dict)
    # Restarts during the run happen on this one long-lived thread: a child dies with the
    # thread that started it (PR_SET_PDEATHSIG), so never start one from a short-lived thread.
    worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))
    identities: LocalPki | None = None  # every process and client speaks mTLS
    station: ServerProcess | None = None  # hcx checkpoint serve (the staff page)
    resident_web: ServerProcess | None = None  # hcx node web (the residents' page)
    layout: Layout | None = None  # on a test bed (hcx sim --netns): its hosts, etcd members

    @property
    def pki(self) -> LocalPki:
        if self.identities is None:
            self.identities = LocalPki(self.workdir)
        return self.identities

    def coordinator_channel(self, index: int = 0) -> grpc.Channel:
        return self.pki.coordinator().sync_channel(self.gateways[index].address)

    @property
    def registry_address(self) -> str:
        """Where coordinators and operators submit (any gateway holding the log key)."""
        return self.gateways[0].address

    @property
    def national(self) -> Path:
        return self.workdir / "national"

    @property
    def registry_url(self) -> str:
        return self.topology.registry or f"sqlite:///{self.national.resolve()}/registry.db"

    def province_dir(self, province: str) -> ProvinceDir:
        return ProvinceDir(self.workdir / province)

    def start(self) -> None:
        """Root CA, gateways, onboarding of every province, node replicas; waits for routes."""
        self.pki.create()
        self.supervisor.client = self.pki.coordinator()  # health checks over mTLS too
        for i in range(self.topology.gateways):
            name = f"gateway-{i}"
            self.gateways.append(
                self.supervisor.start(name, self.gateway_args(i, f"{self.host_of(name)}:0"))
            )
        national.submit_genesis(self.pki, self.registry_address)
        for province in self.topology.provinces:
            self._onboard(province)
        self._start_nodes()
        self.wait_routable()

    def host_of(self, child: str) -> str:
        """The address ``child`` runs on (loopback, or its host's on a test bed)."""
        return self.supervisor.placement(child)[0]

    def _names(self, child: str) -> list[str]:
        """The extra name a certificate needs: the host's address, unless loopback."""
        host = self.host_of(child)
        return [] if host == "127.0.0.1" else [host]

    def start_web_fronts(self) -> None:
        """The staff page of a checkpoint station in the second province (its scans are of
        other provinces' codes) and the residents' page of the first, over HTTPS on loopback."""
        first, second = self.topology.provinces[0], self.topology.provinces[-1]
        host = self.host_of("station")
        names = ["127.0.0.1", "localhost"] if host == "127.0.0.1" else [host]
        web_tls = self.pki.provincial_tls(second, "web", "station", names)
        gateways = ",".join(g.address for g in self.gateways)
        checkpoint = self.pki.provincial_tls(second, "checkpoint", "station")
        self.station = self.supervisor.start(
            "station",
            ["checkpoint", "serve", "--province", second, "--name", "sim-station",
             "--gateway", gateways, "--tls-dir", str(checkpoint),
             "--web-tls", str(web_tls), "--state-dir", str(self.station_dir),
             "--listen", f"{host}:0"],
            grpc_health=False,
        )  # fmt: skip
        residents_tls = self.pki.provincial_tls(first, "web", "residents", ["127.0.0.1"])
        self.resident_web = self.supervisor.start(
            "residents-web",
            ["node", "web", "--province", first,
             "--node", ",".join(c.address for c in self.nodes[first]),
             "--tls-dir", str(self.pki.provincial_tls(first, "operator", "ops")),
             "--web-tls", str(residents_tls), "--listen", "127.0.0.1:0"],
            grpc_health=False,
        )  # fmt: skip

    @property
    def station_dir(self) -> Path:
        return self.workdir / "station"

    def gateway_args(self, index: int, listen: str) -> list[str]:
        args = ["gateway", "serve", "--registry", self.registry_url]
        args += ["--root-cert", str(self.national / "root.pem"), "--listen", listen]
        args += ["--relay-timeout", str(self.topology.relay_timeout)]
        args += self.pki.gateway_flags(f"gw-{index + 1}", self._names(f"gateway-{index}"))
        args += ["--view-file", str(self.view_file(index))]
        args += self._metrics_flag()
        # One process per gateway: the simulation's figures are per gateway process, and its
        # scenario kills and freezes gateway processes (docs/simulation.md).
        args += ["--workers", "1"]
        return args

    def _metrics_flag(self) -> list[str]:
        port = self.topology.metrics_port
        return [] if port is None else ["--metrics-port", str(port)]

    def view_file(self, index: int) -> Path:
        return self.national / f"view-gw-{index + 1}.cbor"

    def node_args(self, province: str, replica: int) -> list[str]:
        """Replica r prefers gateway r mod G and fails over to the others (one gRPC target
        naming every gateway, pick-first): a lost gateway costs no registration."""
        count = len(self.gateways)
        order = [self.gateways[(replica + i) % count].address for i in range(count)]
        gateway = "ipv4:" + ",".join(order)
        node_id = f"{province}-{replica + 1}"
        child = f"node-{province}-{replica + 1}"
        host = self.host_of(child)
        tls = self.pki.provincial_tls(province, "node", node_id, self._names(child))
        # Behind a proxy (a slow or lossy link), the gateways call the proxy, which forwards
        # to the same port on the node's own host.
        advertised, _, port = self.topology.behind.get(child, f"{host}:0").rpartition(":")
        return [
            "node",
            "serve",
            "--listen",
            f"{host}:{port}",
            "--advertise-host",
            advertised,
            *self._metrics_flag(),
            "--tls-dir",
            str(tls),
            "--province",
            province,
            "--dir",
            str(self.workdir / province),
            "--gateway",
            gateway,
            "--node-id",
            node_id,
            "--token-lifetime",
            str(self.topology.token_lifetime),
            "--day-seconds",
            str(self.topology.day_seconds),
            "--colour-tick",
            str(min(1.0, self.topology.day_seconds / 20)),
            *(["--store", self.topology.stores[province]] if province in self.topology.stores
              else []),
        ]  # fmt: skip

    def _start_nodes(self) -> None:
        jobs = [(p, r) for r in range(self.topology.replicas) for p in self.topology.provinces]
        for i in range(0, len(jobs), START_WORKERS):  # a few at a time: start-up is CPU-bound
            wave = jobs[i : i + START_WORKERS]
            started = self.supervisor.start_many(
                [(f"node-{p}-{r + 1}", self.node_args(p, r)) for p, r in wave], timeout=60
            )
            for (province, _), child in zip(wave, started, strict=True):
                self.nodes.setdefault(province, []).append(child)

    def _onboard(self, province: str) -> None:
        files = self.province_dir(province)
        name = all_provinces()[province].name_zh
        national.onboard(self.pki, self.registry_address, files, province=province, name=name)
        with self.coordinator_channel() as channel:
            wait_listed(registry_pb2_grpc.RegistryStub(channel), province)
        self.new_key(province, "dsc-1")

    def new_key(self, province: str, name: str) -> SigningKey:
        """Make a DSC locally (signed by the province's CA) and submit it to the registry."""
        files = self.province_dir(province)
        certificate = new_signing_certificate(files, province=province, name=name)
        national.upload(self.pki, self.registry_address, files, province=province,
                        certificate=certificate)  # fmt: skip
        return self.load_current_key(province, name)

    def load_current_key(self, province: str, name: str) -> SigningKey:
        """Read the province's current DSC and key from its folder (after a rotation)."""
        files = self.province_dir(province)
        certificate = pki.load_certificate_pem(files.dsc_cert.read_bytes())
        key = SigningKey(
            province=province,
            name=name,
            kid=pki.kid(certificate),
            private_key=pki.load_private_key_pem(files.dsc_key.read_bytes()),
            not_before=certificate.not_valid_before_utc.timestamp(),
            not_after=certificate.not_valid_after_utc.timestamp(),
        )
        self.keys.setdefault(province, []).append(key)
        return key

    def revoke(self, kid: bytes, reason: str) -> None:
        """A coordinator revokes a signing certificate (one signature removes trust)."""
        national.revoke(self.pki, self.registry_address, kid, reason)

    def current_key(self, province: str) -> SigningKey:
        return self.keys[province][-1]

    def restart_node(self, province: str, replica: int) -> None:
        """Start a replica again (after a crash, or to load a new signing key)."""
        child = self.nodes[province][replica]
        self.nodes[province][replica] = self.supervisor.restart(child, timeout=60)

    def restart_gateway(self, index: int) -> None:
        """Start a gateway again on its old port, where nodes and checkpoints look for it."""
        child = self.gateways[index]
        self.gateways[index] = self.supervisor.restart(
            child, args=self.gateway_args(index, child.address), timeout=60
        )

    def delete_latest_revocation(self) -> int:
        return delete_latest_revocation(self)

    def view_health(self) -> list[int]:
        """Each gateway's health status for its registry view (SERVING = 1)."""
        statuses = []
        for index in range(len(self.gateways)):
            try:
                with self.coordinator_channel(index) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=VIEW_HEALTH_SERVICE), timeout=5
                    )
                statuses.append(int(reply.status))
            except grpc.RpcError:
                statuses.append(0)  # down (e.g. being restarted by another step)
        return statuses

    def gateways_refusing_the_store(self, timeout: float = 20.0) -> int:
        """Wait until every live gateway reports its registry view NOT_SERVING; how many do."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.view_health()
            refusing = sum(1 for s in statuses if s == health_pb2.HealthCheckResponse.NOT_SERVING)
            if refusing == len(statuses) or time.monotonic() > deadline:
                return refusing
            time.sleep(0.2)

    def wait_store_verified(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while any(s != health_pb2.HealthCheckResponse.SERVING for s in self.view_health()):
            if time.monotonic() > deadline:
                raise TimeoutError("a gateway still refuses the registry store after repair")
            time.sleep(0.2)

    def wait_routable(self, timeout: float = 60.0) -> None:
        """Every gateway lists every province and every signing key (shared registry works)."""
        expected = len(self.topology.provinces)
        keys = sum(len(v) for v in self.keys.values())
        deadline = time.monotonic() + timeout
        for index, gateway in enumerate(self.gateways):
            with self.coordinator_channel(index) as channel:
                registry = registry_pb2_grpc.RegistryStub(channel)
                while True:
                    provinces = registry.ListProvinces(
                        registry_pb2.ListProvincesRequest(), timeout=5
                    )
                    certs = registry.ListCertificates(
                        registry_pb2.ListCertificatesRequest(), timeout=5
                    )
                    if len(provinces.provinces) >= expected and len(certs.certificates) >= keys:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"{gateway.name} sees {len(provinces.provinces)}/{expected} provinces"
                            f" and {len(certs.certificates)}/{keys} signing keys"
                        )
                    time.sleep(0.05)


def delete_latest_revocation(federation: Federation) -> int:
    """Delete the newest revocation leaf from the store itself; its leaf index."""
    return asyncio.run(_delete_latest_revocation(federation.registry_url))


async def _delete_latest_revocation(url: str) -> int:
    store = open_registry_store(url)
    try:
        snapshot = await store.read_prefix(LEAF_PREFIX)
        for entry in reversed(snapshot.entries):
            leaf = Leaf.decode(entry.value)
            if open_statement(leaf.statement).statement.kind == "revoke-dsc":
                await store.delete(entry.key)
                return int(entry.key.removeprefix(LEAF_PREFIX))
    finally:
        await store.close()
    raise LookupError("no revocation in the registry log")


def wait_listed(
    registry: registry_pb2_grpc.RegistryStub, province: str, timeout: float = 10
) -> None:
    """Wait until the gateway's verified view lists ``province``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = registry.ListProvinces(registry_pb2.ListProvincesRequest(), timeout=5)
        if any(p.code == province for p in listed.provinces):
            return
        time.sleep(0.05)
    raise TimeoutError(f"province {province} not listed by the gateway")
