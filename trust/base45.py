"""RFC 9285 base45: the text layer of an hcx code, chosen because it fits QR alphanumeric mode.

Decoding is strict: any character outside the alphabet, a dangling single character or a
group whose value is out of range raises :class:`~trust.errors.DecodeError`, so a code has
exactly one text form.
"""

from __future__ import annotations

import functools
import struct

from trust.errors import DecodeError
from trust.model import Reason

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUES = {char: value for value, char in enumerate(ALPHABET)}
_BASE = 45
_BASE_SQUARED = _BASE * _BASE


def b45encode(data: bytes) -> str:
    """Encode bytes as base45 text (RFC 9285 §4)."""
    table = _pair_table()
    pairs = struct.unpack_from(f">{len(data) // 2}H", data)
    text = "".join([table[value] for value in pairs])
    if len(data) % 2:
        middle, low = divmod(data[-1], _BASE)
        text += ALPHABET[low] + ALPHABET[middle]
    return text


@functools.cache
def _pair_table() -> tuple[str, ...]:
    """The 3 characters of every 2-byte group, built once: issuance encodes thousands a second
    and a per-character loop cost more than the signature (measured in bench/bench_node.py)."""
    return tuple(
        ALPHABET[value % _BASE]
        + ALPHABET[value // _BASE % _BASE]
        + ALPHABET[value // _BASE_SQUARED]
        for value in range(65536)
    )


def b45decode(text: str) -> bytes:
    """Decode base45 text (RFC 9285 §4); raise DecodeError for anything not canonical."""
    if not isinstance(text, str):
        raise DecodeError("base45 input must be text", reason=Reason.BAD_ENCODING)
    if len(text) % 3 == 1:
        raise DecodeError("base45 text ends with a dangling character", reason=Reason.BAD_ENCODING)
    whole = len(text) - len(text) % 3
    table = _triplet_table()
    try:
        # Every valid triplet is a key; anything else (bad character, out of range) is not.
        values = [table[text[i : i + 3]] for i in range(0, whole, 3)]
    except KeyError:
        return _decode_checked(text)  # says exactly what is wrong
    out = struct.pack(f">{len(values)}H", *values)
    if whole < len(text):
        low, middle = _digit(text[whole]), _digit(text[whole + 1])
        value = low + middle * _BASE
        if value > 0xFF:
            raise DecodeError("base45 pair out of range", reason=Reason.BAD_ENCODING)
        out += bytes((value,))
    return out


@functools.cache
def _triplet_table() -> dict[str, int]:
    """Triplet text -> 2-byte value for the 65,536 canonical triplets, built once: decoding
    every verified code a character at a time cost more than its ES256 check (measured)."""
    return {triplet: value for value, triplet in enumerate(_pair_table())}


def _decode_checked(text: str) -> bytes:
    """Digit-by-digit decoding, used to name the first error precisely."""
    digits = [_digit(char) for char in text]
    out = bytearray()
    for start in range(0, len(digits), 3):
        group = digits[start : start + 3]
        value = sum(digit * _BASE**position for position, digit in enumerate(group))
        if len(group) == 3:
            if value > 0xFFFF:
                raise DecodeError("base45 triplet out of range", reason=Reason.BAD_ENCODING)
            out += value.to_bytes(2, "big")
        else:
            if value > 0xFF:
                raise DecodeError("base45 pair out of range", reason=Reason.BAD_ENCODING)
            out.append(value)
    return bytes(out)


def _digit(char: str) -> int:
    try:
        return _VALUES[char]
    except KeyError:
        raise DecodeError(
            f"character {char!r} is not in the base45 alphabet", reason=Reason.BAD_ENCODING
        ) from None
