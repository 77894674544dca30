"""The Gateway service's rpcs, in groups: translate protobuf, call the domain, translate back.

``VerificationRpcs`` for checkpoints, ``NodeRegistrationRpcs`` for provincial nodes and
``AssistanceRpcs`` for assistance requests; with the trust list's (gateway.trustlist_service)
they are composed into one servicer by ``gateway.main.gateway_bindings`` (nodes.server.compose),
which lists everything a gateway serves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import grpc

from gateway.admission import Admission, AdmissionPolicy
from gateway.coalescer import Overloaded, StatusCoalescer
from gateway.metrics import ASSISTANCE, VERIFICATIONS, VERIFY_ITEMS, VERIFY_SECONDS
from gateway.relay import StatusRelay
from gateway.verification import (
    Outcome,
    VerifyPolicy,
    check_token,
    relay_deadline,
    resolve,
    verify_token,
    verify_tokens,
)
from healthcode.v1 import gateway_pb2
from nodes.assistance import check_assistance, relay_ack, relay_request
from nodes.convert import outcome_to_proto, refused_item, shed_item, validate_checkpoint
from nodes.grpc_edge import UpstreamRefused
from nodes.identity import Role, caller, require_province
from nodes.logging import code_ref
from nodes.ratelimit import Limit, RateLimiter
from trust.errors import InvalidRequest, IssuerUnavailable, PermissionDenied
from trust.model import Reason, Verdict, is_province_code
from trust.registry import Registry
from trust.view import TrustView

log = logging.getLogger(__name__)
# Metric children looked up once: labels() is a measurable cost per call.
UNARY_SECONDS = VERIFY_SECONDS.labels("Verify")
BATCH_SECONDS = VERIFY_SECONDS.labels("VerifyBatch")
STREAM_SECONDS = VERIFY_SECONDS.labels("VerifyStream")
BATCH_ITEMS = VERIFY_ITEMS.labels("VerifyBatch")

MAX_BATCH_TOKENS = 1000


@dataclass(frozen=True)
class ServingLimits:
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)  # gateway/admission.py
    stream_window: int = 256  # unanswered requests per VerifyStream before it stops reading
    check_workers: int = 2  # threads for batch signature checks (one per core)


def validate_tokens(tokens: list[str]) -> None:
    if not 0 < len(tokens) <= MAX_BATCH_TOKENS:
        raise InvalidRequest(f"a batch holds 1 to {MAX_BATCH_TOKENS} tokens, not {len(tokens)}")


def call_deadline(context: Any) -> float | None:
    """The caller's deadline as a monotonic time (None when the caller set none)."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


_COUNTERS: dict[tuple[str, Verdict, Reason], Any] = {}  # labels() is a hot-path cost: cache


def record(outcome: Outcome) -> None:
    """Count the verdict; log invalid codes by a hash of the code id, never personal data."""
    issuer = outcome.claims.issuer if outcome.claims else "unknown"
    key = (issuer, outcome.verdict, outcome.reason)
    counter = _COUNTERS.get(key)
    if counter is None:
        counter = _COUNTERS[key] = VERIFICATIONS.labels(issuer, key[1].name, key[2].name)
    counter.inc()
    if outcome.verdict is Verdict.INVALID and outcome.reason is not Reason.UNKNOWN_CODE:
        ref = code_ref(outcome.claims.code_id) if outcome.claims else "-"
        log.info(
            "invalid code",
            extra={"reason": outcome.reason.name, "issuer": issuer, "code": ref},
        )


