"""The load generator's checkpoints pick gateways as the checkpoint station does: a gateway
whose registry view is not current is asked only after the current ones."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest

from nodes.tls import Transport
from simulations.traffic import GatewayPool


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), code.name)


@pytest.fixture
async def pool() -> Any:
    made = GatewayPool(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], time.monotonic,
                       transport=Transport.insecure_dev_only())  # fmt: skip
    made.stubs = ["gw-0", "gw-1", "gw-2"]  # what ``invoke`` is handed: which gateway it asked
    yield made
    await made.close()


async def test_the_preferred_gateway_first_while_every_view_is_current(pool: Any) -> None:
    async def invoke(stub: str) -> str:
        return stub

    assert await pool.call(1, invoke) == (1, False, "gw-1")


async def test_a_gateway_not_current_is_asked_after_the_current_ones(pool: Any) -> None:
    asked: list[str] = []

    async def invoke(stub: str) -> str:
        asked.append(stub)
        if stub != "gw-0":
            raise rpc_error(grpc.StatusCode.UNAVAILABLE)
        return stub

    pool.current[0] = False  # gateway 0: its view is behind (its etcd member lost quorum)
    assert await pool.call(0, invoke) == (0, True, "gw-0")
    assert asked == ["gw-1", "gw-2", "gw-0"]  # the stale one only when no other answered
