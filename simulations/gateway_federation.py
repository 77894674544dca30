"""A gateway and provincial nodes as real processes, tunable for fault tests, bench and soak."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from healthcode.v1 import node_pb2, node_pb2_grpc
from nodes.provincial.issuance import with_check_character
from simulations.demo import Federation
from simulations.processes import ServerProcess, Supervisor


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
    """Like the demo's federation (mTLS everywhere), with extra gateway flags and a metrics
    port; nodes restart with ``start_node``."""

    def __init__(
        self,
        workdir: Path,
        provinces: Sequence[str],
        supervisor: Supervisor,
        *,
        gateway_args: Sequence[str] = (),
        node_args: Sequence[str] = (),
    ) -> None:
        super().__init__(workdir, provinces, supervisor)
        self.gateway_args_ = list(gateway_args)
        self.node_args_ = list(node_args)
        self.metrics_port = free_port()
        self._holders = 0

    def gateway_args(self) -> list[str]:
        return [*super().gateway_args(), f"--metrics-port={self.metrics_port}", *self.gateway_args_]

    def node_args(self, province: str, node_id: str) -> list[str]:
        return [*super().node_args(province, node_id), *self.node_args_]

    def issue(self, province: str, count: int) -> list[str]:
        """Issue ``count`` codes at the province's node; returns their tokens."""
        tokens = []
        with self.pki.operator(province).sync_channel(self.nodes[province].address) as channel:
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
