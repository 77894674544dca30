"""Residents and health authorities in the simulation: colours decided by the provinces' rules.

Days run on a compressed clock (``day_s`` seconds; the nodes are started with the same
``--day-seconds``). Every traveller applies for a code with a health declaration and a district
of residence; an exposure is a new declaration (a fever, or contact with a case); the holders in
quarantine check in once a day, or miss a day; a sample of the others check in daily for their
employers. Quarantines end on the nodes' colour clocks, with no operator action: the residents
see it in their code's state. What the nodes acknowledged goes into the ledger (the invariants'
evidence), and the provinces' statistics are sampled once a simulated day for the report.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import grpc

from healthcode.v1 import common_pb2, gateway_pb2, node_pb2
from nodes import districts
from nodes.provincial.health.policy import default_policy
from simulations.holders import NodePool, StatusLedger, random_holder
from simulations.mobility import Traveller

MISS_RATE = 0.1  # a holder in quarantine forgets a day's check-in
STAFF_SHARE = 0.05  # travellers whose employers ask for a daily check-in
FEVER_SHARE = 0.7  # exposures that are a declared fever (yellow); the rest a contact (red)
QUARANTINE_RULES = {r.name: r.days for r in default_policy().rules}
COUNTED_DAY = re.compile(r"day (\d+) counted")


@cache
def districts_of(province: str, count: int = 4) -> tuple[str, ...]:
    """A few real county-level districts of the province (GB/T 2260)."""
    return tuple(districts.districts_of(province)[:count])


@dataclass
class DaySample:
    day: int
    province: str
    green: int
    yellow: int
    red: int
    in_quarantine: int


@dataclass
class Residents:
    """Applications, exposures, check-ins and statistics for every province of the run."""

    nodes: NodePool  # as the provinces' front ends (operators)
    authorities: NodePool  # as the provinces' health authorities
    employers: NodePool  # as employers' check-in stations (check-ins only)
    codes: Sequence[str]
    ledger: StatusLedger
    clock: Callable[[], float]
    rng: random.Random
    day_s: float
    until: float
    residence: dict[int, str] = field(default_factory=dict)  # traveller -> district
    quarantined: dict[int, Traveller] = field(default_factory=dict)
    staff: set[int] = field(default_factory=set)
    samples: list[DaySample] = field(default_factory=list)
    codes_held: dict[int, tuple[str, bytes]] = field(default_factory=dict)  # for employers
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    applied: int = 0
    check_ins: int = 0
    missed: int = 0
    failures: int = 0
    exposures: int = 0

    def district(self, traveller: Traveller) -> str:
        if traveller.index not in self.residence:
            choices = districts_of(self.codes[traveller.home])
            self.residence[traveller.index] = random.Random(traveller.index).choice(choices)
            if self.rng.random() < STAFF_SHARE:
                self.staff.add(traveller.index)
        return self.residence[traveller.index]

    def _declaration(self, traveller: Traveller, **fields: Any) -> node_pb2.ApplyCodeRequest:
        id_number, name = random_holder(random.Random(traveller.index), self.codes[traveller.home])
        return node_pb2.ApplyCodeRequest(
            id_number=id_number,
            full_name=name,
            declaration=node_pb2.HealthDeclaration(residence=self.district(traveller), **fields),
            request_id=str(uuid.uuid4()),
        )

    def _ack(self, traveller: Traveller, state: Any) -> None:
        status = common_pb2.CodeStatus(status_version=state.status_version, colour=state.colour)
        self.ledger.acknowledge(state.code_id, traveller.home, self.clock(), status)
        if state.colour != common_pb2.GREEN and state.in_quarantine:
            self.quarantined[traveller.index] = traveller

    async def apply(self, traveller: Traveller, *, timeout: float) -> Any:
        """ApplyCode with a healthy declaration: the traveller's first code (or None)."""
        try:
            reply = await self.nodes.call(
                self.codes[traveller.home],
                "ApplyCode",
                self._declaration(traveller),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError:
            self.failures += 1
            return None
        self.applied += 1
        self._ack(traveller, reply.state)
        self.codes_held[traveller.index] = (self.codes[traveller.home], reply.code.code_id)
        return reply.code

    def expose(self, traveller: Traveller) -> None:
        """A new declaration: a fever (the policy says yellow) or contact with a case (red)."""
        traveller.busy = True
        task = asyncio.create_task(self._declare_exposure(traveller))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _declare_exposure(self, traveller: Traveller) -> None:
        fever = self.rng.random() < FEVER_SHARE
        request = self._declaration(traveller, fever=fever, contact_with_confirmed_case=not fever)
        self.ledger.sent += 1
        self.exposures += 1
        try:
            while self.clock() < self.until:  # the same request id each time: applied once
                try:
                    reply = await self.nodes.call(self.codes[traveller.home], "ApplyCode", request)
                except grpc.aio.AioRpcError:
                    self.ledger.retries += 1
                    await asyncio.sleep(0.2)
                    continue
                self._ack(traveller, reply.state)
                return
            self.ledger.abandoned += 1
            self.ledger.abandoned_codes.add(traveller.code_id)
        finally:
            traveller.busy = False

    async def days(self) -> None:
        """Once a simulated day: check-ins (or a miss), employers' check-ins, statistics."""
        day = 0
        while self.clock() < self.until:
            started = self.clock()
            await asyncio.gather(
                *(self._day_of(t) for t in list(self.quarantined.values())),
                *(self._staff_check_in(i) for i in list(self.staff)),
                self._sample(day),
            )
            day += 1
            await asyncio.sleep(max(0.0, self.day_s - (self.clock() - started)))

    async def _day_of(self, traveller: Traveller) -> None:
        province = self.codes[traveller.home]
        if self.rng.random() < MISS_RATE:
            self.missed += 1  # the quarantine grows by a day; its state says so
            request: Any = node_pb2.GetCodeStateRequest(code_id=traveller.code_id)
            method = "GetCodeState"
        else:
            request = node_pb2.CheckInRequest(
                code_id=traveller.code_id,
                temperature_c=round(self.rng.uniform(36.0, 37.1), 1),
                request_id=str(uuid.uuid4()),
            )
            method = "CheckIn"
        try:
            state = await self.nodes.call(province, method, request)
        except grpc.aio.AioRpcError:
            self.failures += 1
            return
        self.check_ins += method == "CheckIn"
        self._ack(traveller, state)
        if not state.in_quarantine:  # the colour clock ended it (or an operator did)
            self.quarantined.pop(traveller.index, None)

    async def _staff_check_in(self, index: int) -> None:
        code = self.codes_held.get(index)
        if index in self.quarantined or code is None:
            return  # the quarantine's check-in is the day's; no code yet, no check-in
        province, code_id = code
        request = node_pb2.CheckInRequest(
            code_id=code_id, temperature_c=36.6, request_id=str(uuid.uuid4())
        )
        try:
            await self.employers.call(province, "CheckIn", request)
            self.check_ins += 1
        except grpc.aio.AioRpcError:
            self.failures += 1

    async def _sample(self, day: int) -> None:
        for province in self.codes:
            try:
                s = await self.authorities.call(
                    province, "GetStatistics", node_pb2.GetStatisticsRequest(), timeout=5.0
                )
            except grpc.aio.AioRpcError:
                continue
            self.samples.append(DaySample(day, province, s.green, s.yellow, s.red, s.in_quarantine))

    # -- the health authorities ----------------------------------------------------------------
    async def outbreak(
        self, province: str, district: str, travellers: Sequence[Traveller], *, reported: int
    ) -> str:
        """A high-risk area in ``district``; travellers of other provinces who were there are
        reported to their provinces (跨省协查)."""
        now = int(time.time())
        request = node_pb2.ImportRiskAreasRequest(
            import_id=f"outbreak-{district}-{uuid.uuid4().hex[:8]}",
            areas=[
                node_pb2.RiskArea(
                    district=district, level=3, valid_from=now - 3600,
                    valid_until=now + int(30 * self.day_s) + 3600,
                )
            ],
        )  # fmt: skip
        imported = await self.authorities.call(province, "ImportRiskAreas", request, timeout=10.0)
        sent = decided = 0
        for traveller in list(travellers)[:reported]:
            ack = await self._assist(province, traveller, district)
            if ack is None:
                continue
            sent += 1
            decided += bool(ack.rule)
        return (
            f"{province}/{district} high risk: {imported.matched} residents, "
            f"{imported.changed} changed colour; {sent} visitors reported to their provinces, "
            f"{decided} decided by a rule there"
        )

    async def _assist(self, province: str, traveller: Traveller, district: str) -> Any:
        request = gateway_pb2.AssistanceRequest(
            request_id=str(uuid.uuid4()),
            province=self.codes[traveller.home],
            code_id=traveller.code_id,
            event_kind="risk_area_visit",
            event_at=int(time.time()),  # just now: a simulated day may be 2 s
            district=district,
        )
        for _ in range(5):  # at least once: the same request id, de-duplicated there
            try:
                ack = await self.authorities.call(province, "SendAssistance", request, timeout=5.0)
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.3)
                continue
            status = common_pb2.CodeStatus(status_version=ack.status_version, colour=ack.colour)
            self.ledger.acknowledge(traveller.code_id, traveller.home, self.clock(), status)
            if ack.colour != common_pb2.GREEN:
                self.quarantined[traveller.index] = traveller
            return ack
        self.failures += 1
        return None


