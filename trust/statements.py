"""Registry statements: what people sign, on their own stations, to change the registry.

Every change to the trust registry is one signed statement (trust.envelope, purpose STATEMENT):
a coordinator's order, a province's upload, the root's metadata. Servers never make one; they
check it against the authority table (trust.authority) and append it to the log (trust.log).

Payload, deterministic CBOR (docs/registry.md lists every body)::

    {"v": 1, "kind": text, "at": uint (signing time, unix s), "nonce": bstr .size 16,
     "body": {...}}

``nonce`` makes every statement unique, so a byte-identical copy is a replay; ``at`` is the
signer's clock, which the registry holds to its own within the allowed skew.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from trust import cbor, envelope, pki
from trust.cose import SigningKey
from trust.envelope import Envelope, Purpose
from trust.errors import DecodeError
from trust.model import Reason, is_province_code

FORMAT_VERSION = 1
NONCE_BYTES = 16
KID_BYTES = 8
MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_NAME_CHARS = 64
MAX_WHY_CHARS = 200
MAX_SERIAL = 1 << 160  # RFC 5280: at most 20 octets
REVOCATION_REASONS = frozenset(
    {"unspecified", "key_compromise", "ca_compromise", "superseded", "cessation_of_operation"}
)
ROOT_ISSUER = "root"  # CertRevocation.issuer of certificates the national root issued


# -- bodies ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RootMetadata:
    """The root's statement (as in TUF): which roots, which coordinators, how many must agree."""

    version: int
    roots: tuple[x509.Certificate, ...]
    threshold: int
    coordinators: tuple[x509.Certificate, ...]


@dataclass(frozen=True)
class Onboard:
    """Trust a province's CA (a new province, or a new CA for an onboarded one)."""

    province: str
    name: str
    ca: x509.Certificate


@dataclass(frozen=True)
class Resume:
    province: str
    why: str


@dataclass(frozen=True)
class AddCoordinator:
    certificate: x509.Certificate


@dataclass(frozen=True)
class RemoveCoordinator:
    name: str  # the coordinator's name in its SPIFFE id


Change = Onboard | Resume | AddCoordinator | RemoveCoordinator


@dataclass(frozen=True)
class Proposal:
    """A change that adds or restores trust: applied once M of N coordinators signed it."""

    change: Change
    base: int  # the subject's version the change was written against (stale once it moves)
    expires_at: int


@dataclass(frozen=True)
class Approval:
    proposal: bytes  # statement id of the proposal


@dataclass(frozen=True)
class Rejection:
    proposal: bytes
    why: str


@dataclass(frozen=True)
class Suspension:
    province: str
    why: str


@dataclass(frozen=True)
class DscUpload:
    certificate: x509.Certificate


@dataclass(frozen=True)
class Retirement:
    kid: bytes
    retired_at: int


@dataclass(frozen=True)
class CrlUpload:
    crl: x509.CertificateRevocationList


@dataclass(frozen=True)
class DscRevocation:
    kid: bytes
    revoked_at: int
    reason: str


@dataclass(frozen=True)
class CaRevocation:
    province: str
    serial: int
    revoked_at: int
    reason: str


@dataclass(frozen=True)
class CertRevocation:
    """A caller certificate (node, operator, checkpoint, gateway, coordinator, signer)."""

    issuer: str  # ROOT_ISSUER or the issuing province's code
    serial: int
    revoked_at: int
    reason: str


Body = (
    RootMetadata
    | Proposal
    | Approval
    | Rejection
    | Suspension
    | DscUpload
    | Retirement
    | CrlUpload
    | DscRevocation
    | CaRevocation
    | CertRevocation
)


@dataclass(frozen=True)
class Statement:
    kind: str
    signed_at: int
    body: Body
    nonce: bytes = field(default_factory=lambda: secrets.token_bytes(NONCE_BYTES))


@dataclass(frozen=True)
class SignedStatement:
    """A statement whose signature verified with ``signer`` (its authority not yet checked)."""

    statement: Statement
    signer: x509.Certificate
    envelope: Envelope

    @property
    def id(self) -> bytes:
        """SHA-256 of the signed bytes: what approvals name and replays are recognised by."""
        return statement_id(self.envelope.raw)

    @property
    def raw(self) -> bytes:
        return self.envelope.raw


