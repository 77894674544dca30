"""Quarantine arithmetic under a fake clock: days, check-ins, misses, completion."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from nodes.provincial.health.quarantine import Quarantine
from trust.model import Colour

DAY = 100.0
START = 1_000.0


def quarantine(days: int, checked: tuple[int, ...], adds: int = 1) -> Quarantine:
    return Quarantine(Colour.RED, "r", "reason", days, START, adds, checked)


# (name, days, checked day indices, adds, now in days since the start, complete?, length, missed)
ROWS = [
    ("first day, nothing yet", 7, (), 1, 0.5, False, 7, 0),
    ("every day checked, last day not over", 3, (0, 1, 2), 1, 2.5, False, 3, 0),
    ("every day checked, last day over", 3, (0, 1, 2), 1, 3.0, True, 3, 0),
    ("one day missed adds a day", 3, (0, 2, 3), 1, 3.5, False, 4, 1),
    ("one day missed, the added day done", 3, (0, 2, 3), 1, 4.0, True, 4, 1),
    ("the last day missed: not complete", 3, (0, 1), 1, 3.0, False, 4, 1),
    ("the missed last day made up", 3, (0, 1, 3), 1, 4.0, True, 4, 1),
    ("two missed days add two", 3, (1, 3, 4), 1, 5.0, True, 5, 2),
    ("nothing checked for days", 3, (), 1, 10.0, False, 13, 10),
    ("misses add nothing when the policy says so", 3, (), 0, 3.0, True, 3, 3),
    ("misses add two days each", 3, (1, 2, 3, 4), 2, 5.0, True, 5, 1),
    ("misses add two days each, a second miss", 3, (1, 2, 3), 2, 5.0, False, 7, 2),
    ("a check-in before the start does not exist", 2, (0, 1), 1, 1.99, False, 2, 0),
]


@pytest.mark.parametrize(
    ("days", "checked", "adds", "at_day", "complete", "length", "missed"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_progress(
    days: int,
    checked: tuple[int, ...],
    adds: int,
    at_day: float,
    complete: bool,
    length: int,
    missed: int,
) -> None:
    progress = quarantine(days, checked, adds).progress(START + at_day * DAY, DAY)
    assert (progress.complete, progress.length, progress.missed) == (complete, length, missed)
    assert progress.ends_at >= START + days * DAY


def test_the_next_check_in_is_due_by_the_end_of_the_first_day_without_one() -> None:
    q = quarantine(7, (0, 1))
    assert q.progress(START + 2.2 * DAY, DAY).next_check_in_by == START + 3 * DAY
    assert quarantine(2, (0, 1)).progress(START + 1.5 * DAY, DAY).next_check_in_by is None


def test_a_quarantine_never_ends_before_its_days() -> None:
    """Whatever was checked, completion is never before started + days (the invariant)."""
    for days in range(1, 6):
        for mask in range(1 << 8):
            checked = tuple(d for d in range(8) if mask >> d & 1)
            q = quarantine(days, checked)
            for tenth in range(0, 90):
                now = START + tenth * DAY / 10
                p = q.progress(now, DAY)
                if p.complete:
                    assert now >= START + days * DAY
                    assert p.checked >= days or p.missed  # misses only lengthen it
                    counted = len([d for d in checked if d < p.length])
                    assert counted + p.missed == p.length


# -- transitions: a lesser outcome during a quarantine -------------------------------------------
def _outcome(colour: Colour, days: int, rule: str) -> Any:
    from nodes.provincial.health.policy import Outcome

    return Outcome(rule, colour, days, rule)


def test_a_fever_late_in_a_red_quarantine_follows_it_instead_of_green() -> None:
    from nodes.provincial.health import quarantine as q

    red = q.Quarantine(Colour.RED, "contact", "contact", 14, START, 1, tuple(range(13)))
    state = q.HealthState(red, colour_version=2)
    fever_at = START + 12.5 * DAY
    made = q.decide(
        colour=Colour.RED, status_version=2, state=state,
        outcome=_outcome(Colour.YELLOW, 7, "fever"), kind="check_in", now=fever_at,
        day_seconds=DAY, adds=1,
    )  # fmt: skip
    assert made is not None and made.colour is Colour.RED and made.state.pending is not None
    # Every day checked in: red ends on day 14, then yellow goes on to 12.5 + 7 days.
    both = q.HealthState(
        replace(red, checked=tuple(range(14))), 2,
        pending=replace(made.state.pending, checked=(0, 1)),
    )  # fmt: skip
    after_red = q.complete(
        colour=Colour.RED, status_version=2, state=both, now=START + 14 * DAY, day_seconds=DAY
    )
    assert after_red is not None and after_red.colour is Colour.YELLOW
    assert after_red.state.quarantine is not None and after_red.state.quarantine.rule == "fever"
    assert "goes on" in after_red.entry.words


def test_a_lesser_outcome_that_ends_sooner_is_served() -> None:
    from nodes.provincial.health import quarantine as q

    red = q.Quarantine(Colour.RED, "contact", "contact", 14, START, 1)
    made = q.decide(
        colour=Colour.RED, status_version=2, state=q.HealthState(red, 2),
        outcome=_outcome(Colour.YELLOW, 7, "fever"), kind="check_in", now=START + DAY,
        day_seconds=DAY, adds=1,
    )  # fmt: skip
    assert made is not None and made.state.pending is None and "served" in made.entry.words


def test_a_fever_at_a_check_in_late_in_a_red_quarantine_follows_it() -> None:
    """Through check_in, the way fevers usually arrive (decide alone passed; check_in lost it)."""
    from nodes.provincial.health import quarantine as q
    from nodes.provincial.health.facts import CheckIn

    red = q.Quarantine(Colour.RED, "contact", "contact", 14, START, 1, tuple(range(12)))
    at = START + 12.5 * DAY
    made = q.check_in(
        colour=Colour.RED, status_version=2, state=q.HealthState(red, 2),
        check=CheckIn(380, (), at), outcome=_outcome(Colour.YELLOW, 7, "fever-at-check-in"),
        day_seconds=DAY, adds=1,
    )  # fmt: skip
    assert made.state.pending is not None and made.state.pending.rule == "fever-at-check-in"
    assert "does not count" in made.entry.words and "once the current" in made.entry.words


def test_a_stricter_outcome_keeps_a_longer_lesser_quarantine_to_follow() -> None:
    from nodes.provincial.health import quarantine as q

    yellow = q.Quarantine(Colour.YELLOW, "long", "long", 21, START, 1, (0,))
    made = q.decide(
        colour=Colour.YELLOW, status_version=2, state=q.HealthState(yellow, 2),
        outcome=_outcome(Colour.RED, 7, "contact"), kind="declaration", now=START + 0.5 * DAY,
        day_seconds=DAY, adds=1,
    )  # fmt: skip
    assert made is not None and made.colour is Colour.RED
    assert made.state.pending is not None and made.state.pending.rule == "long"


def test_an_operator_colour_drops_the_quarantine_that_would_have_followed() -> None:
    from nodes.provincial.health import quarantine as q

    red = q.Quarantine(Colour.RED, "contact", "contact", 14, START, 1)
    later = q.Quarantine(Colour.YELLOW, "fever", "fever", 7, START + 12 * DAY, 1)
    state = q.HealthState(red, colour_version=2, pending=later)
    # SetStatus moved the status version to 3: the automatic quarantines are over.
    made = q.decide(
        colour=Colour.RED, status_version=3, state=state,
        outcome=_outcome(Colour.RED, 14, "contact-again"), kind="declaration", now=START + DAY,
        day_seconds=DAY, adds=1,
    )  # fmt: skip
    assert made is not None and made.state.pending is None
