"""Faults across real network boundaries: the federation's processes each on its own host (a
network namespace of simulations/netbed.py), and links between hosts cut and healed.

Each scenario verifies codes throughout its phases and checks, all along: no wrong accept (a
forged code is INVALID in every phase), every call answered within its deadline, and the
verdicts the phase calls for. It writes a report (a table in the output and JSON in
``var/partitions/``): verdicts by phase, errors, time to detect, time to converge."""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, node_pb2, node_pb2_grpc
from simulations import netbed, onbed
from simulations.federation import Federation, Topology
from simulations.onbed import Layout
from simulations.processes import Supervisor
from tests.support import bed_or_skip
from trust import pki
from trust.codeformat import CodeClaims, decode_token, issue_token
from trust.model import Colour

pytestmark = pytest.mark.integration

ZJ, SC = "330000", "510000"
DEADLINE_S = 2.0  # a checkpoint's deadline: every call is answered within it
LEASE_TTL_S = 10  # a node's registration lease (hcx node serve --lease-ttl)
METRICS_PORT = 9464  # every gateway and node serves /metrics here, on its own host
REPORTS = Path("var/partitions")


@dataclass
class World:
    bed: netbed.Bed
    federation: Federation
    layout: Layout
    tokens: dict[str, str] = field(default_factory=dict)

    def gateway(self, index: int = 0) -> gateway_pb2_grpc.GatewayStub:
        """Gateway ``index`` as a checkpoint of Sichuan calls it."""
        channel = self.federation.pki.checkpoint(SC).sync_channel(
            self.federation.gateways[index].address
        )
        return gateway_pb2_grpc.GatewayStub(channel)

    def gateways(self) -> list[gateway_pb2_grpc.GatewayStub]:
        return [self.gateway(i) for i in range(len(self.federation.gateways))]

    def metrics(self, host: str) -> dict[str, float]:
        """What the process on ``host`` says on /metrics: 'name{label="v"}' -> value."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://{self.bed.hosts[host].address}:{METRICS_PORT}/metrics"
        with urllib.request.urlopen(url, timeout=DEADLINE_S) as response:
            text = response.read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def metric_until(self, host: str, name: str, want: float, timeout: float = 15.0) -> float:
        """Until the metric ``name`` of ``host`` reads ``want``: the seconds it took."""
        started = time.monotonic()
        while (got := self.metrics(host).get(name)) != want:
            assert time.monotonic() - started < timeout, f"{host} {name} = {got}, not {want}"
            time.sleep(0.2)
        return time.monotonic() - started


@contextlib.contextmanager
def running_world(
    tmp_path: Path,
    hosts: list[str],
    gateways: int,
    registry: Callable[[Layout], str] | None = None,
    *,
    replicas: int = 1,
    stores: Callable[[netbed.Bed], dict[str, str]] | None = None,
    behind: Callable[[Layout], dict[str, str]] | None = None,
) -> Iterator[World]:
    """The federation's processes named in ``hosts`` each on its own host; the rest (and the
    test process: coordinators, operators, the checkpoint's client) on the observer.
    ``registry`` starts the registry's store on the bed and gives its URL (default: the
    embedded file)."""
    bed_or_skip()
    with netbed.Bed(hosts) as bed:
        layout = Layout(bed)
        url = registry(layout) if registry is not None else None
        store_urls = stores(bed) if stores is not None else {}
        proxies = behind(layout) if behind is not None else {}
        with Supervisor(tmp_path, placement=layout.placement) as supervisor:
            topology = Topology(
                provinces=[ZJ, SC], replicas=replicas, gateways=gateways, token_lifetime=300,
                registry=url, stores=store_urls, metrics_port=METRICS_PORT, behind=proxies,
            )  # fmt: skip
            federation = Federation(tmp_path, topology, supervisor)
            federation.start()
            world = World(bed, federation, layout)
            for province in (ZJ, SC):
                world.tokens[province] = issue(federation, province)
            world.tokens["forged"] = forged(federation)
            try:
                yield world
            finally:
                supervisor.stop_all()
                federation.worker.shutdown(wait=True)
    assert bed.leftovers() == []


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """One gateway and one node for each of two provinces, each on its own host."""
    with running_world(tmp_path, ["gateway-0", f"node-{ZJ}-1", f"node-{SC}-1"], 1) as made:
        yield made


def issue(federation: Federation, province: str) -> str:
    node = federation.nodes[province][0]
    with federation.pki.operator(province).sync_channel(node.address) as channel:
        reply = node_pb2_grpc.ProvincialNodeStub(channel).IssueCode(
            node_pb2.IssueCodeRequest(id_number=_id_number(province), full_name="张三明"),
            timeout=5,
        )
    return str(reply.token)


def _id_number(province: str) -> str:
    from nodes.provincial.issuance import with_check_character

    return with_check_character(f"{province}19900101{secrets.randbelow(900) + 100}")


def forged(federation: Federation) -> str:
    """A green Zhejiang code signed with an attacker's key under Zhejiang's key id."""
    kid = federation.current_key(ZJ).kid
    now = int(time.time())
    claims = CodeClaims(ZJ, secrets.token_bytes(16), now, now + 300, Colour.GREEN, 1,
                        "张*明", "123X")  # fmt: skip
    return issue_token(claims, signing_key=pki.generate_private_key(), kid=kid)


@dataclass
class Phase:
    name: str
    verdicts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    slowest_s: float = 0.0
    calls: int = 0


@dataclass
class Report:
    scenario: str
    phases: list[Phase] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    wrong_accepts: int = 0
    late: int = 0

    def phase(self, name: str) -> Phase:
        self.phases.append(Phase(name))
        return self.phases[-1]

    def write(self) -> str:
        REPORTS.mkdir(parents=True, exist_ok=True)
        doc = {
            "scenario": self.scenario,
            "phases": [
                {"name": p.name, "calls": p.calls, "verdicts": dict(p.verdicts),
                 "errors": dict(p.errors), "slowest_s": round(p.slowest_s, 3)}
                for p in self.phases
            ],
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "counts": self.counts,
            "wrong_accepts": self.wrong_accepts,
            "late_answers": self.late,
        }  # fmt: skip
        (REPORTS / f"{self.scenario}.json").write_text(json.dumps(doc, indent=2))
        lines = [f"scenario {self.scenario}", f"  {'phase':<14}{'calls':>6}  verdicts / errors"]
        for p in self.phases:
            shown = ", ".join(f"{k} {v}" for k, v in sorted({**p.verdicts, **p.errors}.items()))
            lines.append(f"  {p.name:<14}{p.calls:>6}  {shown}  (slowest {p.slowest_s:.2f} s)")
        lines += [f"  {k}: {v:.2f} s" for k, v in self.timings.items()]
        lines += [f"  {k}: {v}" for k, v in self.counts.items()]
        lines.append(f"  wrong accepts {self.wrong_accepts}, answers past the deadline {self.late}")
        text = "\n".join(lines)
        print(text)
        return text


def verify_round(world: World, stub: gateway_pb2_grpc.GatewayStub, phase: Phase,
                 report: Report) -> dict[str, str]:  # fmt: skip
    """Every code once; what each got (VERDICT or VERDICT COLOUR, or the gRPC error)."""
    got = {}
    for name, token in world.tokens.items():
        started = time.monotonic()
        try:
            reply = stub.Verify(
                gateway_pb2.VerifyRequest(token=token, checkpoint_province=SC), timeout=DEADLINE_S
            )
            verdict = common_pb2.Verdict.Name(reply.verdict)
            if reply.verdict != common_pb2.INVALID:
                verdict += " " + common_pb2.Colour.Name(reply.colour)
            phase.verdicts[f"{name}: {verdict}"] += 1
        except grpc.RpcError as e:
            verdict = f"error {e.code().name}"
            phase.errors[f"{name}: {verdict}"] += 1
        took = time.monotonic() - started
        phase.calls += 1
        phase.slowest_s = max(phase.slowest_s, took)
        report.late += took > DEADLINE_S + 0.2
        report.wrong_accepts += name == "forged" and verdict.startswith("VALID")
        got[name] = verdict
    return got


def until(world: World, stub: gateway_pb2_grpc.GatewayStub, phase: Phase, report: Report,
          done: Callable[[dict[str, str]], bool], timeout: float) -> float:  # fmt: skip
    """Verify in rounds until ``done`` holds for a round; the seconds it took."""
    started = time.monotonic()
    while True:
        got = verify_round(world, stub, phase, report)
        if done(got):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{phase.name}: not reached in {timeout} s; last round {got}")
        time.sleep(0.2)


def test_a_gateway_cut_from_one_province_answers_offline_for_it_and_live_for_the_other(
    world: World,
) -> None:
    report = Report("gateway-cut-from-one-province")
    stub = world.gateway()
    before = report.phase("before")
    until(world, stub, before, report, lambda g: g[ZJ] == g[SC] == "VALID GREEN", timeout=10)

    world.bed.cut("gateway-0", f"node-{ZJ}-1")
    cut = report.phase("cut")
    report.timings["time to detect"] = until(
        world, stub, cut, report,
        lambda g: g[ZJ] == "VALID_OFFLINE GREEN" and g[SC] == "VALID GREEN", timeout=15,
    )  # fmt: skip
    for _ in range(5):  # it stays so: Sichuan live, Zhejiang offline, nothing wrong accepted
        got = verify_round(world, stub, cut, report)
        assert (got[ZJ], got[SC]) == ("VALID_OFFLINE GREEN", "VALID GREEN"), got

    breaker = f'hcx_gateway_breaker_state{{province="{ZJ}"}}'
    assert world.metrics("gateway-0")[breaker] != 0  # open or half-open: Zhejiang is not asked

    world.bed.heal("gateway-0", f"node-{ZJ}-1")
    healed = report.phase("healed")
    report.timings["time to converge"] = until(
        world, stub, healed, report, lambda g: g[ZJ] == g[SC] == "VALID GREEN", timeout=30
    )
    report.timings["metrics say so (breaker closed)"] = world.metric_until("gateway-0", breaker, 0)
    report.write()
    assert report.wrong_accepts == 0 and report.late == 0
    assert all(p.verdicts["forged: INVALID"] == p.calls // 3 for p in report.phases)
    assert not any(p.errors for p in report.phases)


PROXIED_PORT = 7443  # Zhejiang's node listens here; the link's proxy in front of it too


def proxy_in_front(control: Path) -> Callable[[Layout], dict[str, str]]:
    """A user-space link (simulations/linkproxy.py) on host "link" in front of Zhejiang's
    node: the gateway calls the proxy, the proxy the node; ``control`` sets its delay and
    loss while the federation runs."""

    def start(layout: Layout) -> dict[str, str]:
        import sys

        control.write_text("{}")
        link, node = layout.bed.hosts["link"].address, layout.bed.hosts[f"node-{ZJ}-1"].address
        layout.bed.spawn(
            "link",
            [sys.executable, "-m", "simulations.linkproxy", "--listen",
             f"{link}:{PROXIED_PORT}", "--to", f"{node}:{PROXIED_PORT}", "--control",
             str(control)],
            log=control.with_suffix(".log"),
        )  # fmt: skip
        netbed.wait_port(link, PROXIED_PORT, timeout=15)
        return {f"node-{ZJ}-1": f"{link}:{PROXIED_PORT}"}

    return start


def test_a_slow_then_lossy_link_to_one_province(tmp_path: Path) -> None:
    """The link between the gateway and Zhejiang's node turns slow (1.5 s each way, past the
    relay's deadline), then lossy (a quarter of the segments retransmitted), then good again.
    Slow: Zhejiang VALID_OFFLINE within the checkpoint's deadline, its breaker open, Sichuan
    live. Lossy: live or offline, never wrong, never late. Good: live again, breaker closed."""
    control = tmp_path / "link.json"
    hosts = ["gateway-0", "link", f"node-{ZJ}-1", f"node-{SC}-1"]
    with running_world(tmp_path, hosts, 1, behind=proxy_in_front(control)) as world:
        report = Report("slow-then-lossy-link")
        stub = world.gateway()
        breaker = f'hcx_gateway_breaker_state{{province="{ZJ}"}}'
        before = report.phase("before")
        until(world, stub, before, report, lambda g: g[ZJ] == g[SC] == "VALID GREEN", timeout=15)

        control.write_text(json.dumps({"delay_ms": 1500}))
        slow = report.phase("slow")
        report.timings["slow: time to offline"] = until(
            world, stub, slow, report,
            lambda g: g[ZJ] == "VALID_OFFLINE GREEN" and g[SC] == "VALID GREEN", timeout=15,
        )  # fmt: skip
        for _ in range(5):
            got = verify_round(world, stub, slow, report)
            assert (got[ZJ], got[SC]) == ("VALID_OFFLINE GREEN", "VALID GREEN"), got
        assert world.metrics("gateway-0")[breaker] != 0

        control.write_text(json.dumps({"delay_ms": 20, "jitter_ms": 20, "loss": 0.25,
                                       "rto_ms": 200}))  # fmt: skip
        lossy = report.phase("lossy")
        for _ in range(25):
            got = verify_round(world, stub, lossy, report)
            assert got[ZJ] in ("VALID GREEN", "VALID_OFFLINE GREEN"), got
            assert got[SC] == "VALID GREEN", got
            time.sleep(0.1)

        control.write_text("{}")
        healed = report.phase("healed")
        report.timings["time to converge"] = until(
            world, stub, healed, report, lambda g: g[ZJ] == g[SC] == "VALID GREEN", timeout=30
        )
        report.timings["metrics say so (breaker closed)"] = world.metric_until(
            "gateway-0", breaker, 0
        )
        link = json.loads(control.with_suffix(".stats").read_text())
        report.counts["chunks held as lost (retransmitted)"] = link["held_for_loss"]
        report.counts["chunks through the link"] = link["chunks"]
        report.write()
    assert link["held_for_loss"] > 0  # the lossy phase really lost
    assert report.wrong_accepts == 0 and report.late == 0
    assert not any(p.errors for p in report.phases)
    assert lossy.verdicts[f"{ZJ}: VALID GREEN"] > 0  # live through the loss, at least at times


def test_a_checkpoint_station_cut_from_one_gateway_fails_over_within_its_deadline(
    tmp_path: Path,
) -> None:
    hosts = ["gateway-0", "gateway-1", f"node-{ZJ}-1", f"node-{SC}-1", "station"]
    with running_world(tmp_path, hosts, 2) as world:
        world.federation.start_web_fronts()
        station = world.federation.station
        assert station is not None and station.host == world.bed.hosts["station"].address
        report = Report("checkpoint-cut-from-one-gateway")
        with StationClient(world) as scans:
            before = report.phase("before")
            scans.round(before, report)
            world.bed.cut("station", "gateway-0")  # its first gateway
            cut = report.phase("cut")
            started = time.monotonic()
            for _ in range(6):
                got = scans.round(cut, report)
                assert (got[ZJ], got[SC]) == ("VALID GREEN", "VALID GREEN"), got
            report.timings["six rounds while cut"] = time.monotonic() - started
            world.bed.heal("station", "gateway-0")
            healed = report.phase("healed")
            for _ in range(3):
                scans.round(healed, report)
        report.write()
    assert report.wrong_accepts == 0 and report.late == 0
    assert not any(p.errors for p in report.phases)
    assert cut.slowest_s < DEADLINE_S  # the dead gateway costs one deadline, then is skipped


class StationClient:
    """The staff page's calls, from the observer: enrol once, then scan every code (HTTPS
    with the station's certificate, checked against the national root)."""

    def __init__(self, world: World) -> None:
        import ssl

        from web.station import new_enrolment

        federation = world.federation
        assert federation.station is not None
        self.world = world
        self.host, self.port = federation.station.host, federation.station.port
        self.context = ssl.create_default_context(cafile=str(federation.national / "root.pem"))
        self.code = new_enrolment(federation.station_dir, "bed", now=time.time())
        self.cookie = self.csrf = ""

    def _post(self, path: str, body: dict[str, str]) -> tuple[int, dict[str, Any]]:
        import http.client

        connection = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=DEADLINE_S + 3
        )
        try:
            headers = {"Content-Type": "application/json", "X-CSRF-Token": self.csrf}
            if self.cookie:
                headers["Cookie"] = self.cookie
            connection.request("POST", path, json.dumps(body), headers)
            response = connection.getresponse()
            cookie = response.getheader("Set-Cookie")
            if cookie:
                self.cookie = cookie.split(";", 1)[0]
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def __enter__(self) -> StationClient:
        status, body = self._post("/api/enrol", {"code": self.code})
        assert status == 200, body
        self.csrf = body["csrf"]
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def round(self, phase: Phase, report: Report) -> dict[str, str]:
        got = {}
        for name, token in self.world.tokens.items():
            started = time.monotonic()
            status, body = self._post("/api/verify", {"token": token})
            took = time.monotonic() - started
            if status == 200:
                verdict = body["verdict"] + (
                    f" {body['colour']}" if body["verdict"] != "INVALID" else ""
                )
                phase.verdicts[f"{name}: {verdict}"] += 1
            else:
                verdict = f"error HTTP {status} {body.get('reason')}"
                phase.errors[f"{name}: {verdict}"] += 1
            phase.calls += 1
            phase.slowest_s = max(phase.slowest_s, took)
            report.late += took > DEADLINE_S + 0.2
            report.wrong_accepts += name == "forged" and verdict.startswith("VALID")
            got[name] = verdict
        time.sleep(0.7)  # a person scans a few codes a second (the station's limit is 5/s)
        return got


