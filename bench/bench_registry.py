"""Revocation propagation: coordinator revokes a DSC → both gateways' views enforce it.

A real single-member etcd on 127.0.0.1, two gateways (full assemblies from gateway.main) in this
process watching it, one province with N signing certificates. For each of N revocations the
clock runs from the coordinator's revoke call (write + audit append) until BOTH gateways' views
report the key revoked. Prints p50/p90/p99/max and writes var/bench/registry.json.

    python -m bench registry [--revocations=100]
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _run(count: int, workdir: Path) -> dict[str, float]:
    from tests.integration.etcd import make_cluster
    from tests.integration.registry_world import make_world

    cluster = make_cluster(workdir, 1)
    try:
        world = await make_world(workdir / "national", cluster.url())
        province = await world.province("330000")
        kids = [province.kid]
        for i in range(count - 1):
            kids.append((await world.new_dsc(province.ca, "330000", f"dsc-{i + 2}")).kid)
        gateways = [await world.gateway(), await world.gateway()]
        latencies, writes = [], []
        for kid in kids:
            started = time.perf_counter()
            await world.coordinator.revoke(kid=kid, reason="key_compromise")
            writes.append(time.perf_counter() - started)
            while not all(_revoked(g.view, kid) for g in gateways):
                await asyncio.sleep(0.0005)
            latencies.append(time.perf_counter() - started)
        await world.close()
    finally:
        cluster.stop()
    ms = [x * 1000 for x in latencies]
    return {
        "revocations": count,
        "gateways": 2,
        "propagation_p50_ms": round(statistics.median(ms), 2),
        "propagation_p90_ms": round(_percentile(ms, 0.90), 2),
        "propagation_p99_ms": round(_percentile(ms, 0.99), 2),
        "propagation_max_ms": round(max(ms), 2),
        "revoke_call_p50_ms": round(statistics.median(w * 1000 for w in writes), 2),
        "within_1s": sum(1 for x in latencies if x < 1.0),
    }


def _revoked(view: Any, kid: bytes) -> bool:
    signer = view.signer(kid)
    return signer is not None and signer.revoked_at is not None


def main(argv: list[str]) -> dict[str, float]:
    count = 100
    for arg in argv:
        if arg.startswith("--revocations="):
            count = int(arg.split("=", 1)[1])
    with tempfile.TemporaryDirectory(prefix="hcx-bench-registry-") as tmp:
        result = asyncio.run(_run(count, Path(tmp)))
    print(f"{'metric':<24}{'value':>12}")
    for key, value in result.items():
        print(f"{key:<24}{value:>12}")
    return result
