"""Soak: the gateway at 80 % of its measured unary capacity for a long time (``make soak``).

Measures capacity with a closed loop, then sends Verify calls at a fixed rate (open loop) for
``--duration`` seconds (default 600) and samples the gateway's resident memory. Passes when there
are zero errors and RSS grows less than 10 % after the first minute (a quarter of the run when
the run is shorter than four minutes). Writes var/bench/soak.json.
``python -m bench.soak [--duration=S] [--fraction=0.8]``
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.bench_gateway import PROVINCE, _opt, percentile, run_unary
from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from nodes.tls import Transport
from simulations.gateway_federation import GatewayFederation
from simulations.processes import Supervisor

OUT = Path("var/bench/soak.json")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def open_loop(
    client: Transport, address: str, tokens: list[str], *, rate: float, seconds: float, pid: int
) -> dict[str, object]:
    """``rate`` calls/s for ``seconds``; RSS sampled every 5 s; errors counted by status."""
    errors: dict[str, int] = {}
    latencies: list[float] = []
    not_valid = 0
    samples: list[tuple[float, int]] = []
    async with client.aio_channel(address) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        requests = [gateway_pb2.VerifyRequest(token=t) for t in tokens]
        outstanding = asyncio.Semaphore(2000)  # the generator's own memory stays bounded

        async def one(i: int) -> None:
            nonlocal not_valid
            began = time.monotonic()
            try:
                reply = await stub.Verify(requests[i % len(requests)], timeout=2)
                not_valid += reply.verdict != common_pb2.VALID
                latencies.append(time.monotonic() - began)
            except grpc.aio.AioRpcError as e:
                errors[e.code().name] = errors.get(e.code().name, 0) + 1
            finally:
                outstanding.release()

        start = time.monotonic()
        sent = 0
        next_sample = start
        tasks: set[asyncio.Task[None]] = set()
        while (now := time.monotonic()) < start + seconds:
            if now >= next_sample:
                samples.append((round(now - start, 1), rss_kib(pid)))
                next_sample += 5
                latencies[:] = latencies[-100_000:]
            due = int((now - start) * rate)
            while sent < due:
                await outstanding.acquire()
                task = asyncio.create_task(one(sent))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    samples.append((round(elapsed, 1), rss_kib(pid)))
    return {
        "sent": sent,
        "achieved_rps": round(sent / elapsed),
        "errors": errors,
        "not_valid": not_valid,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "rss_samples_kib": samples,
    }


def verdict(result: dict[str, object], seconds: float) -> dict[str, object]:
    samples: list[tuple[float, int]] = result["rss_samples_kib"]  # type: ignore[assignment]
    settle = 60.0 if seconds >= 240 else seconds / 4
    after = [kib for t, kib in samples if t >= settle]
    base = after[0] if after else samples[0][1]
    growth = (samples[-1][1] - base) / base * 100 if base else 0.0
    return {
        "rss_baseline_at_s": settle,
        "rss_baseline_kib": base,
        "rss_end_kib": samples[-1][1],
        "rss_growth_pct": round(growth, 2),
        "passed": not result["errors"] and not result["not_valid"] and growth < 10.0,
    }


def main(argv: list[str]) -> dict[str, object]:
    seconds = _opt(argv, "duration", 600.0)
    fraction = _opt(argv, "fraction", 0.8)
    with tempfile.TemporaryDirectory() as tmp, Supervisor(Path(tmp)) as supervisor:
        federation = GatewayFederation(
            Path(tmp),
            [PROVINCE],
            supervisor,
            gateway_args=["--rate-limit=checkpoint=1000000"],
            # The soak reuses the tokens issued at its start: they must outlive the run.
            node_args=[f"--token-lifetime={int(seconds) + 600}"],
        )
        federation.start()
        assert federation.gateway is not None
        tokens = federation.issue(PROVINCE, 1000)
        address = federation.gateway.address
        client = federation.pki.checkpoint(PROVINCE, "soak")
        capacity = asyncio.run(run_unary(client, address, tokens, 32, 5.0))["items_per_s"]
        rate = capacity * fraction
        print(f"capacity {capacity:.0f}/s; soaking at {rate:.0f}/s for {seconds:.0f} s")
        pid = federation.gateway.process.pid
        result = asyncio.run(
            open_loop(client, address, tokens, rate=rate, seconds=seconds, pid=pid)
        )
    result.update(
        {"capacity_rps": round(capacity), "target_rps": round(rate), "duration_s": seconds}
    )
    result.update(verdict(result, seconds))
    return result


if __name__ == "__main__":
    outcome = main(sys.argv[1:])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(outcome, indent=2, sort_keys=True))
    summary = {k: v for k, v in outcome.items() if k != "rss_samples_kib"}
    print(json.dumps(summary, indent=2, sort_keys=True))
    print(f"-> {OUT}")
    raise SystemExit(0 if outcome["passed"] else 1)
