"""base45 (RFC 9285): the published examples, round trips and strict rejection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trust.base45 import ALPHABET, _decode_checked, _decode_fast, b45decode, b45encode
from trust.errors import DecodeError
from trust.model import Reason

# RFC 9285 §4.3 (encoding examples) and §4.4 (decoding example).
RFC_9285_EXAMPLES = [
    pytest.param(b"AB", "BB8", id="AB"),
    pytest.param(b"Hello!!", "%69 VD92EX0", id="Hello!!"),
    pytest.param(b"base-45", "UJCLQE7W581", id="base-45"),
    pytest.param(b"ietf!", "QED8WEX0", id="ietf!"),
]


@pytest.mark.parametrize(("raw", "text"), RFC_9285_EXAMPLES)
def test_rfc_9285_examples_encode(raw: bytes, text: str) -> None:
    assert b45encode(raw) == text


@pytest.mark.parametrize(("raw", "text"), RFC_9285_EXAMPLES)
def test_rfc_9285_examples_decode(raw: bytes, text: str) -> None:
    assert b45decode(text) == raw


def test_empty_input_round_trips() -> None:
    assert b45encode(b"") == ""
    assert b45decode("") == b""


@given(st.binary(max_size=512))
def test_round_trip_and_alphabet(raw: bytes) -> None:
    text = b45encode(raw)
    assert set(text) <= set(ALPHABET)
    assert len(text) == 3 * (len(raw) // 2) + 2 * (len(raw) % 2)
    assert b45decode(text) == raw


DANGLING = "base45 text ends with a dangling character"
TRIPLET = "base45 triplet out of range"
PAIR = "base45 pair out of range"


def _not_in_alphabet(char: str) -> str:
    return f"character {char!r} is not in the base45 alphabet"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("A", DANGLING, id="dangling single character"),
        pytest.param("BB8A", DANGLING, id="dangling character after a triplet"),
        pytest.param("GG#A", DANGLING, id="the length is checked before the characters"),
        pytest.param("bb8", _not_in_alphabet("b"), id="lower case is not in the alphabet"),
        pytest.param("BB#", _not_in_alphabet("#"), id="character outside the alphabet"),
        pytest.param("BB\n", _not_in_alphabet("\n"), id="newline"),
        pytest.param("BB８", _not_in_alphabet("８"), id="full-width digit"),
        pytest.param("GGWbb", _not_in_alphabet("b"), id="characters are checked before ranges"),
        pytest.param("GGW", TRIPLET, id="triplet value 65536 just out of range"),
        pytest.param(":::", TRIPLET, id="largest triplet 91124"),
        pytest.param("BB8GGW", TRIPLET, id="second triplet out of range"),
        pytest.param("V5", PAIR, id="pair value 256 just out of range"),
        pytest.param("::", PAIR, id="largest pair 2024"),
        pytest.param("BB8V5", PAIR, id="pair after a triplet out of range"),
        pytest.param("FGWV5", PAIR, id="the largest triplet, then a pair out of range"),
    ],
)
def test_rejects_non_canonical_text(text: str, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        b45decode(text)
    assert caught.value.message == message
    assert caught.value.reason is Reason.BAD_ENCODING


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"BB8", id="bytes"),
        pytest.param(bytearray(b"BB8"), id="bytearray"),
        pytest.param(None, id="None"),
    ],
)
def test_rejects_input_that_is_not_text(value: object) -> None:
    with pytest.raises(DecodeError) as caught:
        b45decode(value)  # type: ignore[arg-type]
    assert caught.value.message == "base45 input must be text"
    assert caught.value.reason is Reason.BAD_ENCODING


def test_largest_values_in_range_decode() -> None:
    assert b45decode("FGW") == b"\xff\xff"  # 15 + 16*45 + 32*2025 = 65535
    assert b45decode("U5") == b"\xff"  # 30 + 5*45 = 255


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("FGW", b"\xff\xff", id="triplet 65535"),
        pytest.param("GGW", None, id="triplet 65536"),
        pytest.param("U5", b"\xff", id="pair 255"),
        pytest.param("V5", None, id="pair 256"),
        pytest.param("00000", b"\x00\x00\x00", id="zeros"),
        pytest.param("BB8U5", b"AB\xff", id="a triplet and the largest pair"),
    ],
)
def test_both_decoders_agree_at_the_range_boundaries(text: str, expected: bytes | None) -> None:
    # The digit-by-digit decoder only runs when the fast one refuses, so its range checks are
    # pinned here directly: the two must agree on every text.
    assert _decode_fast(text) == expected
    if expected is None:
        with pytest.raises(DecodeError):
            _decode_checked(text)
    else:
        assert _decode_checked(text) == expected


@given(st.text(max_size=64))
def test_any_text_decodes_or_raises_decode_error(text: str) -> None:
    try:
        b45decode(text)
    except DecodeError as e:
        assert e.reason is Reason.BAD_ENCODING


# One text form: base45 is a bijection between the texts it accepts and all byte strings, so
# the code's text layer needs no separate canonical check (docs/code-format.md).
base45_text = st.text(alphabet=ALPHABET, max_size=64)


@given(base45_text)
def test_accepted_text_is_the_encoding_of_its_bytes(text: str) -> None:
    try:
        raw = b45decode(text)
    except DecodeError:
        return
    assert b45encode(raw) == text


@given(base45_text.filter(lambda text: len(text) % 3 != 1))
def test_fast_path_agrees_with_the_digit_by_digit_decoder(text: str) -> None:
    try:
        expected: bytes | None = _decode_checked(text)
    except DecodeError:
        expected = None
    assert _decode_fast(text) == expected
