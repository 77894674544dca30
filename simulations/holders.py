"""The holders' side of the simulation: getting a code (ApplyCode), keeping it fresh.

A traveller's first code comes from an application with a health declaration
(simulations.health); the app then refreshes it before it expires. The ledger keeps every
status the provinces acknowledged and when, which is what the invariants are checked against.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from healthcode.v1 import node_pb2, node_pb2_grpc
from nodes.failover import NoAnswer, first_answer, in_turn
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
        self._turn += 1
        try:
            _, reply = await first_answer(
                in_turn(self._addresses(province), self._turn),
                lambda address: getattr(self._stub(province, address), method)(
                    request, timeout=timeout
                ),
                fail_over=None,  # any failure: the next replica
            )
        except NoAnswer as e:
            assert e.last is not None
            raise e.last from None
        return reply

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


@dataclass
class Holders:
    """Gives travellers codes (through the residents' applications) and keeps them fresh."""

    nodes: NodePool
    codes: Sequence[str]
    apply: Callable[..., Awaitable[Any]]  # simulations.health.Residents.apply
    issued: int = 0
    issue_failures: int = 0

    async def ensure_token(self, traveller: Traveller, *, timeout: float = NODE_DEADLINE_S) -> bool:
        """Give the traveller a valid token (first code, or a refresh near expiry)."""
        if traveller.token and traveller.expires_at - time.time() > REFRESH_MARGIN_S:
            return True
        province = self.codes[traveller.home]
        if traveller.code_id:  # the app refreshes the code it holds: no write at the node
            try:
                request = node_pb2.RefreshCodeRequest(code_id=traveller.code_id)
                reply = await self.nodes.call(province, "RefreshCode", request, timeout=timeout)
            except grpc.aio.AioRpcError:
                self.issue_failures += 1
                return False
        else:
            reply = await self.apply(traveller, timeout=timeout)
            if reply is None:
                self.issue_failures += 1
                return False
        self.issued += 1
        traveller.code_id, traveller.token = reply.code_id, reply.token
        traveller.expires_at = reply.expires_at
        return True
