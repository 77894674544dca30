"""Quarantine and colour transitions: pure functions of a code's health state and an event.

A quarantine is ``days`` days long, counted from the moment a rule imposed it, with a health
check-in on every day. Day ``d`` runs from ``started + d × day`` to ``started + (d + 1) × day``
(a day is 86,400 s; a compressed clock in simulations). A day that ends without a counted
check-in adds the policy's ``missed_check_in_adds_days`` to the length; a check-in that a
check-in rule objects to (a fever) is recorded but does not count. The quarantine is complete
when every day of its length has ended and none is left waiting for a check-in; the colour then
turns green (rule ``quarantine-complete``). A stricter outcome during a quarantine starts a new
one; an equal one restarts it when it would end later; a lesser one is served by it or, when it
would end later, follows it (``pending``; the check-ins made meanwhile count for both).

An operator's SetStatus ends any automatic quarantine: the state remembers the status version
its colour was set at, and a quarantine under a colour changed since is over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from nodes.provincial.health.facts import CheckIn, Declaration
from nodes.provincial.health.policy import SEVERITY, Outcome
from trust.model import Colour

COMPLETE_RULE = "quarantine-complete"
SERVED_KEPT = 64


@dataclass(frozen=True)
class Progress:
    day: int  # today's day index (0 on the first day)
    length: int  # days the quarantine lasts now (its days plus those added by misses)
    checked: int  # days with a counted check-in
    missed: int  # days that ended without one
    ends_at: float  # when it ends if every check-in from now on is made
    complete: bool
    next_check_in_by: float | None  # end of the next day still needing a check-in


@dataclass(frozen=True)
class Quarantine:
    colour: Colour
    rule: str
    reason: str
    days: int
    started_at: float
    adds: int  # days a missed check-in adds (the policy's, when the quarantine started)
    checked: tuple[int, ...] = ()  # day indices with a counted check-in

    def progress(self, now: float, day_seconds: float) -> Progress:
        today = max(0, math.floor((now - self.started_at) / day_seconds))
        done = set(self.checked)
        length, day, missed = self.days, 0, 0
        while day < length:
            if day in done:
                day += 1
            elif day < today:  # that day ended without a check-in
                missed += 1
                length += self.adds
                day += 1
            else:
                break
        ends_at = self.started_at + length * day_seconds
        complete = day >= length and now >= ends_at
        waiting = day if day < length else None
        next_by = None if waiting is None else self.started_at + (waiting + 1) * day_seconds
        return Progress(today, length, len(done), missed, ends_at, complete, next_by)

    def to_json(self) -> dict[str, Any]:
        return {
            "colour": int(self.colour),
            "rule": self.rule,
            "reason": self.reason,
            "days": self.days,
            "started_at": self.started_at,
            "adds": self.adds,
            "checked": list(self.checked),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Quarantine:
        return cls(
            Colour(doc["colour"]),
            str(doc["rule"]),
            str(doc["reason"]),
            int(doc["days"]),
            float(doc["started_at"]),
            int(doc["adds"]),
            tuple(int(d) for d in doc["checked"]),
        )


@dataclass(frozen=True)
class HealthState:
    """What the province keeps about a code besides its colour row."""

    quarantine: Quarantine | None = None
    colour_version: int = 0  # the code's status version when this state set its colour
    declaration: Declaration | None = None
    last_check_in: float | None = None
    # A lesser quarantine that outlasts the current one (a fever on day 13 of a red one): it
    # takes over when the current one is complete, with the check-ins made meanwhile.
    pending: Quarantine | None = None
    # The batch events already applied to this code (an import, a risk area): applying one
    # again — a retry, two replicas racing — changes nothing. The newest SERVED_KEPT.
    served: tuple[str, ...] = ()

    def active(self, status_version: int) -> Quarantine | None:
        """The quarantine, unless an operator has changed the colour since it was set."""
        return self.quarantine if status_version == self.colour_version else None

    def to_json(self) -> dict[str, Any]:
        return {
            "quarantine": None if self.quarantine is None else self.quarantine.to_json(),
            "colour_version": self.colour_version,
            "declaration": None if self.declaration is None else self.declaration.to_json(),
            "last_check_in": self.last_check_in,
            "pending": None if self.pending is None else self.pending.to_json(),
            "served": list(self.served),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> HealthState:
        q, d, p = doc.get("quarantine"), doc.get("declaration"), doc.get("pending")
        return cls(
            None if q is None else Quarantine.from_json(q),
            int(doc.get("colour_version", 0)),
            None if d is None else Declaration.from_json(d),
            doc.get("last_check_in"),
            None if p is None else Quarantine.from_json(p),
            tuple(str(k) for k in doc.get("served", ())),
        )

    def serving(self, keys: tuple[str, ...]) -> HealthState:
        """This state with ``keys`` recorded as applied (the newest SERVED_KEPT kept)."""
        kept = tuple(k for k in self.served if k not in keys)
        return replace(self, served=(*kept, *keys)[-SERVED_KEPT:])


@dataclass(frozen=True)
class Entry:
    """One line of a code's history: what happened, by which rule, in words."""

    at: float
    kind: str  # declaration, check_in, risk_area, close_contact, assistance, complete
    rule: str
    colour_before: Colour
    colour_after: Colour
    words: str


