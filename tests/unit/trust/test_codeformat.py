"""The hcx code format: round trips, claim validation and hostile tokens."""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trust import cbor
from trust.base45 import ALPHABET, b45decode, b45encode
from trust.codeformat import (
    HEALTH_CODE_AAD,
    ISSUE_ZLIB_LEVEL,
    MAX_PAYLOAD_BYTES,
    MAX_TOKEN_CHARS,
    PREFIX,
    CodeClaims,
    DecodedCode,
    _claims_to_cwt,
    decode_token,
    encode_claims,
    id_tail,
    issue_token,
    mask_name,
    verify_token_signature,
)
from trust.cose import (
    ALG_EDDSA,
    ALG_ES256,
    P256_HALF_ORDER,
    P256_ORDER,
    Sign1,
    sign1,
    verify_sign1,
)
from trust.envelope import Purpose
from trust.errors import DecodeError, InvalidRequest, VerificationError
from trust.model import Colour, Reason

KID = bytes.fromhex("0011223344556677")
CODE_ID = bytes(range(16))
NOW = 1_740_816_000  # 2025-03-01T08:00:00Z

P256_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def make_claims(**changes: Any) -> CodeClaims:
    fields: dict[str, Any] = {
        "issuer": "330000",
        "code_id": CODE_ID,
        "issued_at": NOW,
        "expires_at": NOW + 300,
        "colour": Colour.GREEN,
        "status_version": 3,
        "masked_name": "张*明",
        "id_tail": "123X",
    }
    fields.update(changes)
    return CodeClaims(**fields)


def cwt(**changes: Any) -> dict[Any, Any]:
    """The CWT claims map of make_claims(), with top-level or hcx-map entries replaced."""
    hcx: dict[Any, Any] = {1: 1, 2: 3, 3: "张*明", 4: "123X", 5: "health-code"}
    claims: dict[Any, Any] = {1: "330000", 4: NOW + 300, 6: NOW, 7: CODE_ID, -70000: hcx}
    for name, value in changes.items():
        target, key = (hcx, int(name[4:])) if name.startswith("hcx_") else (claims, _KEYS[name])
        if value is _DROP:
            del target[key]
        else:
            target[key] = value
    return claims


_DROP = object()
_KEYS = {"iss": 1, "exp": 4, "iat": 6, "cti": 7, "hcx": -70000}


def wrap(cose: bytes, *, level: int = ISSUE_ZLIB_LEVEL) -> str:
    return PREFIX + b45encode(zlib.compress(cose, level))


def sync_flushed(data: bytes) -> bytes:
    """The same bytes stored, with an empty stored block after them: a zlib stream that
    inflates to ``data`` but is never the canonical one (level 1, by contrast, stores random
    bytes exactly as level 0 does, header included)."""
    c = zlib.compressobj(0)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH) + c.flush()


def cose_token(
    payload: object,
    *,
    protected: dict[Any, Any] | None = None,
    unprotected: dict[Any, Any] | None = None,
) -> str:
    """A token around any payload and headers; the signature is a dummy (decode ignores it)."""
    header = {1: ALG_ES256, 4: KID} if protected is None else protected
    raw_payload = payload if isinstance(payload, bytes) else cbor2.dumps(payload)
    item = [cbor2.dumps(header), unprotected or {}, raw_payload, b"\x00" * 64]
    return wrap(cbor2.dumps(cbor2.CBORTag(18, item)))


def head(major: int, length: int, *, size: int) -> bytes:
    """A CBOR item head with ``length`` written in ``size`` bytes (0: in the initial byte),
    so tests can write the non-shortest forms no encoder makes."""
    if size == 0:
        return bytes([major << 5 | length])
    extra = {1: 24, 2: 25, 4: 26, 8: 27}[size]
    return bytes([major << 5 | extra]) + length.to_bytes(size, "big")


def bstr(data: bytes, *, size: int | None = None) -> bytes:
    """A CBOR byte string, its length in the shortest form unless ``size`` says otherwise."""
    if size is None:
        size = 0 if len(data) < 24 else 1 if len(data) < 256 else 2
    return head(2, len(data), size=size) + data


def cose_bytes(
    protected: bytes,
    payload: bytes,
    signature: bytes,
    *,
    tag: bytes = b"\xd2",
    array: bytes = b"\x84",
    unprotected: bytes = b"\xa0",
    sizes: tuple[int | None, int | None, int | None] = (None, None, None),
) -> bytes:
    """COSE_Sign1 bytes assembled by hand, each part replaceable by a non-canonical form."""
    p, q, r = sizes
    return (
        tag
        + array
        + bstr(protected, size=p)
        + unprotected
        + bstr(payload, size=q)
        + bstr(signature, size=r)
    )


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "alg"), [(P256_KEY, ALG_ES256), (ED_KEY, ALG_EDDSA)])
def test_round_trip(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, alg: int) -> None:
    claims = make_claims()
    token = issue_token(claims, signing_key=key, kid=KID)
    decoded = decode_token(token)
    assert decoded.claims == claims
    assert decoded.kid == KID
    assert decoded.alg == alg
    verify_token_signature(decoded, key.public_key())


