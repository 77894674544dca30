"""The hcx health code: CWT claims in a COSE_Sign1, zlib-compressed, base45 text after ``HCX1:``.

Layers, outermost first (docs/code-format.md documents every key and limit)::

    "HCX1:" + base45( zlib( COSE_Sign1( CWT claims ) ) )

:func:`decode_token` parses and checks the shape only; it never raises anything but
:class:`~trust.errors.DecodeError`. Signature, trust chain and validity are checked later.

A code has exactly one text form: :func:`issue_token` makes it, and :func:`decode_token`
refuses a well-formed code in any other form (another zlib level, an untagged or
non-deterministic COSE message or claims map, a high-S signature) with Reason.NON_CANONICAL.
The signature covers the purpose ``hcx/v1/health-code`` as COSE external_aad, so no other
hcx signature (a registry statement, a trust list) can ever pass for a code, nor the reverse.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import cbor2

from trust import cbor
from trust.base45 import b45decode, b45encode
from trust.cose import (
    HEADER_ALG,
    HEADER_KID,
    Sign1,
    SigningKey,
    VerifyingKey,
    check_canonical,
    check_low_s,
    decode_sign1,
    decode_sign1_exact,
    sign1,
    verify_sign1,
)
from trust.envelope import Purpose
from trust.errors import DecodeError, InvalidRequest
from trust.model import Colour, Reason, is_province_code

PREFIX = "HCX1:"
MAX_TOKEN_CHARS = 4096
MAX_PAYLOAD_BYTES = 4096  # decompressed COSE_Sign1; a real code is a few hundred bytes
KID_LENGTH = 8
CODE_ID_LENGTH = 16
MAX_MASKED_NAME_CHARS = 32
PURPOSE = "health-code"
# 9999-12-31T23:59:59Z: every accepted time converts to a datetime without overflow.
MAX_TIMESTAMP = 253_402_300_799
MAX_STATUS_VERSION = 2**63 - 1  # fits a signed 64-bit column and a proto int64
# zlib level 0 (stored blocks): a signed code is mostly random bytes (code id, kid, signature)
# and does not compress; every level gives the same mean size (171 bytes; tokens stay <= 265
# characters, bench/bench_node.py), but levels 1-9 cost ~20 µs per code and level 0 ~2.5 µs.
# It is the only level: decoding refuses a stream that is not byte for byte this level's
# output for the same payload (one text form per code; the check is a ~1 µs re-compression).
ISSUE_ZLIB_LEVEL = 0
# COSE external_aad of every code signature (domain separation, trust/envelope.py).
HEALTH_CODE_AAD = Purpose.HEALTH_CODE.value

# CWT claim keys (RFC 8392 §4) and the private-use hcx claim (< -65536).
CLAIM_ISS = 1
CLAIM_EXP = 4
CLAIM_IAT = 6
CLAIM_CTI = 7
CLAIM_HCX = -70000
# Keys inside the hcx claim map.
HCX_COLOUR = 1
HCX_STATUS_VERSION = 2
HCX_MASKED_NAME = 3
HCX_ID_TAIL = 4
HCX_PURPOSE = 5

_CLAIM_KEYS = frozenset({CLAIM_ISS, CLAIM_EXP, CLAIM_IAT, CLAIM_CTI, CLAIM_HCX})
_HCX_KEYS = frozenset({HCX_COLOUR, HCX_STATUS_VERSION, HCX_MASKED_NAME, HCX_ID_TAIL, HCX_PURPOSE})
_PROTECTED_KEYS = frozenset({HEADER_ALG, HEADER_KID})
_ID_TAIL_RE = re.compile(r"[0-9X]{4}")
_T = TypeVar("_T")


@dataclass(frozen=True)
class CodeClaims:
    """What an hcx code asserts; validated on construction, both when issuing and decoding."""

    issuer: str
    code_id: bytes
    issued_at: int
    expires_at: int
    colour: Colour
    status_version: int
    masked_name: str
    id_tail: str

    def __post_init__(self) -> None:
        _require(
            _is_province(self.issuer),
            "issuer must be a province code such as 330000",
        )
        _require(
            isinstance(self.code_id, bytes) and len(self.code_id) == CODE_ID_LENGTH,
            f"code id must be {CODE_ID_LENGTH} bytes",
        )
        _require(_is_timestamp(self.issued_at), "issued_at must be a Unix time in seconds")
        _require(_is_timestamp(self.expires_at), "expires_at must be a Unix time in seconds")
        _require(self.expires_at > self.issued_at, "expires_at must be after issued_at")
        _require(isinstance(self.colour, Colour), "colour must be a Colour")
        _require(
            _is_int(self.status_version) and 0 <= self.status_version <= MAX_STATUS_VERSION,
            "status version must be a non-negative 64-bit integer",
        )
        _require(
            _is_masked_name(self.masked_name),
            f"masked name must be 1 to {MAX_MASKED_NAME_CHARS} printable characters",
        )
        _require(
            isinstance(self.id_tail, str) and bool(_ID_TAIL_RE.fullmatch(self.id_tail)),
            "id tail must be 4 characters of [0-9X]",
        )


@dataclass(frozen=True)
class DecodedCode:
    """A code whose shape is valid; its signature has not been checked yet."""

    claims: CodeClaims
    kid: bytes
    alg: int
    sign1: Sign1


def issue_token(claims: CodeClaims, *, signing_key: SigningKey, kid: bytes) -> str:
    """Sign claims and return the ``HCX1:`` text that goes into the QR code."""
    if not isinstance(kid, bytes) or len(kid) != KID_LENGTH:
        raise DecodeError(f"kid must be {KID_LENGTH} bytes", reason=Reason.MALFORMED)
    signed = sign1(
        payload=encode_claims(claims),
        private_key=signing_key,
        kid=kid,
        external_aad=HEALTH_CODE_AAD,
    )
    token = PREFIX + b45encode(zlib.compress(signed, ISSUE_ZLIB_LEVEL))
    if len(token) > MAX_TOKEN_CHARS:
        raise DecodeError("token would exceed the size limit", reason=Reason.BAD_ENCODING)
    return token


def decode_token(token: str) -> DecodedCode:
    """Parse an ``HCX1:`` token down to its claims; raise only DecodeError; no signature check.

    Layer by layer, outermost first (BAD_ENCODING, MALFORMED); a code that passes them all
    but is not in its one form is refused last, with NON_CANONICAL."""
    compressed = _unwrap_text(token)
    cose = _inflate(compressed)
    # Every code an hcx issuer makes has the exact layout; anything else takes the general
    # decoder, which names what is wrong (the same verdict either way: tests/unit/trust).
    exact = decode_sign1_exact(cose)
    msg = exact if exact is not None else decode_sign1(cose)
    kid, alg = _check_code_headers(msg)
    claims = _claims_from_cwt(cbor.decode(msg.payload, what="CWT claims"))
    _check_canonical(compressed, cose, msg, claims, layout_checked=exact is not None)
    return DecodedCode(claims=claims, kid=kid, alg=alg, sign1=msg)


def verify_token_signature(decoded: DecodedCode, public_key: VerifyingKey) -> None:
    """Check the code's signature with the signing certificate's key (VerificationError):
    over the purpose ``hcx/v1/health-code``, and low-S only for ES256 (NON_CANONICAL)."""
    verify_sign1(decoded.sign1, public_key, external_aad=HEALTH_CODE_AAD, low_s_only=True)


def encode_claims(claims: CodeClaims) -> bytes:
    """The claims' one encoding: deterministic CBOR (RFC 8949 §4.2.1) of the CWT map."""
    # cbor2 always writes the shortest integer and length forms, and _claims_to_cwt builds
    # the maps in sorted key order, so plain dumps is the deterministic encoding at a fifth
    # of the cost of canonical=True (a test checks both agree).
    return cbor2.dumps(_claims_to_cwt(claims))


