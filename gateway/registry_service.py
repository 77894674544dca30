"""Registry servicer: coordinator and provincial-operator operations, translated from protobuf."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from healthcode.v1 import registry_pb2, registry_pb2_grpc
from trust import pki
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
            province=request.province, name=request.name, csr_pem=request.csr_pem
        )
        return registry_pb2.OnboardProvinceResponse(
            ca_certificate_pem=_pem(ca), root_certificate_pem=_pem(self._roots[0])
        )

    async def UploadSigningCertificate(
        self, request: Any, context: Any
    ) -> registry_pb2.UploadSigningCertificateResponse:
        record = await self._registry.upload_signing_certificate(request.certificate_pem)
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


def root_authority_or_none(cert_path: Any, key_path: Any) -> pki.Authority | None:
    if key_path is None:
        return None
    return pki.Authority(
        certificate=pki.load_certificate_pem(cert_path.read_bytes()),
        private_key=pki.load_private_key_pem(key_path.read_bytes()),
    )