def test_token_text_fits_qr_alphanumeric_mode() -> None:
    token = issue_token(make_claims(), signing_key=P256_KEY, kid=KID)
    assert token.startswith("HCX1:")
    assert set(token) <= set(ALPHABET)
    assert len(token) < 400  # a small QR code; real codes are ~300 characters


def test_payload_uses_the_documented_keys() -> None:
    decoded = decode_token(issue_token(make_claims(), signing_key=P256_KEY, kid=KID))
    assert cbor2.loads(decoded.sign1.payload) == cwt()
    assert decoded.sign1.protected == {1: ALG_ES256, 4: KID}
    assert decoded.sign1.unprotected == {}


def test_other_key_fails_signature() -> None:
    decoded = decode_token(issue_token(make_claims(), signing_key=P256_KEY, kid=KID))
    with pytest.raises(VerificationError) as caught:
        verify_token_signature(decoded, ec.generate_private_key(ec.SECP256R1()).public_key())
    assert caught.value.reason is Reason.BAD_SIGNATURE


def test_unknown_algorithm_decodes_but_does_not_verify() -> None:
    decoded = decode_token(cose_token(cwt(), protected={1: -35, 4: KID}))
    assert decoded.alg == -35
    with pytest.raises(VerificationError) as caught:
        verify_token_signature(decoded, P256_KEY.public_key())
    assert caught.value.reason is Reason.UNSUPPORTED_ALGORITHM


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param(KID[:7], id="7 bytes"),
        pytest.param(KID + b"\x00", id="9 bytes"),
        pytest.param(bytearray(KID), id="a bytearray"),
        pytest.param(KID.hex()[:8], id="8 characters of text"),
    ],
)
def test_issue_refuses_a_kid_that_is_not_8_bytes(kid: object) -> None:
    with pytest.raises(DecodeError) as caught:
        issue_token(make_claims(), signing_key=P256_KEY, kid=kid)  # type: ignore[arg-type]
    assert caught.value.message == "kid must be 8 bytes"
    assert caught.value.reason is Reason.MALFORMED


def test_issue_refuses_a_token_above_the_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Real claims stay far below 4096 characters; a lower limit shows the check is exact.
    token = issue_token(make_claims(), signing_key=ED_KEY, kid=KID)
    monkeypatch.setattr("trust.codeformat.MAX_TOKEN_CHARS", len(token))
    assert issue_token(make_claims(), signing_key=ED_KEY, kid=KID) == token  # Ed25519: same bytes
    monkeypatch.setattr("trust.codeformat.MAX_TOKEN_CHARS", len(token) - 1)
    with pytest.raises(DecodeError) as caught:
        issue_token(make_claims(), signing_key=ED_KEY, kid=KID)
    assert caught.value.message == "token would exceed the size limit"
    assert caught.value.reason is Reason.BAD_ENCODING


claims_strategy = st.builds(
    CodeClaims,
    issuer=st.sampled_from(["110000", "330000", "650000", "820000"]),
    code_id=st.binary(min_size=16, max_size=16),
    issued_at=st.integers(0, 2_000_000_000),
    expires_at=st.integers(2_000_000_001, 253_402_300_799),
    colour=st.sampled_from(Colour),
    status_version=st.integers(0, 2**63 - 1),
    masked_name=st.text(st.characters(categories=["Lu", "Ll", "Lo"]), min_size=1, max_size=32),
    id_tail=st.from_regex(r"\A[0-9X]{4}\Z"),
)


@settings(max_examples=50)
@given(claims_strategy)
def test_any_valid_claims_round_trip(claims: CodeClaims) -> None:
    decoded = decode_token(issue_token(claims, signing_key=ED_KEY, kid=KID))
    assert decoded.claims == claims


