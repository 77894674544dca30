"""The provincial node's contract (node.proto, and the CodeStatus and assistance messages it
answers with) to and from the domain: codes issued, statuses, health facts, the engine's views.
The one place a node converts; the verification messages are nodes/convert.py's."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from healthcode.v1 import common_pb2, gateway_pb2, node_pb2
from nodes.provincial.health.engine import CodeView, ImportResult, RiskArea, Statistics
from nodes.provincial.health.facts import CheckIn, Declaration, check_check_in, check_declaration
from nodes.provincial.issuance import IssuedCode
from nodes.provincial.stores import CodeRecord
from nodes.provincial.stores.health import EventRow
from trust.errors import InvalidRequest
from trust.model import Colour

MAX_IMPORT_ENTRIES = 20_000  # per call: a larger list comes in parts


def declaration_from_proto(message: Any, *, now: float) -> Declaration:
    if not message.residence:
        raise InvalidRequest("declaration.residence is required")
    return check_declaration(
        fever=message.fever,
        symptoms=list(message.symptoms),
        contact_with_confirmed_case=message.contact_with_confirmed_case,
        residence=message.residence,
        travel=[(v.district, float(v.at)) for v in message.travel],
        now=now,
    )


def declaration_to_proto(
    *,
    fever: bool,
    symptoms: Sequence[str],
    contact: bool,
    residence: str,
    travel: Sequence[tuple[str, int]],
) -> node_pb2.HealthDeclaration:
    """A client's declaration as the node takes it: (district, unix seconds) per visit. The
    node checks it (declaration_from_proto); a client only carries it."""
    return node_pb2.HealthDeclaration(
        fever=fever,
        symptoms=list(symptoms),
        contact_with_confirmed_case=contact,
        residence=residence,
        travel=[node_pb2.Visit(district=d, at=at) for d, at in travel],
    )


def check_in_from_proto(message: Any, *, now: float) -> CheckIn:
    return check_check_in(
        temperature_c=message.temperature_c, symptoms=list(message.symptoms), now=now
    )


def state_to_proto(view: CodeView, policy: str) -> node_pb2.CodeState:
    record, progress = view.record, view.progress
    state = node_pb2.CodeState(
        code_id=record.code_id,
        colour=int(record.colour),  # type: ignore[arg-type]
        reason=record.reason,
        status_version=record.status_version,
        policy=policy,
    )
    quarantine = view.state.active(record.status_version)
    if quarantine is not None and progress is not None:
        state.in_quarantine = True
        state.quarantine_rule = quarantine.rule
        state.quarantine_days = progress.length
        state.days_checked = progress.checked
        state.days_missed = progress.missed
        state.quarantine_started_at = int(quarantine.started_at)
        state.quarantine_ends_at = int(progress.ends_at)
        state.next_check_in_by = int(progress.next_check_in_by or 0)
    return state


def code_state_to_json(state: node_pb2.CodeState) -> dict[str, Any]:
    """A CodeState as the residents' page's JSON (colour by name, times in unix seconds)."""
    return {
        "colour": common_pb2.Colour.Name(state.colour),
        "reason": state.reason,
        "status_version": int(state.status_version),
        "in_quarantine": state.in_quarantine,
        "quarantine_rule": state.quarantine_rule,
        "quarantine_days": int(state.quarantine_days),
        "days_checked": int(state.days_checked),
        "days_missed": int(state.days_missed),
        "quarantine_started_at": int(state.quarantine_started_at),
        "quarantine_ends_at": int(state.quarantine_ends_at),
        "next_check_in_by": int(state.next_check_in_by),
        "policy": state.policy,
    }


def history_to_json(entries: Iterable[node_pb2.HistoryEntry]) -> list[dict[str, Any]]:
    return [
        {
            "at": int(h.at),
            "kind": h.kind,
            "colour": common_pb2.Colour.Name(h.colour_after),
            "words": h.words,
        }
        for h in entries
    ]


def history_to_proto(rows: list[EventRow]) -> list[node_pb2.HistoryEntry]:
    return [
        node_pb2.HistoryEntry(
            at=row.at,
            kind=row.kind,
            rule=row.rule,
            colour_before=int(row.colour_before),  # type: ignore[arg-type]
            colour_after=int(row.colour_after),  # type: ignore[arg-type]
            words=row.words,
        )
        for row in rows
    ]


def explain_in_words(
    history: list[node_pb2.HistoryEntry] | list[EventRow], *, when: Any
) -> list[str]:
    """One line per entry, for ``hcx node explain``: time, what, colour change, words."""
    lines = []
    for entry in history:
        before, after = Colour(entry.colour_before).name, Colour(entry.colour_after).name
        change = f"{before} → {after}" if before != after else after
        lines.append(f"{when(entry.at)}  {entry.kind:<13} {change:<16} {entry.words}")
    return lines


def risk_areas_from_proto(request: Any) -> list[RiskArea]:
    _bounded(len(request.areas), "areas")
    return [
        RiskArea(a.district, int(a.level), float(a.valid_from), float(a.valid_until))
        for a in request.areas
    ]


def holder_refs_from_proto(request: Any) -> list[bytes]:
    _bounded(len(request.holder_refs), "holder_refs")
    return list(request.holder_refs)


def _bounded(count: int, what: str) -> None:
    if not 0 < count <= MAX_IMPORT_ENTRIES:
        raise InvalidRequest(
            f"an import holds 1 to {MAX_IMPORT_ENTRIES} {what} per call, not {count}"
        )


def check_import_id(import_id: str) -> str:
    if not 0 < len(import_id) <= 128:
        raise InvalidRequest("import_id must be 1 to 128 characters")
    return import_id


def import_to_proto(result: ImportResult) -> node_pb2.ImportResponse:
    return node_pb2.ImportResponse(
        entries=result.entries,
        matched=result.matched,
        changed=result.changed,
        duplicate=result.duplicate,
    )


def statistics_to_proto(stats: Statistics) -> node_pb2.ProvinceStatistics:
    districts: dict[str, node_pb2.DistrictColours] = {}
    for district, colour, count in stats.by_district:
        row = districts.setdefault(district, node_pb2.DistrictColours(district=district))
        setattr(row, colour.lower(), count)
    return node_pb2.ProvinceStatistics(
        green=stats.by_colour.get("GREEN", 0),
        yellow=stats.by_colour.get("YELLOW", 0),
        red=stats.by_colour.get("RED", 0),
        in_quarantine=stats.in_quarantine,
        check_ins_due=stats.check_ins_due,
        check_ins_made=stats.check_ins_made,
        assistance_sent=stats.assistance_sent,
        assistance_received=stats.assistance_received,
        districts=list(districts.values()),
    )


def ack(
    request: Any,
    *,
    province: str,
    duplicate: bool,
    rule: str,
    colour: Colour,
    decision: str,
    status_version: int,
) -> gateway_pb2.AssistanceAck:
    return gateway_pb2.AssistanceAck(
        request_id=request.request_id,
        province=province,
        duplicate=duplicate,
        rule=rule,
        colour=int(colour),  # type: ignore[arg-type]
        decision=decision,
        status_version=status_version,
    )


def _wire(value: int) -> Any:
    """An enum number as protobuf takes it (the generated stubs type enums too narrowly)."""
    return int(value)


def colour_from_proto(value: int, *, default: Colour | None = None) -> Colour:
    """A domain colour; UNSPECIFIED only where a default exists."""
    if value == common_pb2.COLOUR_UNSPECIFIED and default is not None:
        return default
    try:
        return Colour(value)
    except ValueError as e:
        raise InvalidRequest(f"unknown colour {value}") from e


def code_id_from_proto(value: bytes) -> bytes:
    if len(value) != 16:
        raise InvalidRequest("code_id must be 16 bytes")
    return value


def status_to_proto(record: CodeRecord) -> common_pb2.CodeStatus:
    return common_pb2.CodeStatus(
        code_id=record.code_id,
        found=True,
        colour=_wire(record.colour),
        status_version=record.status_version,
        updated_at=int(record.updated_at),
    )


def issued_to_proto(issued: IssuedCode) -> node_pb2.IssueCodeResponse:
    return node_pb2.IssueCodeResponse(
        code_id=issued.record.code_id,
        token=issued.token,
        expires_at=issued.expires_at,
        colour=_wire(issued.record.colour),
        status_version=issued.record.status_version,
    )
