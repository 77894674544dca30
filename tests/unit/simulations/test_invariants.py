"""Invariant checks, table-driven: each row is one thing a checkpoint saw."""

from __future__ import annotations

import pytest

from healthcode.v1 import common_pb2
from simulations.holders import StatusLedger
from simulations.invariants import check_all
from simulations.traffic import Scan, Verification

CODE = b"\x01" * 16


def seen(kind: str, verdict: str, sent: float, version: int = 1, colour: int = 1) -> Verification:
    scan = Scan(0, CODE, "HCX1:x", kind, 0, 1, 0, sent)
    return Verification(scan, "unary", 0, False, 0.01, verdict, "", colour, version, b"")


def ledger_with_change_at(at: float) -> StatusLedger:
    ledger = StatusLedger()
    ledger.acknowledge(
        CODE, 0, 0.0, common_pb2.CodeStatus(status_version=1, colour=common_pb2.GREEN)
    )
    ledger.acknowledge(CODE, 0, at, common_pb2.CodeStatus(status_version=2, colour=common_pb2.RED))
    return ledger


@pytest.mark.parametrize(
    ("name", "verification", "wrong", "stale"),
    [
        ("forged code refused", seen("forged", "INVALID", 5), 0, 0),
        ("forged code accepted", seen("forged", "VALID", 5), 1, 0),
        ("expired code accepted offline", seen("expired", "VALID_OFFLINE", 5), 1, 0),
        ("compromised code before revocation", seen("compromised", "VALID", 5), 0, 0),
        ("compromised code after revocation", seen("compromised", "VALID", 12), 1, 0),
        ("old colour within the bound", seen("genuine", "VALID", 10.5), 0, 0),
        ("old colour after the bound", seen("genuine", "VALID", 11.5), 0, 1),
        ("new colour after the bound", seen("genuine", "VALID", 11.5, 2, 3), 0, 0),
        ("old colour offline is not VALID", seen("genuine", "VALID_OFFLINE", 11.5), 0, 0),
    ],
)
def test_row(name: str, verification: Verification, wrong: int, stale: int) -> None:
    report = check_all(
        verifications=[verification],
        ledger=ledger_with_change_at(10.0),
        final={CODE: (2, 3)},
        revoked_at=10.0,
        bound=1.0,
    )
    assert sum(report.wrong_accepts.values()) == wrong, name
    assert report.stale_valid == stale, name
    assert report.lost_updates == 0


def test_a_province_forgetting_an_acknowledged_change_is_a_lost_update() -> None:
    report = check_all(
        verifications=[], ledger=ledger_with_change_at(3.0), final={CODE: (1, 1)},
        revoked_at=None, bound=1.0,
    )  # fmt: skip
    assert report.lost_updates == 1 and not report.holds