# --- claim validation (the same rules apply when issuing and decoding) ----------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"issuer": "330001"},
            "issuer must be a province code such as 330000",
            id="issuer a prefecture, not a province",
        ),
        pytest.param(
            {"issuer": "930000"},
            "issuer must be a province code such as 330000",
            id="issuer outside 1-8",
        ),
        pytest.param(
            {"issuer": "330000\n"},
            "issuer must be a province code such as 330000",
            id="issuer with trailing newline",
        ),
        pytest.param(
            {"issuer": 330000},
            "issuer must be a province code such as 330000",
            id="issuer an integer",
        ),
        pytest.param({"code_id": bytes(15)}, "code id must be 16 bytes", id="code id 15 bytes"),
        pytest.param({"code_id": bytes(17)}, "code id must be 16 bytes", id="code id 17 bytes"),
        pytest.param({"code_id": "0" * 16}, "code id must be 16 bytes", id="code id text"),
        pytest.param(
            {"issued_at": -1}, "issued_at must be a Unix time in seconds", id="issued before 1970"
        ),
        pytest.param(
            {"issued_at": True}, "issued_at must be a Unix time in seconds", id="issued_at a bool"
        ),
        pytest.param(
            {"issued_at": float(NOW)},
            "issued_at must be a Unix time in seconds",
            id="issued_at a float",
        ),
        pytest.param(
            {"expires_at": NOW}, "expires_at must be after issued_at", id="expires when issued"
        ),
        pytest.param(
            {"expires_at": NOW - 1},
            "expires_at must be after issued_at",
            id="expires before issued",
        ),
        pytest.param(
            {"expires_at": 253_402_300_800},
            "expires_at must be a Unix time in seconds",
            id="expires after year 9999",
        ),
        pytest.param({"colour": 1}, "colour must be a Colour", id="colour a plain int"),
        pytest.param(
            {"status_version": -1},
            "status version must be a non-negative 64-bit integer",
            id="negative status version",
        ),
        pytest.param(
            {"status_version": 2**63},
            "status version must be a non-negative 64-bit integer",
            id="status version beyond int64",
        ),
        pytest.param(
            {"masked_name": ""},
            "masked name must be 1 to 32 printable characters",
            id="empty masked name",
        ),
        pytest.param(
            {"masked_name": "x" * 33},
            "masked name must be 1 to 32 printable characters",
            id="masked name 33 chars",
        ),
        pytest.param(
            {"masked_name": "张*\n明"},
            "masked name must be 1 to 32 printable characters",
            id="masked name with newline",
        ),
        pytest.param(
            {"masked_name": " 张*明"},
            "masked name must be 1 to 32 printable characters",
            id="masked name with leading space",
        ),
        pytest.param(
            {"id_tail": "123"}, "id tail must be 4 characters of [0-9X]", id="id tail 3 chars"
        ),
        pytest.param(
            {"id_tail": "123x"}, "id tail must be 4 characters of [0-9X]", id="id tail lower-case x"
        ),
        pytest.param(
            {"id_tail": "12345"}, "id tail must be 4 characters of [0-9X]", id="id tail 5 chars"
        ),
        pytest.param(
            {"issuer": "33000"}, "issuer must be a province code such as 330000", id="5 digits"
        ),
        pytest.param(
            {"code_id": bytearray(16)}, "code id must be 16 bytes", id="code id bytearray"
        ),
        pytest.param(
            {"issued_at": "1740816000"},
            "issued_at must be a Unix time in seconds",
            id="issued_at text",
        ),
        pytest.param(
            {"expires_at": True},
            "expires_at must be a Unix time in seconds",
            id="expires_at a bool",
        ),
        pytest.param(
            {"expires_at": -1},
            "expires_at must be a Unix time in seconds",
            id="expires before 1970",
        ),
        pytest.param({"colour": "GREEN"}, "colour must be a Colour", id="colour a name"),
        pytest.param(
            {"status_version": True},
            "status version must be a non-negative 64-bit integer",
            id="status version a bool",
        ),
        pytest.param(
            {"status_version": 3.0},
            "status version must be a non-negative 64-bit integer",
            id="status version a float",
        ),
        pytest.param(
            {"masked_name": "张*明 "},
            "masked name must be 1 to 32 printable characters",
            id="masked name with trailing space",
        ),
        pytest.param(
            {"masked_name": "张*明".encode()},
            "masked name must be 1 to 32 printable characters",
            id="masked name bytes",
        ),
        pytest.param({"id_tail": 1234}, "id tail must be 4 characters of [0-9X]", id="id tail int"),
        pytest.param(
            {"id_tail": "123X\n"}, "id tail must be 4 characters of [0-9X]", id="id tail newline"
        ),
        pytest.param(
            {"id_tail": "１２３４"},
            "id tail must be 4 characters of [0-9X]",
            id="id tail full-width digits",
        ),
    ],
)
def test_invalid_claims_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        make_claims(**changes)
    assert caught.value.message == message
    assert caught.value.reason is Reason.MALFORMED


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"masked_name": "张"}, id="single character name"),
        pytest.param({"masked_name": "x" * 32}, id="masked name 32 chars"),
        pytest.param({"expires_at": NOW + 1}, id="one second lifetime"),
        pytest.param({"issued_at": 0, "expires_at": 253_402_300_799}, id="extreme times"),
        pytest.param({"status_version": 0, "colour": Colour.RED}, id="version 0, red"),
        pytest.param({"id_tail": "XXXX"}, id="id tail all X"),
        pytest.param({"status_version": 2**63 - 1}, id="largest status version"),
        pytest.param({"masked_name": "张 *明"}, id="a space inside the masked name"),
    ],
)
def test_valid_edge_claims_are_accepted(changes: dict[str, Any]) -> None:
    claims = make_claims(**changes)
    assert decode_token(issue_token(claims, signing_key=P256_KEY, kid=KID)).claims == claims


# --- hostile tokens -------------------------------------------------------------------------


def _bomb() -> str:
    return wrap(b"\x00" * 2_000_000, level=9)


