"""``hcx checkpoint serve``: the checkpoint station at a site (a railway station, a mall door).

It holds the checkpoint's mTLS identity and the signed trust list, talks to the national
gateways, and serves the staff page over HTTPS on the local network. Staff devices enrol with a
one-time code (``hcx checkpoint enrol``) and then hold a session cookie; the mTLS key never
leaves the station. A scan is verified by the gateway (live colour); when no gateway answers
it is verified here on the held trust list by the gateway's own code path
(``gateway.verification.verify_token`` with an issuer that cannot be reached), so the verdict,
its reasons and the offline age limit are the same as everywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from cryptography import x509

from gateway.feed import watch_views
from gateway.verification import VerifyPolicy, verify_token
from healthcode.v1 import gateway_pb2, gateway_pb2_grpc, trustlist_pb2
from nodes.convert import outcome_to_proto, verdict_to_json
from nodes.tasks import cancel_and_wait
from nodes.tls import Transport
from trust import trustlist
from trust.errors import HcxError, IssuerUnavailable
from trust.files import SECRET, replace_file, write_port_file
from trust.verify import LiveStatus
from trust.view import TrustView
from web import edge
from web.options import StationOptions

log = logging.getLogger("hcx.station")

ENROL_TTL_S = 15 * 60  # an enrolment code is good for one device, once, for 15 minutes
SHIFT_S = 12 * 3600  # a device's session: one shift
DOWN_FOR_S = 5.0  # a gateway that failed is skipped this long (the next scan does not wait)
VIEW_CHECK_S = 2.0  # how often the gateways are asked whether their registry view is current
TOKEN_MAX = 4096  # an HCX1 token is ~600 characters


@dataclass(frozen=True)
class StationConfig:
    province: str
    name: str  # the checkpoint id in the gateway's logs
    gateways: tuple[str, ...]  # tried in order
    transport: Transport  # the checkpoint's mTLS identity
    roots: tuple[x509.Certificate, ...]  # the pinned national root(s)
    web_tls: Path  # the HTTPS certificate (hcx node keys issue-cert --kind web)
    state_dir: Path  # held trust list, its head, enrolment codes
    listen: str = StationOptions.listen
    timeout: float = StationOptions.timeout  # per gateway
    max_offline_age: int = StationOptions.max_offline_age
    trust_refresh_s: float = 60.0
    scans_per_s: float = 5.0  # per device
    scan_burst: float = 20.0


class _Unreachable:
    """The issuer as the station sees it with no gateway: never reachable (offline verdict)."""

    async def lookup(self, province: str, code_id: bytes, *, deadline: float) -> LiveStatus:
        raise IssuerUnavailable("no national gateway reachable from this station")

    def submit(self, province: str, code_id: bytes, *, deadline: float) -> Any:
        raise IssuerUnavailable("no national gateway reachable from this station")


@dataclass
class _Gateway:
    address: str
    stub: gateway_pb2_grpc.GatewayStub
    channel: grpc.aio.Channel
    down_until: float = 0.0
    current: bool = True  # its registry view confirmed current (health hcx.registry-view)


@dataclass
class Station:
    config: StationConfig
    clock: Any = time.time
    sessions: edge.Sessions = field(init=False)
    view: TrustView | None = None
    revision: int = 0
    list_fetched_at: float = 0.0
    last_gateway_ok: float = 0.0
    list_not_after: float = 0.0

    def __post_init__(self) -> None:
        self.sessions = edge.Sessions(ttl=SHIFT_S, clock=self.clock)
        self._scans = edge.Buckets(self.config.scans_per_s, self.config.scan_burst)
        self._enrols = edge.Buckets(5 / 60, 5)  # per client address: 5 a minute
        self._enrol_lock = asyncio.Lock()
        self._gateways = [
            _Gateway(a, gateway_pb2_grpc.GatewayStub(c), c)
            for a in self.config.gateways
            for c in [self.config.transport.aio_channel(a)]
        ]
        self._held = trustlist.HeldHead(self.list_path.with_suffix(".state"))
        self._policy = VerifyPolicy(max_offline_age=self.config.max_offline_age)
        self._refresher: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def list_path(self) -> Path:
        return self.config.state_dir / "trust-list.cbor"

    @property
    def enrolments(self) -> Path:
        return self.config.state_dir / "enrolments.json"

    # -- the trust list ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        if self.list_path.exists():
            try:
                self._take(self.list_path.read_bytes(), save=False)
            except HcxError as e:
                log.error("held trust list refused: %s", e)
        await self.refresh_trust_list()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="trust-list")
        self._watcher = asyncio.create_task(self._watch_views(), name="gateway-views")

    async def stop(self) -> None:
        for task in (self._refresher, self._watcher):
            if task is not None:
                await cancel_and_wait(task)
        for g in self._gateways:
            await g.channel.close()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.trust_refresh_s)
            try:
                await self.refresh_trust_list()
            except Exception:  # a full disk, a bug: logged, and the next refresh still runs
                log.exception("trust list refresh failed")

    async def _watch_views(self) -> None:
        """Which gateways say their registry view is current (gateway.feed.watch_views):
        scans go to one whose view is current first."""
        await watch_views([g.channel for g in self._gateways], self._view_is, every=VIEW_CHECK_S)

    def _view_is(self, index: int, current: bool) -> None:
        g = self._gateways[index]
        if current != g.current:
            log.warning("gateway %s: registry view %s", g.address,
                        "current again" if current else "not current")  # fmt: skip
        g.current = current

    async def refresh_trust_list(self) -> bool:
        """Fetch the signed list from the first gateway that answers; it must verify against
        the pinned root and extend the list held (no rollback, no fork)."""
        for g in self._gateways:
            try:
                reply = await g.stub.GetTrustList(trustlist_pb2.GetTrustListRequest(), timeout=5)
                self._take(reply.signed_list, save=True)
                return True
            except grpc.RpcError as e:
                log.warning("trust list from %s: %s", g.address, e.code())
            except HcxError as e:
                log.error("trust list from %s refused: %s", g.address, e)
        return False

    def _take(self, signed: bytes, *, save: bool) -> None:
        now = self.clock()
        keep = self.list_path if save else None
        listed, view = self._held.accept(signed, self.config.roots, now=now, keep=keep)
        self.view, self.revision, self.list_fetched_at = view, listed.revision, now
        self.list_not_after = listed.not_after

    # -- verification -----------------------------------------------------------------------------
    async def verify(self, token: str, scans: int) -> dict[str, Any]:
        request = gateway_pb2.VerifyRequest(
            token=token, checkpoint_province=self.config.province, checkpoint_id=self.config.name
        )
        now = time.monotonic()
        # Gateways whose view is current first (in the configured order), then the others.
        for g in sorted(self._gateways, key=lambda g: not g.current):
            if g.down_until > now:
                continue
            try:
                reply = await g.stub.Verify(request, timeout=self.config.timeout)
            except grpc.RpcError as e:
                if e.code() in _NEXT_GATEWAY:
                    g.down_until = time.monotonic() + DOWN_FOR_S
                    log.warning("gateway %s: %s; trying the next", g.address, e.code().name)
                    continue
                raise edge.WebError(502, _grpc_reason(e), "the gateway refused the request") from e
            self.last_gateway_ok = self.clock()
            return verdict_to_json(reply, source="gateway", scans=scans)
        return await self.verify_offline(token, scans)

    async def verify_offline(self, token: str, scans: int) -> dict[str, Any]:
        if self.view is None:
            raise edge.WebError(
                503, "ISSUER_UNAVAILABLE", "no gateway reachable and no trust list held"
            )
        if self.clock() > self.list_not_after:  # a frozen list: revocations since are unseen
            raise edge.WebError(
                503,
                "ISSUER_UNAVAILABLE",
                f"no gateway reachable and the trust list (revision {self.revision}) has expired",
            )
        outcome = await verify_token(
            token, view=self.view, statuses=_Unreachable(), policy=self._policy, clock=self.clock
        )
        return verdict_to_json(outcome_to_proto(outcome), source="station", scans=scans)

    # -- enrolment ---------------------------------------------------------------------------------
    async def enrol(self, code: str) -> str | None:
        """The device name an unused, unexpired enrolment code was made for (then used up)."""
        digest = _code_digest(code)
        async with self._enrol_lock:
            with enrolments_locked(self.config.state_dir):
                codes = read_enrolments(self.enrolments)
                entry = codes.get(digest)
                if entry is None or entry["used"] or entry["expires"] <= self.clock():
                    return None
                entry["used"] = True
                write_enrolments(self.enrolments, codes)
                return str(entry["device"])

    # -- HTTP -------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = edge.application()
        app.router.add_get("/", edge.page("station.html"))
        app.router.add_get("/api/session", self._session)
        app.router.add_post("/api/enrol", self._enrol)
        app.router.add_post("/api/verify", self._verify)
        app.router.add_post("/api/sign-out", self.sessions.sign_out)
        return app

    def _status(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "province": self.config.province,
            "station": self.config.name,
            "trust_list_revision": self.revision,
            "trust_list_age_seconds": int(now - self.list_fetched_at) if self.view else None,
            "gateway_seen_seconds_ago": (
                int(now - self.last_gateway_ok) if self.last_gateway_ok else None
            ),
        }

    async def _session(self, request: web.Request) -> web.Response:
        session = self.sessions.find(request)
        if session is None:
            return web.json_response({"signed_in": False})
        return web.json_response(
            {
                "signed_in": True,
                "device": session.subject,
                "csrf": session.csrf,
                "scans": session.data.get("scans", 0),
                **self._status(),
            }
        )

    async def _enrol(self, request: web.Request) -> web.Response:
        self._enrols.take(edge.client_network(request))
        edge.check_origin(request)
        body = await edge.read_json(request)
        code = edge.field_of(body, "code", str)
        device = await self.enrol(code) if len(code) <= 64 else None
        if device is None:
            raise edge.WebError(403, "ENROLMENT_REFUSED", "unknown, used or expired code")
        response = web.json_response({})
        session = self.sessions.create(response, device)
        session.data["scans"] = 0
        response.text = json.dumps(
            {"signed_in": True, "device": device, "csrf": session.csrf, "scans": 0} | self._status()
        )
        log.info("device %s enrolled", device)
        return response

    async def _verify(self, request: web.Request) -> web.Response:
        session = self.sessions.require(request, change=True)
        self._scans.take(session.key)
        body = await edge.read_json(request)
        token = edge.field_of(body, "token", str)
        if len(token) > TOKEN_MAX:
            raise edge.bad_request(f"a code is at most {TOKEN_MAX} characters")
        answer = await self.verify(token, session.data.get("scans", 0) + 1)
        session.data["scans"] = answer["scans"]  # counted once verified, not when refused
        return web.json_response(answer)


# Worth the next gateway: it is down, slow, overloaded or failed. A refusal of this station
# (its identity, its role, the request) is the same everywhere and is answered at once.
_NEXT_GATEWAY = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
)


def _grpc_reason(error: grpc.RpcError) -> str:
    code = error.code()
    return {
        grpc.StatusCode.RESOURCE_EXHAUSTED: "RATE_LIMITED",
        grpc.StatusCode.PERMISSION_DENIED: "WRONG_ROLE",
        grpc.StatusCode.UNAUTHENTICATED: "UNAUTHENTICATED",
        grpc.StatusCode.INVALID_ARGUMENT: "INVALID_REQUEST",
    }.get(code, "GATEWAY_ERROR")


# -- enrolment codes (shared by the station and ``hcx checkpoint enrol``) -------------------------
def _code_digest(code: str) -> str:
    normal = code.strip().upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normal.encode()).hexdigest()


def read_enrolments(path: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): dict(v) for k, v in doc.items()}


def write_enrolments(path: Path, codes: dict[str, dict[str, Any]]) -> None:
    replace_file(path, json.dumps(codes).encode(), mode=SECRET, durable=True)


_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a screen, typed on a phone


def new_enrolment(state_dir: Path, device: str, *, now: float, ttl: float = ENROL_TTL_S) -> str:
    """A one-time code for ``device`` (50 bits; the station keeps only its hash)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", device):
        raise ValueError("a device name is 1 to 64 letters, digits, - and _")
    state_dir.mkdir(parents=True, exist_ok=True)
    code = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    path = state_dir / "enrolments.json"
    with enrolments_locked(state_dir):  # the station may be taking a code right now
        held = read_enrolments(path).items()
        codes = {k: v for k, v in held if v["expires"] > now and not v["used"]}
        codes[_code_digest(code)] = {"device": device, "expires": now + ttl, "used": False}
        write_enrolments(path, codes)
    return f"{code[:5]}-{code[5:]}"


@contextlib.contextmanager
def enrolments_locked(state_dir: Path) -> Any:
    """An exclusive lock on the enrolment codes across processes (the station and
    ``hcx checkpoint enrol``): one read-change-write never interleaves with another."""
    fd = os.open(state_dir / "enrolments.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


async def run_station(config: StationConfig) -> tuple[Station, web.AppRunner, int]:
    station = Station(config)
    await station.start()
    runner, port = await edge.serve(station.app(), config.listen, config.web_tls)
    return station, runner, port


async def run_station_until_signalled(config: StationConfig, port_file: Path | None) -> None:
    """Serve until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    station, runner, port = await run_station(config)
    if port_file is not None:
        write_port_file(port_file, port)
    log.info("checkpoint station %s serving https on port %d", config.name, port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await station.stop()


@contextlib.asynccontextmanager
async def running_station(config: StationConfig) -> Any:
    station, runner, port = await run_station(config)
    try:
        yield station, port
    finally:
        await runner.cleanup()
        await station.stop()
