"""COSE_Sign1: RFC 9052 published examples, round trips and hostile input."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given
from hypothesis import strategies as st

from trust import cose
from trust.cose import (
    ALG_EDDSA,
    ALG_ES256,
    P256_HALF_ORDER,
    P256_ORDER,
    Sign1,
    decode_sign1,
    encode_sign1,
    is_high_s,
    sign1,
    verify_sign1,
)
from trust.errors import DecodeError, PkiError, VerificationError
from trust.model import Reason

# Key "11" of RFC 9052 Appendix C.7.1 (public keys), as JWK-style base64url coordinates in
# https://github.com/cose-wg/Examples/blob/master/sign1-tests/sign-pass-01.json ("sign0.key").
KEY_11_X = "usWxHK2PmfnHKwXPS54m0kTcGJ90UiglWiGahtagnv8"
KEY_11_Y = "IBOL-C3BttVivg-lSreASjpkttcsz-1rb7btKLv8EX4"

# RFC 9052 Appendix C.2.1 "Single ECDSA Signature":
#   18([ / protected h'a10126' / << { / alg / 1:-7 / ECDSA 256 / } >>,
#        / unprotected / { / kid / 4:'11' },
#        / payload / 'This is the content.',
#        / signature / h'8eb33e4ca31d1c465ab05aac34cc6b23d58fef5c083106c4
#     d25a91aef0b0117e2af9a291aa32e14ab834dc56ed2a223444547e01f11d3b0916e5
#     a4c345cacb36' ])
# Bytes as in cose-wg/Examples RFC8152/Appendix_C_2_1.json (unchanged in RFC 9052), quoted by
# e.g. dotnet/runtime CoseSign1MessageTests.Verify.cs and t_cose's rfc8152_example_2_1.
RFC_9052_C_2_1 = bytes.fromhex(
    "d28443a10126a10442313154546869732069732074686520636f6e74656e742e5840"
    "8eb33e4ca31d1c465ab05aac34cc6b23d58fef5c083106c4d25a91aef0b0117e"
    "2af9a291aa32e14ab834dc56ed2a223444547e01f11d3b0916e5a4c345cacb36"
)
# cose-wg/Examples sign1-tests/sign-pass-02.json: same key, external AAD 11aa22bb33cc44dd55006699.
SIGN_PASS_02 = bytes.fromhex(
    "d28443a10126a10442313154546869732069732074686520636f6e74656e742e5840"
    "eae868ecc176883766c5dc5ba5b8dca25dab3c2e56a551ce5705b793914348e1"
    "55388b10c4f1b59a6733eab416870a945111a4b2fbdbef33a77234b1deff2f9b"
)
SIGN_PASS_02_AAD = bytes.fromhex("11aa22bb33cc44dd55006699")
# cose-wg/Examples sign1-tests/sign-pass-03.json: "Remove CBOR Tag" (untagged array).
SIGN_PASS_03 = bytes.fromhex(
    "8443a10126a10442313154546869732069732074686520636f6e74656e742e5840"
    "eae868ecc176883766c5dc5ba5b8dca25dab3c2e56a551ce5705b793914348e1"
    "9f43d6c6ba654472da301b645b293c9ba939295b97c4bdb847782bff384c5794"
)
# cose-wg/Examples sign1-tests/sign-fail-01.json: "Wrong CBOR Tag" (998 instead of 18).
SIGN_FAIL_01 = bytes.fromhex(
    "d903e68443a10126a10442313154546869732069732074686520636f6e74656e742e5840"
    "eae868ecc176883766c5dc5ba5b8dca25dab3c2e56a551ce5705b793914348e1"
    "9f43d6c6ba654472da301b645b293c9ba939295b97c4bdb847782bff384c5794"
)
# cose-wg/Examples sign1-tests/sign-fail-02.json: "Change signature" (payload '...content/').
SIGN_FAIL_02 = bytes.fromhex(
    "d28443a10126a10442313154546869732069732074686520636f6e74656e742f5840"
    "eae868ecc176883766c5dc5ba5b8dca25dab3c2e56a551ce5705b793914348e1"
    "9f43d6c6ba654472da301b645b293c9ba939295b97c4bdb847782bff384c5794"
)


@pytest.fixture(autouse=True)
def cold_header_cache() -> Iterator[None]:
    """Each test decodes its protected headers afresh, not from what an earlier test cached."""
    cose._decode_protected.cache_clear()
    yield
    cose._decode_protected.cache_clear()


def _b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


@pytest.fixture(scope="module")
def key_11() -> ec.EllipticCurvePublicKey:
    numbers = ec.EllipticCurvePublicNumbers(
        _b64url_int(KEY_11_X), _b64url_int(KEY_11_Y), ec.SECP256R1()
    )
    return numbers.public_key()


@pytest.fixture(scope="module")
def p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def test_rfc_9052_c_2_1_decodes_and_verifies(key_11: ec.EllipticCurvePublicKey) -> None:
    msg = decode_sign1(RFC_9052_C_2_1)
    assert msg.alg == ALG_ES256
    assert msg.kid == b"11"  # from the unprotected header
    assert msg.protected_bytes == bytes.fromhex("a10126")
    assert msg.payload == b"This is the content."
    verify_sign1(msg, key_11)


# Offsets of the unprotected header {4: '11'} (a1 04 42 31 31) inside RFC_9052_C_2_1.
_UNPROTECTED = range(6, 11)


@pytest.mark.parametrize("index", [i for i in range(len(RFC_9052_C_2_1)) if i not in _UNPROTECTED])
def test_rfc_9052_c_2_1_any_flipped_byte_fails(
    key_11: ec.EllipticCurvePublicKey, index: int
) -> None:
    mutated = bytearray(RFC_9052_C_2_1)
    mutated[index] ^= 0x01
    with pytest.raises((DecodeError, VerificationError)):
        verify_sign1(decode_sign1(bytes(mutated)), key_11)


def test_rfc_9052_c_2_1_unprotected_kid_is_not_signed(key_11: ec.EllipticCurvePublicKey) -> None:
    # Why hcx codes carry no unprotected header: changing it leaves the signature valid.
    mutated = RFC_9052_C_2_1.replace(bytes.fromhex("a104423131"), bytes.fromhex("a104423939"))
    msg = decode_sign1(mutated)
    assert msg.kid == b"99"
    verify_sign1(msg, key_11)


def test_rfc_9052_c_2_1_flipped_signature_byte_is_bad_signature(
    key_11: ec.EllipticCurvePublicKey,
) -> None:
    mutated = bytearray(RFC_9052_C_2_1)
    mutated[-1] ^= 0x80
    with pytest.raises(VerificationError) as caught:
        verify_sign1(decode_sign1(bytes(mutated)), key_11)
    assert caught.value.reason is Reason.BAD_SIGNATURE


def test_examples_with_external_aad_and_untagged(key_11: ec.EllipticCurvePublicKey) -> None:
    verify_sign1(decode_sign1(SIGN_PASS_02), key_11, external_aad=SIGN_PASS_02_AAD)
    with pytest.raises(VerificationError):
        verify_sign1(decode_sign1(SIGN_PASS_02), key_11)  # AAD missing
    verify_sign1(decode_sign1(SIGN_PASS_03), key_11)


def test_examples_that_must_fail(key_11: ec.EllipticCurvePublicKey) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_sign1(SIGN_FAIL_01)
    assert caught.value.reason is Reason.MALFORMED
    with pytest.raises(VerificationError) as failed:
        verify_sign1(decode_sign1(SIGN_FAIL_02), key_11)
    assert failed.value.reason is Reason.BAD_SIGNATURE


@pytest.mark.parametrize(("key_name", "alg"), [("p256_key", ALG_ES256), ("ed_key", ALG_EDDSA)])
def test_round_trip(request: pytest.FixtureRequest, key_name: str, alg: int) -> None:
    key = request.getfixturevalue(key_name)
    data = sign1(payload=b"claims", private_key=key, kid=b"kid-0001")
    msg = decode_sign1(data)
    assert cbor2.loads(data).tag == 18
    assert msg.alg == alg
    assert msg.kid == b"kid-0001"
    assert msg.protected == {1: alg, 4: b"kid-0001"}
    assert msg.unprotected == {}
    assert msg.payload == b"claims"
    if alg == ALG_ES256:
        assert len(msg.signature) == 64
    verify_sign1(msg, key.public_key())


def test_wrong_key_is_bad_signature(p256_key: ec.EllipticCurvePrivateKey) -> None:
    msg = decode_sign1(sign1(payload=b"x", private_key=p256_key, kid=b"k"))
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(VerificationError) as caught:
        verify_sign1(msg, other)
    assert caught.value.message == "signature does not verify"
    assert caught.value.reason is Reason.BAD_SIGNATURE


def test_es256_signature_of_wrong_length_is_bad_signature(
    p256_key: ec.EllipticCurvePrivateKey,
) -> None:
    msg = decode_sign1(sign1(payload=b"x", private_key=p256_key, kid=b"k"))
    for signature in (msg.signature[:-1], msg.signature + b"\x00", b""):
        forged = Sign1(
            protected_bytes=msg.protected_bytes,
            protected=msg.protected,
            unprotected=msg.unprotected,
            payload=msg.payload,
            signature=signature,
        )
        with pytest.raises(VerificationError) as caught:
            verify_sign1(forged, p256_key.public_key())
        assert caught.value.message == f"ES256 signature must be 64 bytes, not {len(signature)}"
        assert caught.value.reason is Reason.BAD_SIGNATURE


def _with_protected(protected: dict[int, object]) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(protected), {}, b"p", b"\x00" * 64]))


@pytest.mark.parametrize(
    ("protected", "key_name", "message"),
    [
        pytest.param(
            {1: -35},
            "p256_key",
            "algorithm -35 is not supported (ES256 and EdDSA only)",
            id="ES384 is not supported",
        ),
        pytest.param(
            {1: -257},
            "p256_key",
            "algorithm -257 is not supported (ES256 and EdDSA only)",
            id="RS256 is not supported",
        ),
        pytest.param(
            {4: b"k"},
            "p256_key",
            "algorithm None is not supported (ES256 and EdDSA only)",
            id="alg missing",
        ),
        pytest.param(
            {1: ALG_ES256},
            "ed_key",
            "ES256 needs a P-256 public key",
            id="ES256 with an Ed25519 key",
        ),
        pytest.param(
            {1: ALG_EDDSA},
            "p256_key",
            "EdDSA needs an Ed25519 public key",
            id="EdDSA with a P-256 key",
        ),
        pytest.param(
            {1: ALG_ES256},
            "p384_key",
            "ES256 needs a P-256 public key",
            id="ES256 with a P-384 key",
        ),
    ],
)
def test_unsupported_algorithm(
    request: pytest.FixtureRequest, protected: dict[int, object], key_name: str, message: str
) -> None:
    if key_name == "p384_key":
        public_key = ec.generate_private_key(ec.SECP384R1()).public_key()
    else:
        public_key = request.getfixturevalue(key_name).public_key()
    msg = decode_sign1(_with_protected(protected))
    with pytest.raises(VerificationError) as caught:
        verify_sign1(msg, public_key)
    assert caught.value.message == message
    assert caught.value.reason is Reason.UNSUPPORTED_ALGORITHM


def test_signing_with_unsupported_key_is_refused() -> None:
    with pytest.raises(PkiError) as caught:
        sign1(payload=b"x", private_key=ec.generate_private_key(ec.SECP384R1()), kid=b"k")
    assert caught.value.message == "signing key must be P-256 or Ed25519"
    assert caught.value.reason is Reason.UNSUPPORTED_ALGORITHM


def _sign1(*items: object, tag: int | None = 18) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(tag, list(items)) if tag is not None else list(items))


PROTECTED = cbor2.dumps({1: -7})


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        pytest.param(b"", Reason.BAD_ENCODING, "COSE_Sign1 is not valid CBOR", id="empty"),
        pytest.param(
            b"\xff\x00", Reason.BAD_ENCODING, "COSE_Sign1 is not valid CBOR", id="not CBOR"
        ),
        pytest.param(
            RFC_9052_C_2_1[:-1], Reason.BAD_ENCODING, "COSE_Sign1 is not valid CBOR", id="truncated"
        ),
        pytest.param(
            RFC_9052_C_2_1 + b"\x00",
            Reason.BAD_ENCODING,
            "COSE_Sign1 has trailing bytes after the CBOR item",
            id="trailing byte",
        ),
        pytest.param(
            b"\x81" * 1000 + b"\x00",
            Reason.BAD_ENCODING,
            "COSE_Sign1 is not valid CBOR",
            id="nesting bomb",
        ),
        pytest.param(
            b"\x5b" + b"\xff" * 8,
            Reason.BAD_ENCODING,
            "COSE_Sign1 is not valid CBOR",
            id="absurd length",
        ),
        pytest.param(
            b"\xa2\x01\x01\x01\x02",
            Reason.BAD_ENCODING,
            "COSE_Sign1 is not valid CBOR",
            id="duplicate map key",
        ),
        pytest.param(
            cbor2.dumps({"a": 1}),
            Reason.MALFORMED,
            "COSE_Sign1 must be an array of four items",
            id="a map",
        ),
        pytest.param(
            _sign1(PROTECTED, {}, b"p"),
            Reason.MALFORMED,
            "COSE_Sign1 must be an array of four items",
            id="three items",
        ),
        pytest.param(
            _sign1(PROTECTED, {}, b"p", b"s", tag=98),
            Reason.MALFORMED,
            "COSE_Sign1: CBOR tag 98 is not allowed here",
            id="tag 98",
        ),
        pytest.param(
            _sign1({1: -7}, {}, b"p", b"s"),
            Reason.MALFORMED,
            "protected header must be a byte string",
            id="protected not bstr",
        ),
        pytest.param(
            _sign1(b"\x01", {}, b"p", b"s"),
            Reason.MALFORMED,
            "protected header must be a bstr-wrapped map",
            id="protected an int",
        ),
        pytest.param(
            _sign1(b"\xff", {}, b"p", b"s"),
            Reason.MALFORMED,
            "protected header is not a CBOR-encoded map",
            id="protected not CBOR",
        ),
        pytest.param(
            _sign1(PROTECTED + b"\x00", {}, b"p", b"s"),
            Reason.MALFORMED,
            "protected header is not a CBOR-encoded map",
            id="protected trailing",
        ),
        pytest.param(
            _sign1(PROTECTED, [], b"p", b"s"),
            Reason.MALFORMED,
            "unprotected header must be a map",
            id="unprotected list",
        ),
        pytest.param(
            _sign1(PROTECTED, {}, None, b"s"),
            Reason.MALFORMED,
            "payload must be an attached byte string",
            id="detached payload",
        ),
        pytest.param(
            _sign1(PROTECTED, {}, "p", b"s"),
            Reason.MALFORMED,
            "payload must be an attached byte string",
            id="payload text",
        ),
        pytest.param(
            _sign1(PROTECTED, {}, b"p", 7),
            Reason.MALFORMED,
            "signature must be a byte string",
            id="signature int",
        ),
        pytest.param(
            _sign1(PROTECTED, {1: -7}, b"p", b"s"),
            Reason.MALFORMED,
            "a header label appears in both protected and unprotected headers",
            id="alg in both headers",
        ),
        pytest.param(
            _sign1(b"", {1: -7}, b"p", b"s"),
            Reason.MALFORMED,
            "alg must be in the protected header",
            id="alg unprotected",
        ),
        pytest.param(
            _sign1(cbor2.dumps({1: "ES256"}), {}, b"p", b"s"),
            Reason.MALFORMED,
            "alg must be an integer",
            id="alg text",
        ),
        pytest.param(
            _sign1(cbor2.dumps({1: -7, 4: "k"}), {}, b"p", b"s"),
            Reason.MALFORMED,
            "kid must be a byte string",
            id="kid text",
        ),
        pytest.param(
            _sign1(cbor2.dumps({1: -7, 2: [4]}), {}, b"p", b"s"),
            Reason.MALFORMED,
            "critical header parameters are not supported",
            id="crit",
        ),
        pytest.param(
            _sign1(cbor2.dumps({"alg": -7}), {}, b"p", b"s"),
            Reason.MALFORMED,
            "header labels must be integers",
            id="text label",
        ),
        pytest.param(
            _sign1(PROTECTED, {2: [4]}, b"p", b"s"),
            Reason.MALFORMED,
            "critical header parameters are not supported",
            id="crit unprotected",
        ),
        pytest.param(
            _sign1(PROTECTED, {"x": 1}, b"p", b"s"),
            Reason.MALFORMED,
            "header labels must be integers",
            id="text label unprotected",
        ),
        pytest.param(
            _sign1(PROTECTED, {4: "k"}, b"p", b"s"),
            Reason.MALFORMED,
            "kid must be a byte string",
            id="kid text unprotected",
        ),
        pytest.param(
            _sign1(cbor2.dumps({1: -7, 4: b"k"}), {4: b"k"}, b"p", b"s"),
            Reason.MALFORMED,
            "a header label appears in both protected and unprotected headers",
            id="kid in both headers",
        ),
        pytest.param(
            _sign1(cbor2.dumps({1: True}), {}, b"p", b"s"),
            Reason.MALFORMED,
            "alg must be an integer",
            id="alg true",
        ),
        pytest.param(
            _sign1(cbor2.dumps([1, -7]), {}, b"p", b"s"),
            Reason.MALFORMED,
            "protected header must be a bstr-wrapped map",
            id="protected an array",
        ),
        pytest.param(
            cbor2.dumps([PROTECTED, {}, b"p", b"s", b"x"]),
            Reason.MALFORMED,
            "COSE_Sign1 must be an array of four items",
            id="five items untagged",
        ),
    ],
)
def test_decode_rejects(data: bytes, reason: Reason, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_sign1(data)
    assert caught.value.message == message
    assert caught.value.reason is reason


def test_empty_protected_header_is_an_empty_map() -> None:
    msg = decode_sign1(_sign1(b"", {4: b"k"}, b"p", b"s", tag=None))
    assert msg.protected == {}
    assert msg.alg is None
    assert msg.kid == b"k"


@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        msg = decode_sign1(data)
    except DecodeError as e:
        assert e.reason in (Reason.BAD_ENCODING, Reason.MALFORMED)
    else:
        assert isinstance(msg, Sign1)


# --- one byte form (what hcx signs) --------------------------------------------------------


def _high_s_twin(msg: Sign1) -> Sign1:
    s = int.from_bytes(msg.signature[32:], "big")
    signature = msg.signature[:32] + (P256_ORDER - s).to_bytes(32, "big")
    return dataclasses.replace(msg, signature=signature)


def test_es256_signatures_are_always_low_s(p256_key: ec.EllipticCurvePrivateKey) -> None:
    for n in range(64):  # a random k gives a high s half the time before normalisation
        msg = decode_sign1(sign1(payload=bytes([n]), private_key=p256_key, kid=b"k"))
        assert not is_high_s(msg.signature)
        assert is_high_s(_high_s_twin(msg).signature)


def test_high_s_twin_is_refused_only_when_asked(p256_key: ec.EllipticCurvePrivateKey) -> None:
    twin = _high_s_twin(decode_sign1(sign1(payload=b"x", private_key=p256_key, kid=b"k")))
    verify_sign1(twin, p256_key.public_key())  # ECDSA itself accepts the malleated copy
    with pytest.raises(VerificationError) as caught:
        verify_sign1(twin, p256_key.public_key(), low_s_only=True)
    assert caught.value.message == (
        "ES256 signature has a high s (a malleated copy of a low-S signature)"
    )
    assert caught.value.reason is Reason.NON_CANONICAL


def _with_s(s: int, r: int = 1) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize(
    ("signature", "high"),
    [
        pytest.param(_with_s(1), False, id="s = 1"),
        pytest.param(_with_s(P256_HALF_ORDER), False, id="s = n // 2, the largest low s"),
        pytest.param(_with_s(P256_HALF_ORDER + 1), True, id="s = n // 2 + 1, the smallest high s"),
        pytest.param(_with_s(P256_ORDER - 1), True, id="s = n - 1"),
        pytest.param(_with_s(P256_HALF_ORDER, r=P256_ORDER - 1), False, id="a large r is no s"),
        pytest.param(_with_s(P256_ORDER - 1)[1:], False, id="63 bytes: not ES256"),
        pytest.param(_with_s(P256_ORDER - 1) + b"\xff", False, id="65 bytes: not ES256"),
    ],
)
def test_high_s_is_the_upper_half_of_the_group_order(signature: bytes, high: bool) -> None:
    assert is_high_s(signature) is high


@pytest.mark.parametrize(
    ("s", "reason"),
    [
        pytest.param(P256_HALF_ORDER, Reason.BAD_SIGNATURE, id="n // 2 is low: checked, wrong"),
        pytest.param(P256_HALF_ORDER + 1, Reason.NON_CANONICAL, id="n // 2 + 1 is high: refused"),
    ],
)
def test_low_s_only_refuses_from_the_first_high_s(
    p256_key: ec.EllipticCurvePrivateKey, s: int, reason: Reason
) -> None:
    msg = decode_sign1(sign1(payload=b"x", private_key=p256_key, kid=b"k"))
    forged = dataclasses.replace(msg, signature=msg.signature[:32] + s.to_bytes(32, "big"))
    with pytest.raises(VerificationError) as caught:
        verify_sign1(forged, p256_key.public_key(), low_s_only=True)
    assert caught.value.reason is reason


@pytest.mark.parametrize(
    ("s", "emitted"),
    [
        pytest.param(1, 1, id="s = 1 stays"),
        pytest.param(P256_HALF_ORDER, P256_HALF_ORDER, id="s = n // 2 stays"),
        pytest.param(P256_HALF_ORDER + 1, P256_HALF_ORDER, id="s = n // 2 + 1 becomes n // 2"),
        pytest.param(P256_ORDER - 1, 1, id="s = n - 1 becomes 1"),
    ],
)
def test_signatures_are_emitted_low_s_in_fixed_width(s: int, emitted: int) -> None:
    # What sign1 does with the DER signature cryptography returns: r || s, 32 bytes each.
    raw = cose._der_to_raw(encode_dss_signature(7, s))
    assert raw == _with_s(emitted, r=7)
    assert decode_dss_signature(cose._raw_to_der(raw)) == (7, emitted)


def _message(protected: dict[int, object], unprotected: dict[int, object]) -> Sign1:
    return Sign1(
        protected_bytes=cbor2.dumps(protected),
        protected=protected,
        unprotected=unprotected,
        payload=b"p",
        signature=b"s",
    )


@pytest.mark.parametrize(
    ("protected", "unprotected", "kid", "alg"),
    [
        pytest.param({1: -7, 4: b"p"}, {}, b"p", -7, id="protected kid"),
        pytest.param({1: -8}, {4: b"u"}, b"u", -8, id="unprotected kid"),
        pytest.param({4: b"p"}, {4: b"u"}, b"p", None, id="protected kid first"),
        pytest.param({4: "p"}, {4: b"u"}, b"u", None, id="a text kid is no kid"),
        pytest.param({1: True}, {}, None, None, id="true is no alg"),
        pytest.param({1: "ES256"}, {1: -7}, None, None, id="an unprotected alg is never trusted"),
    ],
)
def test_kid_and_alg_of_a_message(
    protected: dict[int, object], unprotected: dict[int, object], kid: bytes | None, alg: int | None
) -> None:
    msg = _message(protected, unprotected)
    assert msg.kid == kid
    assert msg.alg == alg


@pytest.mark.parametrize(
    ("kid", "headers", "expected"),
    [
        pytest.param(None, None, {1: ALG_ES256}, id="alg alone"),
        pytest.param(bytearray(b"k"), None, {1: ALG_ES256, 4: b"k"}, id="kid as bytes"),
        pytest.param(None, {33: b"cert"}, {1: ALG_ES256, 33: b"cert"}, id="extra header"),
        pytest.param(b"k", {33: b"cert"}, {1: ALG_ES256, 4: b"k", 33: b"cert"}, id="kid and extra"),
    ],
)
def test_signed_protected_header(
    p256_key: ec.EllipticCurvePrivateKey,
    kid: bytes | None,
    headers: dict[int, object] | None,
    expected: dict[int, object],
) -> None:
    data = sign1(payload=b"x", private_key=p256_key, kid=kid, headers=headers)
    msg = decode_sign1(data, canonical=True)
    assert dict(msg.protected) == expected
    assert type(msg.protected.get(4, b"")) is bytes
    verify_sign1(msg, p256_key.public_key(), low_s_only=True)


@pytest.mark.parametrize(("key_name", "alg"), [("p256_key", ALG_ES256), ("ed_key", ALG_EDDSA)])
def test_signed_messages_are_canonical(
    request: pytest.FixtureRequest, key_name: str, alg: int
) -> None:
    data = sign1(payload=b"claims", private_key=request.getfixturevalue(key_name), kid=b"k")
    msg = decode_sign1(data, canonical=True)
    assert msg.tagged and msg.alg == alg
    assert data == encode_sign1(msg.protected_bytes, {}, msg.payload, msg.signature)


def _encoded(protected: bytes, unprotected: bytes, signature: bytes, *, tag: bool = True) -> bytes:
    body = b"\x84" + bytes([0x40 | len(protected)]) + protected + unprotected
    body += b"\x41p" + b"\x58\x40" + signature
    return (b"\xd2" if tag else b"") + body


LOW_S = bytes(31) + b"\x01" + bytes(31) + b"\x01"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            _encoded(b"\xa1\x01\x26", b"\xa0", LOW_S, tag=False),
            "COSE_Sign1 must carry tag 18",
            id="untagged",
        ),
        pytest.param(
            SIGN_PASS_03, "COSE_Sign1 must carry tag 18", id="cose-wg sign-pass-03 (untagged)"
        ),
        pytest.param(
            _encoded(b"\xa1\x01\x38\x06", b"\xa0", LOW_S),
            "protected header is not in deterministic CBOR form",
            id="alg in two bytes",
        ),
        pytest.param(
            _encoded(b"\xa1\x01\x26", b"\xb8\x00", LOW_S),
            "COSE_Sign1 is not in deterministic CBOR form",
            id="empty map, long head",
        ),
        pytest.param(
            _encoded(b"\xa2\x04\x41k\x01\x26", b"\xa0", LOW_S),
            "protected header is not in deterministic CBOR form",
            id="protected keys unsorted",
        ),
        pytest.param(
            _encoded(b"\xa1\x01\x26", b"\xa2\x05\x41x\x04\x41k", LOW_S),
            "COSE_Sign1 is not in deterministic CBOR form",
            id="unprotected keys unsorted",
        ),
        pytest.param(
            _encoded(b"\xa1\x01\x26", b"\xa0", LOW_S[:32] + (P256_ORDER - 1).to_bytes(32, "big")),
            "ES256 signature has a high s (a malleated copy of a low-S one)",
            id="high s",
        ),
        pytest.param(
            b"\xd2\x84\x40\xa1\x04\x41k\x41p\x40",
            "protected header is not in deterministic CBOR form",
            id="empty protected header",
        ),
    ],
)
def test_canonical_decoding_refuses_other_forms(data: bytes, message: str) -> None:
    decode_sign1(data)  # well-formed: the lenient decoder takes it
    with pytest.raises(DecodeError) as caught:
        decode_sign1(data, canonical=True)
    assert caught.value.message == message
    assert caught.value.reason is Reason.NON_CANONICAL


def test_canonical_form_accepts_the_hand_encoded_twin() -> None:
    # Guards the table above: the same hand encoding, canonical, is accepted.
    msg = decode_sign1(_encoded(b"\xa1\x01\x26", b"\xa0", LOW_S), canonical=True)
    assert msg.alg == ALG_ES256 and msg.signature == LOW_S


def test_the_low_s_rule_is_for_es256_only() -> None:
    # An Ed25519 signature has no s to malleate: its second half may be any 32 bytes.
    high = LOW_S[:32] + (P256_ORDER - 1).to_bytes(32, "big")
    msg = decode_sign1(_encoded(b"\xa1\x01\x27", b"\xa0", high), canonical=True)
    assert msg.alg == ALG_EDDSA and msg.signature == high


def test_decoded_protected_headers_are_read_only(p256_key: ec.EllipticCurvePrivateKey) -> None:
    data = sign1(payload=b"x", private_key=p256_key, kid=b"k")
    first, second = decode_sign1(data), decode_sign1(data)
    assert first.protected is second.protected  # decoded once, by its bytes
    with pytest.raises(TypeError):
        first.protected[1] = ALG_EDDSA  # type: ignore[index]


# --- the exact-layout fast path: never a different answer from the general decoder ----------


def _outcome(decode: object, data: bytes) -> object:
    try:
        return decode(data)  # type: ignore[operator]
    except DecodeError as e:
        return (e.reason, e.message)


def _general(data: bytes) -> object:
    msg = cose.decode_sign1(data, canonical=True)
    return dataclasses.replace(msg, unprotected=dict(msg.unprotected))


def _exact(data: bytes) -> object:
    msg = cose.decode_sign1_exact(data)
    if msg is None:
        return None
    cose.check_low_s(msg)
    return dataclasses.replace(msg, unprotected=dict(msg.unprotected))


def _agree(data: bytes) -> None:
    """Where the fast path answers, it answers what the general decoder answers."""
    fast = _outcome(_exact, data)
    if fast is not None:
        assert fast == _outcome(_general, data), data.hex()


def _signed(key: ec.EllipticCurvePrivateKey, payload: bytes) -> bytes:
    return sign1(payload=payload, private_key=key, kid=b"k" * 8)


@pytest.mark.parametrize("size", [0, 1, 23, 24, 255, 256, 300])
def test_the_exact_layout_is_found_for_every_length_form(
    p256_key: ec.EllipticCurvePrivateKey, size: int
) -> None:
    data = _signed(p256_key, b"p" * size)
    msg = cose.decode_sign1_exact(data)
    assert msg is not None and msg.payload == b"p" * size
    assert _exact(data) == _general(data)


@given(st.binary(max_size=64), st.integers(0, 400), st.binary(max_size=4), st.integers(0, 3))
def test_a_changed_message_gets_the_general_decoders_answer(
    payload: bytes, where: int, inserted: bytes, cut: int
) -> None:
    key = ec.derive_private_key(7, ec.SECP256R1())
    data = _signed(key, payload)
    at = where % (len(data) + 1)
    for variant in (
        data,
        data[:at] + inserted + data[at + cut :],  # bytes replaced, inserted or removed
        data[:at],  # truncated
        data + inserted,  # trailing bytes
        data[:1] + bytes([data[1] ^ (where % 256)]) + data[2:],  # another array head
    ):
        _agree(variant)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(cbor2.dumps([b"\xa1\x01\x26", {}, b"p", b"s" * 64]), id="untagged"),
        pytest.param(b"\xd2\x84\x58\x03\xa1\x01\x26\xa0\x41p\x58\x40" + b"s" * 64,
                     id="protected header in a long length form"),
        pytest.param(b"\xd2\x84\x43\xa1\x01\x26\xa0\x5f\x41p\xff\x58\x40" + b"s" * 64,
                     id="indefinite payload"),
        pytest.param(b"\xd2\x84\x43\xa1\x01\x26\xa1\x04\x41k\x41p\x58\x40" + b"s" * 64,
                     id="an unprotected header"),
        pytest.param(b"\xd2\x84\x44\xa1\x01\x38\x00\xa0\x41p\x58\x40" + b"s" * 64,
                     id="a non-canonical protected header"),
    ],
)  # fmt: skip
def test_other_forms_are_left_to_the_general_decoder(data: bytes) -> None:
    assert cose.decode_sign1_exact(data) is None
    _agree(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xd2\x84\x58", id="one-byte length head at the end"),
        pytest.param(b"\xd2\x84\x59", id="two-byte length head at the end"),
        pytest.param(b"\xd2\x84\x59\x01", id="two-byte length cut after its first byte"),
        pytest.param(b"\xd2\x84\x43\xa1\x01\x26\xa0\x59", id="payload head at the end"),
        pytest.param(b"\xd2\x84\x43\xa1\x01\x26\xa0\x41p\x58", id="signature head at the end"),
        pytest.param(b"\xd2\x84\x59\x01\x00" + b"x" * 255, id="a length past the end"),
        pytest.param(b"\xd2\x84\x59\x00\x18" + b"x" * 24, id="two-byte length for 24 bytes"),
        pytest.param(b"\xd2\x84\x58\x17" + b"x" * 23, id="one-byte length for 23 bytes"),
    ],
)  # fmt: skip
def test_a_cut_or_stretched_length_head_is_left_to_the_general_decoder(data: bytes) -> None:
    """The fast path never raises on its own: it answers None and the general decoder says
    what is wrong (an IndexError here would be an INTERNAL error at the gateway)."""
    assert cose.decode_sign1_exact(data) is None
    with pytest.raises(DecodeError):
        cose.decode_sign1(data, canonical=True)
