"""Key material of a federation on one machine: the root, the trust-list signer and the mTLS
identity of every process and client (docs/security.md), made the way operators make them.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from nodes.credentials import issue_national_identity, issue_provincial_identity
from nodes.provincial.keys import ProvinceDir, load_ca, write_public
from nodes.tls import Transport
from trust import pki


class LocalPki:
    """Creates and remembers identities under ``national`` (national) and province folders."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.national = workdir / "national"
        self._root: pki.Authority | None = None

    @property
    def root(self) -> pki.Authority:
        if self._root is None:
            raise RuntimeError("LocalPki.create() first")
        return self._root

    def create(self) -> None:
        """The national root CA and trust-list signer (what `hcx registry init` makes)."""
        self.national.mkdir(parents=True, exist_ok=True)
        root = pki.create_root_ca()
        pki.write_private_key(self.national / "root-key.pem", root.private_key)
        write_public(self.national / "root.pem", root.certificate.public_bytes(Encoding.PEM))
        key = pki.generate_private_key()
        signer = pki.sign_trust_list_signer(
            root, pki.make_csr(key, common_name="hcx national trust-list signer")
        )
        pki.write_private_key(self.national / "trust-list-key.pem", key)
        write_public(self.national / "trust-list.pem", pki.certificate_to_pem(signer))
        self._root = root

    def national_tls(self, kind: str, name: str) -> Path:
        """A gateway or coordinator identity's --tls-dir (issued once)."""
        out = self.national / "tls" / f"{kind}-{name}"
        if not (out / "cert.pem").exists():
            issue_national_identity(self.root, kind=kind, name=name, out=out)
        return out

    def provincial_tls(self, province: str, kind: str, name: str) -> Path:
        """A node, operator or checkpoint identity's --tls-dir, signed by the province's CA."""
        files = ProvinceDir(self.workdir / province)
        out = files.root / "tls" / f"{kind}-{name}"
        if not (out / "cert.pem").exists():
            issue_provincial_identity(
                load_ca(files),
                self.root.certificate,
                province=province,
                kind=kind,
                name=name,
                out=out,
            )
        return out

    def coordinator(self) -> Transport:
        return Transport.mtls(self.national_tls("coordinator", "sim"))

    def operator(self, province: str) -> Transport:
        return Transport.mtls(self.provincial_tls(province, "operator", "ops"))

    def checkpoint(self, province: str, name: str = "station") -> Transport:
        return Transport.mtls(self.provincial_tls(province, "checkpoint", name))

    def gateway_flags(self, name: str) -> list[str]:
        """What a gateway process needs: its identity and the trust-list signer."""
        return [
            "--tls-dir", str(self.national_tls("gateway", name)),
            "--trust-list-cert", str(self.national / "trust-list.pem"),
            "--trust-list-key", str(self.national / "trust-list-key.pem"),
        ]  # fmt: skip
