"""The scripted faults and operations, each at a stated time.

A step is a small class: ``unavailable(ctx)`` says why it cannot run in this run's layout (a
second gateway to kill, residents to move, an etcd cluster to cut: ``hcx sim --netns``; then it
is reported as "not run in this layout", never simulated), ``run(ctx)`` does it for real
against the running processes and returns what it did.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from grpc_health.v1 import health_pb2

from simulations.federation import Federation, SigningKey
from simulations.health import Residents
from simulations.injection import Injector
from simulations.mobility import Mobility, Traveller

NOT_AVAILABLE = "not run in this layout"
SERVING = health_pb2.HealthCheckResponse.SERVING


@dataclass
class SimContext:
    """What steps act on."""

    federation: Federation
    injector: Injector
    mobility: Mobility
    clock: Callable[[], float]
    revocation_acked: float | None = None  # seconds since traffic start
    notes: list[str] = field(default_factory=list)
    residents: Residents | None = None
    visits: dict[int, list[Traveller]] = field(default_factory=dict)  # province -> visitors
    # Held by the steps that write to the registry and by the drill that tampers with its
    # store: a coordinator's write into a tampered store is refused (LOG_INCONSISTENT, as it
    # must be), so the two do not overlap when one step runs long.
    registry_writes: asyncio.Lock = field(default_factory=asyncio.Lock)

    def province(self, index: int) -> str:
        provinces = self.federation.topology.provinces
        return provinces[index % len(provinces)]


class Step(Protocol):
    name: str
    at: float  # seconds since traffic start

    def unavailable(self, ctx: SimContext) -> str | None: ...

    async def run(self, ctx: SimContext) -> str: ...


@dataclass
class StepResult:
    name: str
    at: float
    status: str  # done, failed, or NOT_AVAILABLE
    detail: str
    started: float = 0.0
    finished: float = 0.0


async def offload(ctx: SimContext, fn: Callable[..., object], *args: object) -> object:
    """Run a blocking federation operation on the federation's long-lived worker thread."""
    return await asyncio.get_running_loop().run_in_executor(ctx.federation.worker, fn, *args)


