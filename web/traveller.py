"""``hcx node web``: the residents' page of a province (my code, its colour, the daily check-in).

A small front end in front of the province's node replicas, holding the province's front-end
identity (an operator certificate: the role that applies and checks in for residents, as the
province's apps do). A resident signs in by applying with a health declaration (``ApplyCode``:
a holder who has a code keeps it, the declaration is an event on it), and the session then
names only the code id. The page shows the QR of a fresh token (``RefreshCode`` before the one
shown expires, or when the colour changed), the live colour with its reason in words, the
quarantine's progress and the check-in form. No personal data is kept or shown beyond what the
code itself carries (masked name, last four characters of the ID number).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import segno
from aiohttp import web

from healthcode.v1 import node_pb2, node_pb2_grpc
from nodes.failover import NoAnswer, first_answer
from nodes.grpc_edge import reason_of
from nodes.provincial.wire import code_state_to_json, declaration_to_proto, history_to_json
from nodes.tls import Transport
from trust.codeformat import decode_token
from trust.files import write_port_file
from web import edge
from web.options import ResidentWebOptions

log = logging.getLogger("hcx.web.resident")

SESSION_S = 30 * 24 * 3600  # a resident stays signed in on their phone for a month
CALL_TIMEOUT_S = 3.0
_T = TypeVar("_T")


@dataclass(frozen=True)
class ResidentWebConfig:
    province: str
    nodes: tuple[str, ...]  # the province's node replicas, tried in turn
    transport: Transport  # the front end's identity (operator role)
    web_tls: Path
    listen: str = ResidentWebOptions.listen


def _status_of(error: grpc.RpcError) -> edge.WebError:
    """A node's refusal as the page's 4xx (its reason kept), transport trouble as a 503."""
    code = error.code()
    reason = reason_of(error)
    name = reason.name if reason is not None else "INVALID_REQUEST"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return edge.WebError(400, name, str(error.details() or "invalid request")[:200])
    if code == grpc.StatusCode.NOT_FOUND:
        return edge.WebError(404, "NOT_FOUND", "the province does not know this code")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return edge.WebError(429, "RATE_LIMITED", "too many requests; try again shortly")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return edge.WebError(503, "ISSUER_UNAVAILABLE", "the province's node is unreachable")
    log.error("node refused the front end: %s %s", code.name, name)
    return edge.WebError(502, "INTERNAL_ERROR", "the province's node refused; try again")


@dataclass
class ResidentWeb:
    config: ResidentWebConfig
    clock: Callable[[], float] = time.time
    sessions: edge.Sessions = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = edge.Sessions(ttl=SESSION_S, clock=self.clock)
        self._sign_ins = edge.Buckets(10 / 60, 10)  # per client address
        self._per_holder = edge.Buckets(3 / 600, 3)  # per ID number: 3 in 10 minutes
        self._all_sign_ins = edge.Buckets(20.0, 100.0)  # the page as a whole
        self._calls = edge.Buckets(2.0, 20.0)  # per session
        self._channels = [self.config.transport.aio_channel(a) for a in self.config.nodes]
        self._stubs = [node_pb2_grpc.ProvincialNodeStub(c) for c in self._channels]

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def _call(self, call: Callable[[node_pb2_grpc.ProvincialNodeStub], Awaitable[_T]]) -> _T:
        """The first replica that answers; a refusal is the page's error at once."""
        try:
            _, reply = await first_answer(self._stubs, call)
        except NoAnswer as e:
            assert e.last is not None
            raise _status_of(e.last) from e.last
        except grpc.RpcError as e:
            raise _status_of(e) from e
        return reply

    # -- HTTP -------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = edge.application()
        app.router.add_get("/", edge.page("traveller.html"))
        app.router.add_get("/api/session", self._session)
        app.router.add_post("/api/sign-in", self._sign_in)
        app.router.add_get("/api/code", self._code)
        app.router.add_post("/api/check-in", self._check_in)
        app.router.add_post("/api/sign-out", self.sessions.sign_out)
        return app

    async def _session(self, request: web.Request) -> web.Response:
        session = self.sessions.find(request)
        if session is None:
            return web.json_response({"signed_in": False})
        return web.json_response({"signed_in": True, "csrf": session.csrf})

    async def _sign_in(self, request: web.Request) -> web.Response:
        self._all_sign_ins.take("all")
        self._sign_ins.take(edge.client_network(request))
        edge.check_origin(request)
        body = await edge.read_json(request)
        declaration = _declaration(edge.field_of(body, "declaration", dict))
        id_number = edge.field_of(body, "id_number", str)[:32]
        # One holder's declarations are not many a minute, whoever sends them: a colour forced
        # by declarations in someone else's name is bounded, and so is guessing.
        self._per_holder.take(hashlib.sha256(id_number.upper().encode()).hexdigest())
        apply = node_pb2.ApplyCodeRequest(
            id_number=id_number,
            full_name=edge.field_of(body, "full_name", str)[:64],
            declaration=declaration,
            request_id=f"web:{uuid.uuid4()}",
        )
        reply = await self._call(lambda s: s.ApplyCode(apply, timeout=CALL_TIMEOUT_S))
        response = web.json_response({})
        session = self.sessions.create(response, reply.code.code_id.hex())
        session.data["code_id"] = reply.code.code_id
        self._hold(session, reply.code)
        response.body = (await self._answer(session, reply.state)).body
        return response

    async def _code(self, request: web.Request) -> web.Response:
        session = self.sessions.require(request, change=False)
        self._calls.take(session.key)
        code_id = session.data["code_id"]
        state = await self._call(
            lambda s: s.GetCodeState(
                node_pb2.GetCodeStateRequest(code_id=code_id), timeout=CALL_TIMEOUT_S
            )
        )
        return await self._answer(session, state)

    async def _check_in(self, request: web.Request) -> web.Response:
        session = self.sessions.require(request, change=True)
        self._calls.take(session.key)
        body = await edge.read_json(request)
        temperature = edge.field_of(body, "temperature_c", float)
        symptoms = _symptoms(edge.field_of(body, "symptoms", list, required=False) or [])
        request_id = edge.field_of(body, "request_id", str)
        if not 8 <= len(request_id) <= 64 or not request_id.replace("-", "").isalnum():
            raise edge.bad_request("request_id is 8 to 64 letters, digits and -")
        check_in = node_pb2.CheckInRequest(
            code_id=session.data["code_id"],
            temperature_c=float(temperature),
            symptoms=symptoms,
            request_id=f"web:{session.subject}:{request_id}",  # one resident's ids are theirs
        )
        state = await self._call(lambda s: s.CheckIn(check_in, timeout=CALL_TIMEOUT_S))
        return await self._answer(session, state)

    # -- the code shown ---------------------------------------------------------------------------
    def _hold(self, session: edge.Session, code: node_pb2.IssueCodeResponse) -> None:
        session.data.update(
            token=code.token,
            expires_at=int(code.expires_at),
            issued_at=int(self.clock()),
            token_version=int(code.status_version),
        )

    async def _answer(self, session: edge.Session, state: node_pb2.CodeState) -> web.Response:
        """The page's view: a token young enough to show (refreshed when half its life is
        gone, or when the colour moved since it was signed), its QR, and the live state."""
        data = session.data
        now = self.clock()
        half_life = (data["expires_at"] - data["issued_at"]) / 2
        if now >= data["expires_at"] - half_life or data["token_version"] != state.status_version:
            code_id = data["code_id"]
            fresh = await self._call(
                lambda s: s.RefreshCode(
                    node_pb2.RefreshCodeRequest(code_id=code_id), timeout=CALL_TIMEOUT_S
                )
            )
            self._hold(session, fresh)
        claims = decode_token(data["token"]).claims
        history = await self._call(
            lambda s: s.ExplainCode(
                node_pb2.GetCodeStateRequest(code_id=data["code_id"]), timeout=CALL_TIMEOUT_S
            )
        )
        return web.json_response(
            {
                "signed_in": True,
                "csrf": session.csrf,
                "qr": segno.make(data["token"], error="m").svg_data_uri(scale=6, border=4),
                "token": data["token"],  # the QR's text, for a checkpoint that types it in
                "expires_at": data["expires_at"],
                "refresh_at": data["expires_at"] - (data["expires_at"] - data["issued_at"]) / 2,
                "now": int(now),
                "masked_name": claims.masked_name,
                "id_tail": claims.id_tail,
                "issuer": claims.issuer,
                "state": code_state_to_json(state),
                "history": history_to_json(list(history.history)[-20:]),
            }
        )


