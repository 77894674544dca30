"""The federation's capacity: offered scan rate against achieved rate, latency and CPU per scan.

``make bench BENCH=capacity`` starts the simulation's federation (``hcx sim --provinces 31
--travellers 100000 --replicas 1``: 2 gateways, 31 node processes, mTLS everywhere, all on this
machine), lets every traveller fetch a code first (residents hold their codes before they
travel; issuance is measured on its own as ``enrol``), then offers scans at each rate of the
sweep for ``--step`` seconds, in the simulation's mix of unary, batch and stream checkpoints,
with holders refreshing their codes and exposure events changing colours as in ``make run``.
No scripted faults run here: this is the healthy federation at its limit.

Per step it writes ``offered_per_s``, ``achieved_per_s`` (answered scans), ``p50_ms``, ``p99_ms``,
``errors`` (scans that got no verdict: deadline, unavailable), ``shed`` (scans refused with
RESOURCE_EXHAUSTED, or dropped by the load generator because its in-flight cap was full),
``cpu_ms_per_scan`` (all processes of the federation, from /proc: gateways and nodes, split in
``cpu_ms_per_scan_by_role``; the load generator, this process, separately in
``loadgen_cpu_ms_per_scan``) and ``rss_mb_total`` (the federation's processes). The baseline of
the same run is an idle step: the federation's CPU per second with no scans (``idle``).

``capacity_per_s`` is the highest offered rate whose step had p99 < 300 ms, no errors and at
most 1 % shed. A second sweep starts federations of 5, 15 and 31 provinces and offers the same
rate to each: ``by_provinces`` shows how the cost per scan grows with the number of provinces.

``python -m bench capacity [--rates=250,500,...] [--step=S] [--travellers=N]
[--provinces-rate=R] [--provinces=5,15,31]``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulations.federation import Federation
from simulations.report import percentile
from simulations.runner import Driver, SimConfig, pick_provinces, running_federation

CAPACITY_P99_MS = 300.0
CAPACITY_SHED_SHARE = 0.01
SETTLE_S = 3.0
_TICKS = os.sysconf("SC_CLK_TCK")


def _opt(argv: list[str], name: str, default: str) -> str:
    for a in argv:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return default


# -- what the processes spent --------------------------------------------------------------------
def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat(int(entry))[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (state is [0])."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _tree(pid: int, tree: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += tree.get(p, [])
    return out


@dataclass(frozen=True)
class Usage:
    """CPU seconds per role (gateway, node) and RSS of the federation; the generator's CPU."""

    cpu_s: dict[str, float]
    rss_mb: float
    loadgen_cpu_s: float


def usage(federation: Federation) -> Usage:
    tree = _children_of()
    cpu: dict[str, float] = {}
    rss = 0.0
    roles = [("gateway", g.process.pid) for g in federation.gateways]
    roles += [("node", n.process.pid) for ns in federation.nodes.values() for n in ns]
    for role, root in roles:
        for pid in _tree(root, tree):
            try:
                fields = _stat(pid)
            except OSError:
                continue  # ended between the listing and the read
            cpu[role] = cpu.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
            rss += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    own = resource.getrusage(resource.RUSAGE_SELF)
    return Usage(cpu, rss, own.ru_utime + own.ru_stime)


# -- the sweep -----------------------------------------------------------------------------------
async def step(driver: Driver, federation: Federation, rate: float, seconds: float) -> dict:
    """Offer ``rate`` scans/s for ``seconds``; what came back and what it cost."""
    shed_before = driver.shed_total
    first = len(driver.verifications)
    before = usage(federation)
    start = driver.clock()
    if rate > 0:
        await driver.load(rate, until=start + seconds)
    else:
        await asyncio.sleep(seconds)
    await driver.settle(SETTLE_S)
    elapsed = driver.clock() - start
    after = usage(federation)
    shed_after = driver.shed_total
    window = [v for v in driver.verifications[first:] if start <= v.scan.sent < start + seconds]
    refused = [  # refused calls, and stream items answered INVALID/OVERLOADED (retry)
        v
        for v in window
        if (v.verdict, v.reason) in {("ERROR", "RESOURCE_EXHAUSTED"), ("INVALID", "OVERLOADED")}
    ]
    failed = [v for v in window if v.verdict == "ERROR" and v.reason != "RESOURCE_EXHAUSTED"]
    answered = [v for v in window if v.verdict != "ERROR" and v.reason != "OVERLOADED"]
    latencies = [v.latency * 1000 for v in answered]
    spent = {r: after.cpu_s.get(r, 0.0) - before.cpu_s.get(r, 0.0) for r in after.cpu_s}
    federation_s = sum(spent.values())
    loadgen_s = after.loadgen_cpu_s - before.loadgen_cpu_s

    def ms_per_scan(cpu_s: float) -> float | None:  # none for the idle step: it has no scans
        return round(1000 * cpu_s / max(len(answered), 1), 3) if rate else None

    return {
        "offered_per_s": rate,
        "achieved_per_s": round(len(answered) / seconds, 1),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "errors": len(failed),
        "error_kinds": dict(Counter(v.reason for v in failed)),
        "shed": len(refused) + (shed_after - shed_before),
        "cpu_ms_per_scan": ms_per_scan(federation_s),
        "cpu_ms_per_scan_by_role": (
            {r: ms_per_scan(s) for r, s in sorted(spent.items())} if rate else None
        ),
        "cpu_cores_busy": round((federation_s + loadgen_s) / elapsed, 2),
        "federation_cpu_s_per_s": round(federation_s / elapsed, 3),
        "loadgen_cpu_ms_per_scan": ms_per_scan(loadgen_s),
        "rss_mb_total": round(after.rss_mb, 1),
    }


