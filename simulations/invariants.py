"""The run's invariants, checked from what checkpoints saw and what provinces acknowledged.

1. Zero wrong accepts: no forged, tampered or expired code is VALID or VALID_OFFLINE; no code
   signed with a revoked key is accepted once the revocation was acknowledged + ``bound``.
2. Zero stale colours: no VALID verdict, for a verification sent more than ``bound`` after a
   colour change was acknowledged, carries an older status version (or another colour).
3. Zero lost status updates: at the end, every province reports for every code the version
   and colour of the last acknowledged change, or a later one its own history explains (a
   quarantine its colour clock ended since); codes whose last change was never acknowledged
   before the run ended are listed apart, they are not counted as lost.
4. No quarantine ends early: in every code's history, a quarantine ends only after its days
   have passed and a check-in was counted on as many days (simulations.health).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulations.health import quarantine_violations
from simulations.holders import StatusLedger
from simulations.traffic import Verification

ACCEPTED = frozenset({"VALID", "VALID_OFFLINE"})


@dataclass
class InvariantReport:
    """Counts per invariant, with a few examples of each violation."""

    bound: float
    wrong_accepts: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    stale_valid: int = 0
    checked_valid: int = 0
    lost_updates: int = 0
    checked_codes: int = 0
    unacknowledged_codes: int = 0
    unreachable_codes: int = 0  # not checkable: counted as a failure of the invariant
    early_ends: int = 0  # quarantines that ended before their days and check-ins
    quarantines_ended: int = 0
    histories_checked: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return (
            not self.wrong_accepts
            and self.stale_valid == 0
            and self.lost_updates == 0
            and self.unreachable_codes == 0
            and self.early_ends == 0
        )

    def _example(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text)


def check_accepts(
    report: InvariantReport, verifications: Sequence[Verification], revoked_at: float | None
) -> None:
    for v in verifications:
        kind = v.scan.kind
        if kind == "genuine":
            continue
        report.injected[kind] += 1
        if v.verdict not in ACCEPTED:
            continue
        if kind == "compromised" and (
            revoked_at is None or v.scan.sent < revoked_at + report.bound
        ):
            continue  # not known to be compromised yet: accepting it is not a fault
        report.wrong_accepts[kind] += 1
        report._example(f"{kind} code accepted ({v.verdict}) at t={v.scan.sent:.2f} s")


def check_stale(
    report: InvariantReport, verifications: Sequence[Verification], ledger: StatusLedger
) -> None:
    for v in verifications:
        if v.verdict != "VALID" or v.scan.kind != "genuine":
            continue
        report.checked_valid += 1
        ack = ledger.latest_before(v.scan.code_id, v.scan.sent - report.bound)
        if ack is None:
            continue
        if v.status_version < ack.version or (
            v.status_version == ack.version and v.colour != ack.colour
        ):
            report.stale_valid += 1
            report._example(
                f"stale VALID at t={v.scan.sent:.2f} s: version {v.status_version} colour "
                f"{v.colour}, acknowledged version {ack.version} colour {ack.colour} "
                f"at t={ack.at:.2f} s"
            )


def check_lost(
    report: InvariantReport,
    ledger: StatusLedger,
    final: Mapping[bytes, tuple[int, int] | None],
    histories: Mapping[bytes, Sequence[Any]],
) -> None:
    """``final``: code id -> (version, colour) as the province reports it now (None: unknown);
    ``histories``: the codes' histories (ExplainCode), for changes made after the last ack."""
    for code_id, acks in ledger.acks.items():
        if code_id in ledger.abandoned_codes:
            report.unacknowledged_codes += 1
            continue
        if code_id not in final:  # the province did not answer the final read at all
            report.unreachable_codes += 1
            report._example(f"code {code_id.hex()[:8]}: its province did not answer at the end")
            continue
        report.checked_codes += 1
        last = max(acks, key=lambda a: a.version)
        now = final[code_id]
        if now is not None and now[0] > last.version and _explained(histories.get(code_id), now):
            continue  # changed since, by the province's own rules: its history says so
        if now is None or now != (last.version, last.colour):
            report.lost_updates += 1
            report._example(
                f"code {code_id.hex()[:8]}: province reports {now}, last acknowledged "
                f"{(last.version, last.colour)}"
            )


def _explained(history: Sequence[Any] | None, now: tuple[int, int]) -> bool:
    """The history's last colour change leads to the colour reported now."""
    changes = [e for e in history or () if e.colour_before != e.colour_after]
    return bool(changes) and changes[-1].colour_after == now[1]


def check_quarantines(
    report: InvariantReport, histories: Mapping[bytes, Sequence[Any]], day_s: float
) -> None:
    for code_id, history in histories.items():
        report.histories_checked += 1
        report.quarantines_ended += sum(1 for e in history if e.kind == "complete")
        for problem in quarantine_violations(history, day_s):
            report.early_ends += 1
            report._example(f"code {code_id.hex()[:8]}: quarantine {problem}")


def check_all(
    *,
    verifications: Sequence[Verification],
    ledger: StatusLedger,
    final: Mapping[bytes, tuple[int, int] | None],
    revoked_at: float | None,
    bound: float,
    histories: Mapping[bytes, Sequence[Any]] | None = None,
    day_s: float = 86_400.0,
) -> InvariantReport:
    report = InvariantReport(bound=bound)
    check_accepts(report, verifications, revoked_at)
    check_stale(report, verifications, ledger)
    check_lost(report, ledger, final, histories or {})
    check_quarantines(report, histories or {}, day_s)
    return report
