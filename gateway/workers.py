"""One gateway on every core: N worker processes serving one port (SO_REUSEPORT).

A gateway process runs Python on one core at a time, so a 16-core host runs one gateway per
core. ``hcx gateway serve --workers N`` starts N workers, each a whole gateway (its own
verified view following the registry log, its own relay and coalescer) bound to the same port
with SO_REUSEPORT: the kernel spreads incoming connections over them. Each worker watches the
registry itself, so a revocation reaches every worker within the same bound as one process.

This parent process holds no key, serves no call, and does three things:

- it replaces a worker that exits (after a short back-off, so a worker that cannot start does
  not spin), while the others keep serving;
- it serves the workers' metrics as one ``/metrics`` page, each series labelled with its
  ``worker`` (a PromQL ``sum`` adds them up), plus ``hcx_gateway_workers`` (workers serving)
  and ``hcx_gateway_worker_restarts_total``; the workers are read in parallel with one
  deadline, and the merged page is kept for a second, so a scrape costs the workers little;
- it writes the port file once every worker serves, and on SIGTERM stops them all. Workers get
  SIGTERM if the parent dies, even by SIGKILL (PR_SET_PDEATHSIG), so no orphan keeps the port.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from trust.errors import Conflict

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # after the 1st, 2nd, ... consecutive failure
HEALTHY_AFTER_S = 10.0  # a worker that ran this long resets the back-off
SCRAPE_TIMEOUT_S = 2.0  # for all workers together
PAGE_TTL_S = 1.0  # a merged page is served again for this long


def default_workers() -> int:
    """One worker per core this process may run on: its CPU affinity, and the CPU quota of
    its cgroup when one is set (a container limited to 2 of 16 cores gets 2)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to read: the affinity decides
    return max(1, cores)


@dataclasses.dataclass
class _Worker:
    index: int
    process: BaseProcess | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0

    def files(self, state: Path) -> tuple[Path, Path]:
        return state / f"worker-{self.index}.port", state / f"worker-{self.index}.metrics"


