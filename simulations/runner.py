"""Runs the national simulation: set-up, traffic, the scripted scenario, invariants, report.

Everything the load generator does is bounded: a fixed duration, a fixed arrival rate, a cap on
calls in flight (excess scans are shed and counted), retries that stop when the run ends.
All servers are child processes on 127.0.0.1 (with ``--netns``, each on a host of a test bed,
simulations/netbed.py) and are stopped when the run ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from healthcode.v1 import common_pb2, node_pb2
from simulations import netbed
from simulations.federation import Federation, Topology
from simulations.health import Residents
from simulations.holders import Holders, NodePool, StatusLedger
from simulations.injection import INJECTED_KINDS, Injector
from simulations.invariants import InvariantReport, check_all
from simulations.mobility import Mobility, Traveller
from simulations.onbed import Layout, hosts_for
from simulations.options import SimOptions
from simulations.processes import Supervisor, on_loopback
from simulations.provinces import all_provinces
from simulations.scenario import SimContext, Step, StepResult, default_scenario, play
from simulations.traffic import BatchMode, GatewayPool, Scan, StreamMode, UnaryMode, Verification

TICK_S = 0.1
DRAIN_S = 5.0
STATUS_BATCH = 250
ENROL_DEADLINE_S = 10.0  # before traffic: a queue at the node is expected, not a fault
MODE_WEIGHTS = {"unary": 0.4, "batch": 0.35, "stream": 0.25}
# The first five are spread across the country; then by population.
PREFERRED_ORDER = ("110000", "310000", "440000", "510000", "330000")


@dataclass(frozen=True)
class SimConfig:
    """Everything ``hcx sim`` can change."""

    provinces: Sequence[str]
    travellers: int = SimOptions.travellers
    duration: float = SimOptions.duration
    rate: float = SimOptions.rate  # scans per second offered by all checkpoints together
    replicas: int = SimOptions.replicas
    gateways: int = SimOptions.gateways
    registry: str | None = SimOptions.registry
    seed: int = SimOptions.seed
    inject_fraction: float = 0.03
    exposures_per_s: float = 3.0
    stale_bound: float = SimOptions.stale_bound
    max_in_flight: int = 200
    token_lifetime: int = 120  # seconds; short, so that the run sees holders refresh
    day_s: float = 2.0  # a simulated day: a 60 s run plays 30 days of quarantines
    workdir: Path = Path("var/sim/run")
    progress: bool = True
    netns: bool = SimOptions.netns  # every process on a host of its own (a test bed), etcd on 3


@dataclass
class SimResult:
    """What the report is made of."""

    config: SimConfig
    setup_s: float
    verifications: list[Verification]
    steps: list[StepResult]
    invariants: InvariantReport
    ledger: StatusLedger
    shed: int
    issued: int
    wall_s: float
    notes: list[str] = field(default_factory=list)
    residents: Residents | None = None


def pick_provinces(count: int) -> list[str]:
    """``count`` provinces: the five spread ones first, then by population."""
    everything = all_provinces()
    rest = sorted(
        (c for c in everything if c not in PREFERRED_ORDER),
        key=lambda c: -everything[c].population_millions,
    )
    return [*PREFERRED_ORDER, *rest][:count]


def run_simulation(config: SimConfig, steps: Sequence[Step] | None = None) -> SimResult:
    """Start the federation, drive traffic and the scenario, check invariants; stop everything."""
    began = time.monotonic()
    with running_federation(config) as federation:
        setup_s = time.monotonic() - began
        status(config, f"federation up in {setup_s:.1f} s; traffic for {config.duration:.0f} s")
        chosen = list(steps) if steps is not None else default_scenario(config.duration)
        result = asyncio.run(Driver(config, federation, chosen).run(setup_s))
    result.wall_s = time.monotonic() - began
    return result


@contextlib.contextmanager
def running_federation(config: SimConfig) -> Iterator[Federation]:
    """The federation of ``config``, started; every process is stopped on leaving."""
    config.workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        layout, registry = None, config.registry
        if config.netns:
            layout, registry = stack.enter_context(on_a_bed(config))
        placement = layout.placement if layout is not None else on_loopback
        supervisor = stack.enter_context(Supervisor(config.workdir, placement=placement))
        topology = Topology(
            provinces=config.provinces,
            replicas=config.replicas,
            gateways=config.gateways,
            registry=registry,
            token_lifetime=config.token_lifetime,
            day_seconds=config.day_s,
        )
        federation = Federation(config.workdir, topology, supervisor, layout=layout)
        status(
            config,
            f"starting {config.gateways} gateways and {len(config.provinces)} provinces x "
            f"{config.replicas} node replicas (logs in {config.workdir})",
        )
        federation.start()
        try:
            federation.start_web_fronts()
            announce_web_fronts(config, federation)
            yield federation
        finally:
            supervisor.stop_all()  # before the worker thread ends (its children die with it)
            federation.worker.shutdown(wait=True)


@contextlib.contextmanager
def on_a_bed(config: SimConfig) -> Iterator[tuple[Layout, str]]:
    """A test bed with a host for every process of ``config`` and the registry on a
    three-member etcd cluster there; removed on leaving, whatever happens."""
    hosts = hosts_for(config.provinces, config.replicas, config.gateways)
    with netbed.Bed(hosts) as bed:
        layout = Layout(bed)
        status(config, f"test bed: {len(hosts)} hosts on {bed.bridge} ({bed.observer}/24); "
                       "etcd on etcd-1..3")  # fmt: skip
        yield layout, layout.start_etcd(config.workdir / "etcd")
    left = bed.leftovers()
    if left:
        raise RuntimeError(f"the test bed left {left} behind")


def announce_web_fronts(config: SimConfig, federation: Federation) -> None:
    """Where a person can look while the simulation runs (HTTPS with the provinces' web
    certificates: a browser asks to trust the national root, ``national/root.pem``)."""
    from web.station import new_enrolment

    assert federation.station is not None and federation.resident_web is not None
    code = new_enrolment(federation.station_dir, "browser", now=time.time(), ttl=3600)
    status(
        config,
        f"checkpoint staff page: https://{federation.station.address}/ "
        f"(enrolment code {code}); residents' page: "
        f"https://127.0.0.1:{federation.resident_web.port}/ "
        f"(trust {federation.national / 'root.pem'})",
    )


async def station_scans(federation: Federation, tokens: Sequence[str]) -> str:
    """Scan ``tokens`` through the station's HTTP API, as its staff page does: the verdicts
    in a line of the report."""
    import ssl
    from collections import Counter

    import aiohttp

    from web.station import new_enrolment

    assert federation.station is not None
    url = f"https://{federation.station.address}"
    context = ssl.create_default_context(cafile=str(federation.national / "root.pem"))
    code = new_enrolment(federation.station_dir, "sim-check", now=time.time())
    verdicts: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(ssl=context)
    jar = aiohttp.CookieJar(unsafe=True)  # a cookie for an address, not a host name
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar, timeout=timeout) as http:
        async with http.post(f"{url}/api/enrol", json={"code": code}) as r:
            csrf = (await r.json())["csrf"]
        for token in tokens:
            async with http.post(
                f"{url}/api/verify", json={"token": token}, headers={"X-CSRF-Token": csrf}
            ) as r:
                body = await r.json()
            verdicts[body.get("verdict", f"HTTP {r.status}") + _colour(body)] += 1
    shown = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    return f"checkpoint station {url}: {len(tokens)} scans through its staff API: {shown}"


def _colour(body: dict[str, Any]) -> str:
    if body.get("verdict") == "INVALID":
        return f" {body.get('reason', '')}"
    return f" {body.get('colour', '')}"


def status(config: SimConfig, text: str) -> None:
    if config.progress:
        print(text, file=sys.stderr, flush=True)


class Driver:
    """The asyncio side: load, exposures, scenario, progress, final checks."""

    def __init__(self, config: SimConfig, federation: Federation, steps: Sequence[Step]) -> None:
        self.config = config
        self.federation = federation
        self.steps = steps
        self.rng = random.Random(config.seed)
        self.codes = list(config.provinces)
        infos = [all_provinces()[c] for c in self.codes]
        self.mobility = Mobility.populate(infos, config.travellers, self.rng)
        self.verifications: list[Verification] = []
        self.results: list[StepResult] = []
        self.injector = Injector(self.rng)
        self.in_flight: set[asyncio.Task[None]] = set()
        self.shed = 0
        self._start = 0.0
        self.notes: list[str] = []
        self.visits: dict[int, list[Traveller]] = {}  # province index -> who went there

    @property
    def shed_total(self) -> int:
        """Scans dropped so far because every slot was busy: the driver's and every mode's."""
        return self.shed + sum(m.shed for m in self.modes.values())

    def clock(self) -> float:
        return time.monotonic() - self._start

    async def run(self, setup_s: float) -> SimResult:
        await self.open()
        scenario = asyncio.create_task(play(self.steps, self.ctx, self.results))
        progress = asyncio.create_task(self._progress())
        days = asyncio.create_task(self.residents.days())
        try:
            await self.load(self.config.rate, until=self.config.duration)
            await self._drain(scenario)
            days.cancel()
            final = await self._final_statuses()
            histories = await self._histories(final)
            self.notes.append(await self._station_check())
        finally:
            for task in (progress, scenario, days):
                task.cancel()
            await asyncio.gather(progress, scenario, days, return_exceptions=True)
            await self.close()
        return self._result(setup_s, final, histories)

    async def open(self) -> None:
        """Channels to the gateways and nodes, the holders and the traffic modes; the clock
        starts here."""
        self._start = time.monotonic()
        identities = self.federation.pki
        self.pool = GatewayPool(
            [g.address for g in self.federation.gateways],
            self.clock,
            transport=identities.checkpoint(self.codes[0]),  # a checkpoint, over mTLS
        )
        self.pool.start()
        self.nodes = NodePool(
            lambda p: [c.address for c in self.federation.nodes[p]], identities.operator
        )
        self.ledger = StatusLedger()
        self.authorities = NodePool(
            lambda p: [c.address for c in self.federation.nodes[p]], identities.authority
        )
        self.employers = NodePool(
            lambda p: [c.address for c in self.federation.nodes[p]], identities.check_in_station
        )
        self.residents = Residents(
            self.nodes, self.authorities, self.employers, self.codes, self.ledger, self.clock,
            self.rng,
            day_s=self.config.day_s, until=self.config.duration + DRAIN_S,
        )  # fmt: skip
        self.holders = Holders(self.nodes, self.codes, self.residents.apply)
        self.modes = {
            cls.name: cls(
                self.pool, self.codes, self.verifications.append, limit=self.config.max_in_flight
            )
            for cls in (UnaryMode, BatchMode, StreamMode)
        }
        self.live = list(self.modes.values())
        self.ctx = SimContext(
            self.federation, self.injector, self.mobility, self.clock,
            residents=self.residents, visits=self.visits,
        )  # fmt: skip

    async def _station_check(self) -> str:
        """A few travellers' current codes scanned through the checkpoint station."""
        travellers = [t for t in self.mobility.travellers[:40] if t.code_id]
        tokens = []
        for traveller in travellers[:8]:
            if await self.holders.ensure_token(traveller):
                tokens.append(traveller.token)
        try:
            return await station_scans(self.federation, tokens)
        except Exception as e:  # reported, not fatal: the federation's figures stand
            return f"checkpoint station: scans failed: {e!r}"

    async def close(self) -> None:
        await self.authorities.close()
        await self.employers.close()
        leftovers = self._sent() | self.residents.tasks
        for mode in self.modes.values():
            mode.close()
        for task in leftovers:  # whatever a bounded drain left running
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        await self.pool.close()
        await self.nodes.close()

    async def enrol(self, *, concurrency: int = 128) -> int:
        """Every traveller fetches a code before traffic starts (residents hold their codes
        before they travel); returns how many could not get one."""
        slots = asyncio.Semaphore(concurrency)

        async def one(traveller: Traveller) -> bool:
            async with slots:
                return await self.holders.ensure_token(traveller, timeout=ENROL_DEADLINE_S)

        done = await asyncio.gather(*(one(t) for t in self.mobility.travellers))
        return done.count(False)

    def _sent(self) -> set[asyncio.Task[None]]:
        """The scans sent and not yet answered."""
        pending = set(self.in_flight)
        for mode in self.modes.values():
            pending |= set(mode.tasks)
        return pending

    async def settle(self, timeout: float = DRAIN_S + 2) -> None:
        """Wait (bounded) until the scans already sent are answered."""
        self.modes["batch"].flush()
        if pending := self._sent():
            await asyncio.wait(pending, timeout=timeout)

    def _result(
        self,
        setup_s: float,
        final: dict[bytes, tuple[int, int] | None],
        histories: dict[bytes, list[Any]],
    ) -> SimResult:
        invariants = check_all(
            verifications=self.verifications,
            ledger=self.ledger,
            final=final,
            revoked_at=self.ctx.revocation_acked,
            bound=self.config.stale_bound,
            histories=histories,
            day_s=self.config.day_s,
        )
        return SimResult(
            config=self.config, setup_s=setup_s, verifications=self.verifications,
            steps=self.results, invariants=invariants, ledger=self.ledger,
            shed=self.shed_total,
            issued=self.holders.issued, wall_s=0.0,
            notes=[*self.ctx.notes, *self.notes], residents=self.residents,
        )  # fmt: skip

    async def load(self, rate: float, *, until: float) -> None:
        """Scans at ``rate`` per second (and exposure events) until the clock reads ``until``."""
        arrivals = exposures = 0.0
        while (now := self.clock()) < until:
            arrivals += rate * TICK_S
            exposures += self.config.exposures_per_s * TICK_S
            for _ in range(int(arrivals)):
                self._spawn(self._trip(*self.mobility.next_trip()))
            for _ in range(int(exposures)):
                self._expose()
            self.modes["batch"].flush()
            arrivals -= int(arrivals)
            exposures -= int(exposures)
            await asyncio.sleep(max(0.0, TICK_S - (self.clock() - now)))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        if len(self.in_flight) >= self.config.max_in_flight:
            self.shed += 1
            coroutine.close()
            return
        task = asyncio.create_task(coroutine)
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    def _expose(self) -> None:
        for _ in range(10):  # a few tries to find a holder with a code and no change in flight
            traveller = self.rng.choice(self.mobility.travellers)
            if traveller.code_id and not traveller.busy:
                self.residents.expose(traveller)  # a declaration: the province's rules decide
                return

    async def _trip(self, traveller: Traveller, origin: int, destination: int) -> None:
        if not await self.holders.ensure_token(traveller):
            return
        if destination != traveller.home:
            self.visits.setdefault(destination, []).append(traveller)
        kind = self._kind(traveller)
        token = traveller.token
        if kind != "genuine":
            key = self.federation.current_key(self.codes[traveller.home])
            token = self.injector.make(kind, token, key)
        scan = Scan(
            traveller.index if kind == "genuine" else -1, traveller.code_id, token, kind,
            origin, destination, traveller.home,
        )  # fmt: skip
        self.submit(scan)

    def _kind(self, traveller: Traveller) -> str:
        if self.rng.random() >= self.config.inject_fraction:
            return "genuine"
        compromised = self.injector.compromised
        if compromised is not None and compromised.province == self.codes[traveller.home]:
            return "compromised"
        return self.rng.choice(INJECTED_KINDS)

    def submit(self, scan: Scan) -> None:
        """Hand the scan to a traffic mode; the destination picks its preferred gateway."""
        mode = self.rng.choices(self.live, weights=[MODE_WEIGHTS[m.name] for m in self.live])[0]
        mode.submit([scan], preferred=scan.destination % len(self.pool))

    async def _drain(self, scenario: asyncio.Task[None]) -> None:
        """Let calls in flight and a running step finish (bounded)."""
        self.modes["batch"].flush()
        if pending := self._sent() | self.residents.tasks:
            await asyncio.wait(pending, timeout=DRAIN_S + 2)
        await asyncio.wait({scenario}, timeout=60)

    async def _final_statuses(self) -> dict[bytes, tuple[int, int] | None]:
        """Every code's status as its province reports it now (for the lost-update check)."""
        by_home: dict[int, list[bytes]] = {}
        for code_id, home in self.ledger.home.items():
            by_home.setdefault(home, []).append(code_id)
        final: dict[bytes, tuple[int, int] | None] = {}
        for home, ids in by_home.items():
            for i in range(0, len(ids), STATUS_BATCH):
                chunk = ids[i : i + STATUS_BATCH]
                reply = await self._status_batch(self.codes[home], chunk)
                if reply is None:  # the province does not answer: its codes count as unchecked
                    self.ctx.notes.append(f"province {self.codes[home]} did not answer at the end")
                    continue
                for s in reply.statuses:
                    final[bytes(s.code_id)] = (s.status_version, s.colour) if s.found else None
        return final

    async def _histories(
        self, final: dict[bytes, tuple[int, int] | None]
    ) -> dict[bytes, list[Any]]:
        """ExplainCode of every code whose colour ever left green, or that changed after its
        last acknowledgement (the quarantine invariant and the lost-update check read them)."""
        wanted = [
            code_id
            for code_id, acks in self.ledger.acks.items()
            if any(a.colour != common_pb2.GREEN for a in acks)
            or (final.get(code_id) or (0, 0))[0] > max(a.version for a in acks)
        ]
        slots = asyncio.Semaphore(32)
        histories: dict[bytes, list[Any]] = {}

        async def one(code_id: bytes) -> None:
            province = self.codes[self.ledger.home[code_id]]
            request = node_pb2.GetCodeStateRequest(code_id=code_id)
            async with slots:
                try:
                    reply = await self.nodes.call(province, "ExplainCode", request, timeout=5.0)
                except grpc.aio.AioRpcError as e:
                    self.ctx.notes.append(f"history of {code_id.hex()[:8]}: {e.code().name}")
                    return
            histories[code_id] = list(reply.history)

        await asyncio.gather(*(one(c) for c in wanted))
        return histories

    async def _status_batch(
        self, province: str, ids: list[bytes]
    ) -> node_pb2.GetStatusBatchResponse | None:
        error = ""
        for attempt in range(8):  # a province that was just restarted may need a moment
            try:
                request = node_pb2.GetStatusBatchRequest(code_ids=ids)
                return await self.nodes.call(province, "GetStatusBatch", request, timeout=5.0)
            except grpc.aio.AioRpcError as e:
                error = f"{e.code().name}: {e.details()}"
                await asyncio.sleep(0.25 * (attempt + 1))
        self.ctx.notes.append(f"final read of {province}: {error}")
        return None

    async def _progress(self) -> None:
        tty = sys.stderr.isatty()
        while True:
            await asyncio.sleep(1.0 if tty else 5.0)
            if self.config.progress:
                line = progress_line(self.clock(), self.config.duration, self.verifications,
                                     self._current_step())  # fmt: skip
                print(("\r" + line) if tty else line, end="" if tty else "\n",
                      file=sys.stderr, flush=True)  # fmt: skip

    def _current_step(self) -> str:
        running = [r.name for r in self.results if r.status == "running"]
        return running[-1] if running else ""


def progress_line(
    now: float, duration: float, verifications: Sequence[Verification], step: str
) -> str:
    """``[#####.....] 30/60 s  4,210 verified (140/s)  VALID 95% …  step``."""
    done = min(1.0, now / duration) if duration else 1.0
    bar = "#" * int(done * 20) + "." * (20 - int(done * 20))
    total = len(verifications)
    counts: dict[str, int] = {}
    for v in verifications[-5000:]:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    recent = max(1, min(total, 5000))
    shares = "  ".join(f"{k} {100 * n / recent:.0f}%" for k, n in sorted(counts.items()))
    rate = total / now if now > 0 else 0.0
    label = f"  [{step}]" if step else ""
    return (
        f"[{bar}] {min(now, duration):4.0f}/{duration:.0f} s  {total:,} verified ({rate:.0f}/s)  "
        f"{shares}{label}"
    )


Clock = Callable[[], float]
