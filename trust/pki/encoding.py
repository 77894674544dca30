"""Keys, CSRs, certificates and CRLs to and from PEM/DER; every parse error is a PkiError."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import (
    NameOID,
)

from trust.errors import PkiError
from trust.pki.profile import KID_LENGTH, PrivateKey

# --- Keys, CSRs and encodings -------------------------------------------------------------


def generate_private_key() -> PrivateKey:
    """A fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(private_key: PrivateKey, *, common_name: str) -> x509.CertificateSigningRequest:
    """A CSR for ``private_key``; the issuer ignores its names and decides them itself."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return builder.sign(private_key, hashes.SHA256())


def kid(cert: x509.Certificate) -> bytes:
    """Key id of a certificate: the first 8 bytes of SHA-256 over its DER (as in the EU DCC)."""
    return hashlib.sha256(certificate_to_der(cert)).digest()[:KID_LENGTH]


_Encoded = x509.Certificate | x509.CertificateSigningRequest | x509.CertificateRevocationList
_T = TypeVar("_T")


def _to(encoding: serialization.Encoding) -> Callable[[_Encoded], bytes]:
    def encode(value: _Encoded) -> bytes:
        return value.public_bytes(encoding)

    return encode


def _parser(load: Callable[[bytes], _T], what: str) -> Callable[[bytes], _T]:
    """``load``, its parse errors (ValueError, TypeError) raised as PkiError naming ``what``."""

    def parse(data: bytes) -> _T:
        try:
            return load(bytes(data))
        except (ValueError, TypeError) as e:
            raise PkiError(f"not a {what}: {e}") from e

    parse.__doc__ = f"Parse one {what}; :class:`PkiError` on anything else."
    return parse


@functools.lru_cache(maxsize=4096)
def parse_der(der: bytes) -> x509.Certificate:
    """``x509.load_der_x509_certificate``, one parsed object per distinct certificate: the
    registry log carries the same few signer certificates in thousands of statements, and a
    parsed certificate keeps its decoded extensions (ValueError, never cached, as there)."""
    return x509.load_der_x509_certificate(der)


# Every encoding of a certificate, a CSR or a CRL, one line each: what it is, how it is read.
certificate_to_pem = _to(serialization.Encoding.PEM)
certificate_to_der = _to(serialization.Encoding.DER)
csr_to_pem = _to(serialization.Encoding.PEM)
crl_to_pem = _to(serialization.Encoding.PEM)
crl_to_der = _to(serialization.Encoding.DER)
load_certificate_pem = _parser(x509.load_pem_x509_certificate, "PEM certificate")
load_certificate_der = _parser(parse_der, "DER certificate")
load_csr_pem = _parser(x509.load_pem_x509_csr, "PEM certificate signing request")
load_crl_pem = _parser(x509.load_pem_x509_crl, "PEM CRL")
load_crl_der = _parser(x509.load_der_x509_crl, "DER CRL")
_load_bundle = _parser(x509.load_pem_x509_certificates, "PEM certificate bundle")


def load_certificates_pem(data: bytes) -> list[x509.Certificate]:
    """Parse a PEM bundle of one or more certificates (a root file during a root rotation)."""
    certificates = _load_bundle(data)
    if not certificates:
        raise PkiError("no certificate in the PEM bundle")
    return certificates


def private_key_to_pem(key: PrivateKey, *, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM of a private key, encrypted when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key_pem(data: bytes, password: bytes | None = None) -> PrivateKey:
    """Parse a PEM private key, which must be ECDSA P-256; :class:`PkiError` otherwise."""
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        # TypeError: password given for a plain key or missing for an encrypted one.
        raise PkiError(f"not a usable PEM private key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PkiError("private key is not ECDSA P-256")
    return key


def write_private_key(
    path: str | os.PathLike[str], key: PrivateKey, *, password: bytes | None = None
) -> None:
    """Write ``key`` as PEM to a new file that is mode 0600 from the moment it exists.

    O_EXCL refuses to overwrite an existing file or follow a planted symlink; creating the
    file with mode 0600 (instead of chmod afterwards) leaves no window where it is readable.
    """
    pem = private_key_to_pem(key, password=password)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
