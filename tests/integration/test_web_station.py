"""The checkpoint station (``hcx checkpoint serve``): its staff page in Debian's Chromium with a
fake camera filming real codes, and its HTTPS edge tried as an attacker would."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import async_playwright

from healthcode.v1 import common_pb2, node_pb2
from nodes.credentials import issue_provincial_identity
from nodes.provincial.keys import ProvinceDir, crl_statement, load_ca, province_crl
from simulations.inprocess import Federation
from tests.integration.browser import browser, spki_pin, write_y4m
from tests.integration.test_verify_flow import forge
from trust import pki
from trust.codeformat import CodeClaims, issue_token
from trust.model import Colour
from web.station import Station, StationConfig, new_enrolment, running_station

pytestmark = pytest.mark.integration

SICHUAN = "510000"
SCREENSHOTS = Path("var/browser")


@dataclass
class Running:
    station: Station
    port: int
    config: StationConfig

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def enrolment(self, device: str = "gate-1") -> str:
        return new_enrolment(self.config.state_dir, device, now=time.time())


def web_identity(
    federation: Federation,
    province: str,
    out: Path,
    *,
    name: str = "chengdu-east",
    names: tuple[str, ...] = ("127.0.0.1", "localhost"),
) -> Path:
    """A web front's HTTPS certificate, from the province's own CA, for 127.0.0.1."""
    issue_provincial_identity(
        load_ca(ProvinceDir(federation.workdir / province)),
        federation.root.certificate,
        province=province,
        kind="web",
        name=name,
        out=out,
        dns_names=list(names),
    )
    return out


def station_config(
    federation: Federation, tmp_path: Path, gateways: tuple[str, ...] | None = None
) -> StationConfig:
    web_tls = tmp_path / "web-tls"
    if not web_tls.exists():
        web_identity(federation, SICHUAN, web_tls)
    return StationConfig(
        province=SICHUAN,
        name="chengdu-east",
        gateways=gateways or (federation.gateway_address,),
        transport=federation.checkpoint(SICHUAN),
        roots=(federation.root.certificate,),
        web_tls=web_tls,
        state_dir=tmp_path / "station",
        listen="127.0.0.1:0",
        trust_refresh_s=0.5,
    )


@pytest.fixture
async def station(federation: Federation, tmp_path: Path) -> AsyncIterator[Running]:
    config = station_config(federation, tmp_path)
    async with running_station(config) as (running, port):
        yield Running(running, port, config)


def client_ssl(federation: Federation) -> ssl.SSLContext:
    """A client that trusts the national root only (the station's chain ends there)."""
    context = ssl.create_default_context(
        cadata=pki.certificate_to_pem(federation.root.certificate).decode()
    )
    return context


@pytest.fixture
async def http(federation: Federation) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=client_ssl(federation))
    jar = aiohttp.CookieJar(unsafe=True)  # the station is reached by its address
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
        yield session


async def signed_in(http: aiohttp.ClientSession, station: Running) -> str:
    """Enrol a device; the session cookie stays in ``http``; returns the CSRF token."""
    async with http.post(f"{station.url}/api/enrol", json={"code": station.enrolment()}) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["csrf"])


async def scan_in_browser(
    station: Running, token: str, tmp_path: Path, name: str, *, locale: str = "en-US"
) -> dict[str, str]:
    """Enrol a phone, point its camera at the QR of ``token``; what the verdict screen shows."""
    video = write_y4m(tmp_path / f"{name}.y4m", token)
    pin = spki_pin((station.config.web_tls / "cert.pem").read_bytes())
    async with (
        async_playwright() as playwright,
        browser(playwright, camera=video, pin=pin, locale=locale) as page,
    ):
        await page.goto(station.url)
        await page.fill("#enrol-code", station.enrolment(name))
        await page.click("#enrol-form button[type=submit]")
        await page.wait_for_selector("#verdict:not([hidden])", timeout=20_000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"station-{name}.png"))
        shown = await page.evaluate(
            """() => {
                const v = document.getElementById('verdict');
                const text = (id) => document.getElementById(id).textContent;
                return {verdict: v.dataset.verdict, colour: v.dataset.colour,
                        reason: v.dataset.reason, source: v.dataset.source,
                        word: text('v-word'), colour_word: text('v-colour'),
                        icon: text('v-icon'), holder: text('v-holder'),
                        why: text('v-reason'), age: text('v-age'),
                        count: document.getElementById('count').textContent,
                        decoder: document.body.dataset.decoder,
                        signal: document.body.dataset.signal,
                        background: getComputedStyle(v).backgroundColor};
            }"""
        )
        assert not [e for e in page.errors if "favicon" not in e], page.errors
        return dict(shown)