@pytest.mark.parametrize(
    ("token", "reason", "message"),
    [
        pytest.param("", Reason.BAD_ENCODING, "token does not start with HCX1:", id="empty"),
        pytest.param(
            "HC1:NCFOXN", Reason.BAD_ENCODING, "token does not start with HCX1:", id="EU DCC prefix"
        ),
        pytest.param(
            "hcx1:" + wrap(b"")[5:],
            Reason.BAD_ENCODING,
            "token does not start with HCX1:",
            id="lower-case prefix",
        ),
        pytest.param(
            "HCX1:",
            Reason.BAD_ENCODING,
            "zlib stream is truncated or followed by extra bytes",
            id="prefix only",
        ),
        pytest.param(
            "HCX1:" + "0" * MAX_TOKEN_CHARS,
            Reason.BAD_ENCODING,
            "token longer than 4096 characters",
            id="too long",
        ),
        pytest.param(
            "HCX1:abc",
            Reason.BAD_ENCODING,
            "character 'a' is not in the base45 alphabet",
            id="not base45",
        ),
        pytest.param(
            "HCX1:" + b45encode(b"plain"),
            Reason.BAD_ENCODING,
            "token is not valid zlib data",
            id="not zlib",
        ),
        pytest.param(
            wrap(b"x")[:-3],
            Reason.BAD_ENCODING,
            "zlib stream is truncated or followed by extra bytes",
            id="truncated zlib",
        ),
        pytest.param(
            PREFIX + b45encode(zlib.compress(b"x") + b"\x00"),
            Reason.BAD_ENCODING,
            "zlib stream is truncated or followed by extra bytes",
            id="zlib+junk",
        ),
        pytest.param(
            _bomb(),
            Reason.BAD_ENCODING,
            "decompressed token exceeds 4096 bytes",
            id="zip bomb 2 MB",
        ),
        pytest.param(
            wrap(b"\x00" * (MAX_PAYLOAD_BYTES + 1), level=9),
            Reason.BAD_ENCODING,
            "decompressed token exceeds 4096 bytes",
            id="4097 B",
        ),
        pytest.param(
            wrap(b"\xff"), Reason.BAD_ENCODING, "COSE_Sign1 is not valid CBOR", id="not CBOR"
        ),
        pytest.param(
            wrap(cbor2.dumps([1, 2, 3, 4])),
            Reason.MALFORMED,
            "protected header must be a byte string",
            id="array of ints",
        ),
        pytest.param(
            cose_token(cwt(), protected={1: ALG_ES256, 4: KID[:7]}),
            Reason.MALFORMED,
            "kid must be 8 bytes",
            id="kid 7 B",
        ),
        pytest.param(
            cose_token(cwt(), protected={1: ALG_ES256}, unprotected={4: KID}),
            Reason.MALFORMED,
            "hcx codes carry no unprotected header parameters",
            id="kid unprotected",
        ),
        pytest.param(
            cose_token(cwt(), protected={1: ALG_ES256, 4: KID}, unprotected={5: b"iv"}),
            Reason.MALFORMED,
            "hcx codes carry no unprotected header parameters",
            id="extra unprotected header",
        ),
        pytest.param(
            cose_token(cwt(), protected={1: ALG_ES256, 3: 0, 4: KID}),
            Reason.MALFORMED,
            "protected header must hold exactly alg and kid",
            id="extra protected header",
        ),
        pytest.param(
            cose_token(cwt(), protected={4: KID}),
            Reason.MALFORMED,
            "protected header must hold exactly alg and kid",
            id="no alg",
        ),
        pytest.param(
            cose_token([1]), Reason.MALFORMED, "CWT claims must be a map", id="claims an array"
        ),
        pytest.param(
            cose_token(b"\xff"),
            Reason.BAD_ENCODING,
            "CWT claims is not valid CBOR",
            id="claims not CBOR",
        ),
        pytest.param(
            cose_token(cbor2.dumps(cwt()) + b"\x00"),
            Reason.BAD_ENCODING,
            "CWT claims has trailing bytes after the CBOR item",
            id="trail",
        ),
        pytest.param(
            cose_token(cwt(exp=_DROP)),
            Reason.MALFORMED,
            "CWT claims must have exactly the keys [-70000, 1, 4, 6, 7]",
            id="exp missing",
        ),
        pytest.param(
            cose_token({**cwt(), 2: "sub"}),
            Reason.MALFORMED,
            "CWT claims must have exactly the keys [-70000, 1, 4, 6, 7]",
            id="unknown claim sub",
        ),
        pytest.param(
            cose_token({**cwt(), "x": 1}),
            Reason.MALFORMED,
            "CWT claims must have exactly the keys [-70000, 1, 4, 6, 7]",
            id="text claim key",
        ),
        pytest.param(
            cose_token({(1.0 if k == 1 else k): v for k, v in cwt().items()}),
            Reason.MALFORMED,
            "CWT claims must have exactly the keys [-70000, 1, 4, 6, 7]",
            id="float key 1.0",
        ),
        pytest.param(
            cose_token(cwt(iss=330000)), Reason.MALFORMED, "iss must be str", id="iss an int"
        ),
        pytest.param(
            cose_token(cwt(iss="330001")),
            Reason.MALFORMED,
            "issuer must be a province code such as 330000",
            id="iss not a province",
        ),
        pytest.param(
            cose_token(cwt(iat=True)), Reason.MALFORMED, "iat must be int", id="iat a bool"
        ),
        pytest.param(
            cose_token(cwt(iat=float(NOW))), Reason.MALFORMED, "iat must be int", id="iat a float"
        ),
        pytest.param(
            cose_token(cwt(exp=NOW)),
            Reason.MALFORMED,
            "expires_at must be after issued_at",
            id="exp equals iat",
        ),
        pytest.param(
            cose_token(cwt(exp=2**64 - 1)),
            Reason.MALFORMED,
            "expires_at must be a Unix time in seconds",
            id="exp huge",
        ),
        pytest.param(
            cose_token(cwt(exp=cbor2.CBORTag(1, NOW + 300))),
            Reason.MALFORMED,
            "CWT claims: CBOR tag 1 is not allowed here",
            id="exp a date",
        ),
        pytest.param(
            cose_token(cwt(cti=CODE_ID.hex())), Reason.MALFORMED, "cti must be bytes", id="cti text"
        ),
        pytest.param(
            cose_token(cwt(cti=bytes(8))),
            Reason.MALFORMED,
            "code id must be 16 bytes",
            id="cti 8 bytes",
        ),
        pytest.param(
            cose_token(cwt(hcx=[1, 2])),
            Reason.MALFORMED,
            "hcx claim must be a map",
            id="hcx an array",
        ),
        pytest.param(cose_token(cwt(hcx_1=4)), Reason.MALFORMED, "unknown colour 4", id="colour 4"),
        pytest.param(cose_token(cwt(hcx_1=0)), Reason.MALFORMED, "unknown colour 0", id="colour 0"),
        pytest.param(
            cose_token(cwt(hcx_1="GREEN")), Reason.MALFORMED, "colour must be int", id="colour text"
        ),
        pytest.param(
            cose_token(cwt(hcx_2=-1)),
            Reason.MALFORMED,
            "status version must be a non-negative 64-bit integer",
            id="status version negative",
        ),
        pytest.param(
            cose_token(cwt(hcx_3="x" * 33)),
            Reason.MALFORMED,
            "masked name must be 1 to 32 printable characters",
            id="masked name long",
        ),
        pytest.param(
            cose_token(cwt(hcx_4="12")),
            Reason.MALFORMED,
            "id tail must be 4 characters of [0-9X]",
            id="id tail short",
        ),
        pytest.param(
            cose_token(cwt(hcx_5="travel")),
            Reason.MALFORMED,
            "purpose must be 'health-code'",
            id="wrong purpose",
        ),
        pytest.param(
            cose_token(cwt(hcx_5=_DROP)),
            Reason.MALFORMED,
            "hcx claim must have exactly the keys [1, 2, 3, 4, 5]",
            id="purpose missing",
        ),
        pytest.param(
            cose_token(cwt(hcx_6="x")),
            Reason.MALFORMED,
            "hcx claim must have exactly the keys [1, 2, 3, 4, 5]",
            id="unknown hcx key",
        ),
        pytest.param(
            cose_token(
                {
                    **cwt(),
                    -70000: {(float(k) if k == 5 else k): v for k, v in cwt()[-70000].items()},
                }
            ),
            Reason.MALFORMED,
            "hcx claim must have exactly the keys [1, 2, 3, 4, 5]",
            id="hcx float key 5.0",
        ),
        pytest.param(
            cose_token(cwt(exp=str(NOW + 300))), Reason.MALFORMED, "exp must be int", id="exp text"
        ),
        pytest.param(
            cose_token(cwt(iss=b"330000")), Reason.MALFORMED, "iss must be str", id="iss bytes"
        ),
        pytest.param(
            cose_token(cwt(hcx_1=True)), Reason.MALFORMED, "colour must be int", id="colour true"
        ),
        pytest.param(
            cose_token(cwt(hcx_2=False)),
            Reason.MALFORMED,
            "status version must be int",
            id="status version false",
        ),
        pytest.param(
            cose_token(cwt(hcx_3="张*明".encode())),
            Reason.MALFORMED,
            "masked name must be str",
            id="masked name bytes",
        ),
        pytest.param(
            cose_token(cwt(hcx_4=1234)), Reason.MALFORMED, "id tail must be str", id="id tail int"
        ),
        pytest.param(
            cose_token(cwt(hcx_5=b"health-code")),
            Reason.MALFORMED,
            "purpose must be str",
            id="purpose bytes",
        ),
        pytest.param(
            cose_token(cwt(), protected={1: ALG_ES256, 4: KID + b"\x00"}),
            Reason.MALFORMED,
            "kid must be 8 bytes",
            id="kid 9 B",
        ),
        pytest.param(
            cose_token(cwt(), protected={1: ALG_ES256, 4: KID}, unprotected={6: b"partial iv"}),
            Reason.MALFORMED,
            "hcx codes carry no unprotected header parameters",
            id="partial IV unprotected",
        ),
        pytest.param(
            PREFIX + "0" * (MAX_TOKEN_CHARS - len(PREFIX)),
            Reason.BAD_ENCODING,
            "token is not valid zlib data",
            id="4096 characters: read, not zlib",
        ),
        pytest.param(
            PREFIX + "0" * (MAX_TOKEN_CHARS - len(PREFIX) + 1),
            Reason.BAD_ENCODING,
            "token longer than 4096 characters",
            id="4097 characters: refused unread",
        ),
        pytest.param(
            wrap(b"\x00" * MAX_PAYLOAD_BYTES, level=9),
            Reason.BAD_ENCODING,
            "COSE_Sign1 has trailing bytes after the CBOR item",
            id="4096 B inflated: read, not COSE",
        ),
    ],
)
def test_hostile_tokens_raise_decode_error(token: str, reason: Reason, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_token(token)
    assert caught.value.message == message
    assert caught.value.reason is reason


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(b"HCX1:" + b45encode(b"x").encode(), id="bytes"),
        pytest.param(None, id="None"),
    ],
)
def test_non_text_token_is_refused(token: object) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_token(token)  # type: ignore[arg-type]
    assert caught.value.message == "token must be text"
    assert caught.value.reason is Reason.BAD_ENCODING


