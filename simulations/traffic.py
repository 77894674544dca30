"""Checkpoints verifying travellers' codes through the national gateways.

A traffic mode is one way a checkpoint talks to a gateway (unary ``Verify``, ``VerifyBatch``,
``VerifyStream``). Each mode is a small class with ``unavailable()`` (why it cannot run in this
build, or None) and ``submit(scans)``; the load driver only sees that interface. Every mode fails
over to the next gateway when its preferred one is unreachable.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from gateway.feed import watch_views
from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from nodes.failover import NoAnswer, first_answer, in_turn
from nodes.tasks import cancel_and_wait
from nodes.tls import Transport

VERIFY_DEADLINE_S = 2.0
VIEW_CHECK_S = 2.0  # how often the gateways are asked whether their views are current
FAILOVER_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)


@dataclass(slots=True)
class Scan:
    """One code shown at one checkpoint."""

    traveller: int  # -1 for an injected code that belongs to nobody
    code_id: bytes
    token: str
    kind: str  # genuine, forged, tampered, expired, compromised
    origin: int
    destination: int
    issuer: int
    sent: float = 0.0  # seconds since traffic start, set when sent


@dataclass(slots=True)
class Verification:
    """A scan and what the gateway answered."""

    scan: Scan
    mode: str
    gateway: int  # index of the gateway that answered; -1 when none did
    failover: bool
    latency: float
    verdict: str  # VALID, VALID_OFFLINE, INVALID, or ERROR (no gateway answered)
    reason: str
    colour: int
    status_version: int
    kid: bytes


Record = Callable[[Verification], None]


def verdict_of(reply: Any) -> tuple[str, str]:
    reason = common_pb2.Reason.Name(reply.reason) if reply.reason else ""
    return common_pb2.Verdict.Name(reply.verdict), reason


class GatewayPool:
    """One channel per gateway; a call goes to the preferred gateway, then the others."""

    def __init__(
        self, addresses: Sequence[str], clock: Callable[[], float], *, transport: Transport
    ) -> None:
        self._channels = [transport.aio_channel(a) for a in addresses]
        self.stubs = [gateway_pb2_grpc.GatewayStub(c) for c in self._channels]
        self.clock = clock
        self.current = [True] * len(self.stubs)  # each gateway's registry view, last asked
        self._views: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Ask the gateways, as a checkpoint station does, whether their views are current."""
        self._views = asyncio.create_task(
            watch_views(self._channels, self.current.__setitem__, every=VIEW_CHECK_S)
        )

    def __len__(self) -> int:
        return len(self.stubs)

    async def call(
        self, preferred: int, invoke: Callable[[Any], Awaitable[Any]]
    ) -> tuple[int, bool, Any]:
        """(gateway index, failed over?, reply); raises the last RpcError if all failed."""
        turn = in_turn(range(len(self.stubs)), preferred)
        # Gateways whose view is current first, in turn from the preferred one; then the rest.
        order = sorted(turn, key=lambda i: not self.current[i])
        try:
            step, reply = await first_answer(
                order, lambda index: invoke(self.stubs[index]), fail_over=FAILOVER_CODES
            )
        except NoAnswer as e:
            assert e.last is not None
            raise e.last from None
        return order[step], step > 0, reply

    async def close(self) -> None:
        if self._views is not None:
            await cancel_and_wait(self._views)
        for channel in self._channels:
            await channel.close()


def request_of(scan: Scan, checkpoint: str, province_code: str) -> gateway_pb2.VerifyRequest:
    return gateway_pb2.VerifyRequest(
        token=scan.token, checkpoint_province=province_code, checkpoint_id=checkpoint
    )


def answered(
    scan: Scan, mode: str, gateway: int, failover: bool, latency: float, reply: Any
) -> Verification:
    verdict, reason = verdict_of(reply)
    return Verification(
        scan, mode, gateway, failover, latency, verdict, reason,
        reply.colour, reply.status_version, bytes(reply.kid),
    )  # fmt: skip


def unanswered(scan: Scan, mode: str, latency: float, error: grpc.aio.AioRpcError) -> Verification:
    return Verification(scan, mode, -1, True, latency, "ERROR", error.code().name, 0, 0, b"")


class _PerScanMode(abc.ABC):
    """A mode that verifies each scan in its own task, at most ``limit`` at a time; scans
    arriving while every slot is busy are shed (counted), so the generator's memory stays
    bounded."""

    def __init__(self, pool: GatewayPool, codes: Sequence[str], record: Record, *, limit: int):
        self._pool = pool
        self._codes = codes
        self._record = record
        self._slots = asyncio.Semaphore(limit)
        self.tasks: set[asyncio.Task[None]] = set()
        self.shed = 0  # scans the load generator dropped because every slot was busy

    def submit(self, scans: Sequence[Scan], preferred: int) -> None:
        for scan in scans:
            if self._slots.locked():
                self.shed += 1
                continue
            task = asyncio.create_task(self._one(scan, preferred))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    @abc.abstractmethod
    async def _one(self, scan: Scan, preferred: int) -> None:
        """Verify one scan, within a slot, and record what the gateway answered."""


