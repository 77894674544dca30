"""A province's key directory: its CA, signing key (DSC) and holder-hash key, made locally.

Private keys are created here and never leave the province; files holding them are 0600.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from trust import pki, statements
from trust.errors import Conflict
from trust.files import SECRET, replace_file, write_new


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


def _ca_common_name(province: str) -> str:
    return f"hcx province {province} CA"


def init_province(directory: ProvinceDir, *, province: str) -> x509.CertificateSigningRequest:
    """Make the provincial CA key, its CSR and the holder-hash key; returns the CSR.

    Each file appears whole or not at all (trust.files.write_new). A run that stopped half-way
    resumes with the same command: what exists is kept (the CA key, once made, is never
    replaced), what is missing is made. A directory that has all three is refused."""
    made = [directory.ca_key, directory.ca_csr, directory.holder_key]
    if all(p.exists() for p in made):
        raise Conflict(f"{directory.root} is already initialised (CA key, CSR, holder key)")
    later = [p for p in (directory.ca_cert, directory.dsc_cert, directory.status_db) if p.exists()]
    if later:
        # Past initialisation, a missing file is lost, not unfinished: a new holder key would
        # give every holder a new code (and the default colour), a new CA key would not match
        # the signed CA. That is an incident to resolve by restoring the file, not a rerun.
        missing = ", ".join(p.name for p in made if not p.exists())
        raise Conflict(
            f"{directory.root} already holds {later[0].name} but not {missing}: restore it "
            "from the province's backup; init will not make a new one"
        )
    if directory.ca_csr.exists() and not directory.ca_key.exists():
        raise Conflict(f"{directory.ca_csr} exists without its CA key: remove it to start over")
    directory.root.mkdir(parents=True, exist_ok=True)
    if directory.ca_key.exists():
        key = pki.load_private_key_pem(directory.ca_key.read_bytes())
    else:
        key = pki.generate_private_key()
        write_new(directory.ca_key, pki.private_key_to_pem(key), mode=SECRET)
    if directory.ca_csr.exists():
        csr = pki.load_csr_pem(directory.ca_csr.read_bytes())
        if csr.public_key() != key.public_key():
            raise Conflict(f"{directory.ca_csr} is not for the CA key in {directory.root}")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if [n.value for n in names] != [_ca_common_name(province)]:
            raise Conflict(f"{directory.ca_csr} was made for another province than {province}")
    else:
        csr = pki.make_csr(key, common_name=_ca_common_name(province))
        write_new(directory.ca_csr, csr.public_bytes(Encoding.PEM))
    if not directory.holder_key.exists():
        write_new(directory.holder_key, secrets.token_bytes(32), mode=SECRET)
    return csr


def new_signing_certificate(
    directory: ProvinceDir, *, province: str, name: str
) -> x509.Certificate:
    """Make a DSC key locally, sign its certificate with the province's own CA, install both."""
    key, certificate = make_signing_certificate(directory, province=province, name=name)
    install_signing_key(directory, key, certificate)
    return certificate


def make_signing_certificate(
    directory: ProvinceDir, *, province: str, name: str
) -> tuple[pki.PrivateKey, x509.Certificate]:
    """A DSC key and its certificate, signed by the province's own CA; nothing written."""
    ca = load_ca(directory)
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name=f"hcx province {province} DSC {name}")
    return key, pki.sign_dsc(ca, csr, province=province, name=name)


def install_signing_key(
    directory: ProvinceDir, key: pki.PrivateKey, certificate: x509.Certificate
) -> None:
    """Make ``key`` and ``certificate`` the node's dsc-key.pem / dsc.pem (replicas reading the
    directory take them up once the registry lists the certificate: nodes.provincial.signing)."""
    if directory.dsc_key.exists():
        directory.dsc_key.unlink()
    pki.write_private_key(directory.dsc_key, key)
    replace_file(directory.dsc_cert, certificate.public_bytes(Encoding.PEM))


# -- rotation, retirement and the province's own CRL -----------------------------------------
REVOKED_FILE = "revoked.json"  # the province's revocations: its CRL is rebuilt from it


def load_ca(directory: ProvinceDir) -> pki.Authority:
    """The province's CA (certificate and private key) from its directory."""
    return pki.Authority(
        certificate=pki.load_certificate_pem(directory.ca_cert.read_bytes()),
        private_key=pki.load_private_key_pem(directory.ca_key.read_bytes()),
    )


def archive_signing_key(directory: ProvinceDir) -> x509.Certificate:
    """Move dsc.pem / dsc-key.pem aside as dsc-<kid>.pem / dsc-<kid>-key.pem (rotation)."""
    certificate = pki.load_certificate_pem(directory.dsc_cert.read_bytes())
    name = pki.kid(certificate).hex()
    directory.dsc_cert.replace(directory.root / f"dsc-{name}.pem")
    directory.dsc_key.replace(directory.root / f"dsc-{name}-key.pem")
    return certificate


def province_statement(directory: ProvinceDir, body: statements.Body) -> bytes:
    """A registry statement signed here, with the province's own CA key (trust.statements)."""
    ca = load_ca(directory)
    statement = statements.make(body, signed_at=int(time.time()))
    return statements.sign(statement, ca.private_key, ca.certificate)


def upload_statement(directory: ProvinceDir, certificate: x509.Certificate) -> bytes:
    """The province's statement that ``certificate`` is one of its signing certificates."""
    return province_statement(directory, statements.DscUpload(certificate))


def retirement_statement(directory: ProvinceDir, kid_: bytes, retired_at: float) -> bytes:
    """The province's statement that DSC ``kid_`` signs no code issued after ``retired_at``."""
    return province_statement(directory, statements.Retirement(kid_, int(retired_at)))


def crl_statement(directory: ProvinceDir, crl_der: bytes) -> bytes:
    """The province's CRL, wrapped in a statement signed by the same CA."""
    return province_statement(directory, statements.CrlUpload(x509.load_der_x509_crl(crl_der)))


def province_crl(
    directory: ProvinceDir, *, revoke_serial: int | None = None, reason: str = "unspecified"
) -> bytes:
    """The province's CRL (DER), signed by its CA; with ``revoke_serial`` one entry more.

    The CRL number is the count of CRLs made so far, so every new CRL has a larger number."""
    import json
    from datetime import UTC, datetime, timedelta

    state_path = directory.root / REVOKED_FILE
    state: dict[str, Any] = (
        json.loads(state_path.read_text()) if state_path.exists() else {"n": 0, "revoked": []}
    )
    now = datetime.now(UTC)
    if revoke_serial is not None and all(r["serial"] != revoke_serial for r in state["revoked"]):
        state["revoked"].append({"serial": revoke_serial, "at": now.timestamp(), "reason": reason})
    state["n"] += 1
    entries = [
        pki.RevokedEntry(
            r["serial"], datetime.fromtimestamp(r["at"], tz=UTC), x509.ReasonFlags[r["reason"]]
        )
        for r in state["revoked"]
    ]
    ca = load_ca(directory)
    crl = pki.make_crl(
        ca.certificate,
        ca.private_key,
        entries,
        this_update=now - timedelta(minutes=5),  # tolerate small clock skew at verifiers
        next_update=now + timedelta(days=7),
        crl_number=state["n"],
    )
    replace_file(state_path, json.dumps(state).encode())
    return pki.crl_to_der(crl)