async def set_colour(
    federation: Federation, province: str, code_id: bytes, colour: common_pb2.Colour
) -> None:
    await federation.nodes[province].stub.SetStatus(
        node_pb2.SetStatusRequest(
            code_id=code_id, colour=colour, reason="test", request_id=str(uuid.uuid4())
        ),
        timeout=5,
    )


async def revoke_dsc(federation: Federation, province: str) -> None:
    """The province revokes its own signing certificate (key compromise)."""
    files = ProvinceDir(federation.workdir / province)
    dsc = pki.load_certificate_pem(files.dsc_cert.read_bytes())
    crl = province_crl(files, revoke_serial=dsc.serial_number, reason="key_compromise")
    from healthcode.v1 import registry_pb2_grpc

    operator = registry_pb2_grpc.RegistryStub(federation.channel(federation.operator(province)))
    await federation.submit(crl_statement(files, crl), stub=operator)
    view = federation.gateway.view
    kid = pki.kid(dsc)
    await asyncio.wait_for(_until(lambda: view.signer(kid).revoked_at is not None), 10)  # type: ignore[union-attr]


def forged_green(federation: Federation) -> str:
    """A green code made by an attacker: Zhejiang's real key id, the attacker's own key."""
    files = ProvinceDir(federation.workdir / "330000")
    kid = pki.kid(pki.load_certificate_pem(files.dsc_cert.read_bytes()))
    now = int(time.time())
    claims = CodeClaims("330000", secrets.token_bytes(16), now, now + 300, Colour.GREEN, 1,
                        "张*明", "123X")  # fmt: skip
    return issue_token(claims, signing_key=pki.generate_private_key(), kid=kid)


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.05)


# -- the staff page in a real browser ------------------------------------------------------------
async def test_the_staff_page_scans_each_kind_of_code_and_shows_its_verdict(
    federation: Federation, station: Running, tmp_path: Path
) -> None:
    green = await federation.issue("330000")
    shown = await scan_in_browser(station, green.token, tmp_path, "valid-green")
    assert (shown["verdict"], shown["colour"], shown["source"]) == ("VALID", "GREEN", "gateway")
    assert shown["word"] == "VALID" and shown["colour_word"] == "GREEN · GO"
    assert shown["icon"] == "✓" and shown["signal"] == "GREEN"  # word and icon, not colour only
    assert shown["holder"] == "Holder 张*明 · ID ending " + shown["holder"][-4:]
    assert shown["count"] == "1 scanned" and shown["decoder"] in ("jsQR", "BarcodeDetector")
    assert shown["background"] == "rgb(10, 125, 50)"

    red = await federation.issue("460000")
    await set_colour(federation, "460000", red.code_id, common_pb2.RED)
    shown = await scan_in_browser(station, red.token, tmp_path, "valid-red")
    assert (shown["verdict"], shown["colour"]) == ("VALID", "RED")  # the live colour, not the QR's
    assert shown["icon"] == "✕" and shown["colour_word"] == "RED · STOP"

    shown = await scan_in_browser(station, forged_green(federation), tmp_path, "forged")
    assert (shown["verdict"], shown["reason"]) == ("INVALID", "BAD_SIGNATURE")
    assert shown["icon"] == "⊘" and shown["holder"] == ""  # no name for a forged code
    assert shown["why"] == "Bad signature: a forged or altered code"

    revoked = await federation.issue("460000")
    await revoke_dsc(federation, "460000")
    shown = await scan_in_browser(station, revoked.token, tmp_path, "revoked")
    assert (shown["verdict"], shown["reason"]) == ("INVALID", "KEY_REVOKED")
    assert shown["why"] == "The signing key is revoked"


async def test_the_staff_page_speaks_chinese(
    federation: Federation, station: Running, tmp_path: Path
) -> None:
    yellow = await federation.issue("330000")
    await set_colour(federation, "330000", yellow.code_id, common_pb2.YELLOW)
    shown = await scan_in_browser(
        station, yellow.token, tmp_path, "valid-yellow-zh", locale="zh-CN"
    )
    assert (shown["verdict"], shown["colour"]) == ("VALID", "YELLOW")
    assert shown["word"] == "通行" and shown["colour_word"] == "黄码 · 管控"
    assert shown["count"] == "已核验 1 人"