def test_the_well_formed_reference_token_decodes() -> None:
    # Guards the table above: cose_token(cwt()) itself is accepted, so each row tests one change.
    assert decode_token(cose_token(cwt())).claims == make_claims()


# --- one text form: issuance makes it, decoding refuses every other ----------------------------

SIGNED_TOKEN = issue_token(make_claims(), signing_key=P256_KEY, kid=KID)
SIGNED = decode_token(SIGNED_TOKEN).sign1
SIGNED_PROTECTED = SIGNED.protected_bytes
SIGNED_PAYLOAD = SIGNED.payload
R, S = SIGNED.signature[:32], int.from_bytes(SIGNED.signature[32:], "big")
HIGH_S = R + (P256_ORDER - S).to_bytes(32, "big")  # the malleated twin: as valid for ECDSA


def signed_token(**parts: Any) -> str:
    """The real signed code with some of its COSE parts replaced (see cose_bytes)."""
    protected = parts.pop("protected", SIGNED_PROTECTED)
    payload = parts.pop("payload", SIGNED_PAYLOAD)
    signature = parts.pop("signature", SIGNED.signature)
    return wrap(cose_bytes(protected, payload, signature, **parts))


def test_issued_codes_are_in_their_one_form() -> None:
    for key in (P256_KEY, ED_KEY):
        for n in range(20):
            claims = make_claims(status_version=n)
            token = issue_token(claims, signing_key=key, kid=KID)
            compressed = b45decode(token[len(PREFIX) :])
            cose = zlib.decompress(compressed)
            assert compressed == zlib.compress(cose, 0)
            assert cose == cbor.encode(cbor2.loads(cose)) and cose[0] == 0xD2  # tag 18
            msg = decode_token(token).sign1
            assert msg.protected_bytes == cbor.encode({1: msg.alg, 4: KID})
            assert msg.payload == cbor.encode(cwt(hcx_2=n))
            if key is P256_KEY:
                assert int.from_bytes(msg.signature[32:], "big") <= P256_HALF_ORDER


