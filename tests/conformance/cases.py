"""ONE table of named conformance cases: a token, written as an attacker (or a broken issuer)
would write it, and the verdict every verifier must give it.

A case's ``reason`` is what every verifier answers: Reason.NONE means the code is good (VALID
from a verifier that asks the issuer, VALID_OFFLINE from one that cannot), anything else means
INVALID with exactly that reason. ``offline_reason`` overrides it for verifiers that give
offline verdicts (the offline age limit is theirs alone).

Tags say what a verifier must be able to do for the case to apply to it: EXACT_TIME cases sit
on a boundary (expires now or within a second, issued exactly the skew ahead) and need a
verifier whose clock can be set to World.now (a verifier over the network reads the machine's
clock, seconds after the token was made); REGISTRY_REFUSES cases put a key in the view that a
verified registry would never serve (an expired DSC, a key of a province never onboarded), so
a verifier over a real registry skips them (it would answer UNKNOWN_KID).

``hostile_tokens`` is a hypothesis strategy for more: random mutations of valid tokens at
every layer; none may be accepted unless it is byte for byte a valid token.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import cbor2
from hypothesis import strategies as st

from tests.conformance.world import (
    DROP,
    GS,
    SC,
    ZJ,
    World,
    bstr,
    cbor_dumps,
    cose_bytes,
    head,
    high_s,
)
from trust import cbor
from trust.base45 import b45decode, b45encode
from trust.codeformat import MAX_PAYLOAD_BYTES, MAX_TOKEN_CHARS, PREFIX
from trust.cose import ALG_EDDSA, P256_ORDER
from trust.envelope import Purpose
from trust.model import Reason

EXACT_TIME = "exact-time"
REGISTRY_REFUSES = "registry-refuses"

R = Reason
MAX_LIFETIME = 360  # trust.verify.DEFAULT_MAX_LIFETIME_S, written out: the table is the spec
MAX_OFFLINE_AGE = 300
SKEW = 60
YEAR_9999 = 253_402_300_799


@dataclass(frozen=True)
class Case:
    make: Callable[[World], str]
    reason: Reason
    offline_reason: Reason | None = None
    tags: frozenset[str] = frozenset()

    def expected_reason(self, *, online: bool) -> Reason:
        return self.reason if online or self.offline_reason is None else self.offline_reason


def case(
    make: Callable[[World], str],
    reason: Reason = R.NONE,
    *,
    offline: Reason | None = None,
    tags: tuple[str, ...] = (),
) -> Case:
    return Case(make, reason, offline, frozenset(tags))


# --- helpers for the table --------------------------------------------------------------------


def body(w: World) -> str:
    """The base45 text of a valid code (after the prefix)."""
    return w.token()[len(PREFIX) :]


def cose_of(w: World) -> bytes:
    """The COSE_Sign1 bytes of a valid code."""
    return zlib.decompress(b45decode(body(w)))


def wrapped(cose: bytes, level: int = 0) -> str:
    return PREFIX + b45encode(zlib.compress(cose, level))


def compressed(data: bytes) -> str:
    return PREFIX + b45encode(data)


def stored_blocks(cose: bytes, *cuts: int) -> bytes:
    """A zlib stream of several stored blocks (valid, but not what level 0 makes)."""
    parts = [cose[a:b] for a, b in zip((0, *cuts), (*cuts, len(cose)), strict=True)]
    out = b"\x78\x01"
    for i, part in enumerate(parts):
        final = 1 if i == len(parts) - 1 else 0
        n = len(part)
        out += bytes([final]) + n.to_bytes(2, "little") + (n ^ 0xFFFF).to_bytes(2, "little") + part
    return out + zlib.adler32(cose).to_bytes(4, "big")


def with_header(header: bytes, cose: bytes) -> bytes:
    """A stored-block stream of ``cose`` under another zlib header (checksum kept valid)."""
    return header + zlib.compress(cose, 0)[2:]


def payload(w: World, **changes: object) -> bytes:
    return cbor_dumps(w.claims(**changes))


def unsorted(mapping: dict[object, object]) -> dict[object, object]:
    return dict(reversed(list(mapping.items())))


def other_purpose(purpose: Purpose) -> Callable[[World], str]:
    return lambda w: w.token(aad=purpose.value)


def resigned_claims(**changes: object) -> Callable[[World], str]:
    """Claims changed and signed by the real key (a buggy issuer): only the form is wrong."""
    return lambda w: w.token(claims=payload(w, **changes))


def unsigned_claims(**changes: Callable[[World], object] | object) -> Callable[[World], str]:
    """Claims changed under the original code's signature (an attacker without the key);
    a value may be a function of the world."""

    def make(w: World) -> str:
        item = cbor2.loads(cose_of(w)).value
        values = {k: v(w) if callable(v) else v for k, v in changes.items()}
        changed = cbor.encode(w.claims(**values))
        return wrapped(cbor.encode(cbor2.CBORTag(18, [item[0], {}, changed, item[3]])))

    return make


def replace_char(index: int, char: str) -> Callable[[World], str]:
    def make(w: World) -> str:
        token = w.token()
        return token[:index] + char + token[index + 1 :]

    return make


def padded_to(length: int) -> Callable[[World], str]:
    def make(w: World) -> str:
        token = w.token()
        return token + "0" * (length - len(token))

    return make


def swap_signature(change: Callable[[bytes], bytes]) -> Callable[[World], str]:
    return lambda w: w.token(signature=change)


def flip_last_bit(signature: bytes) -> bytes:
    return signature[:-1] + bytes([signature[-1] ^ 1])


def swapped(signature: bytes) -> bytes:
    """s || r, with r as its low twin when it is high: the swap must fail on the signature
    (were the new s high, the code would be refused earlier, as NON_CANONICAL)."""
    r = int.from_bytes(signature[:32], "big")
    return signature[32:] + min(r, P256_ORDER - r).to_bytes(32, "big")


def der(signature: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    return encode_dss_signature(r, s)


def cose_with(**parts: object) -> Callable[[World], str]:
    """The valid code, re-assembled by hand with some COSE parts in another form."""
    return lambda w: w.token(cose=lambda p, q, s: cose_bytes(p, q, s, **parts))  # type: ignore[arg-type]


def protected(raw: Callable[[World], bytes]) -> Callable[[World], str]:
    """A protected header given as raw bytes, signed by the real key over those bytes."""
    return lambda w: w.token(protected=raw(w))


def kid_header(w: World, name: str = "zj") -> bytes:
    return b"\x04" + bstr(w.kid(name))


def unprotected_kid(w: World, name: str) -> Callable[[bytes, bytes, bytes], bytes]:
    """Assembles the COSE message with {4: kid of ``name``} as its unprotected header."""
    return lambda p, q, s: cose_bytes(p, q, s, unprotected=b"\xa1" + kid_header(w, name))


# --- the table --------------------------------------------------------------------------------

CASES: dict[str, Case] = {
    # --- a good code, so that every other row changes one thing
    "valid: a fresh code of Zhejiang": case(lambda w: w.token()),
    "valid: a fresh code of Sichuan": case(lambda w: w.token("sc", claims=w.claims(iss=SC))),
    # --- text layer
    "text: empty": case(lambda w: "", R.BAD_ENCODING),
    "text: the EU DCC prefix HC1:": case(lambda w: "HC1:" + body(w), R.BAD_ENCODING),
    "text: lower-case prefix": case(lambda w: "hcx1:" + body(w), R.BAD_ENCODING),
    "text: no prefix": case(lambda w: body(w), R.BAD_ENCODING),
    "text: prefix only": case(lambda w: PREFIX, R.BAD_ENCODING),
    "text: prefix twice": case(lambda w: PREFIX + PREFIX + body(w), R.BAD_ENCODING),
    "text: leading space": case(lambda w: " " + w.token(), R.BAD_ENCODING),
    "text: trailing newline": case(lambda w: w.token() + "\n", R.BAD_ENCODING),
    "text: trailing NUL": case(lambda w: w.token() + "\x00", R.BAD_ENCODING),
    "text: URL-encoded colon": case(lambda w: "HCX1%3A" + body(w), R.BAD_ENCODING),
    "text: a full-width character": case(replace_char(20, "Ａ"), R.BAD_ENCODING),
    "text: lower-case base45": case(lambda w: PREFIX + body(w).lower(), R.BAD_ENCODING),
    "text: longer than 4096 characters": case(padded_to(MAX_TOKEN_CHARS + 1), R.BAD_ENCODING),
    # --- base45
    "base45: a dangling character": case(lambda w: w.token() + "00", R.BAD_ENCODING),
    "base45: a triplet above 65535": case(lambda w: PREFIX + ":::" + body(w)[3:], R.BAD_ENCODING),
    "base45: a final pair above 255": case(lambda w: w.token()[:-2] + "::", R.BAD_ENCODING),
    "base45: one more group of padding": case(lambda w: w.token() + "000", R.BAD_ENCODING),
    # --- zlib
    "zlib: level 9": case(lambda w: wrapped(cose_of(w), 9), R.NON_CANONICAL),
    "zlib: level 6 (zlib's default)": case(lambda w: wrapped(cose_of(w), 6), R.NON_CANONICAL),
    "zlib: two stored blocks": case(
        lambda w: compressed(stored_blocks(cose_of(w), 40)), R.NON_CANONICAL
    ),
    "zlib: stored, header claiming level 9": case(
        lambda w: compressed(with_header(b"\x78\xda", cose_of(w))), R.NON_CANONICAL
    ),
    "zlib: preset-dictionary flag": case(
        lambda w: compressed(with_header(b"\x78\x20", cose_of(w))), R.BAD_ENCODING
    ),
    "zlib: wrong Adler-32": case(
        lambda w: compressed(zlib.compress(cose_of(w), 0)[:-1] + b"\x00"), R.BAD_ENCODING
    ),
    "zlib: raw deflate, no header": case(
        lambda w: compressed(zlib.compress(cose_of(w), 0)[2:-4]), R.BAD_ENCODING
    ),
    "zlib: gzip wrapper": case(
        lambda w: compressed(__import__("gzip").compress(cose_of(w), 0)), R.BAD_ENCODING
    ),
    "zlib: a byte after the stream": case(
        lambda w: compressed(zlib.compress(cose_of(w), 0) + b"\x00"), R.BAD_ENCODING
    ),
    "zlib: truncated": case(
        lambda w: compressed(zlib.compress(cose_of(w), 0)[:-5]), R.BAD_ENCODING
    ),
    "zlib: a 2 MB bomb": case(lambda w: wrapped(b"\x00" * 2_000_000, 9), R.BAD_ENCODING),
    "zlib: one byte over the decompressed limit": case(
        lambda w: wrapped(b"\x00" * (MAX_PAYLOAD_BYTES + 1), 9), R.BAD_ENCODING
    ),
    # --- COSE_Sign1 structure
    "cose: not CBOR": case(lambda w: wrapped(b"\xff"), R.BAD_ENCODING),
    "cose: a byte after the message": case(lambda w: wrapped(cose_of(w) + b"\x00"), R.BAD_ENCODING),
    "cose: untagged": case(cose_with(tag=b""), R.NON_CANONICAL),
    "cose: tag 18 in a two-byte head": case(cose_with(tag=b"\xd8\x12"), R.NON_CANONICAL),
    "cose: tag 98 (COSE_Sign)": case(cose_with(tag=b"\xd8\x62"), R.MALFORMED),
    "cose: tag 17 (COSE_Mac0)": case(cose_with(tag=b"\xd1"), R.MALFORMED),
    "cose: tag 18 twice": case(cose_with(tag=b"\xd2\xd2"), R.MALFORMED),
    "cose: self-described CBOR (tag 55799)": case(
        lambda w: wrapped(b"\xd9\xd9\xf7" + cose_of(w)), R.MALFORMED
    ),
    "cose: array length in a two-byte head": case(cose_with(array=b"\x98\x04"), R.NON_CANONICAL),
    "cose: indefinite-length array": case(cose_with(array=b"\x9f", extra=b"\xff"), R.BAD_ENCODING),
    "cose: three items": case(lambda w: wrapped(b"\xd2\x83" + cose_of(w)[2:-66]), R.MALFORMED),
    "cose: five items": case(cose_with(array=b"\x85", extra=b"\x40"), R.MALFORMED),
    "cose: a map": case(lambda w: wrapped(cbor.encode({1: cose_of(w)})), R.MALFORMED),
    "cose: detached payload (nil)": case(
        lambda w: wrapped(cbor.encode(cbor2.CBORTag(18, [b"\xa1\x01\x26", {}, None, bytes(64)]))),
        R.MALFORMED,
    ),
    "cose: payload as text": case(
        lambda w: wrapped(cbor.encode(cbor2.CBORTag(18, [b"\xa1\x01\x26", {}, "p", bytes(64)]))),
        R.MALFORMED,
    ),
    "cose: unprotected map in a two-byte head": case(
        cose_with(unprotected=b"\xb8\x00"), R.NON_CANONICAL
    ),
    "cose: protected bstr length in a one-byte head": case(
        cose_with(sizes=(1, None, None)), R.NON_CANONICAL
    ),
    "cose: payload bstr length in a two-byte head": case(
        cose_with(sizes=(None, 2, None)), R.NON_CANONICAL
    ),
    "cose: signature length in an eight-byte head": case(
        cose_with(sizes=(None, None, 8)), R.NON_CANONICAL
    ),
    "cose: nesting bomb": case(lambda w: wrapped(b"\x81" * 1000 + b"\x00"), R.BAD_ENCODING),
    "cose: a length beyond the data": case(
        lambda w: wrapped(b"\x5b" + b"\xff" * 8), R.BAD_ENCODING
    ),
    # --- protected header
    "protected: a map, not a byte string": case(
        lambda w: wrapped(b"\xd2\x84\xa1\x01\x26" + cose_of(w)[16:]), R.MALFORMED
    ),
    "protected: empty": case(protected(lambda w: b""), R.MALFORMED),
    "protected: not CBOR": case(protected(lambda w: b"\xff"), R.MALFORMED),
    "protected: a byte after the map": case(
        protected(lambda w: cbor.encode({1: -7, 4: w.kid("zj")}) + b"\x00"), R.MALFORMED
    ),
    "protected: an array": case(protected(lambda w: cbor.encode([-7, w.kid("zj")])), R.MALFORMED),
    "protected: content type as well": case(
        lambda w: w.token(protected={1: -7, 3: 0, 4: w.kid("zj")}), R.MALFORMED
    ),
    "protected: crit": case(
        lambda w: w.token(protected={1: -7, 2: [4], 4: w.kid("zj")}), R.MALFORMED
    ),
    "protected: keys unsorted": case(
        protected(lambda w: b"\xa2" + kid_header(w) + b"\x01\x26"), R.NON_CANONICAL
    ),
    "protected: alg in a two-byte head": case(
        protected(lambda w: b"\xa2\x01\x38\x06" + kid_header(w)), R.NON_CANONICAL
    ),
    "protected: kid length in a one-byte head": case(
        protected(lambda w: b"\xa2\x01\x26\x04" + bstr(w.kid("zj"), 1)), R.NON_CANONICAL
    ),
    "protected: alg twice": case(
        protected(lambda w: b"\xa3\x01\x26\x01\x26" + kid_header(w)), R.MALFORMED
    ),
    "protected: kid of 7 bytes": case(
        lambda w: w.token(protected={1: -7, 4: w.kid("zj")[:7]}), R.MALFORMED
    ),
    "protected: kid of 9 bytes": case(
        lambda w: w.token(protected={1: -7, 4: w.kid("zj") + b"\x00"}), R.MALFORMED
    ),
    "protected: kid as text": case(
        lambda w: w.token(protected={1: -7, 4: w.kid("zj").hex()}), R.MALFORMED
    ),
    "protected: no kid": case(lambda w: w.token(protected={1: -7}), R.MALFORMED),
    "protected: text labels": case(
        lambda w: w.token(protected={"alg": -7, "kid": w.kid("zj")}), R.MALFORMED
    ),
    # --- algorithm games
    "alg: absent": case(lambda w: w.token(protected={4: w.kid("zj")}), R.MALFORMED),
    "alg: the text 'none'": case(lambda w: w.token(alg="none"), R.MALFORMED),
    "alg: the text 'ES256'": case(lambda w: w.token(alg="ES256"), R.MALFORMED),
    "alg: nil": case(lambda w: w.token(alg=None), R.MALFORMED),
    "alg: 0 (reserved)": case(lambda w: w.token(alg=0), R.UNSUPPORTED_ALGORITHM),
    "alg: HMAC 256/256 (5)": case(lambda w: w.token(alg=5), R.UNSUPPORTED_ALGORITHM),
    "alg: ES384 (-35)": case(lambda w: w.token(alg=-35), R.UNSUPPORTED_ALGORITHM),
    "alg: RS256 (-257)": case(lambda w: w.token(alg=-257), R.UNSUPPORTED_ALGORITHM),
    "alg: EdDSA over a P-256 key": case(lambda w: w.token(alg=ALG_EDDSA), R.UNSUPPORTED_ALGORITHM),
    "alg: in the unprotected header": case(cose_with(unprotected=b"\xa1\x01\x26"), R.MALFORMED),
    # --- kid games
    "kid: of another province's key": case(lambda w: w.token(kid=w.kid("sc")), R.BAD_SIGNATURE),
    "kid: of another province's key, iss that province": case(
        lambda w: w.token(kid=w.kid("sc"), claims=w.claims(iss=SC)), R.BAD_SIGNATURE
    ),
    "kid: in the unprotected header only": case(
        lambda w: w.token(protected={1: -7}, cose=unprotected_kid(w, "zj")), R.MALFORMED
    ),
    "kid: in both headers": case(lambda w: w.token(cose=unprotected_kid(w, "zj")), R.MALFORMED),
    "kid: another kid in the unprotected header": case(
        lambda w: w.token(cose=unprotected_kid(w, "sc")), R.MALFORMED
    ),
    "kid: unknown": case(lambda w: w.token(kid=bytes.fromhex("0123456789abcdef")), R.UNKNOWN_KID),
    "kid: all zeros": case(lambda w: w.token(kid=bytes(8)), R.UNKNOWN_KID),
    # --- signature malleation and damage
    "signature: the high-S twin": case(swap_signature(high_s), R.NON_CANONICAL),
    "signature: s = n": case(
        swap_signature(lambda s: s[:32] + P256_ORDER.to_bytes(32, "big")), R.NON_CANONICAL
    ),
    "signature: r = 0": case(swap_signature(lambda s: bytes(32) + s[32:]), R.BAD_SIGNATURE),
    "signature: all zeros": case(swap_signature(lambda s: bytes(64)), R.BAD_SIGNATURE),
    "signature: 63 bytes": case(swap_signature(lambda s: s[:63]), R.BAD_SIGNATURE),
    "signature: 65 bytes": case(swap_signature(lambda s: s + b"\x00"), R.BAD_SIGNATURE),
    "signature: DER instead of r || s": case(swap_signature(der), R.BAD_SIGNATURE),
    "signature: empty": case(swap_signature(lambda s: b""), R.BAD_SIGNATURE),
    "signature: one bit flipped": case(swap_signature(flip_last_bit), R.BAD_SIGNATURE),
    "signature: r and s swapped": case(swap_signature(swapped), R.BAD_SIGNATURE),
    # --- purpose (COSE external_aad)
    "purpose: none (empty external_aad)": case(lambda w: w.token(aad=b""), R.BAD_SIGNATURE),
    "purpose: a registry statement's": case(other_purpose(Purpose.STATEMENT), R.BAD_SIGNATURE),
    "purpose: a trust list's": case(other_purpose(Purpose.TRUST_LIST), R.BAD_SIGNATURE),
    "purpose: a tree head's": case(other_purpose(Purpose.TREE_HEAD), R.BAD_SIGNATURE),
    # --- the attacker
    "attacker: own key under a real kid": case(lambda w: w.token(key=w.attacker), R.BAD_SIGNATURE),
    "attacker: own key under another province's kid": case(
        lambda w: w.token(key=w.attacker, kid=w.kid("sc"), claims=w.claims(iss=SC)),
        R.BAD_SIGNATURE,
    ),
    "attacker: own key, own kid": case(
        lambda w: w.token(key=w.attacker, kid=b"attacker"), R.UNKNOWN_KID
    ),
    "attacker: colour changed under the original signature": case(
        unsigned_claims(hcx_1=3), R.BAD_SIGNATURE
    ),
    "attacker: exp extended under the original signature": case(
        unsigned_claims(exp=lambda w: w.now + 3600), R.BAD_SIGNATURE
    ),
    "attacker: status version raised under the original signature": case(
        unsigned_claims(hcx_2=8), R.BAD_SIGNATURE
    ),
    "attacker: another holder's name under the original signature": case(
        unsigned_claims(hcx_3="李*四"), R.BAD_SIGNATURE
    ),
    "attacker: the kid swapped, signature kept": case(
        lambda w: w.token(kid=w.kid("zj-retired"), signature=_signature_of(w)), R.BAD_SIGNATURE
    ),
    "issuer: Zhejiang's key signs for Sichuan": case(
        lambda w: w.token(claims=w.claims(iss=SC)), R.ISSUER_MISMATCH
    ),
    "issuer: Zhejiang's key signs for suspended Gansu": case(
        lambda w: w.token(claims=w.claims(iss=GS)), R.ISSUER_MISMATCH
    ),
    "issuer: Sichuan's key signs for Zhejiang": case(lambda w: w.token("sc"), R.ISSUER_MISMATCH),
    # --- CWT claims
    "claims: not CBOR": case(lambda w: w.token(claims=b"\xff"), R.BAD_ENCODING),
    "claims: a byte after the map": case(
        lambda w: w.token(claims=cbor.encode(w.claims()) + b"\x00"), R.BAD_ENCODING
    ),
    "claims: an array": case(lambda w: w.token(claims=cbor.encode([1, 2])), R.MALFORMED),
    "claims: exp missing": case(resigned_claims(exp=DROP), R.MALFORMED),
    "claims: iat missing": case(lambda w: w.token(claims=_drop(w.claims(), 6)), R.MALFORMED),
    "claims: an extra sub (2)": case(
        lambda w: w.token(claims={**w.claims(), 2: "holder"}), R.MALFORMED
    ),
    "claims: an nbf (5)": case(lambda w: w.token(claims={**w.claims(), 5: w.now}), R.MALFORMED),
    "claims: a text key 'iss'": case(
        lambda w: w.token(claims={**_drop(w.claims(), 1), "iss": ZJ}), R.MALFORMED
    ),
    "claims: iss an integer": case(resigned_claims(iss=330000), R.MALFORMED),
    "claims: iss a prefecture": case(resigned_claims(iss="330100"), R.MALFORMED),
    "claims: iss with a trailing newline": case(resigned_claims(iss=ZJ + "\n"), R.MALFORMED),
    "claims: iat a float": case(lambda w: w.token(claims=w.claims(iat=float(w.now))), R.MALFORMED),
    "claims: iat true": case(lambda w: w.token(claims={**w.claims(), 6: True}), R.MALFORMED),
    "claims: iat negative": case(lambda w: w.token(claims=w.claims(iat=-1, exp=100)), R.MALFORMED),
    "claims: exp a tagged date (tag 1)": case(
        lambda w: w.token(claims={**w.claims(), 4: cbor2.CBORTag(1, w.now + 300)}), R.MALFORMED
    ),
    "claims: exp a bignum (tag 2)": case(
        lambda w: w.token(claims=_raw_claims(w, {4: b"\xc2\x44\x00\x00\x00\x01"})),
        R.MALFORMED,
    ),
    "claims: exp 2^64 - 1": case(lambda w: w.token(claims=w.claims(exp=2**64 - 1)), R.MALFORMED),
    "claims: exp before iat": case(lambda w: w.token(claims=w.claims(exp=w.now - 1)), R.MALFORMED),
    "claims: cti of 15 bytes": case(resigned_claims(cti=bytes(15)), R.MALFORMED),
    "claims: cti as text": case(resigned_claims(cti="00" * 16), R.MALFORMED),
    "claims: float key 1.0": case(
        lambda w: w.token(claims={(1.0 if k == 1 else k): v for k, v in w.claims().items()}),
        R.MALFORMED,
    ),
    "claims: keys unsorted": case(
        lambda w: w.token(claims=cbor_dumps(unsorted(w.claims()))), R.NON_CANONICAL
    ),
    "claims: iat in an eight-byte head": case(
        lambda w: w.token(claims=_raw_claims(w, {6: head(0, w.now, 8)})), R.NON_CANONICAL
    ),
    "claims: iss length in a one-byte head": case(
        lambda w: w.token(claims=_raw_claims(w, {1: head(3, 6, 1) + ZJ.encode()})),
        R.NON_CANONICAL,
    ),
    "claims: map length in a one-byte head": case(
        lambda w: w.token(claims=b"\xb8\x05" + cbor.encode(w.claims())[1:]), R.NON_CANONICAL
    ),
    "claims: iat twice": case(
        lambda w: w.token(claims=_raw_claims(w, {}, also=[(6, head(0, w.now))])),
        R.BAD_ENCODING,
    ),
    "claims: indefinite-length map": case(
        lambda w: w.token(claims=b"\xbf" + cbor.encode(w.claims())[1:] + b"\xff"), R.BAD_ENCODING
    ),
    # --- the hcx claim (-70000)
    "hcx: an array": case(resigned_claims(hcx=[1, 7]), R.MALFORMED),
    "hcx: colour 4": case(resigned_claims(hcx_1=4), R.MALFORMED),
    "hcx: colour 0": case(resigned_claims(hcx_1=0), R.MALFORMED),
    "hcx: colour true": case(resigned_claims(hcx_1=True), R.MALFORMED),
    "hcx: colour as text": case(resigned_claims(hcx_1="GREEN"), R.MALFORMED),
    "hcx: purpose 'travel'": case(resigned_claims(hcx_5="travel"), R.MALFORMED),
    "hcx: purpose missing": case(resigned_claims(hcx_5=DROP), R.MALFORMED),
    "hcx: an extra key": case(resigned_claims(hcx_6="x"), R.MALFORMED),
    "hcx: masked name of 33 characters": case(resigned_claims(hcx_3="x" * 33), R.MALFORMED),
    "hcx: masked name with a newline": case(resigned_claims(hcx_3="张*\n明"), R.MALFORMED),
    "hcx: the full ID number as id tail": case(
        resigned_claims(hcx_4="33010619900101123X"), R.MALFORMED
    ),
    "hcx: id tail with a lower-case x": case(resigned_claims(hcx_4="123x"), R.MALFORMED),
    "hcx: status version negative": case(resigned_claims(hcx_2=-1), R.MALFORMED),
    "hcx: under key -70001": case(
        lambda w: w.token(claims={**_drop(w.claims(), -70000), -70001: w.claims()[-70000]}),
        R.MALFORMED,
    ),
    "hcx: keys unsorted": case(
        lambda w: w.token(claims=cbor_dumps(w.claims(hcx=unsorted(w.claims()[-70000])))),
        R.NON_CANONICAL,
    ),
    # --- the code's own times (skew 60 s)
    "time: issued 100 s ago": case(lambda w: w.token(claims=w.claims(iat=w.now - 100))),
    "time: expires in one second": case(
        lambda w: w.token(claims=w.claims(iat=w.now - 299)), tags=(EXACT_TIME,)
    ),
    "time: expired exactly now": case(
        lambda w: w.token(claims=w.claims(iat=w.now - 300)), R.EXPIRED, tags=(EXACT_TIME,)
    ),
    "time: expired 10 s ago": case(lambda w: w.token(claims=w.claims(iat=w.now - 310)), R.EXPIRED),
    "time: expired a year ago": case(
        lambda w: w.token(claims=w.claims(iat=w.now - 365 * 86400)), R.EXPIRED
    ),
    "time: issued exactly the clock skew ahead": case(
        lambda w: w.token(claims=w.claims(iat=w.now + SKEW)), tags=(EXACT_TIME,)
    ),
    "time: issued one second beyond the skew": case(
        lambda w: w.token(claims=w.claims(iat=w.now + SKEW + 1)),
        R.NOT_YET_VALID,
        tags=(EXACT_TIME,),
    ),
    "time: issued an hour ahead": case(
        lambda w: w.token(claims=w.claims(iat=w.now + 3600)), R.NOT_YET_VALID
    ),
    "time: issued in 1970": case(
        lambda w: w.token(claims=w.claims(iat=0, exp=w.now + 120)), R.KEY_NOT_VALID_AT_ISSUANCE
    ),
    # --- lifetime (maximum 360 s)
    "lifetime: one second": case(
        lambda w: w.token(claims=w.claims(exp=w.now + 1)), tags=(EXACT_TIME,)
    ),
    "lifetime: the maximum": case(lambda w: w.token(claims=w.claims(exp=w.now + MAX_LIFETIME))),
    "lifetime: one second over the maximum": case(
        lambda w: w.token(claims=w.claims(exp=w.now + MAX_LIFETIME + 1)), R.LIFETIME_TOO_LONG
    ),
    "lifetime: a day": case(
        lambda w: w.token(claims=w.claims(exp=w.now + 86400)), R.LIFETIME_TOO_LONG
    ),
    "lifetime: until 9999-12-31": case(
        lambda w: w.token(claims=w.claims(exp=YEAR_9999)), R.LIFETIME_TOO_LONG
    ),
    "lifetime: retired key, iat before retirement, until 9999-12-31": case(
        lambda w: w.token("zj-retired", claims=w.claims(iat=w.now - 1000, exp=YEAR_9999)),
        R.LIFETIME_TOO_LONG,
    ),
    "lifetime: revoked-later key, until 9999-12-31": case(
        lambda w: w.token("zj-revoked-later", claims=w.claims(exp=YEAR_9999)),
        R.LIFETIME_TOO_LONG,
    ),
    # --- the offline age limit (300 s): offline verifiers only
    "offline age: exactly the limit": case(
        lambda w: w.token(claims=w.claims(iat=w.now - MAX_OFFLINE_AGE, exp=w.now + 60)),
        tags=(EXACT_TIME,),
    ),
    "offline age: 330 s, still unexpired": case(
        lambda w: w.token(claims=w.claims(iat=w.now - 330, exp=w.now + 30)),
        offline=R.TOKEN_TOO_OLD,
    ),
    # --- the signing key's validity when the code was issued
    "key: DSC not yet valid when the code was issued": case(
        lambda w: w.token("zj-young"), R.KEY_NOT_VALID_AT_ISSUANCE
    ),
    "key: DSC not yet valid, within the clock skew": case(
        lambda w: w.token("zj-young-within-skew")
    ),
    "key: DSC expired when the code was issued": case(
        lambda w: w.token("zj-old"), R.KEY_NOT_VALID_AT_ISSUANCE, tags=(REGISTRY_REFUSES,)
    ),
    "key: DSC issued by a clock 60 s ahead (backdated)": case(
        lambda w: w.token("zj-from-a-clock-60-s-ahead")
    ),
    # --- registry states
    "registry: revoked key": case(lambda w: w.token("zj-revoked"), R.KEY_REVOKED),
    "registry: revoked after the code was issued": case(
        lambda w: w.token("zj-revoked-recently", claims=w.claims(iat=w.now - 100)),
        R.KEY_REVOKED,
    ),
    "registry: revocation due in an hour": case(lambda w: w.token("zj-revoked-later")),
    "registry: retired key, code issued after retirement": case(
        lambda w: w.token("zj-retired"), R.KEY_RETIRED
    ),
    "registry: retired key, code issued before retirement": case(
        lambda w: w.token("zj-retired", claims=w.claims(iat=w.now - 200))
    ),
    "registry: suspended province": case(
        lambda w: w.token("gs", claims=w.claims(iss=GS)), R.PROVINCE_SUSPENDED
    ),
    "registry: province never onboarded": case(
        lambda w: w.token("xj", claims=w.claims(iss="650000")),
        R.UNKNOWN_PROVINCE,
        tags=(REGISTRY_REFUSES,),
    ),
}


def _drop(claims: dict[object, object], key: object) -> dict[object, object]:
    return {k: v for k, v in claims.items() if k != key}


def _raw_claims(
    w: World, values: dict[int, bytes], *, also: list[tuple[int, bytes]] | None = None
) -> bytes:
    """The claims map with some values written as given (any CBOR form), the rest canonical,
    and ``also`` entries appended (duplicates included)."""
    claims = w.claims()
    entries = [
        (cbor.encode(k), values.get(k, cbor.encode(claims[k])))
        for k in sorted(claims, key=cbor.encode)
    ]
    entries += [(cbor.encode(k), v) for k, v in also or []]
    return head(5, len(entries)) + b"".join(k + v for k, v in entries)


def _signature_of(w: World) -> bytes:
    """The signature of the world's plain valid code (to move under another header)."""
    cose = cose_of(w)
    return bytes(cbor2.loads(cose).value[3])


