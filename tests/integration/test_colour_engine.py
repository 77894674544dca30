"""The colour engine on both status stores: transitions exactly once across replicas, none lost
when a replica dies mid-transition, idempotent requests, operator overrides, risk imports."""

from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nodes.assistance import AssistanceEvent
from nodes.provincial.health.engine import ColourEngine, RiskArea
from nodes.provincial.health.facts import check_check_in, check_declaration
from nodes.provincial.health.policy import default_policy
from nodes.provincial.issuance import (
    CheckedHolder,
    Holder,
    Issuer,
    check_holder,
    with_check_character,
)
from nodes.provincial.stores import StatusStore, open_status_store
from nodes.provincial.stores import health as health_sql
from simulations.registry_builder import RegistryBuilder
from tests.integration.postgres import postgres_dsn, postgres_server  # noqa: F401
from tests.support import wait_until
from trust.errors import InvalidRequest, StoreUnavailable
from trust.model import Colour

pytestmark = pytest.mark.integration

ZJ = "330000"
DAY = 100.0  # a compressed day: the clock is fake, the arithmetic is the same
START = 1_800_000_000.0
HOLDER_KEY = b"\x07" * 32


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


_PROVINCE = RegistryBuilder(clock=START)
_PROVINCE.onboard(ZJ, "浙江省")