class WorkerPool:
    """N gateway workers on one port, kept running; see the module docstring."""

    def __init__(self, config: Any, workers: int, state: Path) -> None:
        if workers < 1:
            raise ValueError("a gateway needs at least one worker")
        self._config = config
        self._state = state
        self._workers = [_Worker(i) for i in range(workers)]
        self._context = multiprocessing.get_context("spawn")
        self.stopping = threading.Event()  # set by a signal handler, or by stop()
        self._lock = threading.Lock()  # spawning and stopping do not interleave
        self._page: tuple[float, list[Metric]] = (0.0, [])
        self._page_lock = threading.Lock()
        self.port = 0

    # -- starting ---------------------------------------------------------------------------
    def start(self, *, timeout: float = 60.0) -> int | None:
        """Take the port, start every worker, wait until each serves; returns the port, or
        None when ``stopping`` was set meanwhile (a SIGTERM during start-up)."""
        self._state.mkdir(parents=True, exist_ok=True)
        holder = self._take_port()
        try:
            for worker in self._workers:
                self._spawn(worker)
            deadline = time.monotonic() + timeout
            while not all(self._serving(w) for w in self._workers):
                if self.stopping.wait(0.05):
                    return None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gateway workers did not all start within {timeout} s")
                for worker in self._workers:
                    if worker.process is not None and not worker.process.is_alive():
                        raise RuntimeError(f"gateway worker {worker.index} exited at start-up")
        finally:
            holder.close()
        return self.port

    def _take_port(self) -> socket.socket:
        """The port the workers will share, held by a socket bound to it (bound, not
        listening: it takes no connection). It is first bound *without* SO_REUSEPORT, so a
        port that anything else holds — another gateway pool included — is refused instead of
        silently shared; port 0 becomes one free port."""
        host, _, wanted = self._config.listen.rpartition(":")
        host = host.strip("[]")
        try:
            family, _, _, _, address = socket.getaddrinfo(
                host or None, int(wanted), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            probe = socket.socket(family, socket.SOCK_STREAM)
            holder = socket.socket(family, socket.SOCK_STREAM)
            try:
                probe.bind(address)
                port = probe.getsockname()[1]
                holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                probe.close()  # the holder takes its place at once
                holder.bind((address[0], port, *address[2:]))
            except OSError:
                holder.close()
                raise
            finally:
                probe.close()
        except OSError as e:  # a port in use, an address this host does not have
            raise Conflict(f"cannot listen on {self._config.listen}: {e.strerror}") from None
        self.port = port
        return holder

    def _spawn(self, worker: _Worker) -> None:
        with self._lock:
            if self.stopping.is_set():
                return  # stop() has begun: it would not see a worker started now
            self._spawn_locked(worker)

    def _spawn_locked(self, worker: _Worker) -> None:
        port_file, metrics_file = worker.files(self._state)
        for path in (port_file, metrics_file):
            path.unlink(missing_ok=True)
        config = dataclasses.replace(
            self._config,
            listen=f"{self._config.listen.rpartition(':')[0]}:{self.port}",
            port_file=port_file,
            metrics_port=None,
            reuse_port=True,
        )
        process = self._context.Process(
            target=_worker_main,
            args=(config, metrics_file, os.getpid()),
            name=f"hcx-gateway-worker-{worker.index}",
            daemon=False,
        )
        process.start()
        worker.process, worker.started_at = process, time.monotonic()

    def _serving(self, worker: _Worker) -> bool:
        port_file, metrics_file = worker.files(self._state)
        return port_file.exists() and metrics_file.exists()

    # -- keeping them running --------------------------------------------------------------
    def supervise(self) -> None:
        """Replace exited workers until ``stopping`` is set. Call it from the main thread:
        a worker gets its parent-death signal when the *thread* that started it ends."""
        while not self.stopping.wait(0.1):
            for worker in self._workers:
                try:
                    self._replace_if_exited(worker)
                except Exception:  # keep supervising the others; this one is tried again
                    log.exception("could not restart gateway worker %d", worker.index)

    def _replace_if_exited(self, worker: _Worker) -> None:
        process = worker.process
        if process is None or process.is_alive():
            return
        for path in worker.files(self._state):
            path.unlink(missing_ok=True)  # its old metrics port may be anybody's now
        ran = time.monotonic() - worker.started_at
        worker.failures = 0 if ran > HEALTHY_AFTER_S else worker.failures + 1
        delay = RESTART_BACKOFF_S[min(max(worker.failures - 1, 0), len(RESTART_BACKOFF_S) - 1)]
        log.warning(
            "gateway worker %d (pid %s) exited with %s after %.1f s; restarting in %.1f s",
            worker.index, process.pid, process.exitcode, ran, delay,
        )  # fmt: skip
        if self.stopping.wait(delay):
            return
        worker.restarts += 1
        self._spawn(worker)

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM every worker, wait ``grace`` seconds, then kill what is left."""
        with self._lock:  # no spawn runs now, and none starts after this
            self.stopping.set()
        processes = [w.process for w in self._workers if w.process is not None]
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process and w.process.pid]

    # -- one /metrics page -------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        """Every worker's families, each sample labelled with its worker, and the pool's;
        built at most once a second, whoever asks."""
        with self._page_lock:
            built_at, page = self._page
            if time.monotonic() - built_at > PAGE_TTL_S:
                page = list(self._merge())
                self._page = (time.monotonic(), page)
        yield from page

    def _merge(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        serving = 0
        with ThreadPoolExecutor(len(self._workers), thread_name_prefix="scrape") as pool:
            pages = list(pool.map(self._scrape, self._workers))
        for worker, text in zip(self._workers, pages, strict=True):
            if text is None:
                continue
            serving += 1
            for family in text_string_to_metric_families(text):
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                into.samples += [
                    Sample(s.name, {**s.labels, "worker": str(worker.index)}, s.value,
                           s.timestamp, s.exemplar)
                    for s in family.samples
                ]  # fmt: skip
        yield from merged.values()
        workers = GaugeMetricFamily(
            "hcx_gateway_workers", "Gateway worker processes serving /metrics (of --workers)."
        )
        workers.add_metric([], serving)
        yield workers
        restarts = CounterMetricFamily(
            "hcx_gateway_worker_restarts",
            "Gateway worker processes replaced after they exited, by worker.",
            labels=["worker"],
        )
        for worker in self._workers:
            restarts.add_metric([str(worker.index)], worker.restarts)
        yield restarts

    def _scrape(self, worker: _Worker) -> str | None:
        _, metrics_file = worker.files(self._state)
        try:
            port = int(metrics_file.read_text())
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as reply:
                return str(reply.read().decode())
        except (OSError, ValueError):
            return None  # not started yet, restarting, or gone: counted as not serving


def serve_metrics(pool: WorkerPool, port: int, host: str) -> int:
    """Serve the pool's merged /metrics on ``host:port``; returns the port."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(pool)  # a collector: it has collect()
    httpd, _thread = start_http_server(port, addr=host, registry=registry)
    return int(httpd.server_port)


def _worker_main(config: Any, metrics_file: Path, parent: int) -> None:
    """A worker: die with the parent, serve the gateway, publish its private metrics port."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the line above: do not linger
        return
    import asyncio

    from gateway.main import serve_worker

    asyncio.run(serve_worker(config, metrics_file))
