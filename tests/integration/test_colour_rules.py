"""Colours by rules over real gRPC: who may apply, check in, import and ask for assistance,
tried as an attacker would, and a quarantine that ends on its own on a running node."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import grpc
import pytest

from hcx.cmd_health import hash_ids
from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, node_pb2, node_pb2_grpc
from nodes.provincial.keys import ProvinceDir
from simulations.inprocess import Federation
from tests.support import error_reason, wait_for

pytestmark = pytest.mark.integration

ZJ, SC = "330000", "510000"
ZJ_DISTRICT, SC_DISTRICT = "330106", "510104"


def declaration(**fields: Any) -> node_pb2.HealthDeclaration:
    return node_pb2.HealthDeclaration(residence=fields.pop("residence", ZJ_DISTRICT), **fields)


APPLIED: dict[bytes, str] = {}  # code id -> the ID number it was applied for


async def apply(
    federation: Federation, province: str, stub: Any = None, **fields: Any
) -> node_pb2.ApplyCodeResponse:
    id_number, name = federation.holder(province)
    residence = ZJ_DISTRICT if province == ZJ else SC_DISTRICT
    request = node_pb2.ApplyCodeRequest(
        id_number=id_number,
        full_name=name,
        declaration=declaration(residence=residence, **fields),
        request_id=str(uuid.uuid4()),
    )
    reply: node_pb2.ApplyCodeResponse = await (stub or federation.nodes[province].stub).ApplyCode(
        request, timeout=5
    )
    APPLIED[reply.code.code_id] = id_number
    return reply


def authority(federation: Federation, province: str) -> node_pb2_grpc.ProvincialNodeStub:
    return federation.node_stub(province, federation.identity("authority", province, "health"))


def assistance(code_id: bytes, province: str, **fields: Any) -> gateway_pb2.AssistanceRequest:
    values: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "province": province,
        "code_id": code_id,
        "event_kind": "close_contact",
        "event_at": int(time.time()) - 3600,
        "district": ZJ_DISTRICT,
    }
    values.update(fields)
    return gateway_pb2.AssistanceRequest(**values)


async def refused(call: Any, code: grpc.StatusCode, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    assert error_reason(caught.value) == reason


async def test_a_declared_fever_makes_a_yellow_code_the_gateway_verifies(
    federation: Federation,
) -> None:
    reply = await apply(federation, ZJ, fever=True)
    assert reply.state.colour == common_pb2.YELLOW and reply.code.colour == common_pb2.YELLOW
    assert reply.state.in_quarantine and reply.state.quarantine_days == 7
    assert reply.state.quarantine_rule == "fever-declared" and reply.state.policy == "* v1"
    verdict = await federation.checkpoint_stub(SC).Verify(
        gateway_pb2.VerifyRequest(
            token=reply.code.token, checkpoint_province=SC, checkpoint_id="t"
        ),
        timeout=5,
    )
    assert verdict.verdict == common_pb2.VALID and verdict.colour == common_pb2.YELLOW
    explained = await federation.nodes[ZJ].stub.ExplainCode(
        node_pb2.GetCodeStateRequest(code_id=reply.code.code_id), timeout=5
    )
    assert [(e.kind, e.rule) for e in explained.history] == [("declaration", "fever-declared")]


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("residence", "999999", "not a GB/T 2260"),
        ("residence", "330000", "county-level"),
        ("symptoms", ["headache; DROP TABLE codes"], "unknown symptom"),
        ("travel", [node_pb2.Visit(district="420106", at=int(time.time()) + 86400)], "future"),
        ("travel", [node_pb2.Visit(district="420106", at=1)] * 31, "at most 30"),
        ("symptoms", ["cough"] * 50, "at most"),
    ],
)
async def test_hostile_declarations_are_refused_and_nothing_is_written(
    federation: Federation, field: str, value: Any, words: str
) -> None:
    id_number, name = federation.holder(ZJ)
    fields = {"residence": ZJ_DISTRICT, field: value}
    request = node_pb2.ApplyCodeRequest(
        id_number=id_number, full_name=name, declaration=node_pb2.HealthDeclaration(**fields)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await federation.nodes[ZJ].stub.ApplyCode(request, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(caught.value) == "INVALID_REQUEST" and words in (
        caught.value.details() or ""
    )
    # Nothing half-written: the same holder applying properly gets a fresh code, decided once.
    ok = node_pb2.ApplyCodeRequest(id_number=id_number, full_name=name, declaration=declaration())
    reply = await federation.nodes[ZJ].stub.ApplyCode(ok, timeout=5)
    history = await federation.nodes[ZJ].stub.ExplainCode(
        node_pb2.GetCodeStateRequest(code_id=reply.code.code_id), timeout=5
    )
    assert len(history.history) == 1


async def test_an_oversized_check_in_temperature_is_refused(federation: Federation) -> None:
    code = (await apply(federation, ZJ)).code.code_id
    for temperature in (99.0, -5.0, float("nan")):
        await refused(
            federation.nodes[ZJ].stub.CheckIn(
                node_pb2.CheckInRequest(code_id=code, temperature_c=temperature), timeout=5
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_REQUEST",
        )


async def test_who_may_apply_import_and_relay(federation: Federation) -> None:
    zj_node = federation.nodes[ZJ]
    code = (await apply(federation, ZJ)).code.code_id
    checkpoint = federation.node_stub(ZJ, federation.checkpoint(ZJ))
    other_operator = federation.node_stub(ZJ, federation.operator(SC))
    operator = zj_node.stub
    other_authority = federation.node_stub(ZJ, federation.identity("authority", SC, "health"))
    contacts = node_pb2.ImportCloseContactsRequest(
        import_id="x", listed_at=int(time.time()), holder_refs=[b"\x01" * 32]
    )
    areas = node_pb2.ImportRiskAreasRequest(
        import_id="x",
        areas=[node_pb2.RiskArea(district=ZJ_DISTRICT, level=3, valid_from=1, valid_until=2**40)],
    )
    denied = grpc.StatusCode.PERMISSION_DENIED
    await knows_province(federation, ZJ, other_operator)
    await knows_province(federation, ZJ, other_authority)
    id_number, name = federation.holder(ZJ)
    application = node_pb2.ApplyCodeRequest(
        id_number=id_number, full_name=name, declaration=declaration()
    )
    await refused(checkpoint.ApplyCode(application, timeout=5), denied, "WRONG_ROLE")
    await refused(other_operator.ApplyCode(application, timeout=5), denied, "WRONG_PROVINCE")
    await refused(authority(federation, ZJ).ApplyCode(application, timeout=5), denied, "WRONG_ROLE")
    check = node_pb2.CheckInRequest(code_id=code, temperature_c=36.6)
    await refused(checkpoint.CheckIn(check, timeout=5), denied, "WRONG_ROLE")
    # Risk data: the province's own health authority only, never its operators.
    await refused(operator.ImportCloseContacts(contacts, timeout=5), denied, "WRONG_ROLE")
    await refused(operator.ImportRiskAreas(areas, timeout=5), denied, "WRONG_ROLE")
    await refused(
        other_authority.ImportCloseContacts(contacts, timeout=5), denied, "WRONG_PROVINCE"
    )
    await refused(other_authority.ImportRiskAreas(areas, timeout=5), denied, "WRONG_PROVINCE")
    # Assistance reaches a node only from the national gateway: an authority of another
    # province calling the node directly, claiming any origin, is refused.
    forged = assistance(code, ZJ, from_province="460000")
    await refused(
        federation.node_stub(ZJ, federation.identity("authority", SC, "health")).ReceiveAssistance(
            forged, timeout=5
        ),
        denied,
        "WRONG_ROLE",
    )
    await refused(operator.ReceiveAssistance(forged, timeout=5), denied, "WRONG_ROLE")
    # A checkpoint cannot ask the gateway for assistance.
    await refused(
        federation.checkpoint_stub(SC).RequestAssistance(assistance(code, ZJ), timeout=5),
        denied,
        "WRONG_ROLE",
    )
    state = await operator.GetCodeState(node_pb2.GetCodeStateRequest(code_id=code), timeout=5)
    assert state.colour == common_pb2.GREEN  # nothing of the above changed it


async def knows_province(federation: Federation, province: str, stub: Any) -> None:
    """Wait until the node's trust view has the caller's province (until then it refuses the
    caller as unknown, CALLER_REVOKED, before any rule is looked at)."""

    async def known() -> bool:
        try:
            await stub.GetCodeState(node_pb2.GetCodeStateRequest(code_id=b"\0" * 16), timeout=5)
        except grpc.aio.AioRpcError as e:
            return error_reason(e) != "CALLER_REVOKED"
        return True

    await wait_for(known, timeout=10, what=f"node of {province} knowing the caller's province")


async def test_assistance_crosses_provinces_once(federation: Federation) -> None:
    code = (await apply(federation, ZJ)).code.code_id
    sichuan = authority(federation, SC)
    request = assistance(code, ZJ, from_province="460000")  # the origin is the node's to set
    ack = await sichuan.SendAssistance(request, timeout=10)
    assert (ack.province, ack.duplicate, ack.rule) == (ZJ, False, "reported-close-contact")
    assert ack.colour == common_pb2.RED and "another province" in ack.decision
    again = await sichuan.SendAssistance(request, timeout=10)  # at least once: a retry
    assert again.duplicate and again.colour == common_pb2.RED
    explained = await federation.nodes[ZJ].stub.ExplainCode(
        node_pb2.GetCodeStateRequest(code_id=code), timeout=5
    )
    assert [e.kind for e in explained.history] == ["declaration", "assistance"]
    # Audited at both ends: Sichuan sent, Zhejiang received from Sichuan (not from Hainan).
    sc_stats = await sichuan.GetStatistics(node_pb2.GetStatisticsRequest(), timeout=5)
    zj_stats = await authority(federation, ZJ).GetStatistics(
        node_pb2.GetStatisticsRequest(), timeout=5
    )
    assert sc_stats.assistance_sent == 2 and zj_stats.assistance_received == 1
    audit = federation.nodes[ZJ].parts[2].health
    received = [row for row in _audit_rows(audit) if row[2] == "assistance-received"]
    assert len(received) == 1 and f"for {SC}" in received[0][1]
    # An unknown code: the issuing province's NOT_FOUND comes back through the gateway.
    await refused(
        sichuan.SendAssistance(assistance(b"\x00" * 16, ZJ), timeout=10),
        grpc.StatusCode.NOT_FOUND,
        "NOT_FOUND",
    )


def _audit_rows(health: Any) -> list[tuple[Any, ...]]:
    return health._run(
        lambda conn: conn.execute(
            "SELECT at, actor, action, subject, outcome FROM health_audit"
        ).fetchall(),
        False,
    )


async def test_a_node_may_ask_the_gateway_only_for_its_own_province(federation: Federation) -> None:
    code = (await apply(federation, ZJ)).code.code_id
    node_of_sichuan = gateway_pb2_grpc.GatewayStub(
        federation.channel(federation.identity("node", SC, "n1"))
    )
    ack = await node_of_sichuan.RequestAssistance(
        assistance(code, ZJ, from_province="460000", event_kind="risk_area_visit"), timeout=10
    )
    assert ack.rule == "reported-risk-area-visit" and ack.colour == common_pb2.YELLOW
    await refused(
        node_of_sichuan.RequestAssistance(assistance(code, SC), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_REQUEST",
    )


async def test_close_contacts_imported_by_the_authority_turn_red(federation: Federation) -> None:
    listed = [await apply(federation, ZJ) for _ in range(3)]
    spared = await apply(federation, ZJ)
    holder_key = ProvinceDir(federation.workdir / ZJ).holder_key.read_bytes()
    ids = [federation.holder(ZJ)[0] for _ in range(2)]  # not holders: matched by no code
    refs = hash_ids(ids, holder_key) + [
        hash_ids([n], holder_key)[0] for n in _id_numbers(federation, listed)
    ]
    reply = await authority(federation, ZJ).ImportCloseContacts(
        node_pb2.ImportCloseContactsRequest(
            import_id="zj-1", listed_at=int(time.time()), holder_refs=refs
        ),
        timeout=10,
    )
    assert (reply.entries, reply.matched, reply.changed) == (5, 3, 3)
    for code in listed:
        state = await federation.nodes[ZJ].stub.GetCodeState(
            node_pb2.GetCodeStateRequest(code_id=code.code.code_id), timeout=5
        )
        assert state.colour == common_pb2.RED and state.quarantine_rule == "listed-close-contact"
    state = await federation.nodes[ZJ].stub.GetCodeState(
        node_pb2.GetCodeStateRequest(code_id=spared.code.code_id), timeout=5
    )
    assert state.colour == common_pb2.GREEN


def _id_numbers(federation: Federation, replies: list[Any]) -> list[str]:
    return [APPLIED[r.code.code_id] for r in replies]


async def test_a_quarantine_ends_on_its_own_on_a_running_node(empty_federation: Federation) -> None:
    """Days of 0.4 s: a fever's 7 days with a check-in every 0.1 s end green with no operator."""
    federation = empty_federation
    await federation.onboard(ZJ)
    await federation.start_node(ZJ, day_seconds=0.4, colour_tick=0.05)
    reply = await apply(federation, ZJ, fever=True)
    started = reply.state.quarantine_started_at
    stub, code = federation.nodes[ZJ].stub, reply.code.code_id

    async def checks() -> None:
        while True:
            await stub.CheckIn(node_pb2.CheckInRequest(code_id=code, temperature_c=36.5), timeout=5)
            await asyncio.sleep(0.1)

    checking = asyncio.create_task(checks())
    try:

        async def green() -> Any:
            state = await stub.GetCodeState(node_pb2.GetCodeStateRequest(code_id=code), timeout=5)
            return state if state.colour == common_pb2.GREEN else None

        state = await wait_for(green, timeout=30, what="the quarantine's end")
    finally:
        checking.cancel()
    explained = await stub.ExplainCode(node_pb2.GetCodeStateRequest(code_id=code), timeout=5)
    completed = [e for e in explained.history if e.kind == "complete"]
    assert len(completed) == 1 and completed[0].rule == "quarantine-complete"
    assert completed[0].at >= started + int(7 * 0.4)  # never before its days
    assert state.status_version == 2


