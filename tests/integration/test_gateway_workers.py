"""``hcx gateway serve --workers 2``: two gateway processes on one port, kept running.

A real worker pool (subprocesses, mTLS, the federation's registry) next to the test federation:
connections are spread over both workers, a coordinator's revocation reaches every worker, a
killed worker is replaced while the other keeps answering, /metrics is one page labelled by
worker, and SIGTERM stops them all.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from nodes.provincial.keys import ProvinceDir
from simulations.inprocess import Federation
from tests.integration.etcd import free_port
from tests.support import wait_for, wait_until
from trust import pki, statements

pytestmark = pytest.mark.integration


class Pool:
    def __init__(self, process: subprocess.Popen[bytes], port: int, metrics: int) -> None:
        self.process, self.port, self.metrics = process, port, metrics

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        children = []  # a replacement is the child of the supervising thread: every task
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                children += (task / "children").read_text().split()
            except OSError:
                continue  # the thread ended
        names = {}
        for child in children:
            try:
                names[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue  # it exited
        return [c for c, cmd in names.items() if b"spawn_main" in cmd]

    def page(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def sample(self, name: str, **labels: str) -> float:
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.page().splitlines():
            series, _, value = line.rpartition(" ")
            if series.startswith(name + "{") and all(
                f'{k}="{v}"' in series for k, v in labels.items()
            ):
                return float(value)
            if series == name and not want:
                return float(value)
        return 0.0


@pytest.fixture
def pool(federation: Federation) -> Iterator[Pool]:
    national = federation.workdir / "national"
    port_file = federation.workdir / "pool.port"
    metrics = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hcx", "gateway", "serve", "--workers", "2",
         "--registry", federation.gateway_url, "--root-cert", str(national / "root.pem"),
         "--tls-dir", str(national / "gw-1"), "--listen", "127.0.0.1:0",
         "--metrics-port", str(metrics), "--port-file", str(port_file)],
        cwd=federation.workdir, stderr=(federation.workdir / "pool.log").open("wb"),
    )  # fmt: skip
    try:
        wait_until(
            lambda: (port_file.exists() and port_file.read_text()) or process.poll() is not None,
            timeout=60, what="the worker pool serving",
        )  # fmt: skip
        assert process.poll() is None, (federation.workdir / "pool.log").read_text()
        yield Pool(process, int(port_file.read_text()), metrics)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


async def verdicts(federation: Federation, pool: Pool, token: str, calls: int) -> list[tuple]:
    """``calls`` verifications, each on a new connection (the kernel picks the worker)."""
    answers = []
    for _ in range(calls):
        async with federation.checkpoint("510000").aio_channel(pool.address) as channel:
            reply = await gateway_pb2_grpc.GatewayStub(channel).Verify(
                gateway_pb2.VerifyRequest(token=token, checkpoint_province="510000"),
                timeout=10, wait_for_ready=True,
            )  # fmt: skip
        answers.append((reply.verdict, reply.reason))
    return answers


def kid_of(federation: Federation, province: str) -> bytes:
    files = ProvinceDir(federation.workdir / province)
    return pki.kid(pki.load_certificate_pem(files.dsc_cert.read_bytes()))


async def test_two_workers_share_the_port_and_both_answer(
    federation: Federation, pool: Pool
) -> None:
    assert len(pool.workers()) == 2
    token = (await federation.issue("330000")).token
    answers = await verdicts(federation, pool, token, 24)
    assert set(answers) == {(common_pb2.VALID, common_pb2.REASON_UNSPECIFIED)}
    answered = {
        worker: pool.sample("hcx_gateway_verifications_total", worker=worker, verdict="VALID")
        for worker in ("0", "1")
    }
    assert all(count > 0 for count in answered.values()), answered  # 24 connections, 2 workers
    assert pool.sample("hcx_gateway_workers") == 2


async def test_a_revocation_reaches_every_worker(federation: Federation, pool: Pool) -> None:
    token = (await federation.issue("330000")).token
    kid = kid_of(federation, "330000")
    order = statements.DscRevocation(kid, int(time.time()), "key_compromise")
    await federation.submit(federation.signed(order, "alice"))

    async def all_refuse() -> bool:
        answers = await verdicts(federation, pool, token, 12)
        return set(answers) == {(common_pb2.INVALID, common_pb2.KEY_REVOKED)}

    await wait_for(all_refuse, timeout=30, what="every worker refusing the revoked key")
    for worker in ("0", "1"):
        assert pool.sample("hcx_gateway_verifications_total", worker=worker,
                           reason="KEY_REVOKED") > 0  # fmt: skip


async def test_a_killed_worker_is_replaced_and_the_other_keeps_serving(
    federation: Federation, pool: Pool
) -> None:
    token = (await federation.issue("330000")).token
    first, second = pool.workers()
    os.kill(first, signal.SIGKILL)
    answers = await verdicts(federation, pool, token, 10)  # while it is being replaced
    assert set(answers) == {(common_pb2.VALID, common_pb2.REASON_UNSPECIFIED)}
    wait_until(
        lambda: len(pool.workers()) == 2 and first not in pool.workers(),
        timeout=30, what="the killed worker replaced",
    )  # fmt: skip
    assert second in pool.workers()
    wait_until(lambda: pool.sample("hcx_gateway_workers") == 2, timeout=30, what="2 serving")
    assert pool.sample("hcx_gateway_worker_restarts_total") == 1
    assert set(await verdicts(federation, pool, token, 10)) == {
        (common_pb2.VALID, common_pb2.REASON_UNSPECIFIED)
    }


def test_a_port_in_use_is_refused_not_shared(federation: Federation, pool: Pool) -> None:
    """A second pool (SO_REUSEPORT too) on the first one's port would silently split the
    connections between two gateways: it is refused before any worker starts."""
    national = federation.workdir / "national"
    second = subprocess.run(
        [sys.executable, "-m", "hcx", "gateway", "serve", "--workers", "2",
         "--registry", federation.gateway_url, "--root-cert", str(national / "root.pem"),
         "--tls-dir", str(national / "gw-1"), "--listen", pool.address],
        cwd=federation.workdir, capture_output=True, timeout=60,
    )  # fmt: skip
    assert second.returncode != 0
    assert f"cannot listen on {pool.address}" in second.stderr.decode()
    assert len(pool.workers()) == 2


def test_sigterm_stops_every_worker(pool: Pool) -> None:
    workers = pool.workers()
    pool.process.send_signal(signal.SIGTERM)
    assert pool.process.wait(timeout=20) == 0
    for pid in workers:
        assert (
            not Path(f"/proc/{pid}").exists()
            or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()
        )
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", pool.port), timeout=2),
    ):
        pass  # nothing listens on the port any more