def statement_id(signed: bytes) -> bytes:
    return hashlib.sha256(signed).digest()


# -- signing and opening -------------------------------------------------------------------------
def sign(statement: Statement, private_key: SigningKey, certificate: x509.Certificate) -> bytes:
    """The signed statement (an envelope) as the signer's station makes it."""
    payload = cbor.encode(
        {
            "v": FORMAT_VERSION,
            "kind": statement.kind,
            "at": statement.signed_at,
            "nonce": statement.nonce,
            "body": _encode_body(statement.body),
        }
    )
    return envelope.seal(Purpose.STATEMENT, payload, private_key, certificate)


def make(body: Body, *, signed_at: int) -> Statement:
    """A statement of ``body``'s kind, signed at ``signed_at``, with a fresh nonce."""
    return Statement(kind=KIND_OF[type(body)], signed_at=signed_at, body=body)


def open_statement(data: bytes) -> SignedStatement:
    """Decode strictly and check the signature (DecodeError / VerificationError)."""
    opened = envelope.open_verified(Purpose.STATEMENT, data, what="statement")
    doc = cbor.expect_map(cbor.decode_canonical(opened.payload, what="statement"), what="statement")
    cbor.exact_keys(doc, ("v", "kind", "at", "nonce", "body"), what="statement")
    if cbor.field(doc, "v", int, what="statement") != FORMAT_VERSION:
        raise _malformed(f"statement format {doc['v']} not understood")
    kind = cbor.field(doc, "kind", str, what="statement")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise _malformed(f"unknown statement kind {kind!r}")
    nonce = cbor.field(doc, "nonce", bytes, what="statement")
    if len(nonce) != NONCE_BYTES:
        raise _malformed(f"nonce must be {NONCE_BYTES} bytes")
    body = decoder(cbor.expect_map(doc["body"], what=f"{kind} body"))
    statement = Statement(kind=kind, signed_at=_time(doc, "at"), body=body, nonce=nonce)
    return SignedStatement(statement=statement, signer=opened.signer, envelope=opened)