ETCD = list(onbed.ETCD)


def etcd_on_the_bed(workdir: Path) -> Callable[[Layout], str]:
    """Three etcd members, each on its own host of the bed; the registry URL naming them."""
    return lambda layout: layout.start_etcd(workdir, prefix="/bed/")


def view_serving(world: World, index: int) -> bool:
    from grpc_health.v1 import health_pb2

    return world.federation.view_health()[index] == health_pb2.HealthCheckResponse.SERVING


def test_an_etcd_member_cut_from_its_peers_but_not_its_gateway(tmp_path: Path) -> None:
    """etcd-1 loses its peers; gateway-0 reaches etcd-1 only. A coordinator revokes
    Zhejiang's key through gateway-1 (on the majority). gateway-0 must learn the revocation
    within the propagation bound, or stop claiming a current view; when the cut heals it
    converges, and says so."""
    from simulations import national

    bound_s = 10.0  # feed: STALE_AFTER_S (5 s) after the last confirmation, probed every 1 s
    with compose_layout(tmp_path) as world:
        world.federation.start_web_fronts()  # a checkpoint station: gateway-0 first, then 1
        report = Report("etcd-member-cut-from-its-peers")
        gateways = world.gateways()
        before = report.phase("before")
        for stub in gateways:
            until(world, stub, before, report, lambda g: g[ZJ] == "VALID GREEN", timeout=15)
        assert view_serving(world, 0) and view_serving(world, 1)

        world.bed.isolate("etcd-1", from_observer=False)  # no peers...
        world.bed.heal("etcd-1", "gateway-0")  # ...but still its gateway
        for member in ("etcd-2", "etcd-3"):
            world.bed.cut("gateway-0", member)  # and gateway-0 reaches no other member
        cut = report.phase("cut")
        cut_at = time.monotonic()
        kid = world.federation.current_key(ZJ).kid
        revoked_at = time.monotonic()
        national.revoke(world.federation.pki, world.federation.gateways[1].address, kid,
                        "key_compromise")  # fmt: skip
        until(world, gateways[1], cut, report, lambda g: g[ZJ] == "INVALID", timeout=bound_s)
        report.timings["gateway-1 (majority) sees the revocation"] = time.monotonic() - revoked_at
        while True:  # gateway-0: the revocation, or no claim of a current view
            got = verify_round(world, gateways[0], cut, report)
            if got[ZJ] == "INVALID" or not view_serving(world, 0):
                break
            waited = time.monotonic() - revoked_at
            assert waited < bound_s, f"gateway-0 claims a current view {waited:.1f} s on: {got}"
            time.sleep(0.2)
        report.timings["gateway-0 revoked or not current"] = time.monotonic() - revoked_at
        if not view_serving(world, 0):  # and its metrics say what its health says
            assert world.metrics("gateway-0")["hcx_gateway_view_stale"] == 1
        # The checkpoint station asks its gateways whether their views are current: its scans
        # go to gateway-1 now, and the revoked key's code is refused there, not accepted.
        at_station = report.phase("station")
        with StationClient(world) as scans:
            while True:
                got = scans.round(at_station, report)
                if got[ZJ] == "INVALID":
                    break
                waited = time.monotonic() - revoked_at
                assert waited < bound_s + 5, f"the station still accepts the code: {got}"
            report.timings["station refuses the revoked key"] = time.monotonic() - revoked_at
            for _ in range(3):
                got = scans.round(at_station, report)
                assert got[ZJ] == "INVALID", got  # the revoked key's code stays refused
                # Sichuan's node registered through gateway-0, whose member lost quorum: its
                # keep-alives fail there, and it renews the same lease through gateway-1.
                assert got[SC] == "VALID GREEN", got

        # Held past a lease's TTL: Sichuan's node renews through gateway-1 all along, so the
        # majority keeps routing to it (a pick-first channel stayed on gateway-0 and the lease
        # lapsed: VALID_OFFLINE).
        held = report.phase("past the TTL")
        while time.monotonic() - cut_at < LEASE_TTL_S + 4:
            got = verify_round(world, gateways[1], held, report)
            assert got[SC] == "VALID GREEN", got
            time.sleep(0.3)
        failovers = f'hcx_node_gateway_failovers_total{{node_id="{SC}-1",province="{SC}"}}'
        assert world.metrics(f"node-{SC}-1")[failovers] >= 1

        world.bed.heal_all()
        healed = report.phase("healed")
        healed_at = time.monotonic()
        until(world, gateways[0], healed, report, lambda g: g[ZJ] == "INVALID", timeout=30)
        deadline = time.monotonic() + 30
        while not view_serving(world, 0):
            assert time.monotonic() < deadline, "gateway-0 never said its view is current again"
            time.sleep(0.2)
        report.timings["time to converge"] = time.monotonic() - healed_at
        for host in ("gateway-0", "gateway-1"):
            world.metric_until(host, "hcx_gateway_view_stale", 0)
        report.timings["metrics say so (no view stale)"] = time.monotonic() - healed_at
        report.write()
    assert report.wrong_accepts == 0 and report.late == 0
    assert not any(p.errors for p in report.phases)