@dataclass(frozen=True)
class Transition:
    """A new colour and state for a code, and the history entry that explains it."""

    colour: Colour
    state: HealthState
    entry: Entry

    @property
    def changes_colour(self) -> bool:
        return self.entry.colour_before != self.entry.colour_after


def _start(outcome: Outcome, now: float, adds: int) -> Quarantine:
    return Quarantine(outcome.colour, outcome.rule, outcome.reason, outcome.days, now, adds)


def decide(
    *,
    colour: Colour,
    status_version: int,
    state: HealthState,
    outcome: Outcome | None,
    kind: str,
    now: float,
    day_seconds: float,
    adds: int,
) -> Transition | None:
    """The transition an event's outcome makes (None: nothing to record)."""
    current = state.active(status_version)
    if outcome is None:
        return None
    if current is None and state.pending is not None:
        state = replace(state, pending=None)  # an operator ended the quarantines it followed
    fresh = _start(outcome, now, adds)
    stricter = SEVERITY[outcome.colour] > SEVERITY[colour]
    if stricter and current is not None:
        # The lesser quarantine in progress follows the stricter one if it outlasts it.
        ends = current.progress(now, day_seconds).ends_at
        if ends > fresh.progress(now, day_seconds).ends_at and (
            state.pending is None or ends > state.pending.progress(now, day_seconds).ends_at
        ):
            state = replace(state, pending=current)
    pending = state.pending
    if pending is not None and SEVERITY[outcome.colour] >= SEVERITY[pending.colour]:
        ends = pending.progress(now, day_seconds).ends_at
        if ends <= fresh.progress(now, day_seconds).ends_at:  # the new one serves it
            state = replace(state, pending=None)
    if not stricter and current is not None and SEVERITY[outcome.colour] == SEVERITY[colour]:
        if fresh.progress(now, day_seconds).ends_at <= current.progress(now, day_seconds).ends_at:
            return _note(colour, state, kind, outcome, now, "served by the current quarantine")
        return _impose(colour, state, fresh, kind, now, status_version, restarted=True)
    if not stricter and current is not None:
        ends = fresh.progress(now, day_seconds).ends_at
        if ends > current.progress(now, day_seconds).ends_at and (
            state.pending is None or ends > state.pending.progress(now, day_seconds).ends_at
        ):
            words = (
                f"{outcome.reason} (rule {outcome.rule}): {outcome.colour.name} for "
                f"{outcome.days} days once the current {colour.name} quarantine is complete"
            )
            later = replace(state, pending=fresh)
            return Transition(colour, later, Entry(now, kind, outcome.rule, colour, colour, words))
    if not stricter:
        return _note(
            colour, state, kind, outcome, now, f"served by the current {colour.name} colour"
        )
    return _impose(colour, state, fresh, kind, now, status_version, restarted=False)


def _impose(
    colour: Colour,
    state: HealthState,
    quarantine: Quarantine,
    kind: str,
    now: float,
    status_version: int,
    *,
    restarted: bool,
) -> Transition:
    what = "quarantine restarted" if restarted else f"turned {quarantine.colour.name}"
    words = (
        f"{what}: {quarantine.reason} (rule {quarantine.rule}); "
        f"{quarantine.days} days of home quarantine with a check-in every day"
    )
    # The colour's status version after this write: +1 when the colour changes.
    version = status_version + (1 if quarantine.colour != colour else 0)
    # The constructor, not dataclasses.replace: this runs once per code of a 100,000 import.
    new_state = HealthState(
        quarantine, version, state.declaration, state.last_check_in, state.pending, state.served
    )
    entry = Entry(now, kind, quarantine.rule, colour, quarantine.colour, words)
    return Transition(quarantine.colour, new_state, entry)