def mask_name(full_name: str) -> str:
    """Mask a name for display: "张三明" -> "张*明", "张三" -> "张*", "张" -> "张".

    Names of three or more characters keep only the first and last, with a single "*"
    between them, so the mask does not reveal the name's length either.
    """
    name = full_name.strip()
    if not name or not name.isprintable():
        raise InvalidRequest("name must be non-empty printable text")
    if len(name) <= 2:
        return name[0] + "*" * (len(name) - 1)
    return f"{name[0]}*{name[-1]}"


def id_tail(id_number: str) -> str:
    """The last 4 characters of an ID number (digits or X), for a visual match at checkpoints."""
    tail = id_number.strip().upper()[-4:]
    if not _ID_TAIL_RE.fullmatch(tail):
        raise InvalidRequest("ID number must end in 4 characters of [0-9X]")
    return tail


def _claims_to_cwt(claims: CodeClaims) -> dict[int, object]:
    # Keys in deterministic order (by their encoded bytes: 01 04 06 07 3a..., then 01 ... 05).
    return {
        CLAIM_ISS: claims.issuer,
        CLAIM_EXP: claims.expires_at,
        CLAIM_IAT: claims.issued_at,
        CLAIM_CTI: claims.code_id,
        CLAIM_HCX: {
            HCX_COLOUR: int(claims.colour),
            HCX_STATUS_VERSION: claims.status_version,
            HCX_MASKED_NAME: claims.masked_name,
            HCX_ID_TAIL: claims.id_tail,
            HCX_PURPOSE: PURPOSE,
        },
    }


