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
    """Decode base45 text (RFC 9285 §4); raise DecodeError for anything not canonical.

    The mapping is a bijection between the texts accepted here and all byte strings: a triplet
    stands for a value below 65536 and a pair for one below 256, each written one way only, so
    ``b45encode(b45decode(text)) == text`` whenever decoding succeeds (tests check it)."""
    if not isinstance(text, str):
        raise DecodeError("base45 input must be text", reason=Reason.BAD_ENCODING)
    if len(text) % 3 == 1:
        raise DecodeError("base45 text ends with a dangling character", reason=Reason.BAD_ENCODING)
    out = _decode_fast(text)
    return out if out is not None else _decode_checked(text)  # the latter names the error


# ASCII byte -> base45 digit value, 0xFF for every byte outside the alphabet.
_DIGITS = bytes(_VALUES.get(chr(byte), 0xFF) for byte in range(256))


def _decode_fast(text: str) -> bytes | None:
    """Decode canonical text without a per-character loop, or None if anything is wrong.

    Each triplet (d0, d1, d2) becomes one 32-bit lane of three big integers, so a single
    d0 + 45*d1 + 2025*d2 over whole integers computes every group at once (digits are below
    45, so a lane stays below 2**17 and nothing carries into the next one). A group is in
    range iff its lane's second byte is zero. Decoding every verified code one group at a
    time cost more than its ES256 check (measured); this is ~2.5x faster than a triplet table.
    """
    try:
        digits = text.encode("ascii").translate(_DIGITS)
    except UnicodeEncodeError:
        return None
    if 0xFF in digits:
        return None
    groups, whole = len(text) // 3, len(text) - len(text) % 3
    lanes = bytearray(4 * groups)
    total = 0
    for position, weight in enumerate((1, _BASE, _BASE_SQUARED)):
        lanes[3::4] = digits[position:whole:3]
        total += int.from_bytes(lanes, "big") * weight
    values = total.to_bytes(4 * groups, "big")
    if values[1::4].count(0) != groups:
        return None  # a triplet above 65535
    out = bytearray(2 * groups + (whole < len(text)))
    out[0 : 2 * groups : 2] = values[2::4]
    out[1 : 2 * groups : 2] = values[3::4]
    if whole < len(text):
        value = digits[whole] + digits[whole + 1] * _BASE
        if value > 0xFF:
            return None
        out[-1] = value
    return bytes(out)


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
