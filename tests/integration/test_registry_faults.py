"""A 3-member etcd cluster on loopback loses members; the registry and the gateways cope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.etcd import EtcdCluster, etcd3  # noqa: F401  (fixture)
from tests.integration.registry_world import World, make_world, reason_of
from trust.errors import StoreUnavailable
from trust.model import Reason

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(tmp_path: Path, etcd3: EtcdCluster) -> AsyncIterator[World]:  # noqa: F811
    made = await make_world(tmp_path / "national", etcd3.url())
    yield made
    await made.close()


async def eventually(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_one_member_lost_then_two_then_back(
    world: World,
    etcd3: EtcdCluster,  # noqa: F811
) -> None:
    zj = await world.province("330000")
    sc = await world.province("510000")
    gateway = await world.gateway()
    zj_code, sc_code = zj.token(), sc.token()
    assert reason_of(zj_code, gateway.view) is Reason.NONE

    # One member killed: reads, writes and the gateway's watch carry on.
    etcd3.kill(0)
    await world.coordinator.set_suspended("330000", True, why="member 0 down")
    await eventually(lambda: reason_of(zj_code, gateway.view) is Reason.PROVINCE_SUSPENDED, 10)
    assert (await world.coordinator.province("330000")).suspended

    # Two killed: no quorum. Writes fail with a clear error; the view keeps verifying.
    etcd3.kill(1)
    with pytest.raises(StoreUnavailable, match="etcd"):
        await world.coordinator.revoke(kid=sc.kid, reason="key_compromise")
    assert reason_of(sc_code, gateway.view) is Reason.NONE
    assert reason_of(zj_code, gateway.view) is Reason.PROVINCE_SUSPENDED

    # Members back: writes work again and the view catches up.
    etcd3.restart(0)
    etcd3.restart(1)
    await world.coordinator.revoke(kid=sc.kid, reason="key_compromise")
    await world.coordinator.set_suspended("330000", False)
    await eventually(lambda: reason_of(sc_code, gateway.view) is Reason.KEY_REVOKED, 15)
    await eventually(lambda: reason_of(zj_code, gateway.view) is Reason.NONE, 15)
