"""Issuing mTLS identities from the federation's PKI (the key is made where it is written).

National identities (gateway, coordinator) are signed by the root; provincial ones (node,
operator, checkpoint) by the province's own CA. Each lands in a directory usable as
``--tls-dir``: key.pem (0600), cert.pem (certificate + issuing CA), root.pem.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from nodes.tls import TlsIdentity, write_tls_identity
from trust import pki
from trust.files import PUBLIC, SECRET, write_directory


def issue_national_identity(
    root: pki.Authority, *, kind: str, name: str, out: Path, dns_names: Sequence[str] = ()
) -> TlsIdentity:
    """A gateway (server + client) or coordinator (client) identity signed by the root."""
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name=f"hcx national {kind} {name}")
    certificate = pki.sign_national_leaf(root, csr, kind=kind, name=name, dns_names=dns_names)
    return write_tls_identity(
        out, key=key, certificate=certificate, chain=(), root=root.certificate
    )


def issue_provincial_identity(
    ca: pki.Authority,
    root: x509.Certificate,
    *,
    province: str,
    kind: str,
    name: str,
    out: Path,
    dns_names: Sequence[str] = (),
) -> TlsIdentity:
    """A node, operator or checkpoint identity signed by the province's own CA."""
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name=f"hcx province {province} {kind} {name}")
    certificate = pki.sign_leaf(
        ca, csr, province=province, kind=kind, name=name, dns_names=dns_names
    )
    return write_tls_identity(
        out, key=key, certificate=certificate, chain=(ca.certificate,), root=root
    )


def issue_service_signer(root: pki.Authority, *, kind: str, out: Path) -> None:
    """The log signer or the trust-list signer: cert.pem and key.pem (0600) in ``out``."""
    key = pki.generate_private_key()
    if kind == "log":
        csr = pki.make_csr(key, common_name="hcx national log signer")
        certificate = pki.sign_log_signer(root, csr)
    elif kind == "trust-list":
        csr = pki.make_csr(key, common_name="hcx national trust-list signer")
        certificate = pki.sign_trust_list_signer(root, csr)
    else:
        raise ValueError(f"unknown signer kind {kind!r}")
    write_directory(
        out,
        {
            "key.pem": (pki.private_key_to_pem(key), SECRET),
            "cert.pem": (pki.certificate_to_pem(certificate), PUBLIC),
        },
    )
