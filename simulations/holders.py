"""The provinces' side of the simulation: issuing travellers' codes and changing their colours.

Every colour change is sent with one request id and retried (same id: SetStatus is idempotent)
on another replica until it is acknowledged or the run ends; the ledger keeps what was
acknowledged and when, which is what the invariants are checked against.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from healthcode.v1 import common_pb2, node_pb2, node_pb2_grpc
from nodes.provincial.issuance import with_check_character
from nodes.tls import Transport
from simulations.mobility import Traveller

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
NODE_DEADLINE_S = 1.0
REFRESH_MARGIN_S = 20  # a holder's app fetches a fresh token this long before expiry


@dataclass(frozen=True)
class Ack:
    """A status the issuing province acknowledged, and when (seconds since traffic start)."""

    at: float
    version: int
    colour: int


@dataclass
class StatusLedger:
    """What every province acknowledged, per code."""

    acks: dict[bytes, list[Ack]] = field(default_factory=dict)
    home: dict[bytes, int] = field(default_factory=dict)
    sent: int = 0
    retries: int = 0
    abandoned: int = 0  # never acknowledged before the run ended (may or may not be applied)
    abandoned_codes: set[bytes] = field(default_factory=set)

    def acknowledge(self, code_id: bytes, home: int, at: float, status: Any) -> None:
        self.home[code_id] = home
        self.acks.setdefault(code_id, []).append(Ack(at, status.status_version, status.colour))

    def latest_before(self, code_id: bytes, at: float) -> Ack | None:
        """The newest acknowledgement made at or before ``at``."""
        best = None
        for ack in self.acks.get(code_id, ()):
            if ack.at <= at and (best is None or ack.version > best.version):
                best = ack
        return best


def random_holder(rng: random.Random, province: str) -> tuple[str, str]:
    """A valid-looking resident ID number of the province and a name."""
    first17 = (
        province[:6]
        + f"{rng.randint(1950, 2010)}{rng.randint(1, 12):02d}"
        + f"{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
    )
    return with_check_character(first17), rng.choice(SURNAMES) + rng.choice(GIVEN) * 2


class NodePool:
    """Channels to node replicas by address; a call tries every live replica of the province."""

    def __init__(
        self, addresses: Callable[[str], list[str]], operator: Callable[[str], Transport]
    ) -> None:
        self._addresses = addresses  # looked up per call: a restarted replica has a new port
        self._operator = operator  # the province's operator identity (mTLS)
        self._stubs: dict[str, node_pb2_grpc.ProvincialNodeStub] = {}
        self._channels: list[grpc.aio.Channel] = []
        self._turn = 0

    def _stub(self, province: str, address: str) -> node_pb2_grpc.ProvincialNodeStub:
        if address not in self._stubs:
            channel = self._operator(province).aio_channel(address)
            self._channels.append(channel)
            self._stubs[address] = node_pb2_grpc.ProvincialNodeStub(channel)
        return self._stubs[address]

    async def call(
        self, province: str, method: str, request: Any, *, timeout: float = NODE_DEADLINE_S
    ) -> Any:
        """Round-robin over the province's replicas; the next one on any RPC failure."""
        addresses = self._addresses(province)
        self._turn += 1
        last: grpc.aio.AioRpcError | None = None
        for i in range(len(addresses)):
            stub = self._stub(province, addresses[(self._turn + i) % len(addresses)])
            try:
                return await getattr(stub, method)(request, timeout=timeout)
            except grpc.aio.AioRpcError as e:
                last = e
        assert last is not None
        raise last

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


@dataclass
class Holders:
    """Issues codes to travellers and sends exposure events to their home provinces."""

    nodes: NodePool
    codes: Sequence[str]
    ledger: StatusLedger
    clock: Callable[[], float]
    rng: random.Random
    until: float  # seconds since traffic start after which retries stop
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    issued: int = 0
    issue_failures: int = 0

    async def ensure_token(self, traveller: Traveller, *, timeout: float = NODE_DEADLINE_S) -> bool:
        """Give the traveller a valid token (first code, or a refresh near expiry)."""
        if traveller.token and traveller.expires_at - time.time() > REFRESH_MARGIN_S:
            return True
        province = self.codes[traveller.home]
        try:
            if traveller.code_id:  # the app refreshes the code it holds: no write at the node
                request: Any = node_pb2.RefreshCodeRequest(code_id=traveller.code_id)
                reply = await self.nodes.call(province, "RefreshCode", request, timeout=timeout)
            else:
                id_number, name = random_holder(random.Random(traveller.index), province)
                request = node_pb2.IssueCodeRequest(id_number=id_number, full_name=name)
                reply = await self.nodes.call(province, "IssueCode", request, timeout=timeout)
        except grpc.aio.AioRpcError:
            self.issue_failures += 1
            return False
        self.issued += 1
        if not traveller.code_id:
            status = common_pb2.CodeStatus(status_version=reply.status_version, colour=reply.colour)
            self.ledger.acknowledge(reply.code_id, traveller.home, self.clock(), status)
        traveller.code_id, traveller.token = reply.code_id, reply.token
        traveller.expires_at = reply.expires_at
        return True

    def expose(self, traveller: Traveller, recovery_s: float) -> None:
        """An exposure event: YELLOW or RED now, GREEN again after ``recovery_s``."""
        traveller.busy = True
        task = asyncio.create_task(self._episode(traveller, recovery_s))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _episode(self, traveller: Traveller, recovery_s: float) -> None:
        try:
            colour = common_pb2.RED if self.rng.random() < 0.3 else common_pb2.YELLOW
            if await self.set_colour(traveller, colour, "close contact"):
                await asyncio.sleep(recovery_s)
                await self.set_colour(traveller, common_pb2.GREEN, "negative test")
        finally:
            traveller.busy = False

    async def set_colour(self, traveller: Traveller, colour: Any, reason: str) -> bool:
        """Send until acknowledged (same request id each time); False if the run ended first."""
        request = node_pb2.SetStatusRequest(
            code_id=traveller.code_id, colour=colour, reason=reason, request_id=str(uuid.uuid4())
        )
        province = self.codes[traveller.home]
        self.ledger.sent += 1
        while self.clock() < self.until:
            try:
                reply = await self.nodes.call(province, "SetStatus", request)
            except grpc.aio.AioRpcError:
                self.ledger.retries += 1
                await asyncio.sleep(0.2)
                continue
            self.ledger.acknowledge(traveller.code_id, traveller.home, self.clock(), reply.status)
            return True
        self.ledger.abandoned += 1
        self.ledger.abandoned_codes.add(traveller.code_id)
        return False
