"""Verdicts to protobuf, at the edge: one conversion for the gateway and the nodes."""

from __future__ import annotations

from typing import Any

from healthcode.v1 import gateway_pb2
from trust.verify import Outcome


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
