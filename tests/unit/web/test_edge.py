"""The web edge's pieces: sessions dropped least-recently-used first, rate buckets, fields."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from web import edge


class Response:
    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def set_cookie(self, name: str, value: str, **_: Any) -> None:
        self.cookies[name] = value


def _request(cookie: str) -> Any:
    return make_mocked_request("GET", "/", headers={"Cookie": f"{edge.COOKIE}={cookie}"})


def test_the_session_in_use_outlives_older_idle_ones() -> None:
    sessions = edge.Sessions(ttl=100, clock=lambda: 0.0, max_sessions=3)
    cookies = []
    for n in range(3):
        response = Response()
        sessions.create(response, f"s{n}")  # type: ignore[arg-type]
        cookies.append(response.cookies[edge.COOKIE])
    assert sessions.find(_request(cookies[0])) is not None  # used: now the most recent
    sessions.create(Response(), "new")  # type: ignore[arg-type]
    assert sessions.find(_request(cookies[0])) is not None
    assert sessions.find(_request(cookies[1])) is None  # the least recently used went


def test_expired_sessions_go_first() -> None:
    now = [0.0]
    sessions = edge.Sessions(ttl=10, clock=lambda: now[0], max_sessions=2)
    old = Response()
    sessions.create(old, "old")  # type: ignore[arg-type]
    now[0] = 5.0
    live = Response()
    sessions.create(live, "live")  # type: ignore[arg-type]
    now[0] = 12.0  # "old" expired, "live" not
    sessions.create(Response(), "new")  # type: ignore[arg-type]
    assert sessions.find(_request(live.cookies[edge.COOKIE])) is not None


def test_buckets_refill_and_refuse_with_a_reason() -> None:
    now = [0.0]
    buckets = edge.Buckets(rate=1.0, burst=2.0, clock=lambda: now[0])
    buckets.take("a")
    buckets.take("a")
    with pytest.raises(edge.WebError) as refused:
        buckets.take("a")
    assert (refused.value.status, refused.value.reason) == (429, "RATE_LIMITED")
    buckets.take("b")  # another key has its own bucket
    now[0] = 1.0
    buckets.take("a")


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, int), (1, str), ("x", int), (2**63, int), (float("inf"), float), ("\ud800", str)],
)
def test_fields_of_the_wrong_type_or_range_are_refused(value: object, kind: type) -> None:
    with pytest.raises(edge.WebError) as refused:
        edge.field_of({"f": value}, "f", kind)
    assert refused.value.status == 400


def test_an_integer_is_a_number() -> None:
    assert edge.field_of({"t": 37}, "t", float) == 37