def test_the_etcd_leader_isolated_writes_during_and_after_the_election(tmp_path: Path) -> None:
    """The leader's member loses everyone. A coordinator's write sent during the election is
    acknowledged once a new leader serves it (the client retries on another member); one sent
    after is quick; neither is lost when the old leader comes back (it rejoins as follower)."""
    from simulations import national

    hosts = [*ETCD, "gateway-0", "gateway-1", f"node-{ZJ}-1", f"node-{SC}-1"]
    with running_world(tmp_path, hosts, 2, registry=etcd_on_the_bed(tmp_path / "etcd")) as world:
        report = Report("etcd-leader-isolated")
        stubs = world.gateways()
        before = report.phase("before")
        for stub in stubs:
            until(world, stub, before, report, lambda g: g[ZJ] == g[SC] == "VALID GREEN",
                  timeout=15)  # fmt: skip
        leader = world.layout.leader()
        assert leader is not None
        world.bed.isolate(leader)
        election = report.phase("election")
        started = time.monotonic()
        national.revoke(world.federation.pki, world.federation.gateways[0].address,
                        world.federation.current_key(ZJ).kid, "key_compromise")  # fmt: skip
        report.timings["write during the election acknowledged"] = time.monotonic() - started
        others = [m for m in ETCD if m != leader]
        new_leader = world.layout.leader(others)
        assert new_leader in others, "no new leader among the majority"
        started = time.monotonic()
        national.revoke(world.federation.pki, world.federation.gateways[1].address,
                        world.federation.current_key(SC).kid, "key_compromise")  # fmt: skip
        report.timings["write after the election acknowledged"] = time.monotonic() - started
        for stub in stubs:
            until(world, stub, election, report, lambda g: g[ZJ] == g[SC] == "INVALID",
                  timeout=15)  # fmt: skip
        world.bed.heal_all()
        healed = report.phase("healed")
        healed_at = time.monotonic()
        for stub in stubs:  # both writes on both gateways: nothing acknowledged was lost
            until(world, stub, healed, report, lambda g: g[ZJ] == g[SC] == "INVALID",
                  timeout=30)  # fmt: skip
        deadline = time.monotonic() + 30
        while not (view_serving(world, 0) and view_serving(world, 1)):
            assert time.monotonic() < deadline, "a gateway never said its view is current again"
            time.sleep(0.2)
        report.timings["time to converge"] = time.monotonic() - healed_at
        for host in ("gateway-0", "gateway-1"):
            world.metric_until(host, "hcx_gateway_view_stale", 0)
        report.timings["metrics say so (no view stale)"] = time.monotonic() - healed_at
        assert world.layout.leader() is not None
        report.write()
    assert report.wrong_accepts == 0 and report.late == 0
    assert not any(p.errors for p in report.phases)