async def test_fields_of_the_wrong_wire_type_are_refused_not_crashed(
    federation: Federation,
) -> None:
    """Hand-made bytes: every field of an application with the wrong wire type (a varint where
    text or a message belongs). Protobuf keeps them as unknown fields; the request then lacks
    them and is refused as such, INVALID_ARGUMENT, never INTERNAL."""
    channel = federation.nodes[ZJ].channel
    call = channel.unary_unary(
        "/healthcode.v1.ProvincialNode/ApplyCode",
        request_serializer=lambda raw: raw,
        response_deserializer=node_pb2.ApplyCodeResponse.FromString,
    )
    id_number, name = federation.holder(ZJ)
    good = node_pb2.ApplyCodeRequest(id_number=id_number, full_name=name, declaration=declaration())
    for field_number in (1, 2, 3, 4):
        wrong = bytes([field_number << 3 | 0, 0x2A])  # field N as the varint 42
        raw = (
            b"".join(
                part for number, part in _fields(good.SerializeToString()) if number != field_number
            )
            + wrong
        )
        if field_number == 4:  # the request id: absent is allowed, the rest is a good request
            reply = await call(raw, timeout=5)
            assert reply.state.colour == common_pb2.GREEN
            continue
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(raw, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()


def _fields(raw: bytes) -> list[tuple[int, bytes]]:
    """The top-level length-delimited fields of a message, as (number, encoded bytes)."""
    out, i = [], 0
    while i < len(raw):
        key = raw[i]
        length, j, shift = 0, i + 1, 0
        while True:
            byte = raw[j]
            length |= (byte & 0x7F) << shift
            j += 1
            shift += 7
            if not byte & 0x80:
                break
        out.append((key >> 3, raw[i : j + length]))
        i = j + length
    return out


async def test_a_check_in_station_checks_in_and_does_nothing_else(federation: Federation) -> None:
    """Employers' stations hold a check-in identity: never an operator's powers."""
    reply = await apply(federation, ZJ, fever=True)
    code = reply.code.code_id
    station = federation.node_stub(ZJ, federation.identity("checkin", ZJ, "factory-7"))
    other = federation.node_stub(ZJ, federation.identity("checkin", SC, "factory-8"))
    await knows_province(federation, ZJ, other)
    state = await station.CheckIn(
        node_pb2.CheckInRequest(code_id=code, temperature_c=36.6, request_id="s-1"), timeout=5
    )
    assert state.days_checked == 1
    assert (
        await station.GetCodeState(node_pb2.GetCodeStateRequest(code_id=code), timeout=5)
    ).in_quarantine
    denied = grpc.StatusCode.PERMISSION_DENIED
    id_number, name = federation.holder(ZJ)
    await refused(
        station.ApplyCode(
            node_pb2.ApplyCodeRequest(
                id_number=id_number, full_name=name, declaration=declaration()
            ),
            timeout=5,
        ),
        denied,
        "WRONG_ROLE",
    )
    await refused(
        station.IssueCode(
            node_pb2.IssueCodeRequest(id_number=id_number, full_name=name), timeout=5
        ),
        denied,
        "WRONG_ROLE",
    )
    await refused(
        station.SetStatus(
            node_pb2.SetStatusRequest(code_id=code, colour=common_pb2.GREEN, request_id="x"),
            timeout=5,
        ),
        denied,
        "WRONG_ROLE",
    )
    await refused(
        station.ExplainCode(node_pb2.GetCodeStateRequest(code_id=code), timeout=5),
        denied,
        "WRONG_ROLE",
    )
    await refused(
        other.CheckIn(node_pb2.CheckInRequest(code_id=code, temperature_c=36.6), timeout=5),
        denied,
        "WRONG_PROVINCE",
    )
