"""Faults across real network boundaries: the federation's processes each on its own host (a
network namespace of simulations/netbed.py), and links between hosts cut and healed.

Each scenario verifies codes throughout its phases and checks, all along: no wrong accept (a
forged code is INVALID in every phase), every call answered within its deadline, and the
verdicts the phase calls for. It writes a report (a table in the output and JSON in
``var/partitions/``): verdicts by phase, errors, time to detect, time to converge."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, node_pb2, node_pb2_grpc
from simulations import netbed
from simulations.federation import Federation, Topology
from simulations.processes import Supervisor, on_loopback
from trust import pki
from trust.codeformat import CodeClaims, issue_token
from trust.model import Colour

pytestmark = pytest.mark.integration

ZJ, SC = "330000", "510000"
DEADLINE_S = 2.0  # a checkpoint's deadline: every call is answered within it
REPORTS = Path("var/partitions")


def _bed_or_skip() -> None:
    reason = netbed.available()
    if reason is not None:
        if os.environ.get("CI") == "true" and os.geteuid() == 0:
            pytest.fail(f"the partition scenarios must run in CI as root: {reason}")
        pytest.skip(f"no network namespaces here: {reason}")


@dataclass
class World:
    bed: netbed.Bed
    federation: Federation
    tokens: dict[str, str] = field(default_factory=dict)

    def gateway(self) -> gateway_pb2_grpc.GatewayStub:
        channel = self.federation.pki.checkpoint(SC).sync_channel(
            self.federation.gateways[0].address
        )
        return gateway_pb2_grpc.GatewayStub(channel)


@contextlib.contextmanager
def running_world(tmp_path: Path, hosts: list[str], gateways: int) -> Iterator[World]:
    """The federation's processes named in ``hosts`` each on its own host; the rest (and the
    test process: coordinators, operators, the checkpoint's client) on the observer."""
    _bed_or_skip()
    with netbed.Bed(hosts) as bed:

        def placement(name: str) -> tuple[str, list[str]]:
            if name not in bed.hosts:
                return on_loopback(name)
            return bed.hosts[name].address, ["ip", "netns", "exec", bed.hosts[name].namespace]

        with Supervisor(tmp_path, placement=placement) as supervisor:
            topology = Topology(
                provinces=[ZJ, SC], replicas=1, gateways=gateways, token_lifetime=300
            )
            federation = Federation(tmp_path, topology, supervisor)
            federation.start()
            world = World(bed, federation)
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
            "wrong_accepts": self.wrong_accepts,
            "late_answers": self.late,
        }  # fmt: skip
        (REPORTS / f"{self.scenario}.json").write_text(json.dumps(doc, indent=2))
        lines = [f"scenario {self.scenario}", f"  {'phase':<14}{'calls':>6}  verdicts / errors"]
        for p in self.phases:
            shown = ", ".join(f"{k} {v}" for k, v in sorted({**p.verdicts, **p.errors}.items()))
            lines.append(f"  {p.name:<14}{p.calls:>6}  {shown}  (slowest {p.slowest_s:.2f} s)")
        lines += [f"  {k}: {v:.2f} s" for k, v in self.timings.items()]
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

    world.bed.heal("gateway-0", f"node-{ZJ}-1")
    healed = report.phase("healed")
    report.timings["time to converge"] = until(
        world, stub, healed, report, lambda g: g[ZJ] == g[SC] == "VALID GREEN", timeout=30
    )
    report.write()
    assert report.wrong_accepts == 0 and report.late == 0
    assert all(p.verdicts["forged: INVALID"] == p.calls // 3 for p in report.phases)
    assert not any(p.errors for p in report.phases)


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