async def test_with_the_gateway_cut_the_page_shows_valid_offline_with_the_colours_age(
    federation: Federation, tmp_path: Path
) -> None:
    gateway = await federation.add_gateway()
    config = station_config(federation, tmp_path, gateways=(f"127.0.0.1:{gateway.port}",))
    issued = await federation.issue("330000")
    async with running_station(config) as (running, port):
        assert running.revision > 0  # the trust list held before the cut
        federation.extra_gateways.remove(gateway)
        await gateway.stop()  # the station's only gateway is gone
        shown = await scan_in_browser(
            Running(running, port, config), issued.token, tmp_path, "offline"
        )
    assert (shown["verdict"], shown["colour"], shown["source"]) == (
        "VALID_OFFLINE",
        "GREEN",
        "station",
    )
    assert re.fullmatch(r"Offline: the colour at issuance, \d+ s ago", shown["age"]), shown["age"]
    assert shown["word"] == "VALID OFFLINE"


# -- the station's verification path -------------------------------------------------------------
async def test_a_dead_first_gateway_fails_over_to_the_next(
    federation: Federation, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = station_config(
        federation, tmp_path, gateways=("127.0.0.1:1", federation.gateway_address)
    )
    issued = await federation.issue("330000")
    async with running_station(config) as (running, port):
        station = Running(running, port, config)
        csrf = await signed_in(http, station)
        started = time.monotonic()
        async with http.post(
            f"{station.url}/api/verify",
            json={"token": issued.token},
            headers={"X-CSRF-Token": csrf},
        ) as r:
            body = await r.json()
        assert (body.get("verdict"), body.get("source")) == ("VALID", "gateway"), body
        assert time.monotonic() - started < 5  # bounded by the per-gateway deadline, not hung


async def test_offline_the_station_refuses_what_the_gateway_refuses(
    federation: Federation, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """No gateway at all: the held trust list decides, with the gateway's own rules."""
    issued = await federation.issue("330000")
    old = forge(ProvinceDir(federation.workdir / "330000"), issued_at=int(time.time()) - 60,
                expires_at=int(time.time()) + 60)  # fmt: skip
    online = station_config(federation, tmp_path)
    async with running_station(online):
        pass  # fetch and hold the trust list
    config = replace(
        station_config(federation, tmp_path, gateways=("127.0.0.1:1",)), max_offline_age=30
    )
    async with running_station(config) as (running, port):
        station = Running(running, port, config)
        csrf = await signed_in(http, station)
        answers = {}
        for name, token in (("good", issued.token), ("old", old), ("junk", "HCX1:???")):
            async with http.post(
                f"{station.url}/api/verify", json={"token": token}, headers={"X-CSRF-Token": csrf}
            ) as r:
                answers[name] = await r.json()
    assert answers["good"]["verdict"] == "VALID_OFFLINE" and answers["good"]["source"] == "station"
    assert (answers["old"]["verdict"], answers["old"]["reason"]) == ("INVALID", "TOKEN_TOO_OLD")
    assert (answers["junk"]["verdict"], answers["junk"]["reason"]) == ("INVALID", "BAD_ENCODING")


async def test_a_rolled_back_trust_list_is_refused_by_the_station(
    federation: Federation, tmp_path: Path
) -> None:
    config = station_config(federation, tmp_path)
    async with running_station(config) as (running, _):
        old = (config.state_dir / "trust-list.cbor").read_bytes()
        revision = running.revision
        await revoke_dsc(federation, "460000")
        await asyncio.wait_for(_until(lambda: running.revision > revision), 10)
    # An attacker with the station's disk puts the older list back: it is refused at start.
    (config.state_dir / "trust-list.cbor").write_bytes(old)
    offline = replace(config, gateways=("127.0.0.1:1",))
    async with running_station(offline) as (again, _):
        assert again.view is None and again.revision == 0


# -- the HTTPS edge, as an attacker tries it -----------------------------------------------------
async def test_scans_need_an_enrolled_session_and_its_csrf_token(
    federation: Federation, station: Running, http: aiohttp.ClientSession
) -> None:
    issued = await federation.issue("330000")
    url = f"{station.url}/api/verify"
    async with http.post(url, json={"token": issued.token}) as r:
        assert (r.status, (await r.json())["reason"]) == (401, "UNAUTHENTICATED")
    csrf = await signed_in(http, station)
    async with http.post(url, json={"token": issued.token}) as r:  # no CSRF header
        assert (r.status, (await r.json())["reason"]) == (403, "CSRF")
    async with http.post(
        url, json={"token": issued.token}, headers={"X-CSRF-Token": "x" + csrf}
    ) as r:
        assert r.status == 403
    async with http.post(
        url,
        json={"token": issued.token},
        headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
    ) as r:
        assert (r.status, (await r.json())["reason"]) == (403, "CSRF")
    async with http.post(url, data={"token": issued.token}, headers={"X-CSRF-Token": csrf}) as r:
        assert (r.status, (await r.json())["reason"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    async with http.post(url, json={"token": issued.token}, headers={"X-CSRF-Token": csrf}) as r:
        assert r.status == 200 and (await r.json())["verdict"] == "VALID"


async def test_an_enrolment_code_works_once_and_guessing_is_limited(
    federation: Federation, station: Running, http: aiohttp.ClientSession
) -> None:
    code = station.enrolment()
    url = f"{station.url}/api/enrol"
    async with http.post(url, json={"code": code.lower()}) as r:  # typed on a phone
        assert r.status == 200
        assert "__Host-hcx-session" in r.headers.get("Set-Cookie", "")
        cookie = r.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    async with http.post(url, json={"code": code}) as r:
        assert (r.status, (await r.json())["reason"]) == (403, "ENROLMENT_REFUSED")
    expired = new_enrolment(station.config.state_dir, "late", now=time.time() - 3600)
    async with http.post(url, json={"code": expired}) as r:
        assert r.status == 403
    statuses = []
    for n in range(8):
        async with http.post(url, json={"code": f"GUESS-{n:05d}"}) as r:
            statuses.append(r.status)
    assert 429 in statuses  # 5 a minute per address, then refused before the code is looked up
    stored = (station.config.state_dir / "enrolments.json").read_text()
    assert code.replace("-", "") not in stored  # only hashes are kept


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"", "application/json", 400, "INVALID_REQUEST"),
        (b"{", "application/json", 400, "INVALID_REQUEST"),
        (b"[]", "application/json", 400, "INVALID_REQUEST"),
        (b'{"token": 7}', "application/json", 400, "INVALID_REQUEST"),
        (b'{"token": null}', "application/json", 400, "INVALID_REQUEST"),
        (b'{"token": true}', "application/json", 400, "INVALID_REQUEST"),
        (b'{"nothing": "here"}', "application/json", 400, "INVALID_REQUEST"),
        (b"\xff\xfe", "application/json", 400, "INVALID_REQUEST"),
        (b'{"token": "' + b"A" * 5000 + b'"}', "application/json", 400, "INVALID_REQUEST"),
        (b'{"token": "' + b"A" * 20000 + b'"}', "application/json", 413, "TOO_LARGE"),
        (b"token=x", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"token=x", "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
async def test_bad_input_is_a_4xx_with_a_reason_never_a_500(
    federation: Federation,
    station: Running,
    http: aiohttp.ClientSession,
    body: bytes,
    content_type: str,
    status: int,
    reason: str,
) -> None:
    csrf = await signed_in(http, station)
    headers = {"X-CSRF-Token": csrf, "Content-Type": content_type}
    async with http.post(f"{station.url}/api/verify", data=body, headers=headers) as r:
        assert r.status == status, await r.text()
        assert (await r.json())["reason"] == reason


async def test_odd_paths_and_methods_are_json_4xx(
    station: Running, http: aiohttp.ClientSession
) -> None:
    for method, path, status in (
        ("GET", "/api/verify", 405),
        ("GET", "/nowhere", 404),
        ("GET", "/static/../web/station.py", 404),
        ("GET", "/static/%2e%2e/station.py", 404),
        ("DELETE", "/", 405),
    ):
        async with http.request(method, f"{station.url}{path}") as r:
            assert r.status == status, (method, path, r.status)
            assert "reason" in await r.json()


async def test_every_answer_carries_the_security_headers_and_no_inline_script(
    station: Running, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{station.url}/") as r:
        html = await r.text()
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
    async with http.post(f"{station.url}/api/verify", json={}) as r:
        assert r.headers["Content-Security-Policy"] == csp  # errors too


async def test_https_only_with_the_stations_certificate(
    federation: Federation, station: Running
) -> None:
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(f"http://127.0.0.1:{station.port}/") as r:
                await r.read()
    context = client_ssl(federation)
    _, writer = await asyncio.open_connection("127.0.0.1", station.port, ssl=context,
                                                   server_hostname="127.0.0.1")  # fmt: skip
    peer = writer.get_extra_info("ssl_object").getpeercert()
    writer.close()
    await writer.wait_closed()
    uris = [v for k, v in peer["subjectAltName"] if k == "URI"]
    assert uris == [f"spiffe://hcx/province/{SICHUAN}/web/chengdu-east"]


async def test_no_token_or_personal_data_in_the_logs(
    federation: Federation,
    station: Running,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    issued = await federation.issue("330000")
    caplog.set_level(logging.DEBUG)
    csrf = await signed_in(http, station)
    async with http.post(
        f"{station.url}/api/verify?x=1",
        json={"token": issued.token},
        headers={"X-CSRF-Token": csrf},
    ) as r:
        reply = await r.json()
    assert reply["masked_name"] == "张*明"
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "/api/verify" in text  # the access log is there...
    for secret in (issued.token, issued.token[5:40], "张*明", reply["id_tail"], csrf, "x=1"):
        assert secret not in text  # ...with no token, name, ID tail, CSRF token or query


async def test_a_flooding_device_is_rate_limited(
    federation: Federation, station: Running, http: aiohttp.ClientSession
) -> None:
    csrf = await signed_in(http, station)
    statuses = []
    for _ in range(30):
        async with http.post(
            f"{station.url}/api/verify", json={"token": "HCX1:x"}, headers={"X-CSRF-Token": csrf}
        ) as r:
            statuses.append(r.status)
    assert statuses[:20] == [200] * 20 and 429 in statuses[20:]


# -- found by an adversarial review --------------------------------------------------------------
async def test_a_station_whose_trust_list_expired_gives_no_offline_verdict(
    federation: Federation, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Cut the site's uplink and wait: a list past its not-after hides every revocation since,
    so the station answers 503 rather than VALID_OFFLINE on it."""
    issued = await federation.issue("330000")
    async with running_station(station_config(federation, tmp_path)):
        pass  # the list is held
    config = station_config(federation, tmp_path, gateways=("127.0.0.1:1",))
    async with running_station(config) as (running, port):
        station = Running(running, port, config)
        csrf = await signed_in(http, station)
        url, headers = f"{station.url}/api/verify", {"X-CSRF-Token": csrf}
        async with http.post(url, json={"token": issued.token}, headers=headers) as r:
            assert (await r.json())["verdict"] == "VALID_OFFLINE"  # within the list's life
        frozen_at = running.list_not_after + 1
        running.clock = lambda: frozen_at  # days later, still cut off
        async with http.post(url, json={"token": issued.token}, headers=headers) as r:
            body = await r.json()
        assert (r.status, body["reason"]) == (503, "ISSUER_UNAVAILABLE"), body
        assert "expired" in body["message"]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"[" * 5000 + b"]" * 5000, {}),  # nested deeper than the parser's recursion
        (b'{"token": "\\ud800"}', {}),  # a lone surrogate: JSON, but no text
        (b'{"token": "' + b"\\ud800" * 3 + b'"}', {}),
        (b'{"token": 1e999}', {}),
        (b'{"token": ' + b"9" * 400 + b"}", {}),
        (b'{"token": "HCX1:x"}', {"X-CSRF-Token": b"\xff\xfe".decode("latin-1")}),
    ],
)
async def test_hostile_bodies_and_headers_are_4xx_not_500(
    station: Running, http: aiohttp.ClientSession, body: bytes, headers: dict[str, str]
) -> None:
    csrf = await signed_in(http, station)
    sent = {"X-CSRF-Token": csrf, "Content-Type": "application/json", **headers}
    async with http.post(f"{station.url}/api/verify", data=body, headers=sent) as r:
        assert 400 <= r.status < 500, (r.status, await r.text())
        assert (await r.json())["reason"]


async def test_a_raw_byte_cookie_or_enrolment_code_is_refused_not_a_500(
    station: Running, federation: Federation
) -> None:
    connector = aiohttp.TCPConnector(ssl=client_ssl(federation))
    async with aiohttp.ClientSession(connector=connector) as raw:
        cookie = {"Cookie": "__Host-hcx-session=" + b"\xff\xfe".decode("latin-1")}
        async with raw.post(f"{station.url}/api/verify", json={"token": "x"}, headers=cookie) as r:
            assert r.status == 401
        async with raw.post(f"{station.url}/api/enrol", data=b'{"code": "\\udfff"}',
                            headers={"Content-Type": "application/json"}) as r:  # fmt: skip
            assert r.status == 400
