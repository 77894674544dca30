"""A gateway and provincial nodes as real processes, tunable for fault tests, bench and soak."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.serialization import Encoding

from healthcode.v1 import node_pb2, node_pb2_grpc
from nodes.provincial.issuance import with_check_character
from nodes.provincial.keys import write_public
from simulations.demo import Federation
from simulations.processes import ServerProcess, Supervisor
from trust import pki


def free_port() -> int:
    """A port free on 127.0.0.1 right now (for a child's --metrics-port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(child: ServerProcess, cpus: set[int]) -> None:
    """Pin a child process to ``cpus`` where the OS allows it (benchmark placement)."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(child.process.pid, cpus)


class GatewayFederation(Federation):
    """Like the demo's federation, with gateway flags, a metrics port and restartable nodes."""

    def __init__(
        self,
        workdir: Path,
        provinces: Sequence[str],
        supervisor: Supervisor,
        *,
        gateway_args: Sequence[str] = (),
    ) -> None:
        super().__init__(workdir, provinces, supervisor)
        self.gateway_args = list(gateway_args)
        self.metrics_port = free_port()
        self._holders = 0

    def start(self) -> None:
        national = self.workdir / "national"
        national.mkdir(parents=True, exist_ok=True)
        root = pki.create_root_ca()
        pki.write_private_key(national / "root-key.pem", root.private_key)
        write_public(national / "root.pem", root.certificate.public_bytes(Encoding.PEM))
        self.gateway = self.supervisor.start(
            "gateway",
            [
                "gateway",
                "serve",
                f"--registry=sqlite:///{national}/registry.db",
                f"--root-cert={national / 'root.pem'}",
                f"--root-key={national / 'root-key.pem'}",
                "--listen=127.0.0.1:0",
                f"--metrics-port={self.metrics_port}",
                *self.gateway_args,
            ],
        )
        for province in self.provinces:
            self._onboard(province)
            self.start_node(province)

    def start_node(self, province: str, *, node_id: str | None = None) -> ServerProcess:
        """Start (or restart) a replica of ``province``; waits until the gateway routes to it."""
        assert self.gateway is not None
        node_id = node_id or f"{province}-1"
        child = self.supervisor.start(
            f"node-{province}-{node_id}",
            [
                "node",
                "serve",
                f"--province={province}",
                f"--dir={self.workdir / province}",
                f"--gateway={self.gateway.address}",
                f"--node-id={node_id}",
            ],
        )
        self.nodes[province] = child
        return child

    def issue(self, province: str, count: int) -> list[str]:
        """Issue ``count`` codes at the province's node; returns their tokens."""
        tokens = []
        with grpc.insecure_channel(self.nodes[province].address) as channel:
            stub = node_pb2_grpc.ProvincialNodeStub(channel)
            for _ in range(count):
                self._holders += 1
                n = self._holders
                first17 = f"{province}19{(n // 10000) % 100:02d}{n % 12 + 1:02d}{n % 28 + 1:02d}"
                first17 += f"{n % 1000:03d}"
                reply = stub.IssueCode(
                    node_pb2.IssueCodeRequest(
                        id_number=with_check_character(first17), full_name="张三明"
                    ),
                    timeout=10,
                )
                tokens.append(reply.token)
        return tokens

    def metrics_text(self) -> str:
        """The gateway's /metrics page."""
        import urllib.request

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return str(reply.read().decode())

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample's value from the gateway's /metrics, or None when absent."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        key = f"{name}{{{wanted}}}" if labels else name
        for line in self.metrics_text().splitlines():
            if line.startswith(key + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


def wait_until(predicate: object, *, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False
