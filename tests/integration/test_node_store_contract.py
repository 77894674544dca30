"""One contract, two backends: the status store behaves the same on SQLite and PostgreSQL.

Each test gets a ``backend`` that opens stores on one shared storage (one SQLite file, or one
PostgreSQL database), so "two replicas" are two store objects on the same data.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nodes.provincial.stores import NewCode, StatusStore, create_or_get, open_status_store
from tests.integration.postgres import postgres_dsn, postgres_server  # noqa: F401
from trust.errors import InvalidRequest, NotFound
from trust.model import Colour

pytestmark = pytest.mark.integration

Opener = Callable[[], StatusStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_replica(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens stores (replicas) on one shared backing store; closes them all afterwards."""
    url = (
        f"sqlite://{tmp_path}/status.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_dsn")
    )
    opened: list[StatusStore] = []

    def opener() -> StatusStore:
        store = open_status_store(url)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


def new_code(holder: bytes | None = None, colour: Colour = Colour.GREEN) -> NewCode:
    return NewCode(
        code_id=secrets.token_bytes(16),
        holder_ref=holder or secrets.token_bytes(32),
        colour=colour,
        now=1_700_000_000.0,
        masked_name="张*明",
        id_tail="123X",
    )


def test_a_holder_keeps_one_code_id(open_replica: Opener) -> None:
    store = open_replica()
    holder = secrets.token_bytes(32)
    first = create_or_get(store, new_code(holder))
    again = create_or_get(store, new_code(holder, Colour.RED))
    other = create_or_get(store, new_code())
    assert again.code_id == first.code_id
    assert again.colour is Colour.GREEN and again.status_version == 1
    assert other.code_id != first.code_id
    assert first.reason == "issued" and first.masked_name == "张*明" and first.id_tail == "123X"


def test_lookups_answer_known_ids_only(open_replica: Opener) -> None:
    store = open_replica()
    codes = store.create_or_get_many([new_code() for _ in range(5)])
    unknown = secrets.token_bytes(16)
    assert store.get(codes[2].code_id) == codes[2]
    assert store.get(unknown) is None
    found = store.get_many([c.code_id for c in codes] + [unknown])
    assert set(found) == {c.code_id for c in codes}
    assert store.get_many([]) == {}


def test_set_colour_increments_the_version_and_keeps_the_reason(open_replica: Opener) -> None:
    store = open_replica()
    code = create_or_get(store, new_code())
    change = store.set_colour(
        code_id=code.code_id, colour=Colour.RED, reason="confirmed case", request_id="r1", now=5.0
    )
    red = change.record
    assert change.applied
    assert (red.colour, red.status_version, red.reason, red.updated_at) == (
        Colour.RED,
        2,
        "confirmed case",
        5.0,
    )
    assert store.get(code.code_id) == red


def test_set_colour_is_idempotent_by_request_id(open_replica: Opener) -> None:
    store = open_replica()
    code = create_or_get(store, new_code())
    other = create_or_get(store, new_code())
    args = {"code_id": code.code_id, "colour": Colour.YELLOW, "reason": "contact", "now": 9.0}
    first = store.set_colour(request_id="same", **args)  # type: ignore[arg-type]
    repeat = store.set_colour(request_id="same", **args)  # type: ignore[arg-type]
    assert first.record.status_version == repeat.record.status_version == 2
    assert (first.applied, repeat.applied) == (True, False)  # same clock, still told apart
    with pytest.raises(InvalidRequest):
        store.set_colour(
            code_id=other.code_id, colour=Colour.RED, reason="x", request_id="same", now=9.0
        )
    assert store.get(other.code_id).status_version == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("code_id", "reason", "request_id", "error"),
    [
        pytest.param(secrets.token_bytes(16), "contact", "r-unknown", NotFound, id="unknown-code"),
        pytest.param(b"short", "contact", "r1", InvalidRequest, id="bad-code-id"),
        pytest.param(None, "contact", "", InvalidRequest, id="no-request-id"),
        pytest.param(None, "", "r2", InvalidRequest, id="no-reason"),
        pytest.param(None, "x" * 201, "r3", InvalidRequest, id="reason-too-long"),
        pytest.param(None, "contact", "r" * 129, InvalidRequest, id="request-id-too-long"),
    ],
)
def test_bad_colour_changes_are_refused_and_change_nothing(
    open_replica: Opener,
    code_id: bytes | None,
    reason: str,
    request_id: str,
    error: type[Exception],
) -> None:
    store = open_replica()
    code = create_or_get(store, new_code())
    with pytest.raises(error):
        store.set_colour(
            code_id=code_id or code.code_id,
            colour=Colour.RED,
            reason=reason,
            request_id=request_id,
            now=1.0,
        )
    assert store.get(code.code_id) == code
    if 0 < len(request_id) <= 128:  # a refused request did not consume its id
        done = store.set_colour(
            code_id=code.code_id, colour=Colour.RED, reason="ok", request_id=request_id, now=2.0
        )
        assert done.record.status_version == 2


