"""ProvincialNode servicer: thin translation between protobuf and the issuer / status store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, node_pb2, node_pb2_grpc
from nodes.assistance import check_assistance, relay_request
from nodes.convert import outcome_to_proto, validate_checkpoint
from nodes.grpc_edge import UpstreamRefused
from nodes.identity import CALLER
from nodes.provincial import metrics, wire
from nodes.provincial.checkpoint import LocalVerifier
from nodes.provincial.group_commit import IssueQueue
from nodes.provincial.health.engine import ColourEngine, check_request_id
from nodes.provincial.issuance import Holder, Issuer, check_holder
from nodes.provincial.stores import StatusStore
from trust.errors import InvalidRequest, NotConfigured
from trust.model import Colour, is_province_code

MAX_BATCH = 1000
MAX_REASON_CHARS = 200
_T = TypeVar("_T")


class ProvincialNodeServicer(node_pb2_grpc.ProvincialNodeServicer):
    """The province's API for its operators, its checkpoints and the national gateway."""

    def __init__(
        self,
        *,
        issuer: Issuer,
        store: StatusStore,
        verifier: LocalVerifier | None = None,
        gateway: gateway_pb2_grpc.GatewayStub | None = None,
        clock: Callable[[], float] = time.time,
        engine: ColourEngine | None = None,
    ) -> None:
        self._issuer = issuer
        self._issues = IssueQueue(issuer)  # concurrent calls share a durable commit
        self._province = issuer.province
        self._store = store
        self._verifier = verifier
        self._gateway = gateway
        self._clock = clock
        self._engine = engine

    async def _run(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a store call; in a thread when it waits on the network (PostgreSQL)."""
        if self._store.blocking:
            return await asyncio.to_thread(call, *args, **kwargs)
        return call(*args, **kwargs)

    async def IssueCode(self, request: Any, context: Any) -> node_pb2.IssueCodeResponse:
        colour = wire.colour_from_proto(request.colour, default=Colour.GREEN)
        issued = await self._issues.issue(Holder(request.id_number, request.full_name, colour))
        metrics.CODES_ISSUED.labels(self._province, "issue").inc()
        return wire.issued_to_proto(issued)

    async def RefreshCode(self, request: Any, context: Any) -> node_pb2.IssueCodeResponse:
        code_id = wire.code_id_from_proto(request.code_id)
        issued = await self._run(self._issuer.refresh, code_id)
        metrics.CODES_ISSUED.labels(self._province, "refresh").inc()
        return wire.issued_to_proto(issued)

    async def SetStatus(self, request: Any, context: Any) -> node_pb2.SetStatusResponse:
        if len(request.reason) > MAX_REASON_CHARS:
            raise InvalidRequest(f"reason is longer than {MAX_REASON_CHARS} characters")
        change = await self._run(
            self._store.set_colour,
            code_id=wire.code_id_from_proto(request.code_id),
            colour=wire.colour_from_proto(request.colour),
            reason=request.reason or "unspecified",
            request_id=request.request_id or str(uuid.uuid4()),
            now=self._clock(),
        )
        if change.applied:  # a replayed request id changed nothing: not counted again
            colour = change.record.colour.name
            metrics.COLOUR_CHANGES.labels(self._province, colour, "operator").inc()
        return node_pb2.SetStatusResponse(status=wire.status_to_proto(change.record))

    async def GetStatus(self, request: Any, context: Any) -> common_pb2.CodeStatus:
        code_id = wire.code_id_from_proto(request.code_id)
        with metrics.LOOKUP_SECONDS.labels(self._province, "GetStatus").time():
            record = await self._run(self._store.get, code_id)
        if record is None:
            return common_pb2.CodeStatus(code_id=code_id, found=False)
        return wire.status_to_proto(record)

    async def GetStatusBatch(self, request: Any, context: Any) -> node_pb2.GetStatusBatchResponse:
        ids = list(request.code_ids)
        if not 0 < len(ids) <= MAX_BATCH:
            raise InvalidRequest(f"a batch holds 1 to {MAX_BATCH} code ids, not {len(ids)}")
        with metrics.LOOKUP_SECONDS.labels(self._province, "GetStatusBatch").time():
            found = await self._run(self._store.get_many, [wire.code_id_from_proto(i) for i in ids])
        return node_pb2.GetStatusBatchResponse(
            statuses=[
                wire.status_to_proto(found[i]) if i in found else common_pb2.CodeStatus(code_id=i)
                for i in ids
            ]
        )

    async def Verify(self, request: Any, context: Any) -> gateway_pb2.VerifyResponse:
        # The same request rules as the gateway's: bad checkpoint fields are the request's
        # error; any token, even an empty one, gets a verdict (BAD_ENCODING).
        validate_checkpoint(request.checkpoint_province, request.checkpoint_id)
        if self._verifier is not None:
            with metrics.LOOKUP_SECONDS.labels(self._province, "Verify").time():
                local = await self._run(self._verifier.check, request.token)
            if local is not None:  # None: only the national gateway can decide
                return outcome_to_proto(local)
        return await self._forward(request, context)

    async def _forward(self, request: Any, context: Any) -> gateway_pb2.VerifyResponse:
        """Ask the national gateway, within what is left of the checkpoint's deadline."""
        if self._gateway is None:
            raise NotConfigured("this node has no national gateway (--gateway) to ask")
        remaining = context.time_remaining()
        try:
            reply: gateway_pb2.VerifyResponse = await self._gateway.Verify(
                request, timeout=remaining if remaining is not None else 5.0
            )
        except grpc.aio.AioRpcError as e:
            # The gateway's status is the answer: a refusal of the request passes on with its
            # reason and retry advice, a refusal of this node does not (grpc_edge.forwarded_status).
            raise UpstreamRefused(e, "national gateway") from e
        return reply

    # -- how a code gets its colour (docs/colour-policy.md) ----------------------------------------
    def _colours(self) -> ColourEngine:
        if self._engine is None:
            raise NotConfigured("this node runs no colour policy")
        return self._engine

    def _state(self, view: Any) -> node_pb2.CodeState:
        return wire.state_to_proto(view, self._colours().policy.label)

    async def ApplyCode(self, request: Any, context: Any) -> node_pb2.ApplyCodeResponse:
        engine = self._colours()
        holder = check_holder(Holder(request.id_number, request.full_name))
        declaration = wire.declaration_from_proto(request.declaration, now=self._clock())
        request_id = check_request_id(request.request_id)
        issued, view = await self._run(engine.apply, holder, declaration, request_id)
        metrics.CODES_ISSUED.labels(self._province, "apply").inc()
        return node_pb2.ApplyCodeResponse(
            code=wire.issued_to_proto(issued), state=self._state(view)
        )

    async def CheckIn(self, request: Any, context: Any) -> node_pb2.CodeState:
        engine = self._colours()
        code_id = wire.code_id_from_proto(request.code_id)
        check = wire.check_in_from_proto(request, now=self._clock())
        view = await self._run(
            engine.check_in, code_id, check, check_request_id(request.request_id)
        )
        metrics.CHECK_INS.labels(self._province).inc()
        return self._state(view)

    async def GetCodeState(self, request: Any, context: Any) -> node_pb2.CodeState:
        view = await self._run(self._colours().view, wire.code_id_from_proto(request.code_id))
        return self._state(view)

    async def ExplainCode(self, request: Any, context: Any) -> node_pb2.ExplainCodeResponse:
        engine = self._colours()
        code_id = wire.code_id_from_proto(request.code_id)
        view = await self._run(engine.view, code_id)
        history = await self._run(engine.history, code_id)
        return node_pb2.ExplainCodeResponse(
            state=self._state(view), history=wire.history_to_proto(history)
        )

    async def ImportRiskAreas(self, request: Any, context: Any) -> node_pb2.ImportResponse:
        engine = self._colours()
        import_id = wire.check_import_id(request.import_id)
        areas = wire.risk_areas_from_proto(request)
        result = await self._run(engine.import_risk_areas, areas, import_id)
        await self._audit("risk-areas-imported", import_id, result)
        return wire.import_to_proto(result)

    async def ImportCloseContacts(self, request: Any, context: Any) -> node_pb2.ImportResponse:
        engine = self._colours()
        import_id = wire.check_import_id(request.import_id)
        refs = wire.holder_refs_from_proto(request)
        result = await self._run(
            engine.import_close_contacts,
            refs,
            listed_at=float(request.listed_at),
            import_id=import_id,
        )
        await self._audit("close-contacts-imported", import_id, result)
        return wire.import_to_proto(result)

    async def _audit(self, action: str, subject: str, result: Any) -> None:
        outcome = f"{result.entries} entries, {result.matched} codes, {result.changed} changed"
        await self._run(self._colours().audit, _caller(), action, subject, outcome)

    async def ReceiveAssistance(self, request: Any, context: Any) -> gateway_pb2.AssistanceAck:
        """From the national gateway: another province's report about one of our codes. The
        decision and its audit row are written in one transaction; a duplicate is audited too."""
        engine = self._colours()
        event = check_assistance(request, now=self._clock())
        if event.province != self._province:
            raise InvalidRequest(f"the code is of province {event.province}, not {self._province}")
        origin = request.from_province
        if not is_province_code(origin) or origin == self._province:
            raise InvalidRequest(
                "from_province must be the requesting province (set by the gateway)"
            )
        view, duplicate = await self._run(
            engine.assistance, event, from_province=origin, actor=_caller()
        )
        latest = await self._run(engine.history, event.code_id, 1)
        last = latest[-1] if latest else None
        decided = last is not None and last.kind == "assistance"
        decision = (
            last.words if last is not None and decided else f"colour {view.record.colour.name}"
        )
        if duplicate:
            await self._run(
                engine.audit,
                f"{_caller()} for {origin}",
                "assistance-duplicate",
                f"{event.code_id.hex()} {event.kind} {event.district} #{event.request_id}",
                decision,
            )
        else:
            metrics.ASSISTANCE.labels(self._province, "received").inc()
        return wire.ack(
            request,
            province=self._province,
            duplicate=duplicate,
            rule=last.rule if last is not None and decided else "",
            colour=view.record.colour,
            decision=decision,
            status_version=view.record.status_version,
        )

    async def SendAssistance(self, request: Any, context: Any) -> gateway_pb2.AssistanceAck:
        """From this province's health authority: ask another province, through the gateway."""
        engine = self._colours()
        event = check_assistance(request, now=self._clock())
        if event.province == self._province:
            raise InvalidRequest("the code is of this province: import the event here instead")
        if self._gateway is None:
            raise NotConfigured("this node has no national gateway (--gateway) to ask")
        relayed = relay_request(event, from_province=self._province)  # never the caller's word
        remaining = context.time_remaining()
        try:
            reply: gateway_pb2.AssistanceAck = await self._gateway.RequestAssistance(
                relayed, timeout=remaining if remaining is not None else 10.0
            )
        except grpc.aio.AioRpcError as e:
            await self._run(
                engine.audit,
                _caller(),
                "assistance-failed",
                f"{event.province} {event.code_id.hex()} #{event.request_id}",
                e.code().name,
            )
            raise UpstreamRefused(e, "national gateway") from e
        if not reply.duplicate:
            metrics.ASSISTANCE.labels(self._province, "sent").inc()
        await self._run(
            engine.audit,
            _caller(),
            "assistance-sent",
            f"{event.province} {event.code_id.hex()} {event.kind} #{event.request_id}",
            f"{'duplicate; ' if reply.duplicate else ''}{reply.decision}",
        )
        return reply

    async def GetStatistics(self, request: Any, context: Any) -> node_pb2.ProvinceStatistics:
        return wire.statistics_to_proto(await self._run(self._colours().statistics))


def _caller() -> str:
    caller = CALLER.get(None)
    return caller.spiffe_id if caller is not None else "unauthenticated (development)"