def postgres_on_the_bed(workdir: Path, *provinces: str) -> Callable[[netbed.Bed], dict[str, str]]:
    """PostgreSQL on its own host of the bed; each province's nodes keep their codes there,
    in a database of the province's own."""

    def start(bed: netbed.Bed) -> dict[str, str]:
        import psycopg

        from simulations.loopback import as_server_user, find_bin_dir, init_datadir

        bin_dir = find_bin_dir()
        assert bin_dir is not None, "PostgreSQL (initdb) is needed: apt-get install postgresql"
        data = workdir / "data"  # workdir: from make_datadir, open to the server's user
        init_datadir(bin_dir, data)
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {netbed.SUBNET}.0.0/16 trust\n")  # the bed's hosts only
        ip = bed.hosts["postgres"].address
        bed.spawn(
            "postgres",
            as_server_user([str(bin_dir / "postgres"), "-D", str(data), "-p", "5432",
                             "-k", str(workdir), "-c", f"listen_addresses={ip}"]),
            log=workdir / "server.log",
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"postgresql://postgres@{ip}:5432/postgres",
                                     autocommit=True, connect_timeout=1) as conn:  # fmt: skip
                    for province in provinces:
                        conn.execute(f"CREATE DATABASE status_{province}")
                return {p: f"postgresql://postgres@{ip}:5432/status_{p}" for p in provinces}
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    return start