def _note(
    colour: Colour, state: HealthState, kind: str, outcome: Outcome, now: float, why: str
) -> Transition:
    words = f"{outcome.reason} (rule {outcome.rule}, {outcome.colour.name}): {why}"
    return Transition(colour, state, Entry(now, kind, outcome.rule, colour, colour, words))


def declare(
    *,
    colour: Colour,
    status_version: int,
    state: HealthState,
    declaration: Declaration,
    outcome: Outcome | None,
    now: float,
    day_seconds: float,
    adds: int,
) -> Transition:
    """A declaration is always recorded (it is what later risk data is matched against)."""
    declared = replace(state, declaration=declaration)
    made = decide(
        colour=colour,
        status_version=status_version,
        state=declared,
        outcome=outcome,
        kind="declaration",
        now=now,
        day_seconds=day_seconds,
        adds=adds,
    )
    if made is not None:
        return made
    entry = Entry(now, "declaration", "", colour, colour, "declaration: no rule applies")
    return Transition(colour, declared, entry)


def check_in(
    *,
    colour: Colour,
    status_version: int,
    state: HealthState,
    check: CheckIn,
    outcome: Outcome | None,
    day_seconds: float,
    adds: int,
) -> Transition:
    """A daily check-in: counted toward the quarantine unless a check-in rule objects."""
    now = check.at
    checked_state = replace(state, last_check_in=now)
    current = state.active(status_version)
    if outcome is not None:
        made = decide(
            colour=colour,
            status_version=status_version,
            state=checked_state,
            outcome=outcome,
            kind="check_in",
            now=now,
            day_seconds=day_seconds,
            adds=adds,
        )
        if made is not None and made.entry.colour_before != made.entry.colour_after:
            return made
        if current is not None and made is not None and made.state.quarantine is not current:
            return made  # restarted
        words = f"check-in: {outcome.reason} (rule {outcome.rule}); the day does not count"
        if made is not None and made.state.pending is not checked_state.pending:
            words = f"{words}; {made.entry.words}"  # e.g. a fever that follows a red quarantine
        after = checked_state if made is None else made.state
        return Transition(
            colour, after, Entry(now, "check_in", outcome.rule, colour, colour, words)
        )
    if current is None:
        entry = Entry(now, "check_in", "", colour, colour, "check-in: well")
        return Transition(colour, checked_state, entry)
    day = current.progress(now, day_seconds).day
    counted = replace(current, checked=tuple(sorted(set(current.checked) | {day})))
    progress = counted.progress(now, day_seconds)
    pending = state.pending
    if pending is not None:  # the same check-in counts for the quarantine that follows
        later_day = pending.progress(now, day_seconds).day
        pending = replace(pending, checked=tuple(sorted(set(pending.checked) | {later_day})))
        checked_state = replace(checked_state, pending=pending)
    words = (
        f"check-in: well; day {day + 1} counted ({progress.checked} days checked in, "
        f"{progress.missed} missed, {progress.length} days in all)"
    )
    new_state = replace(checked_state, quarantine=counted)
    return Transition(colour, new_state, Entry(now, "check_in", "", colour, colour, words))


def complete(
    *, colour: Colour, status_version: int, state: HealthState, now: float, day_seconds: float
) -> Transition | None:
    """Green when the active quarantine is complete; None while it is not (or there is none)."""
    current = state.active(status_version)
    if current is None or not current.progress(now, day_seconds).complete:
        return None
    progress = current.progress(now, day_seconds)
    extra = f", {progress.missed} missed check-ins added days" if progress.missed else ""
    served = (
        f"quarantine complete: {progress.length} days with {progress.checked} check-ins"
        f"{extra} (rule {current.rule} served)"
    )
    following = state.pending
    if following is not None and not following.progress(now, day_seconds).complete:
        words = f"{served}; the {following.colour.name} quarantine of rule {following.rule} goes on"
        new_state = HealthState(
            following,
            status_version + 1,
            state.declaration,
            state.last_check_in,
            None,
            state.served,
        )
        entry = Entry(now, "complete", COMPLETE_RULE, colour, following.colour, words)
        return Transition(following.colour, new_state, entry)
    new_state = HealthState(
        None, status_version + 1, state.declaration, state.last_check_in, None, state.served
    )
    entry = Entry(now, "complete", COMPLETE_RULE, colour, Colour.GREEN, f"{served}; turned GREEN")
    return Transition(Colour.GREEN, new_state, entry)


def due_at(state: HealthState, status_version: int, now: float, day_seconds: float) -> float | None:
    """When the scheduler should next look at this code (None: nothing pending)."""
    current = state.active(status_version)
    if current is None:
        return None
    return current.progress(now, day_seconds).ends_at
