"""Registry records (provinces, signing certificates, node registrations) and their encoding.

Values are CBOR maps with text keys (docs/registry.md). Decoding is strict and raises
trust.errors.DecodeError(MALFORMED); the certificates inside are re-verified by trust.view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
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


def encode_province(record: ProvinceRecord) -> bytes:
    return cbor2.dumps(
        {
            "code": record.code,
            "name": record.name,
            "suspended": record.suspended,
            "ca": record.ca_certificate.public_bytes(Encoding.DER),
        }
    )


def decode_province(value: bytes) -> ProvinceRecord:
    doc = _load(value, {"code": str, "name": str, "suspended": bool, "ca": bytes})
    return ProvinceRecord(
        code=doc["code"],
        name=doc["name"],
        suspended=doc["suspended"],
        ca_certificate=_certificate(doc["ca"]),
    )


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