_SYMPTOMS = ("cough", "sore_throat", "fatigue", "loss_of_smell", "shortness_of_breath")


def _symptoms(values: list[Any]) -> list[str]:
    if len(values) > len(_SYMPTOMS) or any(v not in _SYMPTOMS for v in values):
        raise edge.bad_request(f"symptoms are some of {', '.join(_SYMPTOMS)}")
    return [str(v) for v in values]


def _declaration(body: dict[str, Any]) -> node_pb2.HealthDeclaration:
    travel = edge.field_of(body, "travel", list, required=False) or []
    if len(travel) > 30:
        raise edge.bad_request("at most 30 visits")
    visits: list[tuple[str, int]] = []
    for visit in travel:
        if not isinstance(visit, dict):
            raise edge.bad_request("a visit is {district, at}")
        visits.append((edge.field_of(visit, "district", str)[:6], edge.field_of(visit, "at", int)))
    return declaration_to_proto(
        fever=bool(edge.field_of(body, "fever", bool)),
        symptoms=_symptoms(edge.field_of(body, "symptoms", list, required=False) or []),
        contact=bool(edge.field_of(body, "contact", bool)),
        residence=edge.field_of(body, "residence", str)[:6],
        travel=visits,
    )


@contextlib.asynccontextmanager
async def running_resident_web(
    config: ResidentWebConfig, clock: Callable[[], float] = time.time
) -> AsyncIterator[tuple[ResidentWeb, int]]:
    front = ResidentWeb(config, clock)
    runner, port = await edge.serve(front.app(), config.listen, config.web_tls)
    try:
        yield front, port
    finally:
        await runner.cleanup()
        await front.close()


async def serve_until_signalled(config: ResidentWebConfig, port_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_resident_web(config) as (_, port):
        if port_file is not None:
            write_port_file(port_file, port)
        log.info("residents' page of %s serving https on port %d", config.province, port)
        await stop.wait()