class UnaryMode(_PerScanMode):
    """One ``Verify`` call per scan (a roadside checkpoint with a phone)."""

    name = "unary"

    def flush(self) -> None:
        """Nothing is held back in this mode."""

    def close(self) -> None:
        """Nothing long-lived to close in this mode."""

    async def _one(self, scan: Scan, preferred: int) -> None:
        async with self._slots:
            scan.sent = self._pool.clock()
            province = self._codes[scan.destination]
            request = request_of(scan, f"{province}-road", province)
            began = time.perf_counter()
            try:
                index, failover, reply = await self._pool.call(
                    preferred, lambda stub: stub.Verify(request, timeout=VERIFY_DEADLINE_S)
                )
            except grpc.aio.AioRpcError as e:
                self._record(unanswered(scan, self.name, time.perf_counter() - began, e))
                return
            latency = time.perf_counter() - began
            self._record(answered(scan, self.name, index, failover, latency, reply))


class BatchMode:
    """A crowded station: scans collected per tick and sent as one ``VerifyBatch``."""

    name = "batch"
    MAX_BATCH = 200

    def __init__(self, pool: GatewayPool, codes: Sequence[str], record: Record, *, limit: int):
        self._pool = pool
        self._codes = codes
        self._record = record
        self._slots = asyncio.Semaphore(max(1, limit // 20))
        self._waiting: dict[tuple[int, int], list[Scan]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.shed = 0

    def submit(self, scans: Sequence[Scan], preferred: int) -> None:
        for scan in scans:
            self._waiting.setdefault((scan.destination, preferred), []).append(scan)

    def close(self) -> None:
        """Nothing long-lived to close in this mode."""

    def flush(self) -> None:
        """Send what each station collected since the last tick."""
        waiting, self._waiting = self._waiting, {}
        for (destination, preferred), scans in waiting.items():
            for i in range(0, len(scans), self.MAX_BATCH):
                if self._slots.locked():
                    self.shed += len(scans[i:])
                    break
                chunk = scans[i : i + self.MAX_BATCH]
                task = asyncio.create_task(self._send(destination, preferred, chunk))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _send(self, destination: int, preferred: int, scans: list[Scan]) -> None:
        async with self._slots:
            province = self._codes[destination]
            request = gateway_pb2.VerifyBatchRequest(
                tokens=[s.token for s in scans],
                checkpoint_province=province,
                checkpoint_id=f"{province}-station",
            )
            sent = self._pool.clock()
            for scan in scans:
                scan.sent = sent
            began = time.perf_counter()
            try:
                index, failover, reply = await self._pool.call(
                    preferred, lambda stub: stub.VerifyBatch(request, timeout=VERIFY_DEADLINE_S)
                )
            except grpc.aio.AioRpcError as e:
                for scan in scans:
                    self._record(unanswered(scan, self.name, time.perf_counter() - began, e))
                return
            latency = time.perf_counter() - began
            for scan, result in zip(scans, reply.results, strict=True):
                self._record(answered(scan, self.name, index, failover, latency, result))


class _StreamSession:
    """One long-lived ``VerifyStream`` to one gateway; answers matched by sequence."""

    def __init__(self, stub: Any) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._sequence = 0
        self._call = stub.VerifyStream(self._requests())
        self.reader = asyncio.create_task(self._read())
        self.broken = False

    async def _requests(self) -> Any:
        while True:
            yield await self._queue.get()

    async def _read(self) -> None:
        try:
            async for response in self._call:
                future = self._pending.pop(response.sequence, None)
                if future is not None and not future.done():
                    future.set_result(response.result)
        except grpc.aio.AioRpcError as e:
            self._fail(e)
        finally:
            self.broken = True
            self._fail(None)

    def _fail(self, error: grpc.aio.AioRpcError | None) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error or ConnectionError("stream closed"))
        self._pending.clear()

    async def verify(self, request: gateway_pb2.VerifyRequest) -> Any:
        self._sequence += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._sequence] = future
        await self._queue.put(gateway_pb2.VerifyStreamRequest(sequence=self._sequence,
                                                              request=request))  # fmt: skip
        async with asyncio.timeout(VERIFY_DEADLINE_S):
            return await future

    def close(self) -> None:
        self._call.cancel()
        self.reader.cancel()


class StreamMode(_PerScanMode):
    """An airport gate: one ``VerifyStream`` per gateway, re-opened after a failure."""

    name = "stream"

    def __init__(self, pool: GatewayPool, codes: Sequence[str], record: Record, *, limit: int):
        super().__init__(pool, codes, record, limit=limit)
        self._sessions: dict[int, _StreamSession] = {}

    def flush(self) -> None:
        """Scans go out as they come."""

    def _session(self, index: int) -> _StreamSession:
        session = self._sessions.get(index)
        if session is None or session.broken:
            session = self._sessions[index] = _StreamSession(self._pool.stubs[index])
        return session

    async def _one(self, scan: Scan, preferred: int) -> None:
        async with self._slots:
            scan.sent = self._pool.clock()
            province = self._codes[scan.destination]
            request = request_of(scan, f"{province}-airport", province)
            began = time.perf_counter()
            error: Exception | None = None
            for step in range(len(self._pool)):
                index = (preferred + step) % len(self._pool)
                try:
                    reply = await self._session(index).verify(request)
                except (grpc.aio.AioRpcError, ConnectionError, TimeoutError) as e:
                    error = e
                    continue
                latency = time.perf_counter() - began
                self._record(answered(scan, self.name, index, step > 0, latency, reply))
                return
            code = error.code().name if isinstance(error, grpc.aio.AioRpcError) else "UNAVAILABLE"
            self._record(Verification(scan, self.name, -1, True, time.perf_counter() - began,
                                      "ERROR", code, 0, 0, b""))  # fmt: skip

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