def test_replicas_on_one_store_answer_the_same_colour(open_replica: Opener) -> None:
    one, two = open_replica(), open_replica()
    code = create_or_get(one, new_code())
    assert create_or_get(two, new_code(b"\x01" * 32)).code_id != code.code_id
    two.set_colour(code_id=code.code_id, colour=Colour.RED, reason="r", request_id="a", now=1.0)
    assert one.get(code.code_id).colour is Colour.RED  # type: ignore[union-attr]
    assert one.get_many([code.code_id])[code.code_id].status_version == 2


def test_concurrent_changes_through_two_replicas_lose_no_update(open_replica: Opener) -> None:
    replicas = [open_replica(), open_replica()]
    code = create_or_get(replicas[0], new_code())
    per_thread, threads = 15, 4

    def change(worker: int) -> None:
        store = replicas[worker % 2]
        for i in range(per_thread):
            colour = Colour.RED if i % 2 else Colour.YELLOW
            store.set_colour(
                code_id=code.code_id, colour=colour, reason="t", request_id=f"{worker}-{i}", now=i
            )

    workers = [threading.Thread(target=change, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    final = replicas[1].get(code.code_id)
    assert final is not None and final.status_version == 1 + per_thread * threads


def test_the_same_holder_through_two_replicas_gets_one_code(open_replica: Opener) -> None:
    one, two = open_replica(), open_replica()
    holder = os.urandom(32)
    assert (
        create_or_get(one, new_code(holder)).code_id == create_or_get(two, new_code(holder)).code_id
    )


def test_a_batch_answers_in_its_own_order_with_repeated_holders(open_replica: Opener) -> None:
    store = open_replica()
    a, b, c = (bytes([n]) * 32 for n in (9, 1, 5))  # not in holder_ref order
    first = store.create_or_get_many([new_code(a), new_code(b), new_code(a), new_code(c)])
    assert first[0].code_id == first[2].code_id != first[1].code_id != first[3].code_id
    again = store.create_or_get_many([new_code(c), new_code(b), new_code(a)])
    assert [r.code_id for r in again] == [first[3].code_id, first[1].code_id, first[0].code_id]


def test_batches_sharing_holders_through_two_replicas_never_deadlock(
    open_replica: Opener,
) -> None:
    """Replicas write the same holders in opposite orders at once (a client that timed out on
    one replica retries on the other): both batches commit, with one code per holder."""
    replicas = [open_replica(), open_replica()]
    holders = [os.urandom(32) for _ in range(200)]
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        order = holders if worker == 0 else holders[::-1]
        try:
            for _ in range(5):
                results[worker] = replicas[worker].create_or_get_many([new_code(h) for h in order])
        except BaseException as e:  # reported below, with the store's message
            errors.append(e)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert [r.code_id for r in results[0]] == [r.code_id for r in results[1][::-1]]


def test_bulk_load_fills_the_store_and_survives_reopening(open_replica: Opener) -> None:
    store = open_replica()
    rows = [
        (os.urandom(16), os.urandom(32), 1, 1, 1.0, "issued", "李*", f"{i:04d}")
        for i in range(2_500)
    ]
    assert store.bulk_load(iter(rows)) == 2_500
    store.close()
    reopened = open_replica()
    assert reopened.count() == 2_500
    assert reopened.size_bytes() > 2_500 * 48
    record = reopened.get(rows[1234][0])
    assert record is not None and record.id_tail == "1234" and record.masked_name == "李*"
