"""The user-space slow and lossy link: settings checked, chunks held as a retransmitting TCP
would hold them, bytes never reordered or lost, settings changed while connections stay open."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import pytest

from simulations.linkproxy import MAX_RETRIES, Link, Proxy


@pytest.mark.parametrize(
    "text",
    [
        '{"delay_ms": -1}',
        '{"loss": 1}',
        '{"loss": -0.1}',
        '{"speed": 3}',
        "[1]",
        '{"delay_ms": "x"}',
    ],
)
def test_bad_settings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Link.parse(text)


def test_a_chunk_waits_the_delay_plus_a_doubling_timeout_per_loss() -> None:
    assert Link(delay_ms=40).hold_s(random.Random(1)) == pytest.approx(0.04)
    always = Link(delay_ms=10, loss=0.999999, rto_ms=100)  # every try lost: capped
    assert always.hold_s(random.Random(1)) == pytest.approx(
        (10 + 100 * (2**MAX_RETRIES - 1)) / 1000
    )
    rng = random.Random(7)
    holds = [Link(delay_ms=0, loss=0.3, rto_ms=100).hold_s(rng) for _ in range(2000)]
    lost = sum(h > 0 for h in holds) / len(holds)
    assert 0.25 < lost < 0.35  # about the loss rate; each a sum of 100, 200, 400... ms
    assert {round(h, 3) for h in holds} <= {0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3}


async def test_bytes_arrive_whole_and_in_order_through_delay_and_loss(tmp_path: Path) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    control = tmp_path / "link.json"
    control.write_text(json.dumps({"delay_ms": 60, "loss": 0.3, "rto_ms": 20}))
    proxy = Proxy(("127.0.0.1", upstream.sockets[0].getsockname()[1]), control, seed=3)
    follower = asyncio.create_task(proxy.follow_control())
    front = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    try:
        await asyncio.sleep(0.1)  # the settings read
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", front.sockets[0].getsockname()[1]
        )
        sent = bytes(random.Random(5).randbytes(200_000))
        started = time.monotonic()
        writer.write(sent)
        await writer.drain()
        got = b""
        while len(got) < len(sent):
            got += await asyncio.wait_for(reader.read(65536), 10)
        assert got == sent
        assert time.monotonic() - started >= 0.12  # at least the delay, both ways
        control.write_text("{}")  # a good link again, on the same connection
        await asyncio.sleep(0.15)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        writer.close()
        stats = json.loads(control.with_suffix(".stats").read_text())
        assert stats["connections"] == 1 and stats["held_for_loss"] > 0
    finally:
        follower.cancel()
        front.close()
        upstream.close()