def test_the_hand_assembled_signed_code_is_the_issued_one() -> None:
    # Guards the table below: each row changes one thing in exactly the issued bytes.
    assert signed_token() == SIGNED_TOKEN
    verify_token_signature(decode_token(signed_token()), P256_KEY.public_key())


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param(
            wrap(cose_bytes(SIGNED_PROTECTED, SIGNED_PAYLOAD, SIGNED.signature), level=9),
            "zlib stream is not the level-0 compression of the code",
            id="zlib level 9",
        ),
        pytest.param(
            PREFIX
            + b45encode(
                sync_flushed(cose_bytes(SIGNED_PROTECTED, SIGNED_PAYLOAD, SIGNED.signature))
            ),
            "zlib stream is not the level-0 compression of the code",
            id="zlib stored, then an empty block (sync flush)",
        ),
        pytest.param(
            signed_token(tag=b""), "COSE_Sign1 must carry tag 18", id="untagged COSE_Sign1"
        ),
        pytest.param(
            signed_token(tag=b"\xd8\x12"),
            "COSE_Sign1 is not in deterministic CBOR form",
            id="tag 18 in a two-byte head",
        ),
        pytest.param(
            signed_token(array=b"\x98\x04"),
            "COSE_Sign1 is not in deterministic CBOR form",
            id="array length in a two-byte head",
        ),
        pytest.param(
            signed_token(unprotected=b"\xb8\x00"),
            "COSE_Sign1 is not in deterministic CBOR form",
            id="empty map in a two-byte head",
        ),
        pytest.param(
            signed_token(sizes=(1, None, None)),
            "COSE_Sign1 is not in deterministic CBOR form",
            id="protected bstr length 1-byte head",
        ),
        pytest.param(
            signed_token(sizes=(None, 2, None)),
            "COSE_Sign1 is not in deterministic CBOR form",
            id="payload bstr length 2-byte head",
        ),
        pytest.param(
            signed_token(sizes=(None, None, 8)),
            "COSE_Sign1 is not in deterministic CBOR form",
            id="signature length 8-byte head",
        ),
        pytest.param(
            signed_token(signature=HIGH_S),
            "ES256 signature has a high s (a malleated copy of a low-S one)",
            id="high-S signature",
        ),
        pytest.param(
            signed_token(protected=b"\xa2\x04\x48" + KID + b"\x01\x26"),
            "protected header is not in deterministic CBOR form",
            id="protected keys unsorted",
        ),
        pytest.param(
            signed_token(protected=b"\xa2\x01\x38\x06\x04\x48" + KID),
            "protected header is not in deterministic CBOR form",
            id="alg -7 in two bytes",
        ),
        pytest.param(
            signed_token(protected=b"\xa2\x01\x26\x04\x58\x08" + KID),
            "protected header is not in deterministic CBOR form",
            id="kid length 1-byte head",
        ),
        pytest.param(
            signed_token(payload=cbor2.dumps(dict(reversed(list(cwt().items()))))),
            "CWT claims are not in deterministic CBOR form",
            id="claims keys unsorted",
        ),
        pytest.param(
            signed_token(
                payload=SIGNED_PAYLOAD.replace(b"\x06\x1a", b"\x06\x1b\x00\x00\x00\x00", 1)
            ),
            "CWT claims are not in deterministic CBOR form",
            id="iat in an 8-byte head",
        ),
        pytest.param(
            signed_token(payload=SIGNED_PAYLOAD.replace(b"\x07\x50", b"\x07\x58\x10", 1)),
            "CWT claims are not in deterministic CBOR form",
            id="cti length 1-byte head",
        ),
        pytest.param(
            signed_token(payload=SIGNED_PAYLOAD.replace(b"\x03\x67", b"\x03\x78\x07", 1)),
            "CWT claims are not in deterministic CBOR form",
            id="masked name length 1-byte head",
        ),
        pytest.param(
            signed_token(payload=SIGNED_PAYLOAD.replace(b"\xa5\x01\x01", b"\xb8\x05\x01\x01", 1)),
            "CWT claims are not in deterministic CBOR form",
            id="hcx map length 1-byte head",
        ),
    ],
)
def test_other_forms_of_a_well_formed_code_are_non_canonical(token: str, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_token(token)
    assert caught.value.message == message
    assert caught.value.reason is Reason.NON_CANONICAL


def test_high_s_twin_verifies_as_ecdsa_but_not_as_a_code() -> None:
    # The malleated signature is a valid ECDSA signature (so only a rule can refuse it) ...
    twin = Sign1(
        protected_bytes=SIGNED.protected_bytes,
        protected=SIGNED.protected,
        unprotected={},
        payload=SIGNED.payload,
        signature=HIGH_S,
    )
    verify_sign1(twin, P256_KEY.public_key(), external_aad=HEALTH_CODE_AAD)
    # ... and the code's verification refuses it even if it got past decoding.
    decoded = dataclasses.replace(VALID, sign1=twin)
    with pytest.raises(VerificationError) as caught:
        verify_token_signature(decoded, P256_KEY.public_key())
    assert caught.value.reason is Reason.NON_CANONICAL


@pytest.mark.parametrize(
    "aad",
    [
        pytest.param(b"", id="no purpose"),
        pytest.param(Purpose.STATEMENT.value, id="registry statement"),
        pytest.param(Purpose.TRUST_LIST.value, id="trust list"),
        pytest.param(Purpose.TREE_HEAD.value, id="tree head"),
    ],
)
def test_a_signature_made_for_another_purpose_is_not_a_code_signature(aad: bytes) -> None:
    signed = sign1(
        payload=encode_claims(make_claims()), private_key=P256_KEY, kid=KID, external_aad=aad
    )
    decoded = decode_token(wrap(signed))  # the same bytes a code would have, but another purpose
    with pytest.raises(VerificationError) as caught:
        verify_token_signature(decoded, P256_KEY.public_key())
    assert caught.value.reason is Reason.BAD_SIGNATURE


def test_code_signature_covers_the_health_code_purpose() -> None:
    assert HEALTH_CODE_AAD == b"hcx/v1/health-code"


@settings(max_examples=50)
@given(claims_strategy)
def test_claims_encoding_is_the_deterministic_cbor_encoding(claims: CodeClaims) -> None:
    assert encode_claims(claims) == cbor.encode(_claims_to_cwt(claims))


@pytest.mark.parametrize("size", [0, 1, 170, 300, MAX_PAYLOAD_BYTES])
def test_level_0_is_one_stored_block(size: int) -> None:
    # docs/code-format.md spells out the canonical zlib stream; this is zlib's own output.
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    stream = zlib.compress(payload, ISSUE_ZLIB_LEVEL)
    lengths = size.to_bytes(2, "little") + (size ^ 0xFFFF).to_bytes(2, "little")
    adler = zlib.adler32(payload).to_bytes(4, "big")
    assert stream == b"\x78\x01" + b"\x01" + lengths + payload + adler


# --- property: hostile input never escapes as anything but DecodeError ----------------------

VALID_TOKEN = issue_token(make_claims(), signing_key=P256_KEY, kid=KID)
VALID = decode_token(VALID_TOKEN)
VALID_COMPRESSED = b45decode(VALID_TOKEN[len(PREFIX) :])
VALID_COSE = zlib.decompress(VALID_COMPRESSED)


def _decode_or_decode_error(token: str) -> DecodedCode | None:
    try:
        decoded = decode_token(token)
    except DecodeError as e:
        assert e.reason in (Reason.BAD_ENCODING, Reason.MALFORMED, Reason.NON_CANONICAL)
        return None
    assert isinstance(decoded, DecodedCode)
    return decoded


def _assert_signature_matches_integrity(decoded: DecodedCode) -> None:
    msg, original = decoded.sign1, VALID.sign1
    intact = (msg.protected_bytes, msg.payload, msg.signature) == (
        original.protected_bytes,
        original.payload,
        original.signature,
    )
    if intact:
        verify_token_signature(decoded, P256_KEY.public_key())
    else:
        with pytest.raises(VerificationError):
            verify_token_signature(decoded, P256_KEY.public_key())


@given(st.text(max_size=300))
def test_random_text_never_escapes(text: str) -> None:
    _decode_or_decode_error(text)
    _decode_or_decode_error(PREFIX + text)


@given(st.binary(max_size=600))
def test_random_bytes_as_token_never_escape(data: bytes) -> None:
    _decode_or_decode_error(wrap(data))
    _decode_or_decode_error(PREFIX + b45encode(data))


def _mutate(original: bytes, data: st.DataObject) -> bytes:
    if data.draw(st.booleans(), label="truncate"):
        return original[: data.draw(st.integers(0, len(original) - 1), label="length")]
    index = data.draw(st.integers(0, len(original) - 1), label="index")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != original[index]), label="value")
    return original[:index] + bytes([value]) + original[index + 1 :]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(layer=st.sampled_from(["text", "zlib", "cose"]), data=st.data())
