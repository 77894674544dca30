"""A small COSE_Sign1 layer (RFC 9052) on cbor2 and cryptography: ES256 and EdDSA only.

Decoding never raises anything but :class:`~trust.errors.DecodeError`, whatever the bytes;
verification raises :class:`~trust.errors.VerificationError` with a stable reason.

What hcx signs has exactly one byte form (tagged, deterministic CBOR, low-S ES256):
:func:`sign1` makes it and ``decode_sign1(data, canonical=True)`` refuses any other form with
Reason.NON_CANONICAL. Plain :func:`decode_sign1` also reads foreign messages (the RFC 9052 and
cose-wg examples are untagged or high-S in places).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from trust import cbor
from trust.errors import DecodeError, PkiError, VerificationError
from trust.model import Reason

ALG_ES256 = -7
ALG_EDDSA = -8
HEADER_ALG = 1
HEADER_CRIT = 2
HEADER_KID = 4
COSE_SIGN1_TAG = 18
ES256_SIGNATURE_LENGTH = 64
_P256_COORDINATE_LENGTH = 32
# Order of the P-256 group: (r, s) and (r, n - s) are both valid ECDSA signatures of the same
# message, so hcx signs with the low s and refuses the other (one signed object, one form).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_HALF_ORDER = P256_ORDER // 2
# Decoded protected headers, by their exact bytes: a verifier sees the same few (one per
# signing key) over and over, and decoding one costs as much as the rest of a code.
_PROTECTED_CACHE_SIZE = 1024
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())  # stateless: built once, not per signature
_EMPTY: Mapping[int, object] = types.MappingProxyType({})

SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
VerifyingKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class Sign1:
    """A decoded, not yet verified COSE_Sign1 message."""

    protected_bytes: bytes
    protected: Mapping[int, object]
    unprotected: Mapping[int, object]
    payload: bytes
    signature: bytes
    tagged: bool = True  # carried tag 18 (hcx always sends it; RFC 9052 makes it optional)

    @property
    def alg(self) -> int | None:
        """The algorithm from the protected header; an unprotected alg is never trusted."""
        alg = self.protected.get(HEADER_ALG)
        return alg if type(alg) is int else None

    @property
    def kid(self) -> bytes | None:
        """The key id, looked up in the protected header first, then the unprotected one."""
        for header in (self.protected, self.unprotected):
            kid = header.get(HEADER_KID)
            if isinstance(kid, bytes):
                return kid
        return None


def sign1(
    *,
    payload: bytes,
    private_key: SigningKey,
    kid: bytes | None = None,
    headers: Mapping[int, object] | None = None,
    external_aad: bytes = b"",
) -> bytes:
    """Sign payload as a tagged COSE_Sign1 with protected header {alg, kid, **headers},
    in deterministic CBOR, with a low-S signature for ES256."""
    alg = _alg_for_private_key(private_key)
    protected: dict[int, object] = {HEADER_ALG: alg}
    if kid is not None:
        protected[HEADER_KID] = bytes(kid)
    protected.update(headers or {})
    protected_bytes = cbor.encode(protected)
    to_be_signed = sig_structure(protected_bytes, external_aad, payload)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        der = private_key.sign(to_be_signed, _ECDSA_SHA256)
        signature = _der_to_raw(der)
    else:
        signature = private_key.sign(to_be_signed)
    return encode_sign1(protected_bytes, {}, payload, signature)


def encode_sign1(
    protected_bytes: bytes, unprotected: Mapping[int, object], payload: bytes, signature: bytes
) -> bytes:
    """The one byte form of a COSE_Sign1: tag 18 and deterministic CBOR."""
    item = [protected_bytes, dict(unprotected), payload, signature]
    return cbor.encode(cbor2.CBORTag(COSE_SIGN1_TAG, item))


def decode_sign1(data: bytes, *, canonical: bool = False) -> Sign1:
    """Parse a COSE_Sign1; the signature is not checked.

    ``canonical=False``: tagged (18) or untagged, any well-formed encoding (foreign messages).
    ``canonical=True``: only the form :func:`sign1` makes; an untagged message, another CBOR
    encoding of the message or of its protected header, or a high-S ES256 signature is
    refused with Reason.NON_CANONICAL (after the shape checks, which say MALFORMED)."""
    item = cbor.decode(data, what="COSE_Sign1", tags=(COSE_SIGN1_TAG,))
    tagged = isinstance(item, cbor2.CBORTag)
    if isinstance(item, cbor2.CBORTag):
        if item.tag != COSE_SIGN1_TAG:
            raise _malformed(f"CBOR tag {item.tag} is not COSE_Sign1 (18)")
        item = item.value
    msg = _sign1_from_item(item, tagged=tagged)
    if canonical:
        check_canonical(msg, data)
    return msg


def decode_sign1_exact(data: bytes) -> Sign1 | None:
    """The message if ``data`` is byte for byte in the one form :func:`sign1` makes with no
    unprotected header — ``d2 84``, three byte strings in their shortest length forms around
    an empty map ``a0``, nothing after — else None (then :func:`decode_sign1` says what is
    wrong). Parsing the layout proves the encoding canonical, so no CBOR decoder runs and
    nothing is re-encoded; the protected header is still decoded and checked (once per header,
    cached), and the caller still checks the signature's S half."""
    if data[:2] != b"\xd2\x84":
        return None
    protected_bytes, at = _bstr_at(data, 2)
    if protected_bytes is None or data[at : at + 1] != b"\xa0":
        return None
    payload, at = _bstr_at(data, at + 1)
    if payload is None:
        return None
    signature, at = _bstr_at(data, at)
    if signature is None or at != len(data):
        return None
    protected, canonical = _decode_protected(protected_bytes)
    if not canonical:
        return None
    return Sign1(protected_bytes, protected, _EMPTY, payload, signature, tagged=True)