async def run_hcx(*args: str) -> str:
    """Run an operator's ``hcx`` command as a process; its output, or RuntimeError."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hcx", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    text = out.decode(errors="replace").strip().splitlines()
    if process.returncode != 0:
        raise RuntimeError(f"hcx {' '.join(args[:3])} failed: {text[-1:] or ''}")
    return text[-1] if text else ""


@dataclass
class KeyRotation:
    """``hcx node keys rotate``: new DSC uploaded, old one retired after an overlap; every
    replica picks up the new key by itself once the registry knows it (nothing restarts)."""

    at: float
    province_index: int = 0
    overlap_s: int = 20
    name: str = "key rotation"

    def unavailable(self, ctx: SimContext) -> str | None:
        return None

    async def run(self, ctx: SimContext) -> str:
        async with ctx.registry_writes:
            rotated = await rotate_key(ctx, ctx.province(self.province_index), self.overlap_s)
        return (
            f"{rotated}; the old key retires in {self.overlap_s} s; replicas switch keys by "
            "themselves (no restart)"
        )


@dataclass
class KeyCompromise:
    """A province's DSC leaks (codes forged with it are shown at checkpoints); the province
    switches to a new key and a coordinator revokes the leaked one from their own station
    (`hcx registry revoke`: one signature removes trust)."""

    at: float
    province_index: int = 1
    exposure_s: float = 3.0  # how long the leaked key is abused before the revocation
    name: str = "key compromise + revocation"

    def unavailable(self, ctx: SimContext) -> str | None:
        return None

    async def run(self, ctx: SimContext) -> str:
        province = ctx.province(self.province_index)
        federation = ctx.federation
        leaked = federation.current_key(province)
        ctx.injector.compromised = leaked
        await asyncio.sleep(self.exposure_s)
        number = len(federation.keys[province]) + 1
        new = await offload(ctx, federation.new_key, province, f"dsc-{number}")
        assert isinstance(new, SigningKey)
        await offload(ctx, federation.wait_routable)
        await run_hcx(
            "registry", "revoke", "--kid", leaked.kid.hex(), "--reason", "key_compromise",
            "--gateway", federation.registry_address,
            "--tls-dir", str(federation.pki.coordinator_dir("carol")),
        )  # fmt: skip
        ctx.revocation_acked = ctx.clock()
        home = federation.topology.provinces.index(province)
        for traveller in ctx.mobility.travellers:
            if traveller.home == home:
                traveller.expires_at = 0  # the province pushes fresh codes to its holders
        return (
            f"{province}: kid {leaked.kid.hex()} leaked at t={self.at:.1f} s; new kid "
            f"{new.kid.hex()} in service; coordinator carol revoked the leaked kid at "
            f"t={ctx.revocation_acked:.1f} s"
        )


@dataclass
class SuspendAndResume:
    """A province suspended by one coordinator, resumed by two: alice proposes, bob approves
    (`hcx registry suspend`, `resume`, `pending`, `approve`: the M-of-N flow)."""

    at: float
    province_index: int = 4
    suspended_s: float = 3.0
    name: str = "suspension (1 of 3) + resumption (2 of 3)"

    def unavailable(self, ctx: SimContext) -> str | None:
        return None

    async def run(self, ctx: SimContext) -> str:
        province = ctx.province(self.province_index)
        federation = ctx.federation
        gateway = ("--gateway", federation.registry_address)

        def who(name: str) -> tuple[str, str]:
            return ("--tls-dir", str(federation.pki.coordinator_dir(name)))

        async with ctx.registry_writes:
            await run_hcx("registry", "suspend", "--province", province, "--why", "drill",
                          *gateway, *who("carol"))  # fmt: skip
            await asyncio.sleep(self.suspended_s)
            proposed = await run_hcx("registry", "resume", "--province", province,
                                     "--why", "drill over", *gateway, *who("alice"))  # fmt: skip
            approved = await run_hcx("registry", "approve", "--province", province,
                                     *gateway, *who("bob"))  # fmt: skip
        return f"{province}: suspended by carol; {proposed.split(': ', 1)[-1]}; {approved}"


@dataclass
class RevocationDeletedInStore:
    """An attacker with write access to the registry store deletes the revocation of the
    leaked key (as `etcdctl del` would; here the embedded store's own file). The gateways see
    the log no longer verifies: they keep the key revoked, report the registry view
    NOT_SERVING and refuse writes; a coordinator then restores the store from a gateway's
    verified copy (`hcx registry repair`: re-append, never rewrite)."""

    at: float
    name: str = "revocation deleted in the store"

    def unavailable(self, ctx: SimContext) -> str | None:
        return None

    async def run(self, ctx: SimContext) -> str:
        federation = ctx.federation
        while ctx.revocation_acked is None:  # the key-compromise step revokes first
            await asyncio.sleep(0.2)
        async with ctx.registry_writes:  # no coordinator writes while the store is tampered
            index = await offload(ctx, federation.delete_latest_revocation)
            await asyncio.sleep(2.0)  # the gateways' watches and restarts see it meanwhile
            detected = await offload(ctx, federation.gateways_refusing_the_store)
            out = await run_hcx(
                "registry", "repair", "--registry", federation.registry_url,
                "--from", str(federation.view_file(0)),
                "--root", str(federation.national / "root.pem"),
            )  # fmt: skip
            await offload(ctx, federation.wait_store_verified)
        return (
            f"log entry {index} (the revocation) deleted; {detected} of "
            f"{len(federation.gateways)} gateways detected it and kept the key revoked; "
            f"{out}; every gateway verifies the store again"
        )


@dataclass
class NodeCrash:
    """SIGKILL one replica of a province, restart it after ``down_s``."""

    at: float
    province_index: int = 2
    down_s: float = 6.0
    name: str = "province node crash + restart"

    def unavailable(self, ctx: SimContext) -> str | None:
        return None

    async def run(self, ctx: SimContext) -> str:
        province = ctx.province(self.province_index)
        federation = ctx.federation
        child = federation.nodes[province][0]
        federation.supervisor.kill(child)
        await asyncio.sleep(self.down_s)
        await offload(ctx, federation.restart_node, province, 0)
        return f"{child.name} SIGKILLed, restarted after {self.down_s:.0f} s"


@dataclass
class SlowProvince:
    """SIGSTOP every replica of a province (it hangs, holding connections), SIGCONT later."""

    at: float
    province_index: int = 3
    frozen_s: float = 4.0
    name: str = "slow province (SIGSTOP/SIGCONT)"

    def unavailable(self, ctx: SimContext) -> str | None:
        return None

    async def run(self, ctx: SimContext) -> str:
        province = ctx.province(self.province_index)
        nodes = ctx.federation.nodes[province]
        for child in nodes:
            ctx.federation.supervisor.freeze(child)
        try:
            await asyncio.sleep(self.frozen_s)
        finally:
            for child in nodes:
                ctx.federation.supervisor.thaw(child)
        return f"{len(nodes)} replicas of {province} frozen for {self.frozen_s:.0f} s"


@dataclass
class GatewayKilled:
    """SIGKILL a gateway; checkpoints fail over; it comes back on the same port."""

    at: float
    gateway_index: int = 1
    down_s: float = 6.0
    name: str = "gateway killed"

    def unavailable(self, ctx: SimContext) -> str | None:
        if len(ctx.federation.gateways) < 2:
            return "needs two or more gateways"
        return None

    async def run(self, ctx: SimContext) -> str:
        federation = ctx.federation
        child = federation.gateways[self.gateway_index]
        federation.supervisor.kill(child)
        await asyncio.sleep(self.down_s)
        await offload(ctx, federation.restart_gateway, self.gateway_index)
        return f"{child.name} SIGKILLed, restarted on {child.address} after {self.down_s:.0f} s"


@dataclass
class Outbreak:
    """An outbreak in one district: the province's health authority declares it a high-risk
    area (its residents' codes turn red by rule), and reports visitors from other provinces
    to their provinces (cross-province assistance), whose rules decide."""

    at: float
    province_index: int = 0
    reported: int = 15
    name: str = "outbreak: risk area + cross-province assistance"

    def unavailable(self, ctx: SimContext) -> str | None:
        return None if ctx.residents is not None else "the run has no residents"

    async def run(self, ctx: SimContext) -> str:
        assert ctx.residents is not None
        province = ctx.province(self.province_index)
        index = ctx.federation.topology.provinces.index(province)
        residents = ctx.residents
        homes = [
            residents.residence[t.index]
            for t in ctx.mobility.travellers
            if t.home == index and t.index in residents.residence
        ]
        if not homes:
            return f"{province}: no resident holds a code yet"
        district = max(set(homes), key=homes.count)
        visitors = [t for t in ctx.visits.get(index, []) if t.code_id and t.home != index]
        unique = list({t.index: t for t in visitors}.values())
        return await residents.outbreak(province, district, unique, reported=self.reported)


@dataclass
class EtcdMemberLost:
    """On a test bed (``hcx sim --netns``): the etcd cluster's leader loses its network (its
    host is cut from every other host and from the observer) for ``down_s``. A province
    rotates its key meanwhile: a registry write that only a new leader can commit. Then the
    member rejoins. Traffic runs throughout and the run's invariants judge it."""

    at: float
    down_s: float = 6.0
    province_index: int = 2
    overlap_s: int = 20
    name: str = "etcd member lost"

    def unavailable(self, ctx: SimContext) -> str | None:
        if ctx.federation.layout is not None and ctx.federation.layout.etcd:
            return None
        registry = ctx.federation.topology.registry or ""
        if not registry.startswith("etcd://"):
            return "runs with hcx sim --netns (the embedded registry has no members)"
        return "the simulation manages an etcd cluster only with --netns"

    async def run(self, ctx: SimContext) -> str:
        layout = ctx.federation.layout
        assert layout is not None
        lost = await asyncio.to_thread(layout.leader)
        if lost is None:
            raise RuntimeError("no etcd member says it leads")
        others = [m for m in layout.etcd if m != lost]
        layout.bed.isolate(lost)
        began = time.monotonic()
        try:
            rotated = await rotate_key(ctx, ctx.province(self.province_index), self.overlap_s)
            acked_s = time.monotonic() - began
            leader = await asyncio.to_thread(layout.leader, others)
            views = await sample_views(ctx, until=began + self.down_s)
            target = await asyncio.to_thread(layout.raft_applied, leader or others[0])
        finally:
            layout.bed.rejoin(lost)
        healed = time.monotonic()
        await converged(ctx, lost, target or 0, timeout=30.0)
        return (
            f"{lost} (the leader) cut off for {healed - began:.1f} s; "
            f"new leader {leader}; {rotated} acknowledged in {acked_s:.2f} s; "
            f"gateways' views current in {views}; {lost} caught up and every view current "
            f"{time.monotonic() - healed:.2f} s after it rejoined"
        )


async def rotate_key(ctx: SimContext, province: str, overlap_s: int) -> str:
    """``hcx node keys rotate`` for ``province`` as its operator runs it; what changed."""
    federation = ctx.federation
    old = federation.current_key(province)
    number = len(federation.keys[province]) + 1
    await run_hcx(
        "node", "keys", "rotate", "--province", province,
        "--dir", str(federation.province_dir(province).root), "--name", f"dsc-{number}",
        "--overlap", str(overlap_s), "--gateway", federation.registry_address,
        "--tls-dir", str(federation.pki.provincial_tls(province, "operator", "ops")),
    )  # fmt: skip
    new = federation.load_current_key(province, f"dsc-{number}")
    await offload(ctx, federation.wait_routable)
    return f"{province}'s key rotation (kid {old.kid.hex()} -> {new.kid.hex()})"


async def sample_views(ctx: SimContext, *, until: float, every: float = 0.5) -> str:
    """Ask every gateway whether its registry view is current until ``until``: how often each
    said so ("gateway-0 12/12, gateway-1 11/12")."""
    serving = [0] * len(ctx.federation.gateways)
    samples = 0
    while True:
        statuses = await asyncio.to_thread(ctx.federation.view_health)
        samples += 1
        for i, value in enumerate(statuses):
            serving[i] += value == SERVING
        if time.monotonic() >= until:
            break
        await asyncio.sleep(every)
    return ", ".join(f"gateway-{i} {n}/{samples}" for i, n in enumerate(serving))


async def converged(ctx: SimContext, member: str, applied: int, *, timeout: float) -> None:
    """Until ``member`` has applied the cluster's log up to ``applied`` and every gateway
    says its view is current (TimeoutError after ``timeout``)."""
    layout = ctx.federation.layout
    assert layout is not None
    deadline = time.monotonic() + timeout
    while True:
        index = await asyncio.to_thread(layout.raft_applied, member)
        views = await asyncio.to_thread(ctx.federation.view_health)
        if index is not None and index >= applied and all(v == SERVING for v in views):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{member} applied {index} < {applied}, or views {views}")
        await asyncio.sleep(0.2)


def default_scenario(duration: float) -> list[Step]:
    """The steps of ``make run``, placed at fractions of the run so every duration fits."""
    outage = min(6.0, max(2.0, duration * 0.1))
    return [
        Outbreak(at=round(duration * 0.15, 1)),
        KeyRotation(at=round(duration * 0.10, 1)),
        KeyCompromise(at=round(duration * 0.20, 1)),
        SuspendAndResume(at=round(duration * 0.30, 1), suspended_s=min(3.0, outage)),
        RevocationDeletedInStore(at=round(duration * 0.42, 1)),
        NodeCrash(at=round(duration * 0.52, 1), down_s=outage),
        SlowProvince(at=round(duration * 0.62, 1), frozen_s=min(4.0, outage)),
        GatewayKilled(at=round(duration * 0.72, 1), down_s=outage),
        EtcdMemberLost(at=round(duration * 0.85, 1)),
    ]


async def play(steps: Sequence[Step], ctx: SimContext, results: list[StepResult]) -> None:
    """Start each step at its own time (steps overlap if one runs long); failures are recorded."""
    runs = []
    for step in sorted(steps, key=lambda s: s.at):
        missing = step.unavailable(ctx)
        if missing is not None:
            results.append(StepResult(step.name, step.at, NOT_AVAILABLE, missing))
        else:
            runs.append(asyncio.create_task(_run_at(step, ctx, results)))
    if runs:
        await asyncio.gather(*runs)


async def _run_at(step: Step, ctx: SimContext, results: list[StepResult]) -> None:
    await asyncio.sleep(max(0.0, step.at - ctx.clock()))
    result = StepResult(step.name, step.at, "running", "", started=ctx.clock())
    results.append(result)
    try:
        result.detail = await step.run(ctx)
        result.status = "done"
    except asyncio.CancelledError:
        result.status, result.detail = "failed", "cut off: the run ended first"
        raise
    except Exception as e:  # a broken step must not stop the traffic or the report
        result.status, result.detail = "failed", f"{type(e).__name__}: {e}"
    finally:
        result.finished = ctx.clock()
