"""The registry's contract (registry.proto) from the domain: the verified view's provinces,
signing certificates, coordinators, proposals and judged log entries. The one place the
registry service converts (its requests are signed statements, decoded by trust.statements)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from healthcode.v1 import registry_pb2
from trust import pki
from trust.authority import Coordinator, Decision, ProposalState
from trust.statements import AddCoordinator, Change, Onboard, RemoveCoordinator
from trust.view import ProvinceRecord, TrustedSigner


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.PEM)


def province_to_proto(p: ProvinceRecord) -> registry_pb2.Province:
    return registry_pb2.Province(
        code=p.code,
        name=p.name,
        suspended=p.suspended,
        ca_certificate_pem=pem(p.ca_certificate),
        version=p.version,
        ca_serial=f"{p.ca_certificate.serial_number:x}",
    )


def signer_to_proto(s: TrustedSigner) -> registry_pb2.SigningCertificate:
    return registry_pb2.SigningCertificate(
        kid=s.kid,
        province=s.province,
        certificate_pem=pem(s.certificate),
        not_before=int(s.not_before),
        not_after=int(s.not_after),
        serial=f"{s.certificate.serial_number:x}",
        retired_at=int(s.retired_at or 0),
        revoked_at=int(s.revoked_at or 0),
        revocation_reason=s.revocation_reason,
    )


def coordinator_to_proto(c: Coordinator, *, revoked: bool) -> registry_pb2.Coordinator:
    return registry_pb2.Coordinator(
        name=c.name,
        certificate_pem=pem(c.certificate),
        serial=f"{c.certificate.serial_number:x}",
        revoked=revoked,
    )


def proposal_to_proto(
    proposal: ProposalState, *, status: str, threshold: int
) -> registry_pb2.ProposalInfo:
    return registry_pb2.ProposalInfo(
        id=proposal.id,
        change=describe_change(proposal.change),
        status=status,
        approvals=[name for _, name in proposal.approvals],
        threshold=threshold,
        expires_at=proposal.expires_at,
        proposer=proposal.proposer,
        index=proposal.index,
        province=getattr(proposal.change, "province", ""),
    )


def decision_to_proto(decision: Decision) -> registry_pb2.AuditEntry:
    """One judged leaf of the log, as the audit log lists it."""
    return registry_pb2.AuditEntry(
        index=decision.index,
        logged_at=decision.logged_at,
        actor=decision.actor,
        signer=decision.signer,
        kind=decision.kind,
        province=decision.province,
        effect=decision.effect,
        accepted=decision.accepted,
    )


def describe_change(change: Change) -> str:
    """A proposal's change in words, for coordinators reviewing it before they approve."""
    if isinstance(change, Onboard):
        ca = change.ca
        return (
            f"onboard {change.province} {change.name} with CA serial {ca.serial_number:x} "
            f"(SHA-256 {pki.fingerprint(ca).hex()[:16]}…)"
        )
    if isinstance(change, AddCoordinator):
        return f"add coordinator {pki.spiffe_id(change.certificate)}"
    if isinstance(change, RemoveCoordinator):
        return f"remove coordinator {change.name}"
    return f"resume {change.province}: {change.why}"
