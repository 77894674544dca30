"""Declarations, check-ins and assistance requests as an attacker sends them."""

from __future__ import annotations

from typing import Any

import pytest

from healthcode.v1 import gateway_pb2
from nodes.assistance import check_assistance, relay_request
from nodes.districts import check_district
from nodes.provincial.health.facts import check_check_in, check_declaration
from trust.errors import InvalidRequest

NOW = 1_800_000_000.0


def declaration(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "fever": False,
        "symptoms": [],
        "contact_with_confirmed_case": False,
        "residence": "330106",
        "travel": [],
    }
    fields.update(overrides)
    return check_declaration(now=NOW, **fields)


# One named row per refusal: (name, fields, words the error must hold).
HOSTILE = [
    ("unknown district", {"residence": "999999"}, "not a GB/T 2260"),
    ("a province, not a district", {"residence": "330000"}, "county-level"),
    ("a city's placeholder 市辖区", {"residence": "330101"}, "county-level"),
    ("letters", {"residence": "33010x"}, "6-digit"),
    ("full-width digits", {"residence": "３３０１０６"}, "6-digit"),
    ("a visit tomorrow", {"travel": [("420106", NOW + 86_400)]}, "future"),
    ("a visit at time 0", {"travel": [("420106", 0.0)]}, "unix time"),
    ("a visit at NaN", {"travel": [("420106", float("nan"))]}, "unix time"),
    ("31 visits", {"travel": [("420106", NOW - 60)] * 31}, "at most 30"),
    ("an unknown symptom", {"symptoms": ["headache"]}, "unknown symptom"),
    ("too many symptoms", {"symptoms": ["cough"] * 50}, "at most"),
]


@pytest.mark.parametrize(("fields", "words"), [pytest.param(r[1], r[2], id=r[0]) for r in HOSTILE])
def test_hostile_declarations_are_refused(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        declaration(**fields)
    assert words in str(refused.value)


def test_a_hostile_value_is_never_echoed_whole() -> None:
    with pytest.raises(InvalidRequest) as refused:
        declaration(symptoms=["x" * 20_000])
    assert len(str(refused.value)) < 200


def test_a_declaration_keeps_what_was_declared() -> None:
    d = declaration(
        fever=True, symptoms=["fatigue", "cough", "cough"], travel=[("420106", NOW - 60)]
    )
    assert d.symptoms == ("cough", "fatigue") and d.facts()["symptom_count"] == 2
    assert d.facts()["travel"] == ["420106"]


@pytest.mark.parametrize("temperature", [33.9, 43.1, float("nan"), float("inf"), -1.0])
def test_impossible_temperatures_are_refused(temperature: float) -> None:
    with pytest.raises(InvalidRequest, match="temperature"):
        check_check_in(temperature_c=temperature, symptoms=[], now=NOW)


def test_a_temperature_is_kept_in_tenths() -> None:
    assert check_check_in(temperature_c=37.25, symptoms=[], now=NOW).temperature_tenths == 372


def test_districts_of_other_provinces_are_districts() -> None:
    assert check_district("420106", what="d") == "420106"


def assistance(**overrides: Any) -> gateway_pb2.AssistanceRequest:
    fields: dict[str, Any] = {
        "request_id": "r-1", "province": "330000", "code_id": b"\x01" * 16,
        "event_kind": "close_contact", "event_at": int(NOW) - 60, "district": "420106",
    }  # fmt: skip
    fields.update(overrides)
    return gateway_pb2.AssistanceRequest(**fields)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"request_id": ""}, "request_id"),
        ({"request_id": "x" * 129}, "request_id"),
        ({"province": "33"}, "province"),
        ({"code_id": b"\x01" * 15}, "16 bytes"),
        ({"event_kind": "rumour"}, "event_kind"),
        ({"event_at": int(NOW) + 3600}, "future"),
        ({"event_at": int(NOW) - 90 * 86_400}, "60 days"),
        ({"district": "420100"}, "county-level"),
    ],
)
def test_bad_assistance_requests_are_refused(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        check_assistance(assistance(**fields), now=NOW)


def test_only_the_checked_fields_cross_the_border() -> None:
    request = assistance(from_province="110000")
    # Field 99, length-delimited (key varint 0x9a 0x06), holding an ID number.
    raw = request.SerializeToString() + bytes([0x9A, 0x06, 18]) + b"110101199003077777"
    smuggled = gateway_pb2.AssistanceRequest.FromString(raw)
    assert b"110101199003077777" in smuggled.SerializeToString()  # protobuf keeps it
    relayed = relay_request(check_assistance(smuggled, now=NOW), from_province="420000")
    assert b"110101199003077777" not in relayed.SerializeToString()
    assert relayed.from_province == "420000"  # never the caller's word
