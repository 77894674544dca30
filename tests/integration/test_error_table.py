"""One exception-to-status table, and no way around it: every hcx error a handler raises, through
a real gRPC server assembled by nodes.server.build_server on 127.0.0.1, answers with the status
code this file states and a google.rpc.ErrorInfo carrying the error's stable reason.

The errors are found, not listed: every module of the product is imported and every subclass of
HcxError collected, so a new error family without a row here (and in nodes.grpc_edge.STATUS_OF)
fails this test. A refused statement answers by its authority-table reason; an upstream's
refusal passes on as nodes.grpc_edge.forwarded_status says; anything else is INTERNAL.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import gateway
import hcx
import nodes
import trust
import web
from healthcode.v1 import gateway_pb2, gateway_pb2_grpc
from nodes.grpc_edge import REFUSAL_STATUS, UpstreamRefused, reason_of, to_status
from nodes.server import RunningServer, ServiceBinding, build_server
from nodes.tls import Transport
from trust.authority import Refused
from trust.errors import HcxError
from trust.model import Reason
from trust.registry import RefusedStatement

pytestmark = pytest.mark.integration

C = grpc.StatusCode
# The contract: what each family of error is on the wire (docs/verdicts.md).
EXPECTED: dict[str, grpc.StatusCode] = {
    "trust.errors.DecodeError": C.INVALID_ARGUMENT,
    "trust.errors.VerificationError": C.INVALID_ARGUMENT,
    "trust.errors.PkiError": C.INVALID_ARGUMENT,
    "trust.errors.InvalidRequest": C.INVALID_ARGUMENT,
    "nodes.provincial.health.policy.PolicyError": C.INVALID_ARGUMENT,
    "trust.errors.NotFound": C.NOT_FOUND,
    "trust.errors.Conflict": C.ALREADY_EXISTS,
    "trust.errors.Unauthenticated": C.UNAUTHENTICATED,
    "trust.errors.PermissionDenied": C.PERMISSION_DENIED,
    "trust.errors.StoreUnavailable": C.UNAVAILABLE,
    "trust.errors.IssuerUnavailable": C.UNAVAILABLE,
    "trust.errors.ResourceExhausted": C.RESOURCE_EXHAUSTED,
    "gateway.coalescer.Overloaded": C.RESOURCE_EXHAUSTED,
    "trust.errors.NotConfigured": C.FAILED_PRECONDITION,
    "trust.log.LogInconsistent": C.FAILED_PRECONDITION,
    "trust.merkle.ProofError": C.FAILED_PRECONDITION,
    "trust.trustlist.TrustListError": C.FAILED_PRECONDITION,
    "trust.errors.RelayError": C.INTERNAL,
    # by their reason: see test_a_refused_statement_answers_by_its_reason
    "trust.registry.RefusedStatement": C.INVALID_ARGUMENT,
    "trust.authority.Refused": C.INVALID_ARGUMENT,
}
RETRY_AFTER = {"StoreUnavailable": 1.0, "IssuerUnavailable": 1.0}


def _import_everything() -> None:
    for package in (trust, nodes, gateway, web, hcx):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith(".__main__"):  # a __main__ runs its command
                importlib.import_module(module.name)


def _subclasses(cls: type[HcxError]) -> Iterator[type[HcxError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


_import_everything()
ERRORS = sorted({f"{c.__module__}.{c.__qualname__}": c for c in _subclasses(HcxError)}.items())


class Raising(gateway_pb2_grpc.GatewayServicer):
    """A gateway whose Verify and VerifyStream raise whatever the test last gave it."""

    def __init__(self) -> None:
        self.error: Exception = RuntimeError("unset")

    async def Verify(self, request: Any, context: Any) -> gateway_pb2.VerifyResponse:
        raise self.error

    async def VerifyStream(self, requests: Any, context: Any) -> AsyncIterator[Any]:
        async for _ in requests:
            raise self.error
        yield gateway_pb2.VerifyStreamResponse()  # pragma: no cover - never reached


@pytest.fixture
async def server() -> AsyncIterator[tuple[Raising, RunningServer, grpc.aio.Channel]]:
    servicer = Raising()
    binding = ServiceBinding(
        gateway_pb2_grpc.add_GatewayServicer_to_server, servicer, "healthcode.v1.Gateway"
    )
    transport = Transport.insecure_dev_only()
    running = await build_server([binding], listen="127.0.0.1:0", transport=transport)
    channel = transport.aio_channel(f"127.0.0.1:{running.port}")
    try:
        yield servicer, running, channel
    finally:
        await channel.close()
        await running.stop(None)


async def _call(
    server: tuple[Raising, RunningServer, grpc.aio.Channel], error: Exception, *, stream: bool
) -> grpc.aio.AioRpcError:
    servicer, _, channel = server
    servicer.error = error
    stub = gateway_pb2_grpc.GatewayStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        if stream:
            call = stub.VerifyStream(iter([gateway_pb2.VerifyStreamRequest(sequence=1)]), timeout=5)
            async for _ in call:
                pass
        else:
            await stub.Verify(gateway_pb2.VerifyRequest(token="HCX1:x"), timeout=5)
    return failed.value


def _retry_after(error: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(error)
    assert status is not None, "every refusal carries a google.rpc.Status"
    for detail in status.details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            return retry.retry_delay.ToNanoseconds() / 1e9
    return None


def test_every_error_family_has_a_stated_status() -> None:
    found = {name for name, _ in ERRORS}
    assert found - set(EXPECTED) == set(), "an error without a row: add it here and in STATUS_OF"
    assert set(EXPECTED) - found == set(), "a row for an error that no longer exists"


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize(("name", "cls"), ERRORS, ids=[name for name, _ in ERRORS])
async def test_every_error_answers_with_its_code_and_reason(
    server: Any, name: str, cls: type[HcxError], stream: bool
) -> None:
    error = cls(f"{cls.__name__} raised by the handler")
    failed = await _call(server, error, stream=stream)
    assert failed.code() == EXPECTED[name]
    assert reason_of(failed) == error.reason
    assert failed.details() == f"{cls.__name__} raised by the handler"
    assert _retry_after(failed) == RETRY_AFTER.get(cls.__name__, error.retry_after)


@pytest.mark.parametrize("cls", [RefusedStatement, Refused])
@pytest.mark.parametrize("reason", list(Reason), ids=[r.name for r in Reason])
async def test_a_refused_statement_answers_by_its_reason(
    server: Any, cls: type[HcxError], reason: Reason
) -> None:
    failed = await _call(server, cls("refused by the authority table", reason=reason), stream=False)
    assert failed.code() == REFUSAL_STATUS.get(reason, C.INVALID_ARGUMENT)
    assert reason_of(failed) == reason


async def test_the_table_reads_as_the_contract_says_for_refusals() -> None:
    """REFUSAL_STATUS, restated: who may not (PERMISSION_DENIED), said twice (ALREADY_EXISTS),
    too late (FAILED_PRECONDITION), about nothing known (NOT_FOUND)."""
    assert {r.name: c.name for r, c in REFUSAL_STATUS.items()} == {
        "WRONG_ROLE": "PERMISSION_DENIED", "WRONG_PROVINCE": "PERMISSION_DENIED",
        "UNKNOWN_SIGNER": "PERMISSION_DENIED", "SIGNER_REVOKED": "PERMISSION_DENIED",
        "REPLAYED": "ALREADY_EXISTS", "ALREADY_EXISTS": "ALREADY_EXISTS",
        "STALE_PROPOSAL": "FAILED_PRECONDITION", "PROPOSAL_CLOSED": "FAILED_PRECONDITION",
        "NOT_FOUND": "NOT_FOUND", "UNKNOWN_KID": "NOT_FOUND", "UNKNOWN_PROVINCE": "NOT_FOUND",
    }  # fmt: skip


def _upstream_failure(code: grpc.StatusCode, reason: Reason) -> grpc.aio.AioRpcError:
    status = to_status(code, "the upstream said no", reason)
    return grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("code", "reason", "answered", "answered_reason"),
    [
        (C.INVALID_ARGUMENT, Reason.BAD_SIGNATURE, C.INVALID_ARGUMENT, Reason.BAD_SIGNATURE),
        (C.UNAVAILABLE, Reason.ISSUER_UNAVAILABLE, C.UNAVAILABLE, Reason.ISSUER_UNAVAILABLE),
        # this server's own certificate refused upstream is not the caller's revocation
        (C.PERMISSION_DENIED, Reason.CALLER_REVOKED, C.INTERNAL, Reason.INTERNAL_ERROR),
        (C.RESOURCE_EXHAUSTED, Reason.RATE_LIMITED, C.RESOURCE_EXHAUSTED, Reason.OVERLOADED),
    ],
)
async def test_an_upstream_refusal_passes_on_through_the_same_edge(
    server: Any,
    code: grpc.StatusCode,
    reason: Reason,
    answered: grpc.StatusCode,
    answered_reason: Reason,
) -> None:
    upstream = UpstreamRefused(_upstream_failure(code, reason), "national gateway")
    failed = await _call(server, upstream, stream=False)
    assert failed.code() == answered
    assert reason_of(failed) == answered_reason
    assert failed.details().startswith("national gateway")


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
async def test_anything_else_is_internal_and_keeps_its_message_to_itself(
    server: Any, stream: bool
) -> None:
    failed = await _call(server, KeyError("secret detail"), stream=stream)
    assert failed.code() == C.INTERNAL
    assert reason_of(failed) == Reason.INTERNAL_ERROR
    assert "secret" not in (failed.details() or "")
