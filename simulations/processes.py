"""Starts hcx servers as separate processes on 127.0.0.1 and guarantees they all stop."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nodes.tls import Transport

_PR_SET_PDEATHSIG = 1
# setpriv (util-linux) sets the parent-death signal and execs: no Python code runs between fork
# and exec. A preexec_fn does, and in a parent whose gRPC threads are busy that child can crash
# (SIGSEGV) before exec, so preexec_fn is only the fallback where setpriv is missing.
_SETPRIV = shutil.which("setpriv")


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the supervisor dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ServerProcess:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    args: tuple[str, ...] = ()  # what ``Supervisor.restart`` runs again
    host: str = "127.0.0.1"  # its address (a network namespace's, on a test bed)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


Placement = Callable[[str], tuple[str, list[str]]]  # child name -> (host, command prefix)


def on_loopback(name: str) -> tuple[str, list[str]]:
    return "127.0.0.1", []


class Supervisor:
    """Owns every child process it starts; ``stop_all`` (or leaving the ``with``) ends them."""

    def __init__(
        self, workdir: Path, *, client: Transport | None = None, placement: Placement = on_loopback
    ) -> None:
        self.workdir = workdir
        self.placement = placement  # where each child runs (netbed: its host's namespace)
        self.children: list[ServerProcess] = []
        # How health checks reach the children: an mTLS identity, or plain text (None) for
        # children started with --insecure-dev-only.
        self.client = client

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self, name: str, args: Sequence[str], *, timeout: float = 20.0, grpc_health: bool = True
    ) -> ServerProcess:
        """Run ``hcx ARGS --port-file F``, wait for the port and (a gRPC server) for health
        SERVING; a web front is ready once it wrote its port (it listens before it writes).

        The child is tied to the *calling thread* (PR_SET_PDEATHSIG fires when that thread
        ends): call this from a thread that outlives the child, e.g. the main thread.
        """
        child = self._spawn(name, args)
        if grpc_health:
            self._await_ready(child, timeout)
        else:
            child.port = self._wait_port(child, self.workdir / f"{name}.port", timeout)
        return child

    def start_many(
        self, jobs: Sequence[tuple[str, Sequence[str]]], *, timeout: float = 60.0
    ) -> list[ServerProcess]:
        """Start several children at once (they boot in parallel), then wait for all."""
        children = [self._spawn(name, args) for name, args in jobs]
        for child in children:
            self._await_ready(child, timeout)
        return children

    def _spawn(self, name: str, args: Sequence[str]) -> ServerProcess:
        port_file = self.workdir / f"{name}.port"
        port_file.unlink(missing_ok=True)
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:  # a restarted child appends to the same log
            host, prefix = self.placement(name)
            command = [sys.executable, "-m", "hcx", *args, "--port-file", str(port_file)]
            command = [*prefix, *command]
            if _SETPRIV:
                command = [_SETPRIV, "--pdeathsig", "TERM", "--", *command]
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=None if _SETPRIV else _die_with_parent,
            )
        child = ServerProcess(name, process, 0, log, tuple(args), host)
        self.children.append(child)
        return child

    def _await_ready(self, child: ServerProcess, timeout: float) -> None:
        child.port = self._wait_port(child, self.workdir / f"{child.name}.port", timeout)
        wait_serving(child.address, timeout=timeout, process=child.process, client=self.client)

    def _wait_port(self, child: ServerProcess, port_file: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with {child.process.returncode}: see {child.log}"
                )
            if port_file.exists():
                return int(port_file.read_text())
            time.sleep(0.05)
        raise TimeoutError(f"{child.name} did not start within {timeout} s: see {child.log}")

    def stop(self, child: ServerProcess, *, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
        if child.process.poll() is None:
            child.process.send_signal(sig)
            try:
                child.process.wait(grace)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()

    def kill(self, child: ServerProcess) -> None:
        """SIGKILL (a crash: no deregistration, no graceful drain) and reap it."""
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGCONT)  # a frozen child dies at once too
            child.process.kill()
            child.process.wait()

    def freeze(self, child: ServerProcess) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung server)."""
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGSTOP)

    def thaw(self, child: ServerProcess) -> None:
        """SIGCONT after ``freeze``."""
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGCONT)

    def restart(
        self, child: ServerProcess, *, args: Sequence[str] | None = None, timeout: float = 20.0
    ) -> ServerProcess:
        """Stop ``child`` if it still runs, then start it again (same name, same or new args)."""
        self.stop(child)
        if child in self.children:
            self.children.remove(child)
        return self.start(child.name, args if args is not None else child.args, timeout=timeout)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGCONT)  # a frozen child must be able to exit
                child.process.terminate()
        for child in self.children:
            self.stop(child)
        self.children.clear()


def wait_serving(
    address: str,
    *,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    client: Transport | None = None,
) -> None:
    """Poll grpc.health.v1 until the server says SERVING."""
    deadline = time.monotonic() + timeout
    transport = client or Transport.insecure_dev_only()
    with transport.sync_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"server at {address} exited with {process.returncode}")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.05)
    raise TimeoutError(f"{address} not SERVING within {timeout} s")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