def make_engine(store: StatusStore, clock: Callable[[], float]) -> ColourEngine:
    province = _PROVINCE.provinces[ZJ]
    issuer = Issuer(
        province=ZJ,
        signing_key=province.dsc_key,
        kid=province.kid,
        holder_key=HOLDER_KEY,
        store=store,
        clock=clock,
    )
    return ColourEngine(
        store=store, issuer=issuer, policy=default_policy(), clock=clock, day_seconds=DAY
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/status.db"
    return str(request.getfixturevalue("postgres_dsn"))


@pytest.fixture
def replicas(store_url: str) -> Iterator[Callable[[Clock], ColourEngine]]:
    opened: list[StatusStore] = []

    def replica(clock: Clock) -> ColourEngine:
        store = open_status_store(store_url)
        opened.append(store)
        return make_engine(store, clock)

    yield replica
    for store in opened:
        store.close()


def holder(n: int) -> CheckedHolder:
    return check_holder(Holder(with_check_character(f"3301061990{n:07d}"), "张三明"))


def declare(clock: Clock, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "fever": False,
        "symptoms": [],
        "contact_with_confirmed_case": False,
        "residence": "330106",
        "travel": [],
    }
    fields.update(overrides)
    return check_declaration(now=clock.now, **fields)


def check_in_every_day(engine: ColourEngine, clock: Clock, codes: list[bytes], days: int) -> None:
    for day in range(days):
        clock.now = START + day * DAY + DAY / 2
        for code in codes:
            engine.check_in(
                code,
                check_check_in(temperature_c=36.5, symptoms=[], now=clock.now),
                f"{code.hex()}-{day}",
            )


def completions(engine: ColourEngine, code: bytes) -> int:
    return sum(1 for e in engine.history(code) if e.kind == "complete")


def test_a_fever_makes_yellow_and_seven_checked_days_make_green(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    issued, view = engine.apply(holder(1), declare(clock, fever=True), "apply-1")
    code = issued.record.code_id
    assert view.record.colour is Colour.YELLOW and issued.record.colour is Colour.YELLOW
    assert view.progress is not None and view.progress.length == 7
    check_in_every_day(engine, clock, [code], 7)
    clock.now = START + 7 * DAY - 1
    assert engine.complete_due() == 0
    assert engine.view(code).record.colour is Colour.YELLOW
    clock.now = START + 7 * DAY
    assert engine.complete_due() == 1
    after = engine.view(code)
    assert after.record.colour is Colour.GREEN and after.progress is None
    assert after.record.status_version == 2  # issued yellow (1), green (2): nothing else
    kinds = [(e.kind, e.rule, e.colour_after) for e in engine.history(code)]
    assert kinds[0] == ("declaration", "fever-declared", Colour.YELLOW)
    assert kinds[-1] == ("complete", "quarantine-complete", Colour.GREEN)


def test_a_missed_check_in_adds_a_day(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    code = engine.apply(holder(2), declare(clock, fever=True), "a")[0].record.code_id
    for day in [0, 1, 3, 4, 5, 6]:  # day 2 missed
        clock.now = START + day * DAY + 10
        engine.check_in(
            code, check_check_in(temperature_c=36.5, symptoms=[], now=clock.now), f"c{day}"
        )
    clock.now = START + 7 * DAY
    assert engine.complete_due() == 0 and engine.view(code).record.colour is Colour.YELLOW
    clock.now = START + 7 * DAY + 10
    engine.check_in(code, check_check_in(temperature_c=36.5, symptoms=[], now=clock.now), "c7")
    clock.now = START + 8 * DAY
    assert engine.complete_due() == 1 and engine.view(code).record.colour is Colour.GREEN


def test_requests_are_idempotent(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    first, _ = engine.apply(holder(3), declare(clock, fever=True), "same")
    again, _ = engine.apply(holder(3), declare(clock, fever=True), "same")
    assert again.record.code_id == first.record.code_id
    check = check_check_in(temperature_c=36.5, symptoms=[], now=clock.now)
    engine.check_in(first.record.code_id, check, "check-same")
    engine.check_in(first.record.code_id, check, "check-same")
    history = engine.history(first.record.code_id)
    assert [e.kind for e in history] == ["declaration", "check_in"]
    assert engine.view(first.record.code_id).progress.checked == 1


def test_a_second_declaration_is_an_event_on_the_holders_code(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    first, _ = engine.apply(holder(4), declare(clock), "d1")
    assert first.record.colour is Colour.GREEN
    clock.now += 10
    second, view = engine.apply(holder(4), declare(clock, contact_with_confirmed_case=True), "d2")
    assert second.record.code_id == first.record.code_id
    assert view.record.colour is Colour.RED and view.progress.length == 14


def test_an_operator_colour_ends_the_automatic_quarantine(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    code = engine.apply(holder(5), declare(clock, fever=True), "o")[0].record.code_id
    store = engine._store  # the replica's store, as SetStatus uses it
    store.set_colour(
        code_id=code, colour=Colour.RED, reason="confirmed case", request_id="op-1", now=clock.now
    )
    check_in_every_day(engine, clock, [code], 7)
    clock.now = START + 30 * DAY
    assert engine.complete_due() == 0
    assert engine.view(code).record.colour is Colour.RED and engine.view(code).progress is None


def test_replicas_complete_each_quarantine_exactly_once(replicas: Any) -> None:
    clock = Clock()
    first, second = replicas(clock), replicas(clock)
    codes = [
        first.apply(holder(100 + i), declare(clock, fever=True), f"r{i}")[0].record.code_id
        for i in range(120)
    ]
    check_in_every_day(first, clock, codes, 7)
    clock.now = START + 7 * DAY
    changed: list[int] = []
    threads = [
        threading.Thread(target=lambda e=e: changed.append(e.complete_due(limit=1000)))
        for e in (first, second)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(changed) == len(codes)
    for code in codes:
        view = second.view(code)
        assert view.record.colour is Colour.GREEN and view.record.status_version == 2
        assert completions(second, code) == 1


def _die_mid_transition(url: str, ready: Any) -> None:
    """A replica that stops after writing a batch of transitions, before its commit."""
    clock = Clock()
    clock.now = START + 7 * DAY
    engine = make_engine(open_status_store(url), clock)
    real = health_sql.Sql.write_locked

    def write_locked(self: Any, conn: Any, writes: Any) -> None:
        real(self, conn, writes)  # every transition of the batch written, not committed
        ready.set()
        threading.Event().wait(60)  # killed here

    health_sql.Sql.write_locked = write_locked  # type: ignore[method-assign]
    engine.complete_due(limit=1000)


def test_a_replica_killed_mid_transition_loses_none(replicas: Any, store_url: str) -> None:
    clock = Clock()
    engine = replicas(clock)
    codes = [
        engine.apply(holder(300 + i), declare(clock, fever=True), f"k{i}")[0].record.code_id
        for i in range(60)
    ]
    check_in_every_day(engine, clock, codes, 7)
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    doomed = context.Process(target=_die_mid_transition, args=(store_url, ready))
    doomed.start()
    try:
        assert ready.wait(60), "the replica never reached its transitions"
        # Mid-transaction: nothing of its batch is visible to the other replica.
        assert all(engine.view(c).record.colour is Colour.YELLOW for c in codes)
        os.kill(doomed.pid or 0, signal.SIGKILL)
        doomed.join(10)
    finally:
        if doomed.is_alive():
            doomed.kill()
    clock.now = START + 7 * DAY
    wait_until(
        lambda: (
            engine.complete_due(limit=1000) >= 0
            and all(engine.view(c).record.colour is Colour.GREEN for c in codes)
        ),
        timeout=20,
        what="the surviving replica completing every quarantine",
    )
    for code in codes:
        assert engine.view(code).record.status_version == 2
        assert completions(engine, code) == 1


def test_close_contacts_turn_red_and_no_one_else(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    listed = [holder(500 + i) for i in range(50)]
    others = [holder(600 + i) for i in range(20)]
    codes = {
        h.id_number: engine.apply(h, declare(clock), f"c{h.id_number}")[0].record.code_id
        for h in listed + others
    }
    refs = [engine._issuer.holder_ref(h.id_number) for h in listed]
    strangers = [secrets.token_bytes(32) for _ in range(1000)]  # not holders of this province
    result = engine.import_close_contacts(
        refs + strangers, listed_at=clock.now - DAY, import_id="list-1"
    )
    assert (result.entries, result.matched, result.changed) == (1050, 50, 50)
    for h in listed:
        view = engine.view(codes[h.id_number])
        assert view.record.colour is Colour.RED
        assert engine.history(codes[h.id_number])[-1].rule == "listed-close-contact"
    assert all(engine.view(codes[h.id_number]).record.colour is Colour.GREEN for h in others)
    again = engine.import_close_contacts(refs, listed_at=clock.now - DAY, import_id="list-1")
    assert again.changed == 0  # the same list again: served by the quarantine it started


def test_a_risk_area_reaches_residents_and_recent_visitors(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    resident = engine.apply(holder(700), declare(clock, residence="330106"), "r")[0].record.code_id
    visitor = engine.apply(
        holder(701), declare(clock, residence="330102", travel=[("330106", clock.now - DAY)]), "v"
    )[0].record.code_id
    elsewhere = engine.apply(holder(702), declare(clock, residence="330102"), "e")[0].record.code_id
    clock.now += DAY
    area = RiskArea("330106", 3, clock.now - 2 * DAY, clock.now + 14 * DAY)
    result = engine.import_risk_areas([area], "areas-1")
    assert (result.matched, result.changed) == (2, 2)
    assert engine.view(resident).record.colour is Colour.RED
    assert engine.view(visitor).record.colour is Colour.YELLOW
    assert engine.view(elsewhere).record.colour is Colour.GREEN
    # A later declaration of someone living there is decided with the stored area.
    newcomer = engine.apply(holder(703), declare(clock, residence="330106"), "n")[1]
    assert newcomer.record.colour is Colour.RED
    assert engine.history(newcomer.record.code_id)[0].rule == "lives-in-high-risk-area"


# -- attacks found by review: each failed on the first version of the engine ----------------------
def test_a_request_id_answers_only_for_its_own_holder_and_code(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    first, _ = engine.apply(holder(800), declare(clock, contact_with_confirmed_case=True), "same")
    with pytest.raises(InvalidRequest, match="another holder"):
        engine.apply(holder(801), declare(clock), "same")  # would have been handed 800's code
    other = engine.apply(holder(802), declare(clock, fever=True), "other")[0].record.code_id
    check = check_check_in(temperature_c=36.5, symptoms=[], now=clock.now)
    engine.check_in(first.record.code_id, check, "check-1")
    with pytest.raises(InvalidRequest, match="another code"):
        engine.check_in(other, check, "check-1")
    # An application and a check-in may use the same id: they are different requests.
    assert engine.check_in(other, check, "same").progress.checked == 1


def test_a_resident_of_an_area_is_decided_as_a_resident_whatever_else_they_visited(
    replicas: Any,
) -> None:
    clock = Clock()
    engine = replicas(clock)
    visited = [("330106", clock.now - DAY)]
    code = engine.apply(holder(810), declare(clock, residence="330102", travel=visited), "r")
    home_too = engine.apply(
        holder(811), declare(clock, residence="330102", travel=[("330102", clock.now - DAY)]), "h"
    )
    clock.now += 20 * DAY  # the visits are long past; the residence is not
    areas = [
        RiskArea("330102", 3, clock.now - DAY, clock.now + 14 * DAY),
        RiskArea("330106", 3, clock.now - DAY, clock.now + 14 * DAY),
    ]
    engine.import_risk_areas(areas, "both")
    for made in (code, home_too):
        view = engine.view(made[0].record.code_id)
        assert view.record.colour is Colour.RED
        assert engine.history(view.record.code_id)[-1].rule == "resident-of-new-high-risk-area"


def test_an_area_in_force_later_is_decided_when_it_starts(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    code = engine.apply(holder(820), declare(clock, residence="330106"), "f")[0].record.code_id
    later = RiskArea("330106", 3, clock.now + 2 * DAY, clock.now + 16 * DAY)
    result = engine.import_risk_areas([later], "later")
    assert (result.matched, result.changed) == (0, 0)
    assert engine.view(code).record.colour is Colour.GREEN
    clock.now += 2 * DAY
    assert engine.apply_areas_due() == (1, 1)
    assert engine.view(code).record.colour is Colour.RED
    assert engine.apply_areas_due() == (0, 0)  # decided once
    again = engine.import_risk_areas([later], "later-again")  # the same area again
    assert (again.matched, again.changed) == (0, 0)
    assert len(engine.history(code)) == 2  # the declaration and the area, nothing else


def test_the_same_close_contact_list_twice_changes_nothing(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    h = holder(830)
    code = engine.apply(h, declare(clock), "c")[0].record.code_id
    refs = [engine._issuer.holder_ref(h.id_number)]
    first = engine.import_close_contacts(refs, listed_at=clock.now, import_id="list")
    started = engine.view(code).state.quarantine.started_at
    clock.now += 10 * DAY
    again = engine.import_close_contacts(refs, listed_at=START, import_id="list")
    assert first.changed == 1 and again.duplicate and again.changed == 0
    assert engine.view(code).state.quarantine.started_at == started
    assert len(engine.history(code)) == 2  # not restarted, not even noted


def test_a_province_reusing_an_assistance_id_for_another_code_is_refused(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    one = engine.apply(holder(840), declare(clock), "a")[0].record.code_id
    two = _codes_without_history(engine, clock)
    first = AssistanceEvent("x-1", ZJ, one, "close_contact", clock.now, "420106")
    view, duplicate = engine.assistance(first, from_province="420000", actor="gw")
    assert view.record.colour is Colour.RED and not duplicate
    assert engine.assistance(first, from_province="420000", actor="gw")[1]  # a retry
    reused = AssistanceEvent("x-1", ZJ, two, "close_contact", clock.now, "420106")
    with pytest.raises(InvalidRequest, match="another code"):
        engine.assistance(reused, from_province="420000", actor="gw")
    # Another province's request ids are its own.
    assert not engine.assistance(reused, from_province="510000", actor="gw")[1]
    rows = engine._store.health.audit_counts()
    assert rows.get("assistance-received") == 2


def _codes_without_history(engine: ColourEngine, clock: Clock) -> bytes:
    """A code issued by IssueCode (no declaration, no history)."""
    return engine._issuer.issue(id_number=holder(850).id_number, full_name="李四").record.code_id


def test_an_older_or_edited_policy_version_is_refused(replicas: Any) -> None:
    clock = Clock()
    store = replicas(clock)._store
    assert store.health.admit_policy(3, "aaa", clock.now) is None
    assert store.health.admit_policy(3, "aaa", clock.now) is None  # a restart: the same
    assert "older than version 3" in (store.health.admit_policy(2, "bbb", clock.now) or "")
    assert "other rules" in (store.health.admit_policy(3, "ccc", clock.now) or "")
    assert store.health.admit_policy(4, "ddd", clock.now) is None


# -- found by the second review -----------------------------------------------------------------
def _sql(engine: ColourEngine, statement: str) -> None:
    engine._store.health._run(lambda conn: conn.execute(statement), True)


def test_an_area_applied_twice_restarts_no_one(replicas: Any) -> None:
    clock = Clock()
    first, second = replicas(clock), replicas(clock)
    code = first.apply(holder(900), declare(clock, residence="330106"), "a")[0].record.code_id
    area = RiskArea("330106", 3, clock.now - DAY, clock.now + 14 * DAY)
    first.import_risk_areas([area], "areas")
    started = first.view(code).state.quarantine.started_at
    clock.now += DAY
    _sql(first, "UPDATE risk_areas SET applied = 0")  # as if the second clock raced the first
    assert second.apply_areas_due() == (1, 0)
    assert second.view(code).state.quarantine.started_at == started
    assert [e.kind for e in second.history(code)] == ["declaration", "risk_area"]


def test_a_close_contact_list_racing_its_retry_restarts_no_one(replicas: Any) -> None:
    clock = Clock()
    engine = replicas(clock)
    h = holder(910)
    code = engine.apply(h, declare(clock), "c")[0].record.code_id
    refs = [engine._issuer.holder_ref(h.id_number)]
    engine.import_close_contacts(refs, listed_at=clock.now, import_id="list")
    clock.now += 3 * DAY
    _sql(engine, "DELETE FROM health_requests WHERE kind = 'close_contacts'")  # not yet seen
    again = engine.import_close_contacts(refs, listed_at=clock.now - 3 * DAY, import_id="list")
    assert again.changed == 0 and not again.duplicate
    assert [e.kind for e in engine.history(code)] == ["declaration", "close_contact"]


def test_a_request_id_claimed_meanwhile_for_another_code_is_refused(
    replicas: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    engine = replicas(clock)
    one = engine.apply(holder(920), declare(clock, fever=True), "x")[0].record.code_id
    two = engine.apply(holder(921), declare(clock, fever=True), "y")[0].record.code_id
    check = check_check_in(temperature_c=36.5, symptoms=[], now=clock.now)
    engine.check_in(one, check, "busy")
    real = engine._store.health.request
    seen = iter([None])  # the first look misses it: the other call claims it just then
    monkeypatch.setattr(engine._store.health, "request", lambda key: next(seen, real(key)))
    with pytest.raises(InvalidRequest, match="another code"):
        engine.check_in(two, check, "busy")
    assert [e.kind for e in engine.history(two)] == ["declaration"]


def _green_codes(engine: ColourEngine, count: int) -> tuple[list[bytes], list[bytes]]:
    """``count`` green codes loaded straight into the store; their ids and holder hashes."""
    ids = sorted(secrets.token_bytes(16) for _ in range(count))
    refs = [secrets.token_bytes(32) for _ in ids]
    engine._store.bulk_load(
        (i, r, int(Colour.GREEN), 1, START, "issued", "张*明", "123X")
        for i, r in zip(ids, refs, strict=True)
    )
    return ids, refs


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Batches of 40 codes, so an import of a few hundred runs as many concurrent chunks."""
    from nodes.provincial.health import engine as engine_module

    monkeypatch.setattr(engine_module, "CHUNK", 40)
    return 40


def test_replicas_racing_one_import_in_concurrent_chunks_change_each_code_once(
    replicas: Any, small_chunks: int
) -> None:
    clock = Clock()
    first, second = replicas(clock), replicas(clock)
    for engine in (first, second):
        engine._store.health.writers = 3  # more chunks in flight than the pool keeps idle
    ids, refs = _green_codes(first, 400)
    results: list[Any] = []
    # Opposite orders: the replicas meet in the middle, chunk boundaries never the same.
    racers = [
        threading.Thread(
            target=lambda e=e, r=r: results.append(
                e.import_close_contacts(r, listed_at=clock.now, import_id="list")
            )
        )
        for e, r in ((first, refs), (second, refs[::-1][:390]))
    ]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    assert sum(r.changed for r in results) == len(ids)
    for code in ids:
        record = second.view(code).record
        assert (record.colour, record.status_version) == (Colour.RED, 2)
        assert [e.kind for e in second.history(code)] == ["close_contact"]


def test_an_import_that_fails_half_way_is_completed_by_its_retry(
    replicas: Any, small_chunks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    engine = replicas(clock)
    engine._store.health.writers = 2
    ids, refs = _green_codes(engine, 400)
    real = health_sql.Sql.write_locked
    calls = {"n": 0}
    lock = threading.Lock()

    def failing(self: Any, conn: Any, writes: Any) -> None:
        with lock:
            calls["n"] += 1
            doomed = calls["n"] == 4
        if doomed:
            raise StoreUnavailable("the database went away mid-import")
        real(self, conn, writes)

    monkeypatch.setattr(health_sql.Sql, "write_locked", failing)
    with pytest.raises(StoreUnavailable):
        engine.import_close_contacts(refs, listed_at=clock.now, import_id="list")
    red = [c for c in ids if engine.view(c).record.colour is Colour.RED]
    assert 0 < len(red) <= len(ids) - small_chunks  # the failed chunk wrote nothing
    monkeypatch.setattr(health_sql.Sql, "write_locked", real)
    retry = engine.import_close_contacts(refs, listed_at=clock.now, import_id="list")
    assert not retry.duplicate and retry.changed == len(ids) - len(red)
    for code in ids:
        record = engine.view(code).record
        assert (record.colour, record.status_version) == (Colour.RED, 2)
        assert [e.kind for e in engine.history(code)] == ["close_contact"]


def test_a_declaration_in_another_name_for_a_known_id_number_is_refused(replicas: Any) -> None:
    """Knowing an ID number is not being its holder: the name must match the code's."""
    clock = Clock()
    engine = replicas(clock)
    h = holder(990)
    code = engine.apply(h, declare(clock), "first")[0].record.code_id
    impostor = check_holder(Holder(h.id_number, "李四"))
    with pytest.raises(InvalidRequest, match="do not belong together"):
        engine.apply(impostor, declare(clock, fever=True), "second")
    assert engine.view(code).record.colour is Colour.GREEN
    assert [e.kind for e in engine.history(code)] == ["declaration"]