def test_mutated_valid_token_decodes_or_raises_decode_error(
    layer: str, data: st.DataObject
) -> None:
    if layer == "text":
        token = _mutate(VALID_TOKEN.encode(), data).decode("latin-1")
    elif layer == "zlib":
        token = PREFIX + b45encode(_mutate(VALID_COMPRESSED, data))
    else:
        token = wrap(_mutate(VALID_COSE, data))
    decoded = _decode_or_decode_error(token)
    if decoded is not None:
        _assert_signature_matches_integrity(decoded)


def test_claims_swapped_under_a_valid_signature_fail_verification() -> None:
    # Valid shape, different claims, the original signature: decodes, but must not verify.
    original = VALID.sign1
    item = [original.protected_bytes, {}, cbor2.dumps(cwt(hcx_1=3)), original.signature]
    decoded = decode_token(wrap(cbor2.dumps(cbor2.CBORTag(18, item))))
    assert decoded.claims.colour is Colour.RED
    with pytest.raises(VerificationError) as caught:
        verify_token_signature(decoded, P256_KEY.public_key())
    assert caught.value.reason is Reason.BAD_SIGNATURE


# --- display helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full_name", "masked"),
    [
        ("张三明", "张*明"),
        ("张三", "张*"),
        ("张", "张"),
        ("欧阳三明", "欧*明"),
        ("  李四 ", "李*"),
        ("阿卜杜·热合曼", "阿*曼"),
        ("Zhang Sanming", "Z*g"),
    ],
)
def test_mask_name(full_name: str, masked: str) -> None:
    assert mask_name(full_name) == masked
    assert dataclasses.replace(make_claims(), masked_name=masked).masked_name == masked


@pytest.mark.parametrize("full_name", ["", "   ", "张\n三", "\u200b"])
def test_mask_name_refuses_empty_or_control_characters(full_name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        mask_name(full_name)
    assert caught.value.message == "name must be non-empty printable text"


@pytest.mark.parametrize(
    ("id_number", "tail"),
    [
        ("33010619900101123X", "123X"),
        ("330106199001011234", "1234"),
        ("3301061990010112x", "112X"),
        (" 33010619900101123X\n", "123X"),
        ("1234", "1234"),
    ],
)
def test_id_tail(id_number: str, tail: str) -> None:
    assert id_tail(id_number) == tail


@pytest.mark.parametrize("id_number", ["", "123", "1234567Y", "12 34", "3301061990010112３4"])
def test_id_tail_refuses_other_endings(id_number: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        id_tail(id_number)
    assert caught.value.message == "ID number must end in 4 characters of [0-9X]"
