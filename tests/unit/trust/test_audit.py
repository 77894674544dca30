"""The audit log's verification: an edited, forged, moved or deleted entry is reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from trust import audit, pki
from trust.kv import KvEntry
from trust.stores.embedded import EmbeddedStore


@pytest.fixture
def log(tmp_path: Path) -> tuple[pki.Authority, list[KvEntry]]:
    root = pki.create_root_ca()

    async def write() -> list[KvEntry]:
        store = EmbeddedStore(tmp_path / "r.db")
        for i in range(4):
            await audit.append(
                store,
                root.private_key,
                actor=f"a{i}",
                action="x",
                subject="330000",
                detail=str(i),
                at=1000.0 + i,
            )
        entries = list((await store.read_prefix("audit/")).entries)
        await store.close()
        return entries

    return root, asyncio.run(write())


def test_an_intact_log_verifies_in_order(log) -> None:  # type: ignore[no-untyped-def]
    root, entries = log
    report = audit.verify_log(entries, [root.certificate])
    assert report.intact and [e.actor for e in report.entries] == ["a0", "a1", "a2", "a3"]


@pytest.mark.parametrize(
    ("case", "tamper", "expected"),
    [
        ("middle entry deleted", lambda es, root: es[:1] + es[2:], "deleted"),
        (
            "entry edited",
            lambda es, root: [es[0], KvEntry(es[1].key, es[1].value[:-1] + b"\x00", 9), *es[2:]],
            "edited",
        ),
        (
            "a later entry copied over an earlier key (the seal binds its key)",
            lambda es, root: es[:1] + es[2:] + [KvEntry(es[1].key, es[3].value, 9)],
            "forged",
        ),
    ],
)
def test_tampering_is_reported(log, case: str, tamper, expected: str) -> None:  # type: ignore[no-untyped-def]
    root, entries = log
    report = audit.verify_log(tamper(entries, root), [root.certificate])
    assert not report.intact
    assert expected in " ".join(report.problems)


def test_a_log_checked_against_another_root_is_not_intact(log) -> None:  # type: ignore[no-untyped-def]
    _, entries = log
    report = audit.verify_log(entries, [pki.create_root_ca().certificate])
    assert not report.intact