# --- more attacks: random mutations of valid codes ----------------------------------------------


def valid_tokens(w: World) -> list[str]:
    """Valid codes the mutations start from."""
    return [
        w.token(),
        w.token("sc", claims=w.claims(iss=SC)),
        w.token(claims=w.claims(iat=w.now - 100, hcx_1=3)),
    ]


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    how = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend"]))
    i = draw(st.integers(0, max(0, len(data) - 1)))
    if how == "flip":
        return data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1 :]
    if how == "set":
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    if how == "insert":
        return data[:i] + draw(st.binary(min_size=1, max_size=4)) + data[i:]
    if how == "delete":
        return data[:i] + data[i + draw(st.integers(1, 4)) :]
    if how == "truncate":
        return data[:i]
    return data + draw(st.binary(min_size=1, max_size=8))


@st.composite
def hostile_tokens(draw: st.DrawFn, tokens: list[str]) -> str:
    """A valid code mutated at one layer: its text, its base45 bytes (the zlib stream), its
    COSE bytes (re-compressed the one way), or the payload (re-wrapped canonically, keeping
    the original signature)."""
    token = draw(st.sampled_from(tokens))
    layer = draw(st.sampled_from(["text", "zlib", "cose", "payload", "signature"]))
    if layer == "text":
        return _mutate(token.encode("ascii"), draw).decode("latin-1")
    raw = b45decode(token[len(PREFIX) :])
    if layer == "zlib":
        return compressed(_mutate(raw, draw))
    cose = zlib.decompress(raw)
    if layer == "cose":
        return wrapped(_mutate(cose, draw))
    protected_bytes, _, payload_bytes, signature = cbor2.loads(cose).value
    if layer == "payload":
        payload_bytes = _mutate(payload_bytes, draw)
    else:
        signature = _mutate(signature, draw)
    return wrapped(cose_bytes(protected_bytes, payload_bytes, signature))