def _bstr_at(data: bytes, at: int) -> tuple[bytes | None, int]:
    """The byte string whose CBOR head is at ``data[at]``, if that head is the shortest
    form for its length (RFC 8949 §4.2.1), and where the next item starts."""
    if at >= len(data):
        return None, at
    head = data[at]
    if 0x40 <= head <= 0x57:
        length, start = head - 0x40, at + 1
    elif head == 0x58 and at + 1 < len(data) and data[at + 1] >= 24:
        length, start = data[at + 1], at + 2
    elif head == 0x59 and at + 2 < len(data) and data[at + 1] > 0:
        length, start = (data[at + 1] << 8) | data[at + 2], at + 3
    else:
        return None, at
    end = start + length
    if end > len(data):
        return None, at
    return data[start:end], end


def _sign1_from_item(item: object, *, tagged: bool) -> Sign1:
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise _malformed("COSE_Sign1 must be an array of four items")
    protected_bytes, unprotected, payload, signature = item
    if not isinstance(protected_bytes, bytes):
        raise _malformed("protected header must be a byte string")
    if not isinstance(unprotected, Mapping):
        raise _malformed("unprotected header must be a map")
    if not isinstance(payload, bytes):
        raise _malformed("payload must be an attached byte string")
    if not isinstance(signature, bytes):
        raise _malformed("signature must be a byte string")
    protected, _ = _decode_protected(protected_bytes)  # checked alone, once per header
    if unprotected:
        _check_headers(protected, unprotected)
    return Sign1(
        protected_bytes=protected_bytes,
        protected=protected,
        unprotected=unprotected,
        payload=payload,
        signature=signature,
        tagged=tagged,
    )


def check_canonical(msg: Sign1, data: bytes) -> None:
    """Refuse (DecodeError, NON_CANONICAL) a message ``data`` that is not in the one form
    :func:`sign1` makes: tag 18, deterministic CBOR throughout, a low-S ES256 signature."""
    if not msg.tagged:
        raise _non_canonical("COSE_Sign1 must carry tag 18")
    if not _decode_protected(msg.protected_bytes)[1]:
        raise _non_canonical("protected header is not in deterministic CBOR form")
    if encode_sign1(msg.protected_bytes, msg.unprotected, msg.payload, msg.signature) != data:
        raise _non_canonical("COSE_Sign1 is not in deterministic CBOR form")
    check_low_s(msg)


def check_low_s(msg: Sign1) -> None:
    """Refuse (NON_CANONICAL) an ES256 signature whose s is in the upper half of the order."""
    if msg.alg == ALG_ES256 and is_high_s(msg.signature):
        raise _non_canonical("ES256 signature has a high s (a malleated copy of a low-S one)")


def verify_sign1(
    msg: Sign1,
    public_key: VerifyingKey,
    *,
    external_aad: bytes = b"",
    low_s_only: bool = False,
) -> None:
    """Check the signature of msg with public_key; raise VerificationError if it fails.

    ``low_s_only``: refuse an ES256 signature whose s is in the upper half of the group order
    (Reason.NON_CANONICAL): hcx signs low-S, so a high-S twin is a malleated copy. Off for
    foreign COSE messages (the cose-wg examples include high-S signatures)."""
    _check_alg_matches_key(msg.alg, public_key)
    to_be_signed = sig_structure(msg.protected_bytes, external_aad, msg.payload)
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            der = _raw_to_der(msg.signature, low_s_only=low_s_only)
            public_key.verify(der, to_be_signed, _ECDSA_SHA256)
        else:
            public_key.verify(msg.signature, to_be_signed)
    except InvalidSignature as e:
        raise VerificationError("signature does not verify", reason=Reason.BAD_SIGNATURE) from e


