"""A province's key directory: its CA, signing key (DSC) and holder-hash key, made locally.

Private keys are created here and never leave the province; files holding them are 0600.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from trust import pki


@dataclass(frozen=True)
class ProvinceDir:
    """File layout of one province's keys and stores (docs/operations.md)."""

    root: Path

    @property
    def ca_key(self) -> Path:
        return self.root / "ca-key.pem"

    @property
    def ca_csr(self) -> Path:
        return self.root / "ca.csr"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def dsc_key(self) -> Path:
        return self.root / "dsc-key.pem"

    @property
    def dsc_cert(self) -> Path:
        return self.root / "dsc.pem"

    @property
    def holder_key(self) -> Path:
        return self.root / "holder-key.bin"

    @property
    def status_db(self) -> Path:
        return self.root / "status.db"


def write_secret(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start; refuses to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def init_province(directory: ProvinceDir, *, province: str) -> x509.CertificateSigningRequest:
    """Make the provincial CA key, its CSR and the holder-hash key; returns the CSR."""
    directory.root.mkdir(parents=True, exist_ok=True)
    key = pki.generate_private_key()
    pki.write_private_key(directory.ca_key, key)
    csr = pki.make_csr(key, common_name=f"hcx province {province} CA")
    write_public(directory.ca_csr, csr.public_bytes(Encoding.PEM))
    write_secret(directory.holder_key, secrets.token_bytes(32))
    return csr


def new_signing_certificate(
    directory: ProvinceDir, *, province: str, name: str
) -> x509.Certificate:
    """Make a DSC key locally and sign its certificate with the province's own CA."""
    ca = pki.Authority(
        certificate=pki.load_certificate_pem(directory.ca_cert.read_bytes()),
        private_key=pki.load_private_key_pem(directory.ca_key.read_bytes()),
    )
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name=f"hcx province {province} DSC {name}")
    certificate = pki.sign_dsc(ca, csr, province=province, name=name)
    if directory.dsc_key.exists():
        directory.dsc_key.unlink()
    pki.write_private_key(directory.dsc_key, key)
    write_public(directory.dsc_cert, certificate.public_bytes(Encoding.PEM))
    return certificate