def _check_canonical(
    compressed: bytes, cose: bytes, msg: Sign1, claims: CodeClaims, *, layout_checked: bool
) -> None:
    # base45 needs no check: it has one text form per byte string (trust/base45.py).
    if zlib.compress(cose, ISSUE_ZLIB_LEVEL) != compressed:
        raise DecodeError(
            f"zlib stream is not the level-{ISSUE_ZLIB_LEVEL} compression of the code",
            reason=Reason.NON_CANONICAL,
        )
    if layout_checked:  # the exact layout is the canonical COSE form; only S is left
        check_low_s(msg)
    else:
        check_canonical(msg, cose)
    if encode_claims(claims) != msg.payload:
        raise DecodeError(
            "CWT claims are not in deterministic CBOR form", reason=Reason.NON_CANONICAL
        )


def _unwrap_text(token: str) -> bytes:
    if not isinstance(token, str):
        raise DecodeError("token must be text", reason=Reason.BAD_ENCODING)
    if len(token) > MAX_TOKEN_CHARS:
        raise DecodeError(
            f"token longer than {MAX_TOKEN_CHARS} characters", reason=Reason.BAD_ENCODING
        )
    if not token.startswith(PREFIX):
        raise DecodeError(f"token does not start with {PREFIX}", reason=Reason.BAD_ENCODING)
    return b45decode(token[len(PREFIX) :])


def _inflate(compressed: bytes) -> bytes:
    # Bounded decompression: a zip bomb stops after MAX_PAYLOAD_BYTES + 1 bytes of output.
    inflater = zlib.decompressobj()
    try:
        payload = inflater.decompress(compressed, MAX_PAYLOAD_BYTES + 1)
    except zlib.error as e:
        raise DecodeError("token is not valid zlib data", reason=Reason.BAD_ENCODING) from e
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(
            f"decompressed token exceeds {MAX_PAYLOAD_BYTES} bytes", reason=Reason.BAD_ENCODING
        )
    if not inflater.eof or inflater.unused_data:
        raise DecodeError(
            "zlib stream is truncated or followed by extra bytes", reason=Reason.BAD_ENCODING
        )
    return payload


def _check_code_headers(msg: Sign1) -> tuple[bytes, int]:
    # Unprotected headers could be altered without breaking the signature: hcx sends none.
    if msg.unprotected:
        raise _malformed("hcx codes carry no unprotected header parameters")
    if set(msg.protected) != _PROTECTED_KEYS:
        raise _malformed("protected header must hold exactly alg and kid")
    kid, alg = msg.kid, msg.alg
    if kid is None or len(kid) != KID_LENGTH:
        raise _malformed(f"kid must be {KID_LENGTH} bytes")
    if alg is None:
        raise _malformed("alg must be an integer")
    return kid, alg


def _claims_from_cwt(cwt: object) -> CodeClaims:
    claims = _exact_map(cwt, _CLAIM_KEYS, "CWT claims")
    hcx = _exact_map(claims[CLAIM_HCX], _HCX_KEYS, "hcx claim")
    if _typed(hcx[HCX_PURPOSE], str, "purpose") != PURPOSE:
        raise _malformed(f"purpose must be {PURPOSE!r}")
    return CodeClaims(
        issuer=_typed(claims[CLAIM_ISS], str, "iss"),
        code_id=_typed(claims[CLAIM_CTI], bytes, "cti"),
        issued_at=_typed(claims[CLAIM_IAT], int, "iat"),
        expires_at=_typed(claims[CLAIM_EXP], int, "exp"),
        colour=_colour(_typed(hcx[HCX_COLOUR], int, "colour")),
        status_version=_typed(hcx[HCX_STATUS_VERSION], int, "status version"),
        masked_name=_typed(hcx[HCX_MASKED_NAME], str, "masked name"),
        id_tail=_typed(hcx[HCX_ID_TAIL], str, "id tail"),
    )


def _exact_map(value: object, keys: frozenset[int], what: str) -> Mapping[Any, object]:
    # type() first: the decoder gives dicts, and an ABC isinstance costs more than the rest.
    if type(value) is not dict and not isinstance(value, Mapping):
        raise _malformed(f"{what} must be a map")
    # type() rather than ==: 1.0 and True hash and compare equal to 1.
    if value.keys() != keys or set(map(type, value)) != {int}:
        raise _malformed(f"{what} must have exactly the keys {sorted(keys)}")
    return value


def _typed(value: object, expected: type[_T], what: str) -> _T:
    # Exact type: CBOR true must not pass as the integer 1.
    if type(value) is not expected:
        raise _malformed(f"{what} must be {expected.__name__}")
    return value


def _colour(value: int) -> Colour:
    try:
        return Colour(value)
    except ValueError as e:
        raise _malformed(f"unknown colour {value}") from e


def _is_province(value: object) -> bool:
    # The length check also refuses "330000\n", which a "$"-anchored pattern lets through.
    return isinstance(value, str) and len(value) == 6 and is_province_code(value)


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_timestamp(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TIMESTAMP


def _is_masked_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_MASKED_NAME_CHARS
        and value.isprintable()
        and value == value.strip()
    )


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _malformed(message)


def _malformed(message: str) -> DecodeError:
    return DecodeError(message, reason=Reason.MALFORMED)
