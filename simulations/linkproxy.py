"""A slow or lossy link, in user space: a TCP proxy that delays what it forwards.

This kernel has no ``tc netem``, so a bad link is made by a process on a host of the test bed
(simulations/netbed.py) that stands between two others: ``python -m simulations.linkproxy
--listen IP:PORT --to IP:PORT --control FILE``. Its settings are read from ``FILE`` (JSON,
re-read every 50 ms, so a test changes the link while connections stay open):

* ``delay_ms``: one-way latency added to every chunk, each direction;
* ``jitter_ms``: up to this much more, at random;
* ``loss``: the chance that a chunk is "lost". TCP over a lossy link does not lose bytes, it
  retransmits them: a lost chunk is held for ``rto_ms`` (and again, with the same chance, at
  double the timeout), as a retransmission would hold it, and everything behind it waits.

Bytes are never reordered, dropped or changed; the TLS inside is end to end. What the proxy
did is counted in ``FILE.stats`` (chunks, bytes, losses) for the test's report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CHUNK = 16_384
POLL_S = 0.05
MAX_RETRIES = 6  # a chunk is held at most 2**6 - 1 retransmission timeouts


@dataclass
class Link:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    rto_ms: float = 200.0

    @classmethod
    def parse(cls, text: str) -> Link:
        """The settings in ``text``; ValueError on anything but known, sane numbers."""
        raw = json.loads(text)
        if not isinstance(raw, dict) or set(raw) - set(asdict(cls())):
            raise ValueError(f"unknown link settings: {raw!r}")
        link = cls(**{k: float(v) for k, v in raw.items()})
        if min(link.delay_ms, link.jitter_ms, link.rto_ms) < 0 or not 0 <= link.loss < 1:
            raise ValueError(f"bad link settings: {link}")
        return link

    def hold_s(self, rng: random.Random) -> float:
        """How long one chunk waits on this link."""
        wait = self.delay_ms + rng.uniform(0, self.jitter_ms)
        timeout = self.rto_ms
        for _ in range(MAX_RETRIES):
            if rng.random() >= self.loss:
                break
            wait += timeout
            timeout *= 2
        return wait / 1000


@dataclass
class Stats:
    connections: int = 0
    chunks: int = 0
    bytes: int = 0
    held_for_loss: int = 0


class Proxy:
    def __init__(self, target: tuple[str, int], control: Path, seed: int = 0) -> None:
        self.target = target
        self.control = control
        self.link = Link()
        self.stats = Stats()
        self.rng = random.Random(seed)

    async def follow_control(self) -> None:
        """Re-read the settings file; a bad file keeps the settings in force."""
        seen = ""
        while True:
            with contextlib.suppress(OSError):
                text = self.control.read_text()
                if text != seen:
                    seen = text
                    with contextlib.suppress(ValueError):
                        self.link = Link.parse(text)
            stats = self.control.with_suffix(".stats")
            stats.write_text(json.dumps(asdict(self.stats)))
            await asyncio.sleep(POLL_S)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self.pump(reader, up_writer), self.pump(up_reader, writer), return_exceptions=True
        )

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One direction: each chunk released at its time, in order (a queue per direction)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer))
        released = 0.0
        try:
            while chunk := await reader.read(CHUNK):
                loss_free = self.link.delay_ms / 1000 + self.link.jitter_ms / 1000
                hold = self.link.hold_s(self.rng)
                self.stats.held_for_loss += hold > loss_free + 1e-9
                released = max(released, time.monotonic() + hold)  # never reordered
                self.stats.chunks += 1
                self.stats.bytes += len(chunk)
                await queue.put((released, chunk))
            await queue.put((released, b""))
            await sender
        finally:
            sender.cancel()
            writer.close()

    @staticmethod
    async def _send(
        queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        while True:
            at, chunk = await queue.get()
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if not chunk:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected IP:PORT, not {text!r}")
    return host, int(port)


async def main(listen: tuple[str, int], target: tuple[str, int], control: Path) -> None:
    proxy = Proxy(target, control)
    server = await asyncio.start_server(proxy.handle, *listen)
    async with server:
        await asyncio.gather(server.serve_forever(), proxy.follow_control())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--to", type=_address, required=True)
    parser.add_argument("--control", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.listen, args.to, args.control))
