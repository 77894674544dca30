"""The simulation's colour invariants catch what they are for: an early end, a lost update."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from healthcode.v1 import common_pb2
from simulations.health import quarantine_violations
from simulations.holders import StatusLedger
from simulations.invariants import InvariantReport, check_lost

G, Y, R = common_pb2.GREEN, common_pb2.YELLOW, common_pb2.RED
DAY = 2.0


def entry(at: float, kind: str, before: int, after: int, rule: str = "", words: str = "") -> Any:
    return SimpleNamespace(
        at=at, kind=kind, colour_before=before, colour_after=after, rule=rule, words=words
    )


def fever_quarantine(days_checked: int, ends_at: float) -> list[Any]:
    history = [entry(0.0, "declaration", G, Y, "fever-declared", "turned YELLOW")]
    history += [
        entry(d * DAY + 0.5, "check_in", Y, Y, words=f"check-in: well; day {d + 1} counted")
        for d in range(days_checked)
    ]
    return [*history, entry(ends_at, "complete", Y, G, "quarantine-complete")]


def test_a_quarantine_served_in_full_is_no_violation() -> None:
    assert quarantine_violations(fever_quarantine(7, 7 * DAY), DAY) == []


def test_an_end_before_the_days_is_a_violation() -> None:
    assert quarantine_violations(fever_quarantine(7, 6.5 * DAY), DAY) == [
        "ended after 13.00 s, before 7 days"
    ]


def test_an_end_with_missing_check_ins_is_a_violation() -> None:
    assert quarantine_violations(fever_quarantine(6, 8 * DAY), DAY) == [
        "ended with 6 of 7 days checked in"
    ]


def test_a_day_checked_twice_counts_once() -> None:
    history = fever_quarantine(6, 8 * DAY)
    history.insert(3, entry(1.6, "check_in", Y, Y, words="check-in: well; day 1 counted"))
    assert quarantine_violations(history, DAY) == ["ended with 6 of 7 days checked in"]


def test_an_escalation_restarts_the_count() -> None:
    history = fever_quarantine(7, 7 * DAY)[:-1]
    history.append(entry(7 * DAY - 1, "check_in", Y, R, "fever-at-check-in"))  # stricter now
    history.append(entry(7 * DAY, "complete", R, G, "quarantine-complete"))
    assert quarantine_violations(history, DAY) == ["ended after 1.00 s, before 7 days"]


def ledger_with(code: bytes, version: int, colour: int) -> StatusLedger:
    ledger = StatusLedger()
    ledger.acknowledge(code, 0, 1.0, SimpleNamespace(status_version=version, colour=colour))
    return ledger


def test_a_later_change_the_history_explains_is_not_lost() -> None:
    code = b"\x01" * 16
    report = InvariantReport(bound=1.0)
    history = [entry(0, "declaration", G, Y), entry(14, "complete", Y, G)]
    check_lost(report, ledger_with(code, 1, Y), {code: (2, G)}, {code: history})
    assert report.lost_updates == 0


def test_a_change_nothing_explains_is_lost() -> None:
    code = b"\x02" * 16
    report = InvariantReport(bound=1.0)
    check_lost(report, ledger_with(code, 2, R), {code: (1, G)}, {code: []})
    assert report.lost_updates == 1
    report = InvariantReport(bound=1.0)
    history = [entry(0, "declaration", G, Y)]  # says YELLOW, the province reports GREEN
    check_lost(report, ledger_with(code, 1, Y), {code: (2, G)}, {code: history})
    assert report.lost_updates == 1
