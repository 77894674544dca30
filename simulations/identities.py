"""Key material of a federation on one machine: the root, the gateways' narrow signers, three
coordinators, and the mTLS identity of every process and client (docs/security.md), made the
way `hcx registry init` and `hcx node keys issue-cert` make them.

The simulation plays the coordinators' offline station too: it holds the root key here to sign
certificates (never in a server), and each coordinator's own key to sign registry statements.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from hcx.registry_client import load_authority
from nodes.credentials import (
    issue_national_identity,
    issue_provincial_identity,
    issue_service_signer,
)
from nodes.provincial.keys import ProvinceDir, load_ca
from nodes.tls import Transport
from trust import pki, statements
from trust.files import replace_file

COORDINATORS = ("alice", "bob", "carol")
THRESHOLD = 2


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
        """What `hcx registry init` makes: root, log and trust-list signers, coordinators and
        the genesis root metadata (2 of 3)."""
        self.national.mkdir(parents=True, exist_ok=True)
        root = pki.create_root_ca()
        pki.write_private_key(self.national / "root-key.pem", root.private_key)
        replace_file(self.national / "root.pem", root.certificate.public_bytes(Encoding.PEM))
        issue_service_signer(root, kind="trust-list", out=self.national / "trust-list")
        issue_service_signer(root, kind="log", out=self.national / "log")
        self._root = root
        certificates = tuple(self.coordinator_authority(n).certificate for n in COORDINATORS)
        body = statements.RootMetadata(1, (root.certificate,), THRESHOLD, certificates)
        replace_file(self.national / "genesis.cbor", self.sign(body, root))

    def sign(self, body: statements.Body, signer: pki.Authority) -> bytes:
        return statements.sign(
            statements.make(body, signed_at=int(time.time())),
            signer.private_key,
            signer.certificate,
        )

    def coordinator_dir(self, name: str) -> Path:
        """A coordinator's own identity (mTLS client and statement signer), made once."""
        out = self.national / "coordinators" / name
        if not (out / "cert.pem").exists():
            issue_national_identity(self.root, kind="coordinator", name=name, out=out)
        return out

    def coordinator_authority(self, name: str) -> pki.Authority:
        return load_authority(self.coordinator_dir(name))

    def national_tls(self, kind: str, name: str, dns_names: Sequence[str] = ()) -> Path:
        """A gateway identity's --tls-dir (issued once; named by ``dns_names`` too, e.g. its
        address on a test bed)."""
        out = self.national / "tls" / f"{kind}-{name}"
        if not (out / "cert.pem").exists():
            issue_national_identity(self.root, kind=kind, name=name, out=out, dns_names=dns_names)
        return out

    def provincial_tls(
        self, province: str, kind: str, name: str, dns_names: Sequence[str] = ()
    ) -> Path:
        """A node, operator, checkpoint or authority --tls-dir (or a web front's HTTPS
        certificate, named by ``dns_names``), signed by the province's CA."""
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
                dns_names=dns_names,
            )
        return out

    def coordinator(self, name: str = "alice") -> Transport:
        return Transport.mtls(self.coordinator_dir(name))

    def operator(self, province: str) -> Transport:
        return Transport.mtls(self.provincial_tls(province, "operator", "ops"))

    def authority(self, province: str) -> Transport:
        """The province's health authority (risk data, assistance, statistics)."""
        return Transport.mtls(self.provincial_tls(province, "authority", "health"))

    def check_in_station(self, province: str) -> Transport:
        """An employer's check-in station of the province (check-ins only)."""
        return Transport.mtls(self.provincial_tls(province, "checkin", "employer"))

    def checkpoint(self, province: str, name: str = "station") -> Transport:
        return Transport.mtls(self.provincial_tls(province, "checkpoint", name))

    def gateway_flags(self, name: str, dns_names: Sequence[str] = ()) -> list[str]:
        """What a gateway process needs: its identity and the log and trust-list signers
        (and never the root key)."""
        n = self.national
        return [
            "--tls-dir", str(self.national_tls("gateway", name, dns_names)),
            "--trust-list-cert", str(n / "trust-list" / "cert.pem"),
            "--trust-list-key", str(n / "trust-list" / "key.pem"),
            "--log-cert", str(n / "log" / "cert.pem"),
            "--log-key", str(n / "log" / "key.pem"),
        ]  # fmt: skip
