"""The residents' page (``hcx node web``) in Debian's Chromium: apply, see my code, check in;
the QR on screen decodes to a token the gateway verifies."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright

from hcx.qr import read_qr_image
from healthcode.v1 import common_pb2, gateway_pb2, node_pb2
from simulations.inprocess import Federation
from tests.integration.browser import browser, spki_pin
from tests.integration.test_web_station import SCREENSHOTS, client_ssl, web_identity
from trust.codeformat import decode_token
from web.traveller import ResidentWebConfig, running_resident_web

pytestmark = pytest.mark.integration

ZJ = "330000"


class FakeClock:
    def __init__(self) -> None:
        import time

        self.offset = 0.0
        self._time = time.time

    def __call__(self) -> float:
        return self._time() + self.offset


@pytest.fixture
async def resident_web(
    federation: Federation, tmp_path: Path
) -> AsyncIterator[tuple[str, Path, FakeClock]]:
    web_tls = web_identity(federation, ZJ, tmp_path / "web-tls", name="residents")
    config = ResidentWebConfig(
        province=ZJ,
        nodes=("127.0.0.1:1", federation.nodes[ZJ].address),  # the first replica is down
        transport=federation.operator(ZJ),
        web_tls=web_tls,
        listen="127.0.0.1:0",
    )
    clock = FakeClock()
    async with running_resident_web(config, clock) as (_, port):
        yield f"https://127.0.0.1:{port}", web_tls, clock


async def verify(federation: Federation, token: str) -> gateway_pb2.VerifyResponse:
    return await federation.checkpoint_stub("510000").Verify(
        gateway_pb2.VerifyRequest(token=token, checkpoint_province="510000"), timeout=5
    )


def holder(federation: Federation) -> tuple[str, str]:
    id_number, name = federation.holder(ZJ)
    return id_number, name


async def test_a_resident_applies_sees_a_verifiable_qr_and_checks_in(
    federation: Federation, resident_web: tuple[str, Path, FakeClock], tmp_path: Path
) -> None:
    url, web_tls, _ = resident_web
    id_number, name = holder(federation)
    pin = spki_pin((web_tls / "cert.pem").read_bytes())
    async with async_playwright() as playwright, browser(playwright, camera=None, pin=pin) as page:
        await page.goto(url)
        await page.fill("#id-number", id_number)
        await page.fill("#full-name", name)
        await page.fill("#residence", "330106")
        await page.check("#fever")  # the policy's fever rule: yellow, 7 days at home
        await page.click("#apply-form button[type=submit]")
        await page.wait_for_selector("#code:not([hidden]) #qr[src^='data:image/svg+xml']")
        await page.wait_for_selector("#quarantine:not([hidden])")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "traveller-yellow.png"), full_page=True)
        shot = tmp_path / "qr.png"
        await page.locator("#qr").screenshot(path=str(shot))
        colour = await page.get_attribute("#qr-box", "data-colour")
        words = await page.text_content("#colour-word")
        holder_text = await page.text_content("#holder")
        progress = await page.text_content("#progress")
        body = await page.content()
        await page.fill("#temperature", "36.6")
        await page.click("#check-in-form button[type=submit]")
        await page.wait_for_selector("#check-in-result:text-is('Checked in')")
        after = await page.text_content("#progress")
        assert not page.errors, page.errors
    token = read_qr_image(shot)  # what a checkpoint's camera would read off the screen
    reply = await verify(federation, token)
    assert (reply.verdict, reply.colour) == (common_pb2.VALID, common_pb2.YELLOW)
    assert (colour, words) == ("YELLOW", "YELLOW · MANAGED")
    assert holder_text == f"Holder 张*明 · ID ending {id_number[-4:]}"
    assert progress and "of 7" in progress and after and "1 checked in" in after
    assert id_number not in body and name not in body  # only the code's masked fields shown


async def test_the_qr_is_re_signed_when_the_colour_moves_or_half_its_life_is_gone(
    federation: Federation, resident_web: tuple[str, Path, FakeClock]
) -> None:
    url, _, clock = resident_web
    id_number, name = holder(federation)
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(ssl=client_ssl(federation))
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
        declaration = {"fever": False, "contact": False, "residence": "330106"}
        async with http.post(
            f"{url}/api/sign-in",
            json={"id_number": id_number, "full_name": name, "declaration": declaration},
        ) as r:
            first = await r.json()
            assert r.status == 200, first
        assert first["state"]["colour"] == "GREEN"
        code_id = bytes.fromhex(decode_token(_token(first)).claims.code_id.hex())
        await federation.nodes[ZJ].stub.SetStatus(
            node_pb2.SetStatusRequest(
                code_id=code_id, colour=common_pb2.RED, reason="test", request_id=str(uuid.uuid4())
            ),
            timeout=5,
        )
        async with http.get(f"{url}/api/code") as r:
            moved = await r.json()
        assert moved["state"]["colour"] == "RED"
        assert decode_token(_token(moved)).claims.colour.name == "RED"  # a new QR, not the old
        assert (await verify(federation, _token(moved))).colour == common_pb2.RED
        async with http.get(f"{url}/api/code") as r:
            same = await r.json()
        assert _token(same) == _token(moved)  # young enough: shown again
        clock.offset = same["refresh_at"] - same["now"] + 1  # past half its life
        async with http.get(f"{url}/api/code") as r:
            later = await r.json()
        assert _token(later) != _token(moved) and later["refresh_at"] > same["refresh_at"]


def _token(view: dict) -> str:
    token = view["token"]
    assert isinstance(token, str) and token.startswith("HCX1:")
    return token


async def _sign_in(http: aiohttp.ClientSession, url: str, id_number: str, name: str,
                   **declared: object) -> tuple[int, dict]:  # fmt: skip
    declaration = {"fever": False, "contact": False, "residence": "330106", **declared}
    async with http.post(
        f"{url}/api/sign-in",
        json={"id_number": id_number, "full_name": name, "declaration": declaration},
    ) as r:
        return r.status, await r.json()


def _client(federation: Federation) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=client_ssl(federation))
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_knowing_an_id_number_without_its_name_gives_no_one_the_code(
    federation: Federation, resident_web: tuple[str, Path, FakeClock]
) -> None:
    url, _, _ = resident_web
    id_number, name = holder(federation)
    async with _client(federation) as victim, _client(federation) as attacker:
        status, mine = await _sign_in(victim, url, id_number, name)
        assert status == 200 and mine["state"]["colour"] == "GREEN"
        status, body = await _sign_in(attacker, url, id_number, "李四", fever=True, contact=True)
        assert (status, body["reason"]) == (400, "INVALID_REQUEST"), body
        assert "token" not in body and "masked_name" not in body
        async with victim.get(f"{url}/api/code") as r:
            assert (await r.json())["state"]["colour"] == "GREEN"  # no declaration was made


async def test_declarations_in_one_holders_name_are_limited(
    federation: Federation, resident_web: tuple[str, Path, FakeClock]
) -> None:
    url, _, _ = resident_web
    id_number, name = holder(federation)
    statuses = []
    async with _client(federation) as http:
        for _ in range(5):
            status, _ = await _sign_in(http, url, id_number, name)
            statuses.append(status)
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]


def _declared(**more: object) -> dict[str, object]:
    return {"fever": False, "contact": False, "residence": "330106", **more}


@pytest.mark.parametrize(
    "payload",
    [
        {"id_number": "\ud800", "full_name": "x", "declaration": _declared()},
        {"id_number": "x", "full_name": "x",
         "declaration": _declared(travel=[{"district": "330106", "at": 10**30}])},
        {"id_number": "x", "full_name": "x",
         "declaration": _declared(travel=[{"district": "330106", "at": -(10**19)}])},
        {"id_number": "x", "full_name": "x", "declaration": "yes"},
        {"id_number": "x", "full_name": "x", "declaration": _declared(fever="no")},
    ],
)  # fmt: skip
async def test_hostile_sign_ins_are_4xx_not_500(
    federation: Federation,
    resident_web: tuple[str, Path, FakeClock],
    payload: dict,
) -> None:
    url, _, _ = resident_web
    async with _client(federation) as http, http.post(f"{url}/api/sign-in", json=payload) as r:
        assert 400 <= r.status < 500, (r.status, await r.text())


async def test_a_huge_temperature_is_a_4xx_not_a_500(
    federation: Federation, resident_web: tuple[str, Path, FakeClock]
) -> None:
    url, _, _ = resident_web
    id_number, name = holder(federation)
    async with _client(federation) as http:
        status, body = await _sign_in(http, url, id_number, name)
        assert status == 200
        for temperature in (10**400, 1e308, -(10**30)):
            async with http.post(
                f"{url}/api/check-in",
                json={"temperature_c": temperature, "request_id": "r-000000001"},
                headers={"X-CSRF-Token": body["csrf"]},
            ) as r:
                assert 400 <= r.status < 500, (temperature, r.status, await r.text())