# -- encoding of bodies --------------------------------------------------------------------------
def _serial_bytes(serial: int) -> bytes:
    """A certificate serial as its minimal big-endian bytes: X.509 serials run to 159 bits,
    past CBOR's 64-bit integers, and the strict decoder refuses bignum tags."""
    if not 0 < serial < MAX_SERIAL:
        raise ValueError(f"certificate serial out of range: {serial}")
    return serial.to_bytes((serial.bit_length() + 7) // 8, "big")


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def _encode_change(change: Change) -> dict[str, Any]:
    if isinstance(change, Onboard):
        return {"kind": "onboard", "province": change.province, "name": change.name,
                "ca": _der(change.ca)}  # fmt: skip
    if isinstance(change, Resume):
        return {"kind": "resume", "province": change.province, "why": change.why}
    if isinstance(change, AddCoordinator):
        return {"kind": "add-coordinator", "cert": _der(change.certificate)}
    return {"kind": "remove-coordinator", "name": change.name}


def _encode_body(body: Body) -> dict[str, Any]:
    match body:
        case RootMetadata():
            return {"version": body.version, "roots": [_der(c) for c in body.roots],
                    "threshold": body.threshold,
                    "coordinators": [_der(c) for c in body.coordinators]}  # fmt: skip
        case Proposal():
            return {"change": _encode_change(body.change), "base": body.base,
                    "expires": body.expires_at}  # fmt: skip
        case Approval():
            return {"proposal": body.proposal}
        case Rejection():
            return {"proposal": body.proposal, "why": body.why}
        case Suspension():
            return {"province": body.province, "why": body.why}
        case DscUpload():
            return {"cert": _der(body.certificate)}
        case Retirement():
            return {"kid": body.kid, "retired_at": body.retired_at}
        case CrlUpload():
            return {"crl": body.crl.public_bytes(Encoding.DER)}
        case DscRevocation():
            return {"kid": body.kid, "revoked_at": body.revoked_at, "reason": body.reason}
        case CaRevocation():
            return {"province": body.province, "serial": _serial_bytes(body.serial),
                    "revoked_at": body.revoked_at, "reason": body.reason}  # fmt: skip
        case CertRevocation():
            return {"issuer": body.issuer, "serial": _serial_bytes(body.serial),
                    "revoked_at": body.revoked_at, "reason": body.reason}  # fmt: skip
    raise TypeError(f"not a statement body: {body!r}")


# -- decoding of bodies (strict: exact keys, exact types, bounded values) -------------------------
def _malformed(message: str) -> DecodeError:
    return DecodeError(message, reason=Reason.MALFORMED)


def _keys(doc: Mapping[str, Any], *names: str) -> None:
    cbor.exact_keys(dict(doc), names, what="statement body")


def _time(doc: Mapping[str, Any], name: str) -> int:
    value = cbor.field(dict(doc), name, int, what="statement")
    if not 0 <= value <= MAX_TIME:
        raise _malformed(f"{name} must be a unix time in seconds")
    return int(value)


def _count(doc: Mapping[str, Any], name: str, *, low: int = 0, high: int = 1 << 62) -> int:
    value = cbor.field(dict(doc), name, int, what="statement")
    if not low <= value <= high:
        raise _malformed(f"{name} must be between {low} and {high}")
    return int(value)


def _text(doc: Mapping[str, Any], name: str, *, limit: int, empty: bool = True) -> str:
    value = cbor.field(dict(doc), name, str, what="statement")
    if len(value) > limit or not value.isprintable() or (not empty and not value.strip()):
        raise _malformed(f"{name} must be printable text of at most {limit} characters")
    return str(value)


def _province(doc: Mapping[str, Any], name: str = "province") -> str:
    value = cbor.field(dict(doc), name, str, what="statement")
    if len(value) != 6 or not is_province_code(value):
        raise _malformed(f"{name} must be a GB/T 2260 province code")
    return str(value)


def _kid(doc: Mapping[str, Any]) -> bytes:
    value = cbor.field(dict(doc), "kid", bytes, what="statement")
    if len(value) != KID_BYTES:
        raise _malformed(f"kid must be {KID_BYTES} bytes")
    return bytes(value)


def _serial(doc: Mapping[str, Any]) -> int:
    value = cbor.field(dict(doc), "serial", bytes, what="statement")
    if not 0 < len(value) <= 20 or value[0] == 0:
        raise _malformed("serial must be 1 to 20 big-endian bytes without leading zeros")
    return int.from_bytes(value, "big")


def _digest(doc: Mapping[str, Any], name: str) -> bytes:
    value = cbor.field(dict(doc), name, bytes, what="statement")
    if len(value) != 32:
        raise _malformed(f"{name} must be a 32-byte statement id")
    return bytes(value)


def _reason(doc: Mapping[str, Any]) -> str:
    value = cbor.field(dict(doc), "reason", str, what="statement")
    if value not in REVOCATION_REASONS:
        raise _malformed(f"unknown revocation reason {value!r}")
    return str(value)


def _certificate(value: object, what: str) -> x509.Certificate:
    if type(value) is not bytes:
        raise _malformed(f"{what} must be a DER certificate")
    try:
        return pki.parse_der(value)
    except ValueError as e:
        raise _malformed(f"{what} is not a DER certificate") from e


def _certificates(doc: Mapping[str, Any], name: str) -> tuple[x509.Certificate, ...]:
    value = doc.get(name)
    if not isinstance(value, list) or not 0 < len(value) <= 64:
        raise _malformed(f"{name} must be a list of 1 to 64 certificates")
    return tuple(_certificate(item, name) for item in value)


def _decode_root(doc: Mapping[str, Any]) -> RootMetadata:
    _keys(doc, "version", "roots", "threshold", "coordinators")
    return RootMetadata(
        version=_count(doc, "version", low=1),
        roots=_certificates(doc, "roots"),
        threshold=_count(doc, "threshold", low=1, high=64),
        coordinators=_certificates(doc, "coordinators"),
    )


def _decode_change(doc: Mapping[str, Any]) -> Change:
    kind = cbor.field(dict(doc), "kind", str, what="change")
    if kind == "onboard":
        _keys(doc, "kind", "province", "name", "ca")
        name = _text(doc, "name", limit=MAX_NAME_CHARS, empty=False)
        return Onboard(_province(doc), name, _certificate(doc["ca"], "ca"))
    if kind == "resume":
        _keys(doc, "kind", "province", "why")
        return Resume(_province(doc), _text(doc, "why", limit=MAX_WHY_CHARS))
    if kind == "add-coordinator":
        _keys(doc, "kind", "cert")
        return AddCoordinator(_certificate(doc["cert"], "cert"))
    if kind == "remove-coordinator":
        _keys(doc, "kind", "name")
        return RemoveCoordinator(_text(doc, "name", limit=MAX_NAME_CHARS, empty=False))
    raise _malformed(f"unknown change {kind!r}")


def _decode_proposal(doc: Mapping[str, Any]) -> Proposal:
    _keys(doc, "change", "base", "expires")
    change = _decode_change(cbor.expect_map(doc["change"], what="change"))
    return Proposal(change=change, base=_count(doc, "base"), expires_at=_time(doc, "expires"))


def _decode_crl(doc: Mapping[str, Any]) -> CrlUpload:
    _keys(doc, "crl")
    value = doc["crl"]
    if type(value) is not bytes:
        raise _malformed("crl must be DER bytes")
    try:
        return CrlUpload(x509.load_der_x509_crl(value))
    except ValueError as e:
        raise _malformed("crl is not a DER CRL") from e


def _decode_cert_revocation(doc: Mapping[str, Any]) -> CertRevocation:
    _keys(doc, "issuer", "serial", "revoked_at", "reason")
    issuer = cbor.field(dict(doc), "issuer", str, what="statement")
    if issuer != ROOT_ISSUER:
        issuer = _province(doc, "issuer")
    return CertRevocation(issuer, _serial(doc), _time(doc, "revoked_at"), _reason(doc))


def _decode_approval(doc: Mapping[str, Any]) -> Approval:
    _keys(doc, "proposal")
    return Approval(_digest(doc, "proposal"))


def _decode_rejection(doc: Mapping[str, Any]) -> Rejection:
    _keys(doc, "proposal", "why")
    return Rejection(_digest(doc, "proposal"), _text(doc, "why", limit=MAX_WHY_CHARS))


def _decode_suspension(doc: Mapping[str, Any]) -> Suspension:
    _keys(doc, "province", "why")
    return Suspension(_province(doc), _text(doc, "why", limit=MAX_WHY_CHARS))


def _decode_dsc(doc: Mapping[str, Any]) -> DscUpload:
    _keys(doc, "cert")
    return DscUpload(_certificate(doc["cert"], "cert"))


def _decode_retirement(doc: Mapping[str, Any]) -> Retirement:
    _keys(doc, "kid", "retired_at")
    return Retirement(_kid(doc), _time(doc, "retired_at"))


def _decode_dsc_revocation(doc: Mapping[str, Any]) -> DscRevocation:
    _keys(doc, "kid", "revoked_at", "reason")
    return DscRevocation(_kid(doc), _time(doc, "revoked_at"), _reason(doc))


def _decode_ca_revocation(doc: Mapping[str, Any]) -> CaRevocation:
    _keys(doc, "province", "serial", "revoked_at", "reason")
    return CaRevocation(_province(doc), _serial(doc), _time(doc, "revoked_at"), _reason(doc))


_DECODERS: dict[str, Callable[[Mapping[str, Any]], Body]] = {
    "root": _decode_root,
    "propose": _decode_proposal,
    "approve": _decode_approval,
    "reject": _decode_rejection,
    "suspend": _decode_suspension,
    "upload-dsc": _decode_dsc,
    "retire-dsc": _decode_retirement,
    "crl": _decode_crl,
    "revoke-dsc": _decode_dsc_revocation,
    "revoke-ca": _decode_ca_revocation,
    "revoke-cert": _decode_cert_revocation,
}

KIND_OF: dict[type, str] = {
    RootMetadata: "root",
    Proposal: "propose",
    Approval: "approve",
    Rejection: "reject",
    Suspension: "suspend",
    DscUpload: "upload-dsc",
    Retirement: "retire-dsc",
    CrlUpload: "crl",
    DscRevocation: "revoke-dsc",
    CaRevocation: "revoke-ca",
    CertRevocation: "revoke-cert",
}
CHANGE_KINDS = {Onboard: "onboard", Resume: "resume", AddCoordinator: "add-coordinator",
                RemoveCoordinator: "remove-coordinator"}  # fmt: skip