def sig_structure(protected_bytes: bytes, external_aad: bytes, payload: bytes) -> bytes:
    """The bytes actually signed: Sig_structure for COSE_Sign1 (RFC 9052 §4.4)."""
    return cbor2.dumps(["Signature1", protected_bytes, external_aad, payload])


def is_high_s(signature: bytes) -> bool:
    """True for a 64-byte ES256 ``r || s`` whose s is in the upper half of the group order."""
    half = _P256_COORDINATE_LENGTH
    return (
        len(signature) == ES256_SIGNATURE_LENGTH
        and int.from_bytes(signature[half:], "big") > P256_HALF_ORDER
    )


@functools.lru_cache(maxsize=_PROTECTED_CACHE_SIZE)
def _decode_protected(protected_bytes: bytes) -> tuple[Mapping[int, object], bool]:
    """The header map, checked on its own (a read-only view: cached values must not change),
    and whether the bytes are its deterministic encoding. Cached: a pure function of the
    bytes (a refusal raises, and is not cached)."""
    # RFC 9052 §3: an empty protected header may be sent as a zero-length byte string; hcx
    # never does (alg is always protected), so that form is not canonical here.
    if not protected_bytes:
        return types.MappingProxyType({}), False
    try:
        protected = cbor.decode(protected_bytes, what="protected header")
    except DecodeError as e:
        raise _malformed("protected header is not a CBOR-encoded map") from e
    if not isinstance(protected, Mapping):
        raise _malformed("protected header must be a bstr-wrapped map")
    _check_headers(protected, {})
    return types.MappingProxyType(protected), cbor.encode(protected) == protected_bytes


def _check_headers(protected: Mapping[Any, object], unprotected: Mapping[Any, object]) -> None:
    # hcx only ever writes integer labels; refusing the rest keeps the Mapping[int, ...] honest.
    if any(type(label) is not int for header in (protected, unprotected) for label in header):
        raise _malformed("header labels must be integers")
    if HEADER_CRIT in protected or HEADER_CRIT in unprotected:
        raise _malformed("critical header parameters are not supported")
    if set(protected) & set(unprotected):
        raise _malformed("a header label appears in both protected and unprotected headers")
    if HEADER_ALG in unprotected:
        raise _malformed("alg must be in the protected header")
    if HEADER_ALG in protected and type(protected[HEADER_ALG]) is not int:
        raise _malformed("alg must be an integer")
    for header in (protected, unprotected):
        if HEADER_KID in header and not isinstance(header[HEADER_KID], bytes):
            raise _malformed("kid must be a byte string")


def _check_alg_matches_key(alg: int | None, public_key: object) -> None:
    if alg == ALG_ES256:
        if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
            public_key.curve, ec.SECP256R1
        ):
            return
        raise _unsupported("ES256 needs a P-256 public key")
    if alg == ALG_EDDSA:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            return
        raise _unsupported("EdDSA needs an Ed25519 public key")
    raise _unsupported(f"algorithm {alg!r} is not supported (ES256 and EdDSA only)")


def _alg_for_private_key(private_key: object) -> int:
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP256R1
    ):
        return ALG_ES256
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return ALG_EDDSA
    raise PkiError("signing key must be P-256 or Ed25519", reason=Reason.UNSUPPORTED_ALGORITHM)


def _der_to_raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    if s > P256_HALF_ORDER:
        s = P256_ORDER - s  # the low-S twin: equally valid, and the only form hcx emits
    return r.to_bytes(_P256_COORDINATE_LENGTH, "big") + s.to_bytes(_P256_COORDINATE_LENGTH, "big")


def _raw_to_der(raw: bytes, *, low_s_only: bool = False) -> bytes:
    # COSE carries r||s with fixed-width halves (RFC 9053 §2.1); anything else is not ES256.
    if len(raw) != ES256_SIGNATURE_LENGTH:
        raise VerificationError(
            f"ES256 signature must be {ES256_SIGNATURE_LENGTH} bytes, not {len(raw)}",
            reason=Reason.BAD_SIGNATURE,
        )
    half = _P256_COORDINATE_LENGTH
    r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    if low_s_only and s > P256_HALF_ORDER:
        raise VerificationError(
            "ES256 signature has a high s (a malleated copy of a low-S signature)",
            reason=Reason.NON_CANONICAL,
        )
    return encode_dss_signature(r, s)


def _malformed(message: str) -> DecodeError:
    return DecodeError(message, reason=Reason.MALFORMED)


def _non_canonical(message: str) -> DecodeError:
    return DecodeError(message, reason=Reason.NON_CANONICAL)


def _unsupported(message: str) -> VerificationError:
    return VerificationError(message, reason=Reason.UNSUPPORTED_ALGORITHM)
