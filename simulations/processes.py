"""Starts hcx servers as separate processes on 127.0.0.1 and guarantees they all stop."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_PR_SET_PDEATHSIG = 1


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

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class Supervisor:
    """Owns every child process it starts; ``stop_all`` (or leaving the ``with``) ends them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[ServerProcess] = []

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, args: Sequence[str], *, timeout: float = 20.0) -> ServerProcess:
        """Run ``hcx ARGS --port-file F``, wait for the port and for health SERVING."""
        port_file = self.workdir / f"{name}.port"
        port_file.unlink(missing_ok=True)
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "hcx", *args, "--port-file", str(port_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        child = ServerProcess(name, process, 0, log)
        self.children.append(child)
        child.port = self._wait_port(child, port_file, timeout)
        wait_serving(child.address, timeout=timeout, process=process)
        return child

    def _wait_port(self, child: ServerProcess, port_file: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited: see {child.log}")
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

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGCONT)  # a frozen child must be able to exit
                child.process.terminate()
        for child in self.children:
            self.stop(child)
        self.children.clear()


def wait_serving(
    address: str, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll grpc.health.v1 until the server says SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
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
