"""The HTTPS edge shared by hcx's web fronts (the checkpoint station's staff page, the
residents' page): TLS, sessions, CSRF, a content security policy, rate limits and errors.

aiohttp (docs/web.md says why): one asyncio server and client, the same event loop as the
grpc.aio channels behind it. Every answer is JSON or a static file; an error is a 4xx with a
stable reason (the gRPC contract's names where one applies) and never a 500 for bad input.
Nothing secret goes into a URL or a log line: tokens and personal data travel in request
bodies, the session in a ``__Host-`` cookie, and the access log records method, path and status.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import secrets
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

log = logging.getLogger("hcx.web")

STATIC = Path(__file__).parent / "static"
COOKIE = "__Host-hcx-session"  # __Host-: Secure, Path=/, no Domain (no other host sets it)
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY = 16 * 1024  # a token is ~600 bytes; a declaration a few hundred
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebError(Exception):
    """An answer other than 200: HTTP status, stable reason, words for the page."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def bad_request(message: str) -> WebError:
    return WebError(400, "INVALID_REQUEST", message)


def error_response(status: int, reason: str, message: str) -> web.Response:
    return web.json_response({"reason": reason, "message": message}, status=status)


_HTTP_REASONS = {
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as JSON with a reason, and the security headers on every answer."""
    try:
        response = await handler(request)
    except WebError as e:
        response = error_response(e.status, e.reason, e.message)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        reason = _HTTP_REASONS.get(e.status, "INVALID_REQUEST")
        response = error_response(e.status, reason, e.reason)
    except Exception:  # a bug: logged without the request's body, answered without details
        log.exception("web handler failed: %s %s", request.method, request.path)
        response = error_response(500, "INTERNAL_ERROR", "the station failed; try again")
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class AccessLogger(AbstractAccessLogger):
    """Method, path (never the query string), status and time: no token, no personal data."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %.1fms",
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )


def server_ssl_context(web_tls: Path) -> ssl.SSLContext:
    """HTTPS with the web front's certificate (``hcx node keys issue-cert --kind web``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(web_tls / "cert.pem", web_tls / "key.pem")
    return context


# -- JSON bodies ---------------------------------------------------------------------------------
async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 415 unless sent as application/json (so that no cross-site
    HTML form can send it), 400 for anything but one object."""
    if request.content_type != "application/json":
        raise WebError(415, "UNSUPPORTED_MEDIA_TYPE", "send application/json")
    raw = await request.read()
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # nested 5,000 deep: refused
        raise bad_request("the body is not JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


def field_of(body: Mapping[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    """``body[name]`` of JSON type ``kind`` (bool is no int here)."""
    if name not in body:
        if required:
            raise bad_request(f"{name} is missing")
        return None
    value = body[name]
    wrong = not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        wrong = False
    if wrong:
        raise bad_request(f"{name} must be a {_JSON_NAMES.get(kind, kind.__name__)}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")  # a lone surrogate ("\ud800") is JSON but no text
        except UnicodeEncodeError:
            raise bad_request(f"{name} is not valid text") from None
    if isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**63:
            raise bad_request(f"{name} is out of range")
    elif isinstance(value, float) and not math.isfinite(value):
        raise bad_request(f"{name} is out of range")
    return value


_JSON_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list"}


# -- rate limits ---------------------------------------------------------------------------------
@dataclass
class Buckets:
    """Token buckets by key (a device's session, a client address); least recent dropped."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 10_000
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def take(self, key: str) -> None:
        now = self.clock()
        tokens, updated = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / self.rate
            raise WebError(429, "RATE_LIMITED", f"too many requests; try again in {wait:.1f} s")
        self._buckets[key] = (tokens - 1, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


def client_network(request: web.Request) -> str:
    """The client's network, the key of per-client limits: an IPv4 address, or an IPv6 /64
    (one host has a whole /64 of addresses to rotate through)."""
    try:
        ip = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return str(request.remote)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


# -- sessions ------------------------------------------------------------------------------------
@dataclass
class Session:
    subject: str  # a station's device name, a resident's code id (hex)
    csrf: str
    expires: float
    key: str  # the hash the session is stored under (rate limits use it too)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sessions:
    """Sessions in memory, stored by the SHA-256 of their cookie (a memory dump shows no
    usable cookie). A restart signs everyone out: a device enrols again, a resident signs in."""

    ttl: float
    clock: Callable[[], float] = time.time
    max_sessions: int = 100_000
    _by_key: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    def create(self, response: web.StreamResponse, subject: str) -> Session:
        cookie = secrets.token_urlsafe(32)
        key = _digest(cookie)
        session = Session(subject, secrets.token_urlsafe(24), self.clock() + self.ttl, key)
        self._by_key[key] = session
        if len(self._by_key) > self.max_sessions:
            self._drop_expired()
        while len(self._by_key) > self.max_sessions:  # the least recently used goes
            self._by_key.popitem(last=False)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(self.ttl),
            path="/",
            secure=True,
            httponly=True,
            samesite="Strict",
        )
        return session

    def find(self, request: web.Request) -> Session | None:
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        session = self._by_key.get(_digest(cookie))
        if session is None:
            return None
        if session.expires <= self.clock():
            self._by_key.pop(session.key, None)
            return None
        self._by_key.move_to_end(session.key)  # in use: the last to be dropped
        return session

    def _drop_expired(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._by_key.items() if s.expires <= now]:
            del self._by_key[key]

    def require(self, request: web.Request, *, change: bool) -> Session:
        """The caller's session (401 without one); for a change, also the CSRF token in its
        header and a same-origin Origin (403 otherwise)."""
        session = self.find(request)
        if session is None:
            raise WebError(401, "UNAUTHENTICATED", "sign in first")
        if change:
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(_bytes(given), session.csrf.encode()):
                raise WebError(403, "CSRF", "the request lacks this page's CSRF token")
            check_origin(request)
        return session

    async def sign_out(self, request: web.Request) -> web.Response:
        """``POST /api/sign-out``: the session ends, and its cookie with it."""
        session = self.require(request, change=True)
        self._by_key.pop(session.key, None)
        response = web.json_response({})
        response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        return response


def check_origin(request: web.Request) -> None:
    """A state change comes from this site's own pages (browsers send Origin on POST)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"https://{request.host}":
        raise WebError(403, "CSRF", "the request comes from another site")


def _digest(cookie: str) -> str:
    return hashlib.sha256(_bytes(cookie)).hexdigest()


def _bytes(text: str) -> bytes:
    """A header's text as bytes, whatever bytes the client sent (never an encoding error)."""
    return text.encode("utf-8", "surrogateescape")


# -- the application -----------------------------------------------------------------------------
def page(name: str) -> Handler:
    """A static HTML page of web/static."""
    path = STATIC / name

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Content-Type": "text/html; charset=utf-8"})

    return handler


def application() -> web.Application:
    app = web.Application(middlewares=[edge_middleware], client_max_size=MAX_BODY)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    return app


async def serve(app: web.Application, listen: str, web_tls: Path) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``listen`` (host:port, port 0 picks one) over HTTPS; (runner, port)."""
    host, _, port = listen.rpartition(":")
    sock = socket.create_server((host.strip("[]") or "0.0.0.0", int(port)), reuse_port=False)
    runner = web.AppRunner(app, access_log_class=AccessLogger, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=server_ssl_context(web_tls))
    await site.start()
    return runner, int(sock.getsockname()[1])