async def sweep(
    driver: Driver, federation: Federation, rates: list[float], seconds: float
) -> dict[str, Any]:
    await driver.open()
    try:
        began = time.monotonic()
        missing = await driver.enrol()
        enrol_s = time.monotonic() - began
        enrolled = len(driver.mobility.travellers) - missing
        print(f"  enrolled {enrolled:,} travellers in {enrol_s:.1f} s ({missing} failed)")
        idle = await step(driver, federation, 0, min(seconds, 5.0))
        print(f"  idle: federation {idle['federation_cpu_s_per_s']} CPU s/s")
        steps = []
        for rate in rates:
            result = await step(driver, federation, rate, seconds)
            steps.append(result)
            print(_row(result))
        return {
            "enrol": {
                "travellers": enrolled,
                "failed": missing,
                "seconds": round(enrol_s, 1),
                "per_s": round(enrolled / enrol_s, 1),
            },
            "idle": idle,
            "steps": steps,
        }
    finally:
        await driver.close()


HEADER = (
    f"  {'offered/s':>9} {'achieved/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
    f"{'shed':>6} {'CPU ms/scan':>11} {'gw':>6} {'node':>6} {'loadgen':>7} {'RSS MB':>7}"
)


def _row(s: dict) -> str:
    roles = s["cpu_ms_per_scan_by_role"] or {}
    return (
        f"  {s['offered_per_s']:>9.0f} {s['achieved_per_s']:>10.1f} {s['p50_ms']:>8.1f} "
        f"{s['p99_ms']:>8.1f} {s['errors']:>6} {s['shed']:>6} {s['cpu_ms_per_scan']:>11.3f} "
        f"{roles.get('gateway', 0):>6.3f} {roles.get('node', 0):>6.3f} "
        f"{s['loadgen_cpu_ms_per_scan']:>7.3f} {s['rss_mb_total']:>7.0f}"
    )


def capacity_of(steps: list[dict], seconds: float) -> float:
    good = [
        s["offered_per_s"]
        for s in steps
        if s["p99_ms"] < CAPACITY_P99_MS
        and s["errors"] == 0
        and s["shed"] <= CAPACITY_SHED_SHARE * s["offered_per_s"] * seconds
        and s["achieved_per_s"] > 0
    ]
    return max(good, default=0.0)


def run_federation(
    provinces: int, travellers: int, rates: list[float], seconds: float, workdir: Path
) -> dict[str, Any]:
    config = SimConfig(
        provinces=pick_provinces(provinces),
        travellers=travellers,
        replicas=1,
        duration=1e9,  # holders keep retrying colour changes until the sweep closes them
        token_lifetime=300,  # the nodes' default: holders refresh as a real app would
        workdir=workdir,
        progress=False,
    )
    with running_federation(config) as federation:
        driver = Driver(config, federation, steps=[])
        return asyncio.run(sweep(driver, federation, rates, seconds))


def main(argv: list[str]) -> dict[str, object]:
    rates = [float(r) for r in _opt(argv, "rates", "250,500,1000,1500,2000").split(",")]
    seconds = float(_opt(argv, "step", "10"))
    travellers = int(_opt(argv, "travellers", "100000"))
    provinces_rate = float(_opt(argv, "provinces-rate", "500"))
    province_counts = [int(p) for p in _opt(argv, "provinces", "5,15,31").split(",")]
    results: dict[str, Any] = {"step_s": seconds, "travellers": travellers, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="hcx-capacity-") as tmp:
        print(f"31 provinces, {travellers:,} travellers, steps of {seconds:g} s")
        print(HEADER)
        main_sweep = run_federation(31, travellers, rates, seconds, Path(tmp) / "p31")
        results.update(main_sweep)
        results["capacity_per_s"] = capacity_of(main_sweep["steps"], seconds)
        by_provinces = {}
        for count in province_counts:
            print(f"{count} provinces at {provinces_rate:g}/s")
            if count == 31 and provinces_rate in rates:  # the main sweep has that step
                swept = {
                    "idle": main_sweep["idle"],
                    "steps": [
                        s for s in main_sweep["steps"] if s["offered_per_s"] == provinces_rate
                    ],
                }
            else:
                swept = run_federation(
                    count, travellers, [provinces_rate], seconds, Path(tmp) / f"n{count}"
                )
            by_provinces[str(count)] = {
                "idle_federation_cpu_s_per_s": swept["idle"]["federation_cpu_s_per_s"],
                **swept["steps"][0],
            }
        results["by_provinces"] = by_provinces
    costs = [by_provinces[str(c)]["cpu_ms_per_scan"] for c in province_counts]
    if costs and costs[0]:
        results["cost_growth_last_over_first"] = round(costs[-1] / costs[0], 3)
    print(
        f"capacity_per_s {results['capacity_per_s']:g} (p99 < {CAPACITY_P99_MS:g} ms, no errors, "
        f"shed <= {100 * CAPACITY_SHED_SHARE:g} %); cost per scan by provinces: "
        + ", ".join(f"{c}: {x} ms" for c, x in zip(province_counts, costs, strict=True))
    )
    return results
