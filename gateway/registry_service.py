"""Registry servicer: signed statements in, the verified registry and its log out."""

from __future__ import annotations

import time
from typing import Any

from gateway import registry_wire as wire
from gateway.feed import ViewFeed
from healthcode.v1 import registry_pb2, registry_pb2_grpc
from nodes.identity import caller
from trust.errors import InvalidRequest
from trust.registry import Registry, Submitter
from trust.statements import ROOT_ISSUER
from trust.view import TrustView

MAX_LOG_PAGE = 10_000


def submitter(context: Any) -> Submitter:
    """The verified caller as the registry sees it (the audit actor)."""
    who = caller()
    if who is not None:
        return Submitter(spiffe_id=who.spiffe_id, role=who.role.value, province=who.province)
    peer = context.peer() if context is not None else ""
    return Submitter.development(peer or "unknown")


class RegistryServicer(registry_pb2_grpc.RegistryServicer):
    """Submissions are checked by trust.registry; reads come from the verified view."""

    def __init__(self, *, registry: Registry, view: TrustView, feed: ViewFeed) -> None:
        self._registry = registry
        self._view = view
        self._feed = feed

    async def Submit(self, request: Any, context: Any) -> registry_pb2.SubmitResponse:
        decision = await self._registry.submit(request.statement, submitter=submitter(context))
        head = self._view.log.head
        return registry_pb2.SubmitResponse(
            index=decision.index,
            tree_size=self._view.revision,
            root_hash=head.root if head is not None else b"",
            effect=decision.effect,
            proposal_id=decision.proposal,
            kind=decision.kind,
        )

    async def ListProvinces(self, request: Any, context: Any) -> registry_pb2.ListProvincesResponse:
        return registry_pb2.ListProvincesResponse(
            provinces=[wire.province_to_proto(p) for p in self._view.provinces()]
        )

    async def ListCertificates(
        self, request: Any, context: Any
    ) -> registry_pb2.ListCertificatesResponse:
        return registry_pb2.ListCertificatesResponse(
            certificates=[
                wire.signer_to_proto(s)
                for s in self._view.signers()
                if not request.province or s.province == request.province
            ]
        )

    async def ListCoordinators(
        self, request: Any, context: Any
    ) -> registry_pb2.ListCoordinatorsResponse:
        state = self._view.state
        now = time.time()
        return registry_pb2.ListCoordinatorsResponse(
            root_version=state.root_version,
            threshold=state.threshold,
            coordinators=[
                wire.coordinator_to_proto(
                    c,
                    revoked=state.caller_revoked(
                        issuer=ROOT_ISSUER, serial=c.certificate.serial_number, now=now
                    ),
                )
                for c in sorted(state.coordinators.values(), key=lambda c: c.name)
            ],
            root_certificates_pem=[wire.pem(r) for r in state.roots],
            coordinator_version=state.coordinator_version,
        )

    async def ListProposals(self, request: Any, context: Any) -> registry_pb2.ListProposalsResponse:
        state = self._view.state
        now = time.time()
        chosen = [
            p
            for p in sorted(state.proposals.values(), key=lambda p: p.index)
            if request.all or state.proposal_status(p, now=now) == "pending"
        ]
        return registry_pb2.ListProposalsResponse(
            proposals=[
                wire.proposal_to_proto(
                    p, status=state.proposal_status(p, now=now), threshold=state.threshold
                )
                for p in chosen
            ]
        )

    async def AuditLog(self, request: Any, context: Any) -> registry_pb2.AuditLogResponse:
        decisions = self._view.decisions[max(0, request.from_index) :]
        if request.limit > 0:
            decisions = decisions[: request.limit]
        problem = self._feed.reader.inconsistent
        head = self._view.log.head
        return registry_pb2.AuditLogResponse(
            entries=[wire.decision_to_proto(d) for d in decisions],
            intact=problem is None,
            problems=[f"{problem.key}: {problem.message}"] if problem is not None else [],
            tree_size=self._view.revision,
            root_hash=head.root if head is not None else b"",
        )

    async def GetLog(self, request: Any, context: Any) -> registry_pb2.GetLogResponse:
        verified = self._view.log
        start = request.from_index
        limit = request.limit or MAX_LOG_PAGE
        if start < 0 or not 0 < limit <= MAX_LOG_PAGE or request.proof_from < 0:
            raise InvalidRequest(f"from_index >= 0, 0 < limit <= {MAX_LOG_PAGE}, proof_from >= 0")
        proof: list[bytes] = []
        if 0 < request.proof_from <= verified.size:
            proof = verified.tree.consistency_proof(request.proof_from, verified.size)
        problem = self._feed.reader.inconsistent
        return registry_pb2.GetLogResponse(
            tree_head=verified.head.raw if verified.head is not None else b"",
            leaves=[leaf.raw for leaf in verified.leaves[start : start + limit]],
            consistency_proof=proof,
            intact=problem is None,
            problem=f"{problem.key}: {problem.message}" if problem is not None else "",
        )
