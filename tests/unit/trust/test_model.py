"""The domain vocabulary is a public contract: colours, verdicts and reasons carry the numbers of
the protobuf enums (and of the colour inside signed codes), and a province code is the GB/T 2260
form of a provincial-level division.
"""

from __future__ import annotations

import enum

import pytest

from healthcode.v1 import common_pb2
from trust.model import Colour, Reason, Verdict, is_province_code

# The protobuf enums' "nothing on purpose" value: REASON_UNSPECIFIED is Reason.NONE.
UNSPECIFIED = {"COLOUR_UNSPECIFIED", "VERDICT_UNSPECIFIED", "REASON_UNSPECIFIED"}


@pytest.mark.parametrize(
    ("ours", "wire"),
    [
        pytest.param(Colour, common_pb2.Colour, id="colour"),
        pytest.param(Verdict, common_pb2.Verdict, id="verdict"),
        pytest.param(Reason, common_pb2.Reason, id="reason"),
    ],
)
def test_every_value_has_the_protobuf_number_of_its_name(
    ours: type[enum.IntEnum], wire: object
) -> None:
    names = {n: v for n, v in wire.items() if n not in UNSPECIFIED}  # type: ignore[attr-defined]
    assert {m.name: m.value for m in ours if m.value} == names
    assert len({m.value for m in ours}) == len(list(ours)), "no two names share a number"


def test_no_reason_is_zero_as_on_the_wire() -> None:
    assert Reason.NONE == common_pb2.REASON_UNSPECIFIED == 0


def test_colours_are_the_numbers_signed_codes_carry() -> None:
    assert [(c.name, int(c)) for c in Colour] == [("GREEN", 1), ("YELLOW", 2), ("RED", 3)]


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        pytest.param("330000", True, id="Zhejiang"),
        pytest.param("110000", True, id="Beijing, the lowest first digit"),
        pytest.param("820000", True, id="Macao, the highest first digit"),
        pytest.param("650000", True, id="Xinjiang"),
        pytest.param("010000", False, id="first digit 0"),
        pytest.param("910000", False, id="first digit 9"),
        pytest.param("330100", False, id="a prefecture, not a province"),
        pytest.param("330001", False, id="a last digit set"),
        pytest.param("33000", False, id="five digits"),
        pytest.param("3300000", False, id="seven digits"),
        pytest.param("330000\n", False, id="a trailing newline"),
        pytest.param(" 330000", False, id="a leading space"),
        pytest.param("３３００００", False, id="full-width digits"),
        pytest.param("", False, id="empty"),
    ],
)
def test_a_province_code_is_exactly_a_provincial_division(code: str, valid: bool) -> None:
    assert is_province_code(code) is valid
