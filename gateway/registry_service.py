"""Registry servicer: coordinator and provincial-operator operations, translated from protobuf."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from healthcode.v1 import registry_pb2, registry_pb2_grpc
from nodes.identity import PermissionDenied, Role, caller, require_province
from trust import pki
from trust.errors import InvalidRequest
from trust.registry import RegistryOperations
from trust.view import TrustView


def _pem(certificate: Any) -> bytes:
    return bytes(certificate.public_bytes(Encoding.PEM))


class RegistryServicer(registry_pb2_grpc.RegistryServicer):
    """Coordinator and provincial-operator operations on the trust registry."""

    def __init__(self, *, registry: RegistryOperations, view: TrustView, roots: list[Any]) -> None:
        self._registry = registry
        self._view = view
        self._roots = roots

    async def OnboardProvince(
        self, request: Any, context: Any
    ) -> registry_pb2.OnboardProvinceResponse:
        ca = await self._registry.onboard_province(
            province=request.province,
            name=request.name,
            csr_pem=request.csr_pem,
            actor=_actor(context),
        )
        return registry_pb2.OnboardProvinceResponse(
            ca_certificate_pem=_pem(ca), root_certificate_pem=_pem(self._roots[0])
        )

    async def UploadSigningCertificate(
        self, request: Any, context: Any
    ) -> registry_pb2.UploadSigningCertificateResponse:
        uploaded = pki.load_certificate_pem(request.certificate_pem)
        require_province(pki.province_of(uploaded) or "", action="upload a signing certificate")
        record = await self._registry.upload_signing_certificate(
            request.certificate_pem, actor=_actor(context)
        )
        return registry_pb2.UploadSigningCertificateResponse(
            kid=record.kid, province=record.province
        )

    async def ListProvinces(self, request: Any, context: Any) -> registry_pb2.ListProvincesResponse:
        return registry_pb2.ListProvincesResponse(
            provinces=[
                registry_pb2.Province(
                    code=p.code,
                    name=p.name,
                    suspended=p.suspended,
                    ca_certificate_pem=_pem(p.ca_certificate),
                )
                for p in self._view.provinces()
            ]
        )

    async def ListCertificates(
        self, request: Any, context: Any
    ) -> registry_pb2.ListCertificatesResponse:
        return registry_pb2.ListCertificatesResponse(
            certificates=[
                registry_pb2.SigningCertificate(
                    kid=s.kid,
                    province=s.province,
                    certificate_pem=_pem(s.certificate),
                    not_before=int(s.not_before),
                    not_after=int(s.not_after),
                )
                for s in self._view.signers()
                if not request.province or s.province == request.province
            ]
        )

    async def SuspendProvince(
        self, request: Any, context: Any
    ) -> registry_pb2.SuspendProvinceResponse:
        await self._registry.set_suspended(
            request.province, request.suspended, actor=_actor(context), why=request.why
        )
        return registry_pb2.SuspendProvinceResponse()

    async def RevokeCertificate(
        self, request: Any, context: Any
    ) -> registry_pb2.RevokeCertificateResponse:
        if request.serial and not request.serial.isdigit():
            raise InvalidRequest("serial must be a decimal number")
        self._check_operator_revocation(request.kid, request.serial)
        revoked = await self._registry.revoke(
            kid=request.kid or None,
            serial=int(request.serial) if request.serial else None,
            reason=request.reason or "unspecified",
            at=float(request.revoked_at) if request.revoked_at else None,
            actor=_actor(context),
        )
        return registry_pb2.RevokeCertificateResponse(revoked=revoked)

    def _check_operator_revocation(self, kid: bytes, serial: str) -> None:
        """An operator revokes only its own province's signing certificates."""
        who = caller()
        if who is None or who.role is not Role.OPERATOR:
            return  # coordinators (or a development server without identities)
        signer = next(
            (
                s
                for s in self._view.signers()
                if s.kid == kid or (serial and str(s.certificate.serial_number) == serial)
            ),
            None,
        )
        if signer is None:
            raise PermissionDenied(f"{who} may revoke only signing certificates of its province")
        require_province(signer.province, action="revoke a signing certificate")

    async def RetireSigningCertificate(
        self, request: Any, context: Any
    ) -> registry_pb2.RetireSigningCertificateResponse:
        signer = self._view.signer(request.kid)
        require_province(signer.province if signer else "", action="retire a signing certificate")
        retired_at = await self._registry.retire(
            request.sealed_retirement, request.kid, actor=_actor(context)
        )
        return registry_pb2.RetireSigningCertificateResponse(retired_at=int(retired_at))

    async def UploadCrl(self, request: Any, context: Any) -> registry_pb2.UploadCrlResponse:
        require_province(request.province, action="upload a CRL")
        number = await self._registry.upload_crl(
            request.province, request.crl_der, actor=_actor(context)
        )
        return registry_pb2.UploadCrlResponse(crl_number=number)

    async def AuditLog(self, request: Any, context: Any) -> registry_pb2.AuditLogResponse:
        report = await self._registry.audit_log()
        return registry_pb2.AuditLogResponse(
            entries=[
                registry_pb2.AuditEntry(
                    seq=e.seq,
                    at=e.at,
                    actor=e.actor,
                    action=e.action,
                    subject=e.subject,
                    detail=e.detail,
                )
                for e in report.entries
            ],
            intact=report.intact,
            problems=report.problems,
        )


def _actor(context: Any) -> str:
    """Who did it, for the audit log: the verified mTLS identity, else the transport peer."""
    who = caller()
    if who is not None:
        return who.spiffe_id
    peer = context.peer() if context is not None else ""
    return f"insecure-dev peer {peer}" if peer else "unknown-peer"


def root_authority_or_none(cert_path: Any, key_path: Any) -> pki.Authority | None:
    if key_path is None:
        return None
    return pki.Authority(
        certificate=pki.load_certificate_pem(cert_path.read_bytes()),
        private_key=pki.load_private_key_pem(key_path.read_bytes()),
    )
