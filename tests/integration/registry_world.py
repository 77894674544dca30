"""A national registry world for the registry tests and the benchmark: root, provinces, gateways.

Coordinators act through trust.registry.RegistryOperations on the store (as a coordinator's
registry process does); gateways are real gateway processes' assemblies (gateway.main) started
on 127.0.0.1 over the same store URL.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from gateway.main import GatewayConfig, RunningGateway, start_gateway
from nodes.tls import Transport
from trust import pki, records
from trust.codeformat import CodeClaims, issue_token
from trust.errors import VerificationError
from trust.files import replace_file
from trust.model import Colour, Reason
from trust.registry import RegistryOperations
from trust.stores import open_registry_store
from trust.verify import check_code
from trust.view import TrustView


@dataclass
class ProvinceKeys:
    code: str
    ca: pki.Authority
    dsc: x509.Certificate
    dsc_key: pki.PrivateKey
    crl_number: int = 0
    revoked: list[pki.RevokedEntry] = field(default_factory=list)

    @property
    def kid(self) -> bytes:
        return pki.kid(self.dsc)

    def crl(self) -> bytes:
        """A fresh CRL of this province's revocations, signed by its own CA."""
        self.crl_number += 1
        now = datetime.now(UTC)
        crl = pki.make_crl(
            self.ca.certificate,
            self.ca.private_key,
            self.revoked,
            this_update=now - timedelta(minutes=1),
            next_update=now + timedelta(days=7),
            crl_number=self.crl_number,
        )
        return pki.crl_to_der(crl)

    def token(self, *, issued_at: float | None = None, lifetime: int = 300) -> str:
        iat = int(time.time() if issued_at is None else issued_at)
        claims = CodeClaims(
            issuer=self.code,
            code_id=secrets.token_bytes(16),
            issued_at=iat,
            expires_at=iat + lifetime,
            colour=Colour.GREEN,
            status_version=1,
            masked_name="张*明",
            id_tail="123X",
        )
        return issue_token(claims, signing_key=self.dsc_key, kid=self.kid)


@dataclass
class World:
    directory: Path
    url: str
    root: pki.Authority
    coordinator: RegistryOperations
    gateways: list[RunningGateway] = field(default_factory=list)

    @property
    def root_cert(self) -> Path:
        return self.directory / "root.pem"

    async def province(self, code: str, name: str = "测试省") -> ProvinceKeys:
        """Onboard a province from its CSR, upload a DSC and its (empty) CRL."""
        ca_key = pki.generate_private_key()
        csr = pki.make_csr(ca_key, common_name=f"hcx province {code} CA")
        ca_cert = await self.coordinator.onboard_province(
            province=code, name=name, csr_pem=pki.csr_to_pem(csr)
        )
        keys = await self.new_dsc(pki.Authority(ca_cert, ca_key), code, "dsc-1")
        await self.coordinator.upload_crl(code, keys.crl())
        return keys

    async def new_dsc(self, ca: pki.Authority, code: str, name: str) -> ProvinceKeys:
        key = pki.generate_private_key()
        dsc = pki.sign_dsc(ca, pki.make_csr(key, common_name=name), province=code, name=name)
        await self.coordinator.upload_signing_certificate(pki.certificate_to_pem(dsc))
        return ProvinceKeys(code, ca, dsc, key)

    async def gateway(
        self, *, view_file: Path | None = None, coordinator: bool = False
    ) -> RunningGateway:
        """A gateway on the world's store; ``coordinator``: it holds the root and trust-list
        keys (a coordinator's registry), so it serves registry writes and GetTrustList."""
        keys = {}
        if coordinator:
            keys = {
                "root_key": self.directory / "root-key.pem",
                "trust_list_cert": self.directory / "trust-list.pem",
                "trust_list_key": self.directory / "trust-list-key.pem",
            }
        running = await start_gateway(
            GatewayConfig(
                registry=self.url,
                root_cert=self.root_cert,
                view_file=view_file,
                # These tests are about the registry store and the view; mTLS and the
                # authorization table are exercised in test_security.py.
                transport=Transport.insecure_dev_only(),
                **keys,
            )
        )
        self.gateways.append(running)
        return running

    async def close(self) -> None:
        for gateway in self.gateways:
            await gateway.stop()
        await self.coordinator._store.close()


async def make_world(directory: Path, url: str) -> World:
    directory.mkdir(parents=True, exist_ok=True)
    root = pki.create_root_ca()
    replace_file(directory / "root.pem", pki.certificate_to_pem(root.certificate))
    pki.write_private_key(directory / "root-key.pem", root.private_key)
    signer_key = pki.generate_private_key()
    signer = pki.sign_trust_list_signer(root, pki.make_csr(signer_key, common_name="tl"))
    pki.write_private_key(directory / "trust-list-key.pem", signer_key)
    replace_file(directory / "trust-list.pem", pki.certificate_to_pem(signer))
    coordinator = RegistryOperations(
        store=open_registry_store(url), roots=[root.certificate], root_authority=root
    )
    return World(directory, url, root, coordinator)


def reason_of(token: str, view: TrustView) -> Reason:
    """What the gateway's hot path says about ``token`` now (NONE when it passes)."""
    try:
        check_code(token, view, now=time.time())
    except VerificationError as e:
        return e.reason
    return Reason.NONE


def province_key(code: str) -> str:
    return records.province_key(code)
