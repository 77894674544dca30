"""Cross-province assistance requests (跨省协查), checked the same way at every hop.

Only the code id and the event cross the border: which code, what kind of event, when and in
which district. The requesting province is never taken from the request: the gateway sets it
from the caller's certificate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from healthcode.v1 import gateway_pb2
from nodes.districts import check_district
from trust.errors import InvalidRequest
from trust.model import is_province_code

KINDS = ("close_contact", "confirmed_case", "risk_area_visit")
MAX_REQUEST_ID_CHARS = 128
CLOCK_SKEW_S = 300
MAX_AGE_S = 60 * 86_400  # an event older than 60 days is no longer news


@dataclass(frozen=True)
class AssistanceEvent:
    request_id: str
    province: str  # the province that issued the code
    code_id: bytes
    kind: str
    at: float
    district: str


def check_assistance(request: Any, *, now: float | None = None) -> AssistanceEvent:
    """The request's fields, checked; InvalidRequest names the bad one."""
    now = time.time() if now is None else now
    if not 0 < len(request.request_id) <= MAX_REQUEST_ID_CHARS:
        raise InvalidRequest(f"request_id must be 1 to {MAX_REQUEST_ID_CHARS} characters")
    if not is_province_code(request.province):
        raise InvalidRequest("province must be the GB/T 2260 code of the code's province")
    if len(request.code_id) != 16:
        raise InvalidRequest("code_id must be 16 bytes")
    if request.event_kind not in KINDS:
        raise InvalidRequest(f"event_kind must be one of {', '.join(KINDS)}")
    if request.event_at > now + CLOCK_SKEW_S:
        raise InvalidRequest("event_at is in the future")
    if request.event_at < now - MAX_AGE_S:
        raise InvalidRequest("event_at is more than 60 days ago")
    check_district(request.district, what="district")
    return AssistanceEvent(
        request.request_id,
        request.province,
        bytes(request.code_id),
        request.event_kind,
        float(request.event_at),
        request.district,
    )


def relay_request(event: AssistanceEvent, *, from_province: str) -> gateway_pb2.AssistanceRequest:
    """The request as it travels on: the checked fields and nothing else (no unknown field a
    caller added crosses the border), from ``from_province``."""
    return gateway_pb2.AssistanceRequest(
        request_id=event.request_id,
        province=event.province,
        code_id=event.code_id,
        event_kind=event.kind,
        event_at=int(event.at),
        district=event.district,
        from_province=from_province,
    )


def relay_ack(ack: gateway_pb2.AssistanceAck) -> gateway_pb2.AssistanceAck:
    """An acknowledgement as it travels back: its known fields only."""
    return gateway_pb2.AssistanceAck(
        request_id=ack.request_id,
        province=ack.province,
        duplicate=ack.duplicate,
        rule=ack.rule,
        colour=ack.colour,
        decision=ack.decision,
        status_version=ack.status_version,
    )
