"""Fixtures of the integration tests: a real federation (simulations.inprocess)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simulations.inprocess import Federation, start_federation

pytestmark = pytest.mark.integration


@pytest.fixture
async def empty_federation(tmp_path: Path) -> AsyncIterator[Federation]:
    """A national gateway (mTLS) with an embedded registry: genesis only, no provinces yet."""
    federation = await start_federation(tmp_path)
    yield federation
    await federation.close()


@pytest.fixture
async def federation(empty_federation: Federation) -> Federation:
    """Zhejiang (330000), Sichuan (510000) and Hainan (460000), each with one node; the
    gateway stub is a checkpoint of Sichuan."""
    for province in ("330000", "510000", "460000"):
        await empty_federation.onboard(province)
        await empty_federation.start_node(province)
    empty_federation.gateway_stub = empty_federation.checkpoint_stub("510000")
    return empty_federation


@pytest.fixture(params=["sqlite", "etcd"])
async def federation_on_each_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Federation]:
    """Zhejiang and Sichuan with one node each, on the embedded store and on a real etcd."""
    async for federation in _two_provinces(tmp_path, etcd=request.param == "etcd"):
        yield federation


@pytest.fixture
async def federation_on_etcd(tmp_path: Path) -> AsyncIterator[Federation]:
    """The same on a real etcd only (etcd procedures: snapshots, members)."""
    async for federation in _two_provinces(tmp_path, etcd=True):
        yield federation


@pytest.fixture
async def federation_on_etcd3(tmp_path: Path) -> AsyncIterator[Federation]:
    """The same on a 3-member etcd named as in docker-compose.yml (etcd-1..3, token
    hcx-registry), for the runbook's backup and restore."""
    async for federation in _two_provinces(tmp_path, etcd=True, members=3):
        yield federation


async def _two_provinces(
    tmp_path: Path, *, etcd: bool, members: int = 1
) -> AsyncIterator[Federation]:
    cluster = None
    url = None
    if etcd:
        from tests.integration.etcd import make_cluster

        if members == 1:
            cluster = make_cluster(tmp_path / "etcd", 1)
        else:
            names = [f"etcd-{i + 1}" for i in range(members)]
            cluster = make_cluster(tmp_path / "etcd", members, names=names, token="hcx-registry")
        url = f"etcd://{cluster.endpoints}/t{time.monotonic_ns()}/"
    federation = await start_federation(tmp_path, url)
    federation.etcd = cluster
    try:
        for province in ("330000", "510000"):
            await federation.onboard(province)
            await federation.start_node(province)
        federation.gateway_stub = federation.checkpoint_stub("510000")
        yield federation
    finally:
        await federation.close()
        if cluster is not None:
            cluster.stop()
