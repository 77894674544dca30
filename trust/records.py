"""Registry records (provinces, signing certificates, retirements, revocations, CRLs, nodes).

Values are CBOR maps with text keys (docs/registry.md). Decoding is strict and raises
trust.errors.DecodeError(MALFORMED); the certificates inside are re-verified by trust.view.

The store is not trusted, so every trust value carries a signature a reader checks against
the pinned roots: a DSC record is its certificate (signed by the provincial CA); province
records and national revocation orders are wrapped in a :func:`seal` envelope signed by the
national root; retirements are sealed by the provincial CA; CRLs are X.509 CRLs signed by
their CA. A seal binds the registry key, so a value cannot be moved to another key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from trust.errors import DecodeError
from trust.model import Reason, is_province_code
from trust.pki import kid


@dataclass(frozen=True)
class ProvinceRecord:
    """An onboarded province and its CA certificate (signed by the national root)."""

    code: str
    name: str
    ca_certificate: x509.Certificate
    suspended: bool = False
    seq: int = 0  # increases with every change: a replayed older record is refused

    def __post_init__(self) -> None:
        if not is_province_code(self.code):
            raise DecodeError(f"not a province code: {self.code!r}", reason=Reason.MALFORMED)


@dataclass(frozen=True)
class SigningCertRecord:
    """A document signing certificate (DSC) of one province, addressed by its kid."""

    kid: bytes
    province: str
    certificate: x509.Certificate


@dataclass(frozen=True)
class NodeRecord:
    """A live provincial node replica (stored under a lease)."""

    province: str
    node_id: str
    endpoint: str


@dataclass(frozen=True)
class Retirement:
    """A province's statement that its DSC ``kid`` signs no code issued after ``retired_at``."""

    kid: bytes
    retired_at: float


@dataclass(frozen=True)
class Revocation:
    """A national revocation order: DSC ``kid`` fails every code from ``revoked_at`` on."""

    kid: bytes
    province: str
    revoked_at: float
    reason: str


PROVINCES = "provinces/"
DSCS = "dsc/"
RETIRED = "retired/"
REVOKED = "revoked/"
CRLS = "crl/"
NODES = "nodes/"
AUDIT = "audit/"
ROOT_CRL = "crl/root"
SEAL_CONTEXT = b"hcx-registry-v1\0"


def retired_key(kid: bytes) -> str:
    return f"retired/{kid.hex()}"


def revoked_key(kid: bytes) -> str:
    return f"revoked/{kid.hex()}"


def crl_key(province: str) -> str:
    return f"crl/{province}"


def province_key(code: str) -> str:
    return f"provinces/{code}"


def signing_cert_key(kid: bytes) -> str:
    return f"dsc/{kid.hex()}"


def node_key(province: str, node_id: str) -> str:
    return f"nodes/{province}/{node_id}"


def _load(value: bytes, fields: dict[str, type]) -> dict[str, Any]:
    try:
        doc = cbor2.loads(value)
    except Exception as e:  # hostile bytes: any decoder failure is a malformed record
        raise DecodeError(f"registry value is not CBOR: {e}", reason=Reason.MALFORMED) from e
    if not isinstance(doc, dict):
        raise DecodeError("registry value is not a map", reason=Reason.MALFORMED)
    for name, kind in fields.items():
        if not isinstance(doc.get(name), kind):
            raise DecodeError(f"registry value lacks {name}", reason=Reason.MALFORMED)
    return doc


def _certificate(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise DecodeError(f"bad certificate in registry: {e}", reason=Reason.MALFORMED) from e


# -- seals: a signature over (registry key, body) ----------------------------------------------


def _to_be_signed(key: str, body: bytes) -> bytes:
    return SEAL_CONTEXT + key.encode() + b"\0" + body


def seal(key: str, body: bytes, private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """Wrap ``body`` for registry ``key`` with an ECDSA-SHA256 signature of ``private_key``."""
    signature = private_key.sign(_to_be_signed(key, body), ec.ECDSA(hashes.SHA256()))
    return cbor2.dumps({"body": body, "sig": signature})


def unseal(key: str, value: bytes, signer: x509.Certificate) -> bytes:
    """The body of a sealed value, after checking its signature by ``signer``'s key."""
    doc = _load(value, {"body": bytes, "sig": bytes})
    public_key = signer.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise DecodeError("seal signer is not an ECDSA key", reason=Reason.MALFORMED)
    try:
        public_key.verify(doc["sig"], _to_be_signed(key, doc["body"]), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as e:
        raise DecodeError(f"signature of {key} does not verify", reason=Reason.BAD_SIGNATURE) from e
    return bytes(doc["body"])


def encode_province(record: ProvinceRecord) -> bytes:
    """The (unsealed) body of a province record."""
    return cbor2.dumps(
        {
            "code": record.code,
            "name": record.name,
            "suspended": record.suspended,
            "ca": record.ca_certificate.public_bytes(Encoding.DER),
            "seq": record.seq,
        }
    )


def decode_province(value: bytes) -> ProvinceRecord:
    doc = _load(value, {"code": str, "name": str, "suspended": bool, "ca": bytes, "seq": int})
    return ProvinceRecord(
        code=doc["code"],
        name=doc["name"],
        suspended=doc["suspended"],
        ca_certificate=_certificate(doc["ca"]),
        seq=doc["seq"],
    )


def encode_retirement(record: Retirement) -> bytes:
    return cbor2.dumps({"kid": record.kid, "retired_at": float(record.retired_at)})


def decode_retirement(value: bytes) -> Retirement:
    doc = _load(value, {"kid": bytes, "retired_at": float})
    return Retirement(kid=doc["kid"], retired_at=doc["retired_at"])


def encode_revocation(record: Revocation) -> bytes:
    return cbor2.dumps(
        {
            "kid": record.kid,
            "province": record.province,
            "revoked_at": float(record.revoked_at),
            "reason": record.reason,
        }
    )


def decode_revocation(value: bytes) -> Revocation:
    doc = _load(value, {"kid": bytes, "province": str, "revoked_at": float, "reason": str})
    return Revocation(
        kid=doc["kid"], province=doc["province"], revoked_at=doc["revoked_at"], reason=doc["reason"]
    )


def decode_crl(value: bytes) -> x509.CertificateRevocationList:
    try:
        return x509.load_der_x509_crl(value)
    except ValueError as e:
        raise DecodeError(f"bad CRL in registry: {e}", reason=Reason.MALFORMED) from e


def encode_signing_cert(record: SigningCertRecord) -> bytes:
    return cbor2.dumps(
        {"province": record.province, "cert": record.certificate.public_bytes(Encoding.DER)}
    )


def decode_signing_cert(value: bytes) -> SigningCertRecord:
    doc = _load(value, {"province": str, "cert": bytes})
    certificate = _certificate(doc["cert"])
    return SigningCertRecord(
        kid=kid(certificate), province=doc["province"], certificate=certificate
    )


def encode_node(record: NodeRecord) -> bytes:
    return cbor2.dumps(
        {"province": record.province, "node_id": record.node_id, "endpoint": record.endpoint}
    )


def decode_node(value: bytes) -> NodeRecord:
    doc = _load(value, {"province": str, "node_id": str, "endpoint": str})
    return NodeRecord(province=doc["province"], node_id=doc["node_id"], endpoint=doc["endpoint"])