class VerificationRpcs:
    """Verify, VerifyBatch and VerifyStream for checkpoints."""

    def __init__(
        self,
        *,
        view: TrustView,
        statuses: StatusCoalescer,
        policy: VerifyPolicy,
        executor: Executor | None,
        limits: ServingLimits,
        admission: Admission | None = None,
    ) -> None:
        self._view = view
        self._statuses = statuses
        self._policy = policy
        self._executor = executor
        self._limits = limits
        self._admission = admission or Admission(limits.admission)

    async def Verify(self, request: Any, context: Any) -> gateway_pb2.VerifyResponse:
        # One token: the batch-size rule (validate_tokens) holds by construction.
        validate_checkpoint(request.checkpoint_province, request.checkpoint_id)
        began = time.perf_counter()
        self._admission.admit("Verify", 1, remaining=context.time_remaining(), bulk=False)
        try:
            outcome = await verify_token(
                request.token,
                view=self._view,
                statuses=self._statuses,
                policy=self._policy,
                deadline=call_deadline(context),
            )
        finally:
            self._admission.release(1)
        UNARY_SECONDS.observe(time.perf_counter() - began)
        record(outcome)
        return outcome_to_proto(outcome)

    async def VerifyBatch(self, request: Any, context: Any) -> gateway_pb2.VerifyBatchResponse:
        validate_checkpoint(request.checkpoint_province, request.checkpoint_id)
        tokens = list(request.tokens)
        validate_tokens(tokens)
        began = time.perf_counter()
        self._admission.admit(
            "VerifyBatch", len(tokens), remaining=context.time_remaining(), bulk=True
        )
        try:
            outcomes = await verify_tokens(
                tokens,
                view=self._view,
                statuses=self._statuses,
                policy=self._policy,
                executor=self._executor,
                workers=self._limits.check_workers,
                deadline=call_deadline(context),
            )
        finally:
            self._admission.release(len(tokens))
        BATCH_SECONDS.observe(time.perf_counter() - began)
        BATCH_ITEMS.observe(len(tokens))
        for outcome in outcomes:
            record(outcome)
        return gateway_pb2.VerifyBatchResponse(results=[outcome_to_proto(o) for o in outcomes])

    async def VerifyStream(
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[gateway_pb2.VerifyStreamResponse]:
        """Answers as they complete; at most ``stream_window`` requests in progress per stream."""
        answers: asyncio.Queue[gateway_pb2.VerifyStreamResponse | BaseException | None]
        answers = asyncio.Queue()
        window = asyncio.Semaphore(self._limits.stream_window)
        reader = asyncio.create_task(self._read_stream(requests, context, answers, window))
        try:
            while (item := await answers.get()) is not None:
                if isinstance(item, BaseException):
                    raise item  # mapped at the edge (Overloaded → RESOURCE_EXHAUSTED)
                window.release()
                yield item
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read_stream(
        self,
        requests: AsyncIterator[Any],
        context: Any,
        answers: asyncio.Queue[gateway_pb2.VerifyStreamResponse | BaseException | None],
        window: asyncio.Semaphore,
    ) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for item in requests:
                await window.acquire()  # backpressure: stop reading while the window is full
                task = asyncio.create_task(self._stream_one(item, context, answers))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
            await answers.put(None)
        except Exception as e:  # handed to the writer, which maps it at the edge
            await answers.put(e)
        finally:
            for task in tasks:
                task.cancel()

    async def _stream_one(
        self,
        item: Any,
        context: Any,
        answers: asyncio.Queue[gateway_pb2.VerifyStreamResponse | BaseException | None],
    ) -> None:
        try:
            outcome = await self._stream_outcome(item, context)
            record(outcome)
            reply = gateway_pb2.VerifyStreamResponse(
                sequence=item.sequence, result=outcome_to_proto(outcome)
            )
            await answers.put(reply)
        except Exception as e:
            await answers.put(e)

    async def _stream_outcome(self, item: Any, context: Any) -> Outcome:
        """The item's own answer: a bad item and a shed item are answered too, and the stream
        goes on with its other items."""
        try:
            validate_checkpoint(item.request.checkpoint_province, item.request.checkpoint_id)
        except InvalidRequest as e:
            return refused_item(e)
        began = time.perf_counter()
        try:
            self._admission.admit("VerifyStream", 1, remaining=None, bulk=True)
        except Overloaded as e:
            return shed_item(e)
        try:
            outcome = await verify_one(
                item.request.token, self._view, self._statuses, self._policy, context
            )
        finally:
            self._admission.release(1)
        STREAM_SECONDS.observe(time.perf_counter() - began)
        return outcome


async def verify_one(
    token: str, view: TrustView, statuses: StatusCoalescer, policy: VerifyPolicy, context: Any
) -> Outcome:
    """One streamed code: the stream's deadline bounds the wait, and so does the policy."""
    now = time.time()
    checked = check_token(token, view, now)
    until = relay_deadline(policy, call_deadline(context))
    return await resolve(checked, statuses=statuses, policy=policy, now=now, deadline=until)


class NodeRegistrationRpcs:
    """RegisterNode and its lease for provincial nodes: registrations belong to the verified
    identity that made them, and nodes only ever see a random handle, never a lease id."""

    def __init__(self, *, registry: Registry) -> None:
        self._registry = registry

    async def RegisterNode(self, request: Any, context: Any) -> gateway_pb2.RegisterNodeResponse:
        require_province(request.province, action="register a node")
        handle, ttl = await self._registry.register_node(
            owner=_owner() or f"spiffe://hcx/province/{request.province}/node/{request.node_id}",
            province=request.province,
            node_id=request.node_id,
            endpoint=request.endpoint,
            ttl_seconds=request.ttl_seconds,
        )
        return gateway_pb2.RegisterNodeResponse(handle=handle, ttl_seconds=ttl)

    async def KeepAliveNode(self, request: Any, context: Any) -> gateway_pb2.KeepAliveNodeResponse:
        ttl = await self._registry.keep_alive(owner=_owner(), handle=request.handle)
        return gateway_pb2.KeepAliveNodeResponse(ttl_seconds=ttl)

    async def DeregisterNode(
        self, request: Any, context: Any
    ) -> gateway_pb2.DeregisterNodeResponse:
        await self._registry.deregister(owner=_owner(), handle=request.handle)
        return gateway_pb2.DeregisterNodeResponse()


ASSISTANCE_LIMIT = Limit(rate=20.0, burst=100.0)  # per caller, on top of its role's rate
ASSISTANCE_DEADLINE_S = 10.0


class AssistanceRpcs:
    """RequestAssistance: authorize, rate-limit, relay to the code's province, audit."""

    def __init__(self, *, relay: StatusRelay, limiter: RateLimiter | None = None) -> None:
        self._relay = relay
        limit = {Role.NODE: ASSISTANCE_LIMIT, Role.AUTHORITY: ASSISTANCE_LIMIT}
        self._limiter = limiter or RateLimiter(limit)

    async def RequestAssistance(self, request: Any, context: Any) -> gateway_pb2.AssistanceAck:
        event = check_assistance(request)
        who = caller()
        if who is not None:
            if who.province is None:
                raise PermissionDenied(f"{who} is not of a province", reason=Reason.WRONG_ROLE)
            from_province = who.province  # never the request's word for it
            self._limiter.take(who)
        elif is_province_code(request.from_province):  # a development server: no identities
            from_province = request.from_province
        else:
            raise InvalidRequest("from_province is required without mTLS identities")
        if event.province == from_province:
            raise InvalidRequest("a province does not ask itself for assistance")
        relayed = relay_request(event, from_province=from_province)
        remaining = context.time_remaining()
        budget = min(
            remaining if remaining is not None else ASSISTANCE_DEADLINE_S, ASSISTANCE_DEADLINE_S
        )
        audit = {
            "actor": _owner() or from_province,
            "from_province": from_province,
            "to_province": event.province,
            "code": event.code_id.hex(),
            "event_kind": event.kind,
            "assistance_request": event.request_id,
        }
        try:
            ack = await self._relay.assistance(relayed, deadline=time.monotonic() + budget)
        except grpc.aio.AioRpcError as e:
            ASSISTANCE.labels(from_province, event.province, e.code().name).inc()
            log.warning(
                "audit assistance refused by the province",
                extra={**audit, "outcome": e.code().name},
            )
            raise UpstreamRefused(e, f"province {event.province}") from e
        except IssuerUnavailable:
            ASSISTANCE.labels(from_province, event.province, "UNAVAILABLE").inc()
            log.warning("audit assistance not delivered", extra={**audit, "outcome": "UNAVAILABLE"})
            raise
        outcome = "duplicate" if ack.duplicate else "ok"
        ASSISTANCE.labels(from_province, event.province, outcome).inc()
        log.info("audit assistance relayed", extra={**audit, "outcome": outcome, "rule": ack.rule})
        return relay_ack(ack)


def _owner() -> str | None:
    """The caller's SPIFFE id; None on a development server without identities."""
    who = caller()
    return who.spiffe_id if who is not None else None
