"""The province's colour engine: events in, policy decisions, exactly-once transitions out.

Every event (a declaration, a check-in, a risk-area or close-contact import, an assistance
request, a quarantine's end) follows one path: read the code and its health state, let the
policy decide, and write the transition as a compare-and-set (stores/health.py). A write that
finds the versions moved (another replica, an operator) re-reads and decides again; a request id
already applied answers what is stored now. Blocking: the servicer runs it in a thread.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import math
import secrets
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nodes.assistance import AssistanceEvent
from nodes.districts import check_district
from nodes.provincial.health import quarantine as q
from nodes.provincial.health.facts import CheckIn, Declaration
from nodes.provincial.health.policy import Event, Outcome, Policy
from nodes.provincial.issuance import CheckedHolder, IssuedCode, Issuer
from nodes.provincial.stores import CodeRecord, NewCode, StatusStore
from nodes.provincial.stores.base import MAX_REQUEST_ID_CHARS
from nodes.provincial.stores.health import (
    EventRow,
    HealthWrite,
    LockedRow,
    RequestReplayed,
    WriteResult,
)
from trust.codeformat import id_tail
from trust.errors import InvalidRequest, NotFound, StoreUnavailable
from trust.model import Colour

log = logging.getLogger(__name__)
Decide = Callable[[Colour, int, q.HealthState], q.Transition | None]

DAY_SECONDS = 86_400.0
RESIDENT = 9.0e15  # the "at" of a residence place: a resident is there at every time
MAX_HISTORY = 1000  # entries ExplainCode answers (the newest)
ATTEMPTS = 8  # compare-and-set retries before a write gives up (StoreUnavailable)
CHUNK = 2000  # codes per transaction of imports and scans (~40 ms of SQLite's writer each)


@dataclass(frozen=True)
class CodeView:
    """A code's state as GetCodeState reports it."""

    record: CodeRecord
    state: q.HealthState
    progress: q.Progress | None


@dataclass(frozen=True)
class ImportResult:
    entries: int
    matched: int  # codes the entries concern
    changed: int  # codes whose colour changed
    duplicate: bool = False  # this import (its id and entries) was applied before


@dataclass(frozen=True)
class Statistics:
    by_colour: dict[str, int]
    by_district: list[tuple[str, str, int]]  # (district of residence, colour, codes)
    in_quarantine: int
    check_ins_due: int  # quarantined holders whose check-in of yesterday was due
    check_ins_made: int  # ... and who made it
    assistance_sent: int
    assistance_received: int


@dataclass(frozen=True)
class RiskArea:
    district: str
    level: int  # 1 low, 2 medium, 3 high
    valid_from: float
    valid_until: float


def request_key(kind: str, request_id: str) -> str:
    """Where a request id is remembered: per kind of request (an operator's check-in id and an
    assistance id never collide), assistance ids per requesting province."""
    return f"{kind}:{request_id}"


def check_request_id(request_id: str) -> str:
    if not request_id:
        return str(uuid.uuid4())
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidRequest(f"request_id is longer than {MAX_REQUEST_ID_CHARS} characters")
    return request_id


