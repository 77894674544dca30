"""The one signed envelope of hcx: a COSE_Sign1 (RFC 9052) bound to a purpose.

Everything hcx signs besides the health code's own COSE_Sign1 (which has the same shape with a
``kid`` instead of a certificate) is one of these: registry statements, the log's signed tree
heads, trust lists. The purpose is the COSE ``external_aad``: it is not transmitted, but it is
part of the bytes signed (Sig_structure), so a signature made for one purpose never verifies
for another (domain separation; a tree head cannot be replayed as a statement, nor a statement
as a trust list).

Form (exactly one byte form per envelope; anything else is refused):

    18([ protected: bstr .cbor {1: alg, 33: signer certificate DER}, unprotected: {},
         payload: bstr, signature: bstr ])

in deterministic CBOR, with a low-S ES256 signature. The signer's certificate travels in the
protected header (x5chain, RFC 9360, one certificate); readers decide whether that certificate
is an authority for the payload (trust.authority), after checking its chain to a pinned root.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding

from trust import pki
from trust.cose import (
    HEADER_ALG,
    Sign1,
    SigningKey,
    decode_sign1,
    sign1,
    verify_sign1,
)
from trust.errors import DecodeError, VerificationError
from trust.model import Reason

HEADER_X5CHAIN = 33  # RFC 9360: an X.509 certificate (chain) of the signer
MAX_ENVELOPE_BYTES = 1 << 20  # a statement carries at most a CRL or a few certificates


class Purpose(enum.Enum):
    """What a signature is for: the COSE external_aad of each kind of signed object."""

    HEALTH_CODE = b"hcx/v1/health-code"
    STATEMENT = b"hcx/v1/registry-statement"
    TREE_HEAD = b"hcx/v1/tree-head"
    TRUST_LIST = b"hcx/v1/trust-list"
    COLOUR_POLICY = b"hcx/v1/colour-policy"  # a province's rules, signed by its operator


@dataclass(frozen=True)
class Envelope:
    """A decoded envelope: its payload and signer certificate, the signature not yet checked."""

    purpose: Purpose
    message: Sign1
    signer: x509.Certificate
    raw: bytes

    @property
    def payload(self) -> bytes:
        return self.message.payload

    def verify(self) -> None:
        """Check the signature with the signer certificate's key (VerificationError)."""
        public_key = self.signer.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise VerificationError(
                "envelope signer key is not ECDSA or Ed25519", reason=Reason.UNSUPPORTED_ALGORITHM
            )
        verify_sign1(self.message, public_key, external_aad=self.purpose.value, low_s_only=True)


def seal(
    purpose: Purpose, payload: bytes, private_key: SigningKey, signer: x509.Certificate
) -> bytes:
    """Sign ``payload`` for ``purpose`` with ``private_key``, naming ``signer`` (its cert)."""
    return sign1(
        payload=payload,
        private_key=private_key,
        headers={HEADER_X5CHAIN: signer.public_bytes(Encoding.DER)},
        external_aad=purpose.value,
    )


def open_envelope(purpose: Purpose, data: bytes, *, what: str = "envelope") -> Envelope:
    """Decode an envelope strictly (DecodeError): tagged, deterministic CBOR, exactly the
    protected headers {alg, x5chain}, none unprotected, one parseable signer certificate."""
    if not isinstance(data, bytes) or len(data) > MAX_ENVELOPE_BYTES:
        raise DecodeError(
            f"{what} is not bytes of at most {MAX_ENVELOPE_BYTES}", reason=Reason.BAD_ENCODING
        )
    message = decode_sign1(data, canonical=True)  # tagged, deterministic, low-S: one form
    if message.unprotected or set(message.protected) != {HEADER_ALG, HEADER_X5CHAIN}:
        raise DecodeError(
            f"{what}: protected header must hold exactly alg and x5chain, nothing unprotected",
            reason=Reason.MALFORMED,
        )
    der = message.protected[HEADER_X5CHAIN]
    if not isinstance(der, bytes):
        raise DecodeError(f"{what}: x5chain must be one certificate", reason=Reason.MALFORMED)
    try:
        signer = pki.parse_der(der)
    except ValueError as e:
        raise DecodeError(f"{what}: signer certificate is not DER", reason=Reason.MALFORMED) from e
    return Envelope(purpose=purpose, message=message, signer=signer, raw=bytes(data))


def open_verified(purpose: Purpose, data: bytes, *, what: str = "envelope") -> Envelope:
    """:func:`open_envelope` and :meth:`Envelope.verify` (the signer's authority is the
    caller's to check)."""
    envelope = open_envelope(purpose, data, what=what)
    envelope.verify()
    return envelope