def node_serving(world: World, province: str, replica: int) -> bool:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    node = world.federation.nodes[province][replica]
    try:
        with world.federation.pki.operator(province).sync_channel(node.address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def test_a_node_replica_cut_from_its_postgresql_leaves_routing_and_the_other_carries(
    tmp_path: Path,
) -> None:
    """Replica 1 of Zhejiang loses its database while the gateway still reaches it. It must
    not answer with a colour it cannot read: it leaves routing, replica 2 carries the province,
    a colour set meanwhile is what checkpoints see, and replica 1 comes back when healed."""
    with compose_layout(tmp_path) as world:
        _cut_from_postgresql(world)


COMPOSE_HOSTS = [*ETCD, "gateway-0", "gateway-1", f"node-{ZJ}-1", f"node-{ZJ}-2",
                 f"node-{SC}-1", f"node-{SC}-2", "postgres", "station"]  # fmt: skip


@contextlib.contextmanager
def compose_layout(tmp_path: Path) -> Iterator[World]:
    """The compose layout's roles (docker-compose.yml), each on a host of its own: 3 etcd
    members, 2 gateways, 2 provinces with 2 node replicas each, keeping their codes in one
    PostgreSQL (the compose file gives each province its own server), and the checkpoint
    station's host (``start_web_fronts`` starts the station there)."""
    from simulations.loopback import make_datadir

    pg_dir = make_datadir()  # under /tmp, owned by the server's user (pytest's tmp is not)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, pg_dir, ignore_errors=True)
        yield cleanup.enter_context(
            running_world(tmp_path, COMPOSE_HOSTS, 2, etcd_on_the_bed(tmp_path / "etcd"),
                          replicas=2, stores=postgres_on_the_bed(pg_dir, ZJ, SC))
        )  # fmt: skip


def _cut_from_postgresql(world: World) -> None:
    """The phases, on a running world (the caller removes the database's folder)."""
    report = Report("node-cut-from-its-postgresql")
    stub = world.gateway()
    before = report.phase("before")
    until(world, stub, before, report, lambda g: g[ZJ] == g[SC] == "VALID GREEN", timeout=15)
    assert node_serving(world, ZJ, 0) and node_serving(world, ZJ, 1)

    world.bed.cut(f"node-{ZJ}-1", "postgres")
    cut = report.phase("cut")
    started = time.monotonic()
    while node_serving(world, ZJ, 0):
        verify_round(world, stub, cut, report)
        assert time.monotonic() - started < 20, "replica 1 still serving without its store"
    report.timings["time to leave routing"] = time.monotonic() - started
    labels = f'{{node_id="{ZJ}-1",province="{ZJ}"}}'
    node_metrics = world.metrics(f"node-{ZJ}-1")
    assert node_metrics[f"hcx_node_left_routing_total{labels}"] >= 1
    assert node_metrics[f"hcx_node_registered{labels}"] == 0
    code_id = decode_token(world.tokens[ZJ]).claims.code_id
    node = world.federation.nodes[ZJ][1]
    with world.federation.pki.operator(ZJ).sync_channel(node.address) as channel:
        node_pb2_grpc.ProvincialNodeStub(channel).SetStatus(
            node_pb2.SetStatusRequest(code_id=code_id, colour=common_pb2.RED,
                                      reason="test", request_id=secrets.token_hex(8)),
            timeout=5,
        )  # fmt: skip
    acknowledged = report.phase("after the change")
    for _ in range(8):  # the province carried by replica 2, with the colour just set
        got = verify_round(world, stub, acknowledged, report)
        assert (got[ZJ], got[SC]) == ("VALID RED", "VALID GREEN"), got

    world.bed.heal(f"node-{ZJ}-1", "postgres")
    healed = report.phase("healed")
    healed_at = time.monotonic()
    while not node_serving(world, ZJ, 0):
        got = verify_round(world, stub, healed, report)
        assert got[ZJ] == "VALID RED", got
        assert time.monotonic() - healed_at < 30, "replica 1 never came back"
    report.timings["time to rejoin routing"] = time.monotonic() - healed_at
    world.metric_until(f"node-{ZJ}-1", f"hcx_node_registered{labels}", 1)
    report.timings["metrics say so (registered)"] = time.monotonic() - healed_at
    report.write()
    assert report.wrong_accepts == 0 and report.late == 0
    assert not any(p.errors for p in report.phases)
