"""Gateway throughput and latency against a bare relay, all in one run on loopback.

(a) baseline: client -> bare grpc.aio pass-through relay -> echo backend, the same message
    sizes as Verify (a VerifyRequest in, a VerifyResponse out);
(b) Verify through the gateway with the live status from a provincial node;
(c) VerifyBatch (100 codes a call) and VerifyStream (pipelined);
(d) offline verification (decode + ES256 + trust checks), one process per core, against bare
    ES256 verification (cryptography's verify over a prepared message and DER signature).

Besides throughput, each phase reports the CPU time the middle tier's process spent per item
(``/proc/PID/stat``, all its threads): on a shared, noisy machine CPU per item moves far less
than wall-clock rates. The offline phase reports CPU per check of its worker processes.

Placement (2 cores): the middle tier (relay or gateway) is pinned alone to CPU 1; the load
generator (this process) and the backend (echo or node) share CPU 0. Every phase uses the same
concurrency. ``python -m bench gateway [--seconds=S] [--concurrency=C]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from nodes.tls import Transport
from simulations.gateway_federation import GatewayFederation
from simulations.processes import Supervisor, wait_serving
from trust.codeformat import HEALTH_CODE_AAD, decode_token
from trust.cose import sig_structure
from trust.reader import LogReader
from trust.stores import open_registry_store
from trust.verify import check_code
from trust.view import TrustView

PROVINCE = "330000"
ECHO_METHOD = "/bench.Echo/Call"
GATEWAY_CPU, BACKEND_CPU = {1}, {0}


def _opt(argv: list[str], name: str, default: float) -> float:
    for a in argv:
        if a.startswith(f"--{name}="):
            return float(a.split("=", 1)[1])
    return default


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def pin_process(pid: int, cpus: set[int]) -> None:
    """Pin every thread of a running process to ``cpus``.

    ``sched_setaffinity(pid)`` moves only the main thread: gRPC's event-engine threads (socket
    and TLS work), already started in the gateway, the node and this process, would float to
    the other core, while the relay and echo, pinned before they start any thread, stay
    confined. Pinning every thread keeps the placement the same for baseline and gateway.
    """
    for _ in range(2):  # a thread started meanwhile inherits from its creator: go over twice
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):  # the thread may have ended
                os.sched_setaffinity(int(tid), cpus)


# -- baseline servers (run as separate processes: python -m bench.bench_gateway echo|relay) ----
def _identity(b: bytes) -> bytes:
    return b


async def _serve(handler: grpc.GenericRpcHandler, port_file: Path, tls: Transport) -> None:
    from grpc_health.v1 import health, health_pb2_grpc

    server = grpc.aio.server()
    server.add_generic_rpc_handlers([handler])
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = tls.add_port(server, "127.0.0.1:0")  # mTLS, like the gateway
    await server.start()
    port_file.write_text(str(port))
    await server.wait_for_termination()


def serve_echo(reply: bytes, tls: Transport, port_file: Path) -> None:
    """The backend: answers every call with a VerifyResponse-sized message."""

    async def call(request: bytes, context: object) -> bytes:
        return reply

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {"Call": grpc.unary_unary_rpc_method_handler(call, _identity, _identity)},
    )
    asyncio.run(_serve(handler, port_file, tls))


def serve_relay(backend: str, tls: Transport, port_file: Path) -> None:
    """The baseline: one backend call per request, bytes passed through, deadline propagated."""

    async def main() -> None:
        channel = tls.aio_channel(backend)
        forward = channel.unary_unary(ECHO_METHOD, _identity, _identity)

        async def call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return bytes(await forward(request, timeout=context.time_remaining()))

        handler = grpc.method_handlers_generic_handler(
            "bench.Echo",
            {"Call": grpc.unary_unary_rpc_method_handler(call, _identity, _identity)},
        )
        await _serve(handler, port_file, tls)

    asyncio.run(main())


def spawn(
    args: list[str], workdir: Path, name: str, cpus: set[int], client: Transport
) -> tuple[subprocess.Popen, str]:
    port_file = workdir / f"{name}.port"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_gateway", *args, str(port_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.sched_setaffinity(process.pid, cpus)
    deadline = time.monotonic() + 20
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.05)
    address = f"127.0.0.1:{port_file.read_text()}"
    wait_serving(address, timeout=10, client=client)
    return process, address


# -- load generation ----------------------------------------------------------------------------
async def closed_loop(
    call: Callable[[int], Awaitable[int]], *, concurrency: int, seconds: float
) -> dict[str, float]:
    """``concurrency`` workers calling back to back; items/s and latency percentiles."""
    latencies: list[float] = []
    items = 0
    errors = 0
    stop_at = time.monotonic() + seconds
    warm_until = time.monotonic() + min(1.0, seconds / 5)

    async def worker(w: int) -> None:
        nonlocal items, errors
        i = w
        while (now := time.monotonic()) < stop_at:
            try:
                n = await call(i)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            if now >= warm_until:
                latencies.append(time.monotonic() - now)
                items += n
            i += concurrency

    began = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    measured = time.monotonic() - max(began, warm_until)
    return {
        "items_per_s": items / measured,
        "calls_per_s": len(latencies) / measured,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": errors,
    }


async def run_baseline(
    client: Transport, address: str, request: bytes, conc: int, secs: float
) -> dict[str, float]:
    async with client.aio_channel(address) as channel:
        call = channel.unary_unary(ECHO_METHOD, _identity, _identity)

        async def one(i: int) -> int:
            await call(request, timeout=5)
            return 1

        return await closed_loop(one, concurrency=conc, seconds=secs)


async def run_unary(
    client: Transport, address: str, tokens: list[str], conc: int, secs: float
) -> dict[str, float]:
    async with client.aio_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        requests = [
            gateway_pb2.VerifyRequest(token=t, checkpoint_province="510000") for t in tokens
        ]
        bad = 0

        async def one(i: int) -> int:
            nonlocal bad
            reply = await stub.Verify(requests[i % len(requests)], timeout=5)
            bad += reply.verdict != common_pb2.VALID
            return 1

        result = await closed_loop(one, concurrency=conc, seconds=secs)
        result["not_valid"] = bad
        return result


async def run_batch(
    client: Transport, address: str, tokens: list[str], conc: int, secs: float, size: int
) -> dict[str, float]:
    async with client.aio_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        batches = [
            gateway_pb2.VerifyBatchRequest(tokens=tokens[i : i + size])
            for i in range(0, len(tokens) - size + 1, size)
        ]

        async def one(i: int) -> int:
            reply = await stub.VerifyBatch(batches[i % len(batches)], timeout=10)
            return len(reply.results)

        return await closed_loop(one, concurrency=conc, seconds=secs)


async def run_stream(
    client: Transport, address: str, tokens: list[str], conc: int, secs: float, window: int = 100
) -> dict[str, float]:
    """``conc`` streams, each keeping ``window`` requests outstanding."""
    answered = 0
    stop_at = time.monotonic() + secs

    async def one_stream(s: int) -> None:
        nonlocal answered
        credit = asyncio.Semaphore(window)

        async def requests():
            i = s
            while time.monotonic() < stop_at:
                await credit.acquire()
                yield gateway_pb2.VerifyStreamRequest(
                    sequence=i, request=gateway_pb2.VerifyRequest(token=tokens[i % len(tokens)])
                )
                i += conc

        async with client.aio_channel(address) as channel:
            call = gateway_pb2_grpc.GatewayStub(channel).VerifyStream(requests(), timeout=secs + 10)
            async for _ in call:
                answered += 1
                credit.release()

    began = time.monotonic()
    await asyncio.gather(*(one_stream(s) for s in range(conc)))
    return {"items_per_s": answered / (time.monotonic() - began)}


# -- workers --------------------------------------------------------------------------------
def workers_scaling(
    federation: GatewayFederation,
    supervisor: Supervisor,
    client: Transport,
    tokens: list[str],
    conc: int,
    seconds: float,
) -> dict[str, float]:
    """VerifyBatch throughput of a gateway with 2 workers over the same gateway with 1, both
    free to use every core (batch mode: the load generator stays cheap next to them)."""
    assert federation.gateway is not None
    everywhere = set(range(os.cpu_count() or 1))
    pin_process(federation.gateway.process.pid, everywhere)
    base = [a for a in federation.gateway_args() if not a.startswith("--metrics-port")]
    two = supervisor.start("gateway-2-workers", [*base, "--workers", "2"], timeout=60)
    try:
        rates = {}
        for name, address in (("1", federation.gateway.address), ("2", two.address)):
            rates[name] = asyncio.run(run_batch(client, address, tokens, conc, seconds, 100))
    finally:
        two.process.terminate()
        two.process.wait(20)
    return {
        "one_worker_items_per_s": rates["1"]["items_per_s"],
        "two_workers_items_per_s": rates["2"]["items_per_s"],
    }


# -- offline ----------------------------------------------------------------------------------
def offline_rates(workdir: Path, tokens: list[str], seconds: float) -> dict[str, float]:
    """Full offline checks and bare ES256 verifications per second with one process per
    core (as ``--workers`` runs them: threads would share one interpreter lock for the
    Python half of a check), and the CPU time of each per item."""
    processes = os.cpu_count() or 1
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        args = [(str(workdir), tokens, seconds)] * processes
        done = list(pool.map(_offline_worker, args))
    rates = {k: sum(d[k][0] for d in done) / seconds for k in ("full", "es256")}
    cpu_us = {k: sum(d[k][1] for d in done) / sum(d[k][0] for d in done) * 1e6 for k in rates}
    return {
        "offline_verify_per_s": rates["full"],
        "es256_verify_per_s": rates["es256"],
        "offline_cpu_us_per_check": cpu_us["full"],
        "es256_cpu_us_per_verify": cpu_us["es256"],
    }


def _offline_worker(job: tuple[str, list[str], float]) -> dict[str, tuple[int, float]]:
    """One process: ``seconds`` of full checks, then ``seconds`` of bare ES256 verifications
    (cryptography's verify over a prepared message and DER signature), counted and timed."""
    workdir, tokens, seconds = job
    view = load_view(Path(workdir))
    decoded = [decode_token(t) for t in tokens]
    key = view.signer(decoded[0].kid).public_key  # type: ignore[union-attr]
    prepared = [
        (
            encode_dss_signature(
                int.from_bytes(d.sign1.signature[:32], "big"),
                int.from_bytes(d.sign1.signature[32:], "big"),
            ),
            sig_structure(d.sign1.protected_bytes, HEALTH_CODE_AAD, d.sign1.payload),
        )
        for d in decoded
    ]
    es256 = ec.ECDSA(hashes.SHA256())
    for der, message in prepared[:10]:
        key.verify(der, message, es256)  # type: ignore[call-arg]

    def full(stop: float) -> tuple[int, float]:
        n, began = 0, time.process_time()
        while time.monotonic() < stop:
            check_code(tokens[n % len(tokens)], view, now=time.time())
            n += 1
        return n, time.process_time() - began

    def signature_only(stop: float) -> tuple[int, float]:
        n, began = 0, time.process_time()
        while time.monotonic() < stop:
            der, message = prepared[n % len(prepared)]
            key.verify(der, message, es256)  # type: ignore[call-arg]
            n += 1
        return n, time.process_time() - began

    return {
        "full": full(time.monotonic() + seconds),
        "es256": signature_only(time.monotonic() + seconds),
    }


def load_view(workdir: Path) -> TrustView:
    from trust import pki

    roots = [pki.load_certificate_pem((workdir / "national" / "root.pem").read_bytes())]

    async def read() -> TrustView:
        store = open_registry_store(f"sqlite:///{workdir}/national/registry.db")
        view = TrustView(roots=roots)
        LogReader(view).load(await store.read_prefix(""))  # verified and folded like a gateway
        await store.close()
        return view

    return asyncio.run(read())


# -- main -------------------------------------------------------------------------------------
def main(argv: list[str]) -> dict[str, object]:
    seconds = _opt(argv, "seconds", 6.0)
    conc = int(_opt(argv, "concurrency", 32))
    with tempfile.TemporaryDirectory() as tmp, Supervisor(Path(tmp)) as supervisor:
        workdir = Path(tmp)
        # Checkpoints here are a load generator: lift their per-caller rate limit.
        federation = GatewayFederation(
            workdir,
            [PROVINCE],
            supervisor,
            gateway_args=["--rate-limit=checkpoint=1000000", "--max-in-flight-codes=100000"],
        )
        federation.start()
        assert federation.gateway is not None
        pin_process(federation.gateway.process.pid, GATEWAY_CPU)
        pin_process(federation.nodes[PROVINCE].process.pid, BACKEND_CPU)
        pin_process(os.getpid(), BACKEND_CPU)
        tokens = federation.issue(PROVINCE, 2000)
        # Every hop is mTLS in both set-ups: the bench compares relaying, not TLS against none.
        client = federation.pki.checkpoint(PROVINCE, "bench")
        server_tls = str(federation.pki.national_tls("gateway", "bench-relay"))
        sample = asyncio.run(_sample_reply(client, federation.gateway.address, tokens[0]))
        request = gateway_pb2.VerifyRequest(token=tokens[0], checkpoint_province="510000")
        echo, echo_addr = spawn(
            ["echo", sample.hex(), server_tls], workdir, "echo", BACKEND_CPU, client
        )
        relay, relay_addr = spawn(
            ["relay", echo_addr, server_tls], workdir, "relay", GATEWAY_CPU, client
        )
        try:
            results = asyncio.run(
                _measure(
                    client, relay_addr, federation.gateway.address, request, tokens, conc, seconds,
                    pids={"relay": relay.pid, "gateway": federation.gateway.process.pid},
                )
            )  # fmt: skip
        finally:
            for p in (relay, echo):
                p.terminate()
                p.wait(5)
        pin_process(os.getpid(), set(range(os.cpu_count() or 1)))
        results["scaling"] = workers_scaling(federation, supervisor, client, tokens, conc, seconds)
        results.update(offline_rates(workdir, tokens, min(seconds, 3.0)))
    return summarise(
        results,
        conc=conc,
        seconds=seconds,
        request_bytes=len(request.SerializeToString()),
        reply_bytes=len(sample),
    )


async def _sample_reply(client: Transport, address: str, token: str) -> bytes:
    async with client.aio_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        for _ in range(100):
            reply = await stub.Verify(gateway_pb2.VerifyRequest(token=token), timeout=5)
            if reply.verdict == common_pb2.VALID:
                return bytes(reply.SerializeToString())
            await asyncio.sleep(0.05)
    raise RuntimeError("the gateway never answered VALID")


async def _measure(
    client: Transport,
    relay: str,
    gateway: str,
    request: gateway_pb2.VerifyRequest,
    tokens: list[str],
    conc: int,
    secs: float,
    pids: dict[str, int],
) -> dict[str, Any]:
    async def timed(pid: int, phase: Awaitable[dict[str, float]]) -> dict[str, float]:
        """The phase's result, with the middle tier's CPU microseconds per item answered."""
        began = cpu_seconds(pid)
        result = await phase
        spent = cpu_seconds(pid) - began
        answered = result["items_per_s"] * secs  # items in the whole phase, warm-up included
        result["cpu_us_per_item"] = spent / max(answered, 1) * 1e6
        return result

    serialized = request.SerializeToString()
    out: dict[str, Any] = {
        "baseline": await timed(pids["relay"], run_baseline(client, relay, serialized, conc, secs))
    }
    gw = pids["gateway"]
    out["unary"] = await timed(gw, run_unary(client, gateway, tokens, conc, secs))
    out["batch"] = await timed(gw, run_batch(client, gateway, tokens, conc, secs, size=100))
    out["stream"] = await timed(gw, run_stream(client, gateway, tokens, conc, secs))
    return out


def summarise(
    r: dict, *, conc: int, seconds: float, request_bytes: int, reply_bytes: int
) -> dict[str, object]:
    base, unary = r["baseline"], r["unary"]
    result: dict[str, object] = {
        "concurrency": conc,
        "seconds_per_phase": seconds,
        "request_bytes": request_bytes,
        "reply_bytes": reply_bytes,
        "placement": "gateway/relay pinned to CPU 1; load generator + node/echo on CPU 0",
        "transport": "mutual TLS on every hop, in the baseline and through the gateway",
        "baseline_relay_rps": round(base["items_per_s"]),
        "baseline_relay_p99_ms": round(base["p99_ms"], 2),
        "verify_unary_rps": round(unary["items_per_s"]),
        "verify_unary_p99_ms": round(unary["p99_ms"], 2),
        "verify_unary_not_valid": unary["not_valid"],
        "unary_ratio": round(unary["items_per_s"] / base["items_per_s"], 3),
        "unary_p99_ratio": round(unary["p99_ms"] / base["p99_ms"], 3),
        "batch_items_per_s": round(r["batch"]["items_per_s"]),
        "batch_p99_ms": round(r["batch"]["p99_ms"], 2),
        "stream_items_per_s": round(r["stream"]["items_per_s"]),
        "offline_verify_per_s": round(r["offline_verify_per_s"]),
        "es256_verify_per_s": round(r["es256_verify_per_s"]),
        "offline_to_es256_ratio": round(r["offline_verify_per_s"] / r["es256_verify_per_s"], 3),
        "offline_cpu_us_per_check": round(r["offline_cpu_us_per_check"], 1),
        "es256_cpu_us_per_verify": round(r["es256_cpu_us_per_verify"], 1),
        "offline_to_es256_cpu_ratio": round(
            r["es256_cpu_us_per_verify"] / r["offline_cpu_us_per_check"], 3
        ),
        "relay_cpu_us_per_unary": round(base["cpu_us_per_item"], 1),
        "gateway_cpu_us_per_unary": round(unary["cpu_us_per_item"], 1),
        "gateway_cpu_us_per_batch_item": round(r["batch"]["cpu_us_per_item"], 1),
        "gateway_cpu_us_per_stream_item": round(r["stream"]["cpu_us_per_item"], 1),
        "unary_cpu_ratio": round(base["cpu_us_per_item"] / unary["cpu_us_per_item"], 3),
        "one_worker_batch_items_per_s": round(r["scaling"]["one_worker_items_per_s"]),
        "two_workers_batch_items_per_s": round(r["scaling"]["two_workers_items_per_s"]),
        "workers_scaling": round(
            r["scaling"]["two_workers_items_per_s"] / r["scaling"]["one_worker_items_per_s"], 3
        ),
        "errors": base["errors"] + unary["errors"] + r["batch"]["errors"],
    }
    result["batch_ratio"] = round(r["batch"]["items_per_s"] / r["offline_verify_per_s"], 3)
    _print_table(result)
    return result


def _print_table(result: dict[str, object]) -> None:
    rows = [
        ("baseline relay (a)", result["baseline_relay_rps"], result["baseline_relay_p99_ms"],
         result["relay_cpu_us_per_unary"]),
        ("Verify unary (b)", result["verify_unary_rps"], result["verify_unary_p99_ms"],
         result["gateway_cpu_us_per_unary"]),
        ("VerifyBatch x100 (c)", result["batch_items_per_s"], result["batch_p99_ms"],
         result["gateway_cpu_us_per_batch_item"]),
        ("VerifyStream (c)", result["stream_items_per_s"], "-",
         result["gateway_cpu_us_per_stream_item"]),
        ("offline check, 1 process/core (d)", result["offline_verify_per_s"], "-",
         result["offline_cpu_us_per_check"]),
        ("bare ES256 verify, 1 process/core", result["es256_verify_per_s"], "-",
         result["es256_cpu_us_per_verify"]),
    ]  # fmt: skip
    print(f"{'phase':34} {'items/s':>10} {'p99 ms':>9} {'CPU us/item':>12}")
    for name, rate, p99, cpu in rows:
        print(f"{name:34} {rate!s:>10} {p99!s:>9} {cpu!s:>12}")
    print(
        f"offline/ES256: {result['offline_to_es256_ratio']} by rate, "
        f"{result['offline_to_es256_cpu_ratio']} by CPU per item (target >= 0.7); unary CPU "
        f"relay/gateway {result['unary_cpu_ratio']} (target >= 1.0); workers_scaling "
        f"{result['workers_scaling']} (2 workers over 1, batch, target >= 1.6)"
    )
    print(
        f"unary_ratio {result['unary_ratio']} (target >= 0.9), p99 ratio "
        f"{result['unary_p99_ratio']} (target <= 1.5), batch_ratio {result['batch_ratio']} "
        f"(target >= 0.6); concurrency {result['concurrency']}"
    )


if __name__ == "__main__":
    role = sys.argv[1]
    tls = Transport.mtls(Path(sys.argv[3]))
    if role == "echo":
        serve_echo(bytes.fromhex(sys.argv[2]), tls, Path(sys.argv[4]))
    elif role == "relay":
        serve_relay(sys.argv[2], tls, Path(sys.argv[4]))