class ColourEngine:
    def __init__(
        self,
        *,
        store: StatusStore,
        issuer: Issuer,
        policy: Policy,
        clock: Callable[[], float] = time.time,
        day_seconds: float = DAY_SECONDS,
        on_change: Callable[[str, Colour], None] | None = None,
    ) -> None:
        if not math.isfinite(day_seconds) or day_seconds <= 0:
            raise ValueError(f"a day must last a finite time of more than 0 s, not {day_seconds}")
        self._store = store
        self._issuer = issuer
        self.policy = policy
        self._clock = clock
        self.day_seconds = day_seconds
        self._on_change = on_change or (lambda kind, colour: None)

    # -- reads -----------------------------------------------------------------------------------
    def view(self, code_id: bytes) -> CodeView:
        if len(code_id) != 16:
            raise InvalidRequest("code_id must be 16 bytes")
        record = self._store.get(code_id)
        read = self._store.health.read(code_id)
        if record is None or read is None:
            raise NotFound(f"unknown code id {code_id.hex()}")
        health = read[2]
        state = q.HealthState() if health is None else q.HealthState.from_json(health.state)
        active = state.active(record.status_version)
        progress = None if active is None else active.progress(self._clock(), self.day_seconds)
        return CodeView(record, state, progress)

    def history(self, code_id: bytes, limit: int = MAX_HISTORY) -> list[EventRow]:
        """The code's last ``limit`` history entries, oldest first (bounded: a holder checking
        in daily for years has thousands)."""
        self.view(code_id)  # NotFound for an unknown code
        return self._store.health.history(code_id, limit)

    # -- events of residents ---------------------------------------------------------------------
    def apply(
        self, holder: CheckedHolder, declaration: Declaration, request_id: str
    ) -> tuple[IssuedCode, CodeView]:
        """ApplyCode: a code decided by the declaration (the holder's existing code, if any)."""
        holder_ref = self._issuer.holder_ref(holder.id_number)
        key = request_key("apply", request_id)
        done = self._store.health.request(key)
        if done is not None:
            return self._replayed_application(done, holder_ref, request_id)
        now = self._clock()
        outcome = self.policy.decide(Event.DECLARATION, self._declaration_facts(declaration, now))
        declare = self._with_policy(q.declare, declaration=declaration, outcome=outcome, now=now)
        made = declare(Colour.GREEN, 0, q.HealthState())
        assert made is not None  # a declaration is always recorded
        code = NewCode(
            code_id=_new_code_id(),
            holder_ref=holder_ref,
            colour=made.colour,
            now=now,
            masked_name=holder.masked_name,
            id_tail=id_tail(holder.id_number),
        )
        # A new code starts at status version 1, the version its state's colour is of.
        write = self._write_of(code.code_id, 0, 0, made, made.state, now, key, "apply")
        try:
            record, result = self._store.health.create(code, write)
        except RequestReplayed:  # the same request, applied meanwhile by another call
            done = self._store.health.request(key)
            assert done is not None
            return self._replayed_application(done, holder_ref, request_id)
        if result is WriteResult.APPLIED:
            self._changed("declaration", made)
            return self._issuer.sign(record), self.view(record.code_id)
        # The holder has a code already: the declaration is an event on it, made only by
        # someone who gives the holder's name too (its masked form is all the store keeps).
        if record.masked_name != holder.masked_name:
            raise InvalidRequest("the ID number and the name do not belong together")
        try:
            view = self._event(record.code_id, declare, now=now, request_id=key, kind="apply")
        except _Replayed as replayed:
            view = replayed.view
        return self._issuer.sign(view.record), view

    def check_in(self, code_id: bytes, check: CheckIn, request_id: str) -> CodeView:
        key = request_key("check_in", request_id)
        done = self._store.health.request(key)
        if done is not None:
            return self._replayed(done, code_id, request_id)
        outcome = self.policy.decide(Event.CHECK_IN, {"check_in": check.facts()})
        try:
            return self._event(
                code_id,
                self._with_policy(q.check_in, check=check, outcome=outcome),
                now=check.at,
                request_id=key,
                kind="check_in",
            )
        except _Replayed as replayed:
            return replayed.view

    def assistance(
        self, event: AssistanceEvent, *, from_province: str, actor: str
    ) -> tuple[CodeView, bool]:
        """Another province's report about one of this province's codes; the policy decides.
        Returns the code's view after it, and whether that province sent this request id
        before (request ids are the requesting province's: two provinces never collide)."""
        now = self._clock()
        key = request_key("assistance", f"{from_province}:{event.request_id}")
        done = self._store.health.request(key)
        if done is not None:
            return self._replayed(done, event.code_id, event.request_id), True
        code_id, kind, at, district = event.code_id, event.kind, event.at, event.district
        days_ago = max(0, int((now - at) // self.day_seconds))
        facts = {"assistance": {"kind": kind, "district": district, "days_ago": days_ago}}
        outcome = self.policy.decide(Event.ASSISTANCE, facts)
        try:
            view = self._event(
                code_id,
                self._decider(outcome, "assistance", now),
                now=now,
                request_id=key,
                kind="assistance",
                always=True,
                audit=(
                    f"{actor} for {from_province}",
                    "assistance-received",
                    f"{code_id.hex()} {kind} {district} #{event.request_id}",
                ),
            )
        except _Replayed as replayed:  # the same request on another replica, just now
            return replayed.view, True
        return view, False

    # -- health authority imports ----------------------------------------------------------------
    def import_risk_areas(self, areas: Sequence[RiskArea], import_id: str) -> ImportResult:
        """Store the areas; the policy decides at once for the holders of those in force now
        (the colour clock does it for the others when they come into force)."""
        for area in areas:
            check_district(area.district, what="risk area district")
            if area.level not in (1, 2, 3) or not area.valid_from < area.valid_until:
                raise InvalidRequest(
                    f"risk area {area.district}: level 1-3, valid_from < valid_until"
                )
        if len({a.district for a in areas}) != len(areas):
            raise InvalidRequest("a district is named twice in one import")
        self._store.health.put_risk_areas(
            [(a.district, a.level, a.valid_from, a.valid_until) for a in areas], import_id
        )
        matched, changed = self.apply_areas_due()
        return ImportResult(len(areas), matched, changed)

    def apply_areas_due(self) -> tuple[int, int]:
        """Decide for the holders of every stored area in force now and not yet decided:
        residents of the district, and those who went there while it was a risk area or in
        the 14 days before. (codes concerned, codes whose colour changed)."""
        now = self._clock()
        areas = {
            d: RiskArea(d, level, a, b) for d, level, a, b in self._store.health.areas_due(now)
        }
        if not areas:
            return 0, 0
        window = 14 * self.day_seconds
        since = min(a.valid_from for a in areas.values()) - window
        hits: dict[bytes, list[tuple[RiskArea, bool]]] = {}  # code -> (area, lives there)
        districts = list(areas)
        for start in range(0, len(districts), CHUNK):
            chunk = districts[start : start + CHUNK]
            for code_id, district, at in self._store.health.codes_in(chunk, since):
                area = areas[district]
                resident = at == RESIDENT
                if resident or at >= area.valid_from - window:  # this area's own window
                    hits.setdefault(code_id, []).append((area, resident))

        def decider(code_id: bytes) -> Decide:
            found = hits[code_id]
            residence = max((a.level for a, lives in found if lives), default=0)
            travel = max((a.level for a, lives in found if not lives), default=0)
            worst = max(found, key=lambda hit: hit[0].level)[0]
            facts = {
                "risk": {"residence_level": residence, "travel_level": travel},
                "area": {"district": worst.district, "level": worst.level},
            }
            return self._decider(self.policy.decide(Event.RISK_AREA, facts), "risk_area", now)

        def served(code_id: bytes) -> tuple[str, ...]:
            return tuple(sorted(_area_key(area) for area, _ in hits[code_id]))

        # Each code remembers the areas it was decided for: an area applied twice (two
        # replicas' clocks at its start, a tick that failed half-way) changes nothing.
        changed = self._events_many(
            list(hits), decider, now=now, same_for=lambda code_id: tuple(hits[code_id]),
            keys=served,
        )  # fmt: skip
        self._store.health.mark_applied(
            [(a.district, a.level, a.valid_from, a.valid_until) for a in areas.values()]
        )
        return len(hits), changed

    def import_close_contacts(
        self, holder_refs: Sequence[bytes], *, listed_at: float, import_id: str
    ) -> ImportResult:
        """Holders named by the keyed hash of their ID number (the status store's pseudonym)."""
        if any(len(ref) != 32 for ref in holder_refs):
            raise InvalidRequest("a close-contact entry is a 32-byte HMAC-SHA256 of the ID number")
        now = self._clock()
        if listed_at > now + 300:
            raise InvalidRequest("listed_at is in the future")
        # The same list sent again (a retry, the same file) changes nothing: the import is
        # known by its id and its entries.
        digest = hashlib.sha256(b"".join(sorted(holder_refs))).hexdigest()
        key = request_key("close_contacts", f"{import_id}:{int(listed_at)}:{digest}")
        if self._store.health.request(key) is not None:
            return ImportResult(len(holder_refs), 0, 0, duplicate=True)
        days_ago = max(0, int((now - listed_at) // self.day_seconds))
        outcome = self.policy.decide(Event.CLOSE_CONTACT, {"close_contact": {"days_ago": days_ago}})
        refs = list(dict.fromkeys(holder_refs))
        codes: list[bytes] = []
        for start in range(0, len(refs), CHUNK):
            codes += self._store.health.codes_of_holders(refs[start : start + CHUNK])
        decide = self._decider(outcome, "close_contact", now)
        # Each code remembers the list: a retry racing the first attempt, or sent after a
        # failure half-way, changes nothing for the codes already decided.
        changed = self._events_many(
            codes, lambda code_id: decide, now=now, same_for=lambda code_id: None,
            keys=lambda code_id: (key,),
        )  # fmt: skip
        self._store.health.remember(key, "close_contacts", now)
        return ImportResult(len(holder_refs), len(codes), changed)

    # -- statistics and audit --------------------------------------------------------------------
    def statistics(self) -> Statistics:
        now = self._clock()
        counts = self._store.health.statistics()
        due = made = 0
        for doc in self._store.health.quarantined():
            state = q.HealthState.from_json(doc)
            if state.quarantine is None:
                continue
            yesterday = state.quarantine.progress(now, self.day_seconds).day - 1
            if yesterday >= 0:
                due += 1
                made += yesterday in state.quarantine.checked
        audit = self._store.health.audit_counts()
        return Statistics(
            by_colour=counts["by_colour"],
            by_district=counts["by_district"],
            in_quarantine=counts["in_quarantine"],
            check_ins_due=due,
            check_ins_made=made,
            assistance_sent=audit.get("assistance-sent", 0),
            assistance_received=audit.get("assistance-received", 0),
        )

    def audit(self, actor: str, action: str, subject: str, outcome: str) -> None:
        """A durable audit line (who did what to which code or import, and how it ended);
        never personal data: codes by id, imports by id, callers by SPIFFE id."""
        self._store.health.audit(self._clock(), actor, action, subject, outcome)
        log.info("audit %s", action, extra={"actor": actor, "subject": subject, "outcome": outcome})

    # -- the clock -------------------------------------------------------------------------------
    def complete_due(self, limit: int = CHUNK) -> int:
        """End the quarantines that are complete (green); push back the due time of those a
        missed check-in made longer. Any replica may run it: each transition happens once."""
        now = self._clock()
        due = self._store.health.due(now, limit)

        def decider(code_id: bytes) -> Decide:
            def decide(colour: Colour, version: int, state: q.HealthState) -> q.Transition | None:
                return q.complete(
                    colour=colour,
                    status_version=version,
                    state=state,
                    now=now,
                    day_seconds=self.day_seconds,
                )

            return decide

        return self._events_many(due, decider, now=now, reschedule=True)

    # -- the one write path ----------------------------------------------------------------------
    def _decider(self, outcome: Outcome | None, kind: str, now: float) -> Decide:
        """What an event's outcome does to a code (quarantine.decide with this policy)."""
        return self._with_policy(q.decide, outcome=outcome, kind=kind, now=now)

    def _with_policy(self, transition: Callable[..., Any], **event: Any) -> Decide:
        """``transition`` (a function of quarantine.py) bound to the event and to this
        engine's day length and policy, as a function of the code's colour, version, state."""

        def decide(colour: Colour, version: int, state: q.HealthState) -> q.Transition | None:
            made: q.Transition | None = transition(
                colour=colour,
                status_version=version,
                state=state,
                day_seconds=self.day_seconds,
                adds=self.policy.missed_check_in_adds_days,
                **event,
            )
            return made

        return decide

    def _event(
        self,
        code_id: bytes,
        decide: Decide,
        *,
        now: float,
        request_id: str,
        kind: str,
        always: bool = False,
        audit: tuple[str, str, str] | None = None,
    ) -> CodeView:
        """One event on one code, retried while the versions move under it; ``audit``
        (actor, action, subject) is written with it, the decision in words as its outcome."""
        for _ in range(ATTEMPTS):
            colour, version, state, state_version = self._read(code_id)
            made = decide(colour, version, state)
            if made is None and not always:
                return self.view(code_id)
            write = (
                self._write_of(
                    code_id, version, state_version, made, made.state, now, request_id, kind
                )
                if made is not None
                else self._note_of(
                    code_id, colour, version, state_version, state, now, request_id, kind
                )
            )
            if audit is not None and write.event is not None:
                write = write._replace(audit=(*audit, write.event.words))
            result = self._store.health.write([write])[0]
            if result is WriteResult.APPLIED:
                if made is not None:
                    self._changed(made.entry.kind, made)
                return self.view(code_id)
            if result is WriteResult.REPLAYED:  # the same request id, applied meanwhile
                done = self._store.health.request(request_id)
                if done is None or done[0] != code_id:
                    raise InvalidRequest(f"request_id {request_id} was used for another code")
                raise _Replayed(self.view(code_id))
        raise StoreUnavailable(f"code {code_id.hex()} kept changing: {ATTEMPTS} attempts")

    def _events_many(
        self,
        code_ids: Iterable[bytes],
        decider: Callable[[bytes], Decide],
        *,
        now: float,
        reschedule: bool = False,
        same_for: Callable[[bytes], Hashable] | None = None,
        keys: Callable[[bytes], tuple[str, ...]] | None = None,
    ) -> int:
        """The same kind of event on many codes, a chunk per transaction in which the codes are
        locked, read, decided and written (stores/health.py ``transact``): exactly once, with
        no retries. Returns how many codes changed colour.

        A decision is a pure function of the code's colour, versions and state and of the
        event: codes alike (``same_for`` gives the event's part, e.g. the risk area) share one
        decision, so an import of 100,000 green codes decides once, not 100,000 times."""
        # In code-id order: each chunk is a range of the tables' keys, so its transaction
        # rewrites few pages (random chunks dirtied a page per code: 24 MB of WAL each, and a
        # commit waited 80 ms for it).
        pending = sorted(set(code_ids))
        plans: dict[Hashable, tuple[q.Transition | None, HealthWrite | None]] = {}

        def one_chunk(chunk: list[bytes]) -> int:
            made_of: dict[bytes, q.Transition] = {}  # this chunk's transitions, by code

            def plan(code_id: bytes, row: LockedRow) -> HealthWrite | None:
                served = () if keys is None else keys(code_id)
                if same_for is None:
                    made, write = self._plan(
                        decider(code_id), now, reschedule, code_id, row, served
                    )
                else:
                    key = (same_for(code_id), row)
                    if key not in plans:  # two chunks deciding one key at once: the same answer
                        plans[key] = self._plan(
                            decider(code_id), now, reschedule, code_id, row, served
                        )
                    made, write = plans[key]
                    write = None if write is None else write._replace(code_id=code_id)
                if made is not None:
                    made_of[code_id] = made
                return write

            changed = 0
            for write in self._store.health.transact(chunk, plan):
                made = made_of.get(write.code_id)
                if made is not None:
                    self._changed(made.entry.kind, made)
                    changed += made.changes_colour
            return changed

        chunks = [pending[start : start + CHUNK] for start in range(0, len(pending), CHUNK)]
        writers = min(self._store.health.writers, len(chunks))
        if writers <= 1:
            return sum(map(one_chunk, chunks))
        # Chunks are disjoint ranges of code ids: concurrent transactions never wait for each
        # other, and the database's second core works while this process plans the next.
        with concurrent.futures.ThreadPoolExecutor(writers, "hcx-batch") as pool:
            return sum(pool.map(one_chunk, chunks))

    def _plan(
        self,
        decide: Decide,
        now: float,
        reschedule: bool,
        code_id: bytes,
        row: LockedRow,
        served: tuple[str, ...] = (),
    ) -> tuple[q.Transition | None, HealthWrite | None]:
        """The write one batch event makes on one locked row; ``served`` names the event:
        a code that was already served it is left as it is (the event applied twice)."""
        colour_number, version, text, state_version = row
        colour = Colour(colour_number)
        state = q.HealthState() if text is None else q.HealthState.from_json(json.loads(text))
        if served and set(served) <= set(state.served):
            return None, None
        made = decide(colour, version, state)
        if made is not None and made.state is state and not made.changes_colour:
            made = None  # a note ("served by the current quarantine"): batches leave no trace
        if made is not None:
            after = made.state.serving(served) if served else made.state
            write = self._write_of(code_id, version, state_version, made, after, now, None, "")
            return made, write
        if reschedule:
            return None, self._reschedule_of(code_id, colour, version, state_version, state, now)
        return None, None

    def _read(self, code_id: bytes) -> tuple[Colour, int, q.HealthState, int]:
        read = self._store.health.read(code_id)
        if read is None:
            raise NotFound(f"unknown code id {code_id.hex()}")
        colour, version, health = read
        if health is None:
            return Colour(colour), version, q.HealthState(), 0
        return Colour(colour), version, q.HealthState.from_json(health.state), health.state_version

    def _write_of(
        self,
        code_id: bytes,
        version: int,
        state_version: int,
        made: q.Transition,
        state: q.HealthState,
        now: float,
        request_id: str | None,
        kind: str,
    ) -> HealthWrite:
        entry = made.entry
        after = version + 1 if made.changes_colour else max(version, 1)
        declaration = state.declaration
        places = None
        if entry.kind == "declaration" and declaration is not None:
            recent = declaration.recent_travel(now, self.day_seconds)
            # One row per district: living there covers every visit to it (a visit must not
            # replace the residence, or an area declared later would miss a resident).
            visits: dict[str, float] = {}
            for visit in recent:
                if visit.district != declaration.residence:
                    visits[visit.district] = max(visit.at, visits.get(visit.district, 0.0))
            places = [(declaration.residence, RESIDENT), *visits.items()]
        return HealthWrite(
            code_id=code_id,
            status_version=version,
            state_version=state_version,
            colour=made.colour,
            colour_changed=made.changes_colour,
            reason=f"{entry.rule}: {entry.words}" if made.changes_colour else "",
            state=state.to_json(),
            due_at=q.due_at(state, after, now, self.day_seconds),
            event=EventRow(
                0,
                entry.at,
                entry.kind,
                entry.rule,
                entry.colour_before,
                entry.colour_after,
                entry.words,
            ),
            now=now,
            request_id=request_id,
            request_kind=kind,
            residence=None if declaration is None else declaration.residence,
            places=places,
        )

    def _note_of(
        self,
        code_id: bytes,
        colour: Colour,
        version: int,
        state_version: int,
        state: q.HealthState,
        now: float,
        request_id: str,
        kind: str,
    ) -> HealthWrite:
        """An event that changed nothing, kept for its request id (an assistance request)."""
        words = f"{kind}: no rule applies"
        return self._reschedule_of(code_id, colour, version, state_version, state, now)._replace(
            event=EventRow(0, now, kind, "", colour, colour, words),
            request_id=request_id,
            request_kind=kind,
        )

    def _reschedule_of(
        self,
        code_id: bytes,
        colour: Colour,
        version: int,
        state_version: int,
        state: q.HealthState,
        now: float,
    ) -> HealthWrite:
        """The state as it is with its due time now: a due quarantine that a missed check-in
        made longer (and the base of a note)."""
        return HealthWrite(
            code_id=code_id,
            status_version=version,
            state_version=state_version,
            colour=colour,
            colour_changed=False,
            reason="",
            state=state.to_json(),
            due_at=q.due_at(state, version, now, self.day_seconds),
            event=None,
            now=now,
            residence=None if state.declaration is None else state.declaration.residence,
        )

    def _replayed(self, done: tuple[bytes, str], code_id: bytes, request_id: str) -> CodeView:
        """A request id seen before: the same request again (answered with the state now), or
        another request reusing it (refused: it must not answer for another code)."""
        if done[0] != code_id:
            raise InvalidRequest(f"request_id {request_id} was used for another code")
        return self.view(code_id)

    def _replayed_application(
        self, done: tuple[bytes, str], holder_ref: bytes, request_id: str
    ) -> tuple[IssuedCode, CodeView]:
        """An application seen before: only the same holder gets its code back."""
        if self._store.health.codes_of_holders([holder_ref]) != [done[0]]:
            raise InvalidRequest(f"request_id {request_id} was used for another holder")
        view = self.view(done[0])
        return self._issuer.sign(view.record), view

    def _declaration_facts(self, declaration: Declaration, now: float) -> dict[str, Any]:
        recent = declaration.recent_travel(now, self.day_seconds)
        districts = sorted({declaration.residence} | {v.district for v in recent})
        areas = self._store.health.risk_areas(districts)
        residence_level = max(
            (lvl for d, lvl, a, b in areas if d == declaration.residence and a <= now < b),
            default=0,
        )
        window = 14 * self.day_seconds
        travel_level = max(
            (
                lvl
                for v in recent
                for d, lvl, a, b in areas
                if d == v.district and a - window <= v.at < b
            ),
            default=0,
        )
        return {
            "declaration": declaration.facts(),
            "risk": {"residence_level": residence_level, "travel_level": travel_level},
        }

    def _changed(self, kind: str, made: q.Transition) -> None:
        if made.changes_colour:
            self._on_change(kind, made.colour)


class _Replayed(Exception):
    """A request applied by a concurrent call with the same request id: its answer."""

    def __init__(self, view: CodeView) -> None:
        self.view = view


def _area_key(area: RiskArea) -> str:
    return f"area:{area.district}:{area.level}:{area.valid_from:.0f}:{area.valid_until:.0f}"


def _new_code_id() -> bytes:
    return secrets.token_bytes(16)