def quarantine_violations(history: Sequence[Any], day_s: float) -> list[str]:
    """The invariant: no quarantine ends before its days and its check-ins are complete.

    Walks a code's history (ExplainCode): a quarantine starts with an entry imposing a colour
    (or restarting it), counts the days the node counted a check-in on, and must not end
    ("complete") before ``days`` days have passed and ``days`` days were checked in. A lesser
    quarantine noted during it ("once the current … is complete") is followed the same way
    from its own start, the check-ins made meanwhile counting for it too."""
    problems: list[str] = []
    current: _Tracked | None = None
    following: _Tracked | None = None
    for entry in history:
        imposing = (
            entry.colour_after != entry.colour_before
            and entry.colour_after != common_pb2.GREEN
            and entry.kind != "complete"
        )
        if imposing or "quarantine restarted" in entry.words:
            current = _Tracked(entry.at, QUARANTINE_RULES.get(entry.rule, 0))
            if following is not None and following.start < current.start:
                following = None
        elif "once the current" in entry.words:
            following = _Tracked(entry.at, QUARANTINE_RULES.get(entry.rule, 0))
        elif entry.kind == "check_in" and COUNTED_DAY.search(entry.words):
            for tracked in (current, following):
                if tracked is not None:
                    tracked.days_checked.add(int((entry.at - tracked.start) // day_s))
        elif entry.kind == "complete":
            problems += _ended_early(current, entry.at, day_s)
            current, following = (
                (following, None) if entry.colour_after != common_pb2.GREEN else (None, None)
            )
    return problems


@dataclass
class _Tracked:
    start: float
    days: int
    days_checked: set[int] = field(default_factory=set)


def _ended_early(tracked: _Tracked | None, at: float, day_s: float) -> list[str]:
    if tracked is None:
        return ["a quarantine ended that never started"]
    if at < tracked.start + tracked.days * day_s - 1e-3:
        return [f"ended after {at - tracked.start:.2f} s, before {tracked.days} days"]
    if len(tracked.days_checked) < tracked.days:
        return [f"ended with {len(tracked.days_checked)} of {tracked.days} days checked in"]
    return []
