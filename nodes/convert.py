"""The verification contract (common.proto, gateway.proto) to and from the domain, at the edge:
one conversion for the gateway, the nodes, the station and the command line, and one check of
a verification request's checkpoint fields, the same at both servers."""

from __future__ import annotations

from typing import Any

from healthcode.v1 import common_pb2, gateway_pb2
from trust.errors import InvalidRequest, ResourceExhausted
from trust.model import Colour, Reason, Verdict, is_province_code
from trust.verify import LiveStatus, Outcome

MAX_CHECKPOINT_ID_CHARS = 64


def validate_checkpoint(province: str, checkpoint_id: str) -> None:
    """The checkpoint fields of a verification request: an empty or GB/T 2260 province code,
    and a printable name of at most 64 characters (InvalidRequest otherwise)."""
    if province and (len(province) != 6 or not is_province_code(province)):
        raise InvalidRequest("checkpoint_province must be a GB/T 2260 province code")
    if len(checkpoint_id) > MAX_CHECKPOINT_ID_CHARS or not checkpoint_id.isprintable():
        raise InvalidRequest(
            f"checkpoint_id must be printable text of at most {MAX_CHECKPOINT_ID_CHARS} characters"
        )


def refused_item(error: InvalidRequest) -> Outcome:
    """A bad item of a stream gets its own INVALID answer; the stream goes on."""
    return Outcome(Verdict.INVALID, Reason.INVALID_REQUEST, error.message)


def shed_item(error: ResourceExhausted) -> Outcome:
    """A stream item refused at capacity gets its own INVALID/OVERLOADED answer (retry it);
    the stream and the items already admitted go on."""
    return Outcome(Verdict.INVALID, Reason.OVERLOADED, error.message)


def outcome_to_proto(outcome: Outcome) -> gateway_pb2.VerifyResponse:
    """The VerifyResponse of a verdict (enum numbers equal trust.model's)."""
    fields: dict[str, Any] = {
        "verdict": int(outcome.verdict),
        "reason": int(outcome.reason),
        "message": outcome.message,
        "kid": outcome.kid,
        "status_version": outcome.status_version,
        "colour_age_seconds": outcome.colour_age,
    }
    if outcome.colour is not None:
        fields["colour"] = int(outcome.colour)
    response = gateway_pb2.VerifyResponse(**fields)
    if outcome.claims is not None:
        response.issuer = outcome.claims.issuer
        response.masked_name = outcome.claims.masked_name
        response.id_tail = outcome.claims.id_tail
        response.expires_at = outcome.claims.expires_at
    return response


def live_statuses_from_proto(reply: Any) -> dict[bytes, LiveStatus]:
    """A province's GetStatusBatch answer (common.CodeStatus each), by code id."""
    return {
        s.code_id: LiveStatus(
            s.found, Colour(s.colour) if s.found else None, s.status_version, s.updated_at
        )
        for s in reply.statuses
    }


def verdict_to_json(
    reply: gateway_pb2.VerifyResponse, *, source: str, scans: int
) -> dict[str, Any]:
    """A VerifyResponse as the staff page's JSON: the same verdicts, reasons and fields (a
    refusal carries no colour or holder fields; ``source`` says who decided)."""
    valid = reply.verdict in (common_pb2.VALID, common_pb2.VALID_OFFLINE)
    return {
        "verdict": common_pb2.Verdict.Name(reply.verdict),
        "reason": common_pb2.Reason.Name(reply.reason) if not valid else "",
        "message": reply.message,
        "colour": common_pb2.Colour.Name(reply.colour) if valid else "",
        "colour_age_seconds": int(reply.colour_age_seconds),
        "issuer": reply.issuer,
        "masked_name": reply.masked_name if valid else "",
        "id_tail": reply.id_tail if valid else "",
        "source": source,
        "scans": scans,
    }


def verdict_in_words(reply: gateway_pb2.VerifyResponse) -> str:
    """A VerifyResponse as one line for a person: the verdict, then the reason or the colour."""
    verdict = common_pb2.Verdict.Name(reply.verdict)
    if reply.verdict == common_pb2.INVALID:
        return f"{verdict} {common_pb2.Reason.Name(reply.reason)}: {reply.message}"
    colour = common_pb2.Colour.Name(reply.colour)
    age = (
        f" (colour {reply.colour_age_seconds} s old)"
        if reply.verdict == common_pb2.VALID_OFFLINE
        else ""
    )
    return (
        f"{verdict} {colour}{age} issuer {reply.issuer} holder {reply.masked_name} …{reply.id_tail}"
    )
