"""A 3-member etcd cluster on loopback loses members; the registry and the gateways cope."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from nodes.grpc_edge import reason_of
from nodes.provincial.keys import ProvinceDir
from simulations.inprocess import Federation, start_federation
from tests.integration.etcd import EtcdCluster, etcd3  # noqa: F401  (fixture)
from tests.support import wait_for
from trust import pki, statements
from trust.errors import VerificationError
from trust.model import Reason
from trust.verify import check_code

pytestmark = pytest.mark.integration


@pytest.fixture
async def federation3(tmp_path: Path, etcd3: EtcdCluster) -> AsyncIterator[Federation]:  # noqa: F811
    federation = await start_federation(tmp_path, etcd3.url())
    federation.etcd = etcd3
    for province in ("330000", "510000"):
        await federation.onboard(province)
    yield federation
    await federation.close()


def reason(federation: Federation, token: str) -> Reason:
    try:
        check_code(token, federation.gateway.view, now=time.time())
    except VerificationError as e:
        return e.reason
    return Reason.NONE


async def test_one_member_lost_then_two_then_back(
    federation3: Federation,
    etcd3: EtcdCluster,  # noqa: F811
) -> None:
    federation = federation3
    await federation.start_node("330000")
    await federation.start_node("510000")
    zj_code = (await federation.issue("330000")).token
    sc_code = (await federation.issue("510000")).token
    sc_kid = pki.kid(pki.load_certificate_pem(
        ProvinceDir(federation.workdir / "510000").dsc_cert.read_bytes()))  # fmt: skip
    assert reason(federation, zj_code) is Reason.NONE

    # One member killed: reads, writes and the gateway's watch carry on.
    etcd3.kill(0)
    await federation.submit(federation.signed(statements.Suspension("330000", "m0 down"), "bob"))
    await wait_for(lambda: reason(federation, zj_code) is Reason.PROVINCE_SUSPENDED,
                   timeout=15, what="the suspension")  # fmt: skip

    # Two killed: no quorum. Writes fail with a clear error; the view keeps verifying.
    etcd3.kill(1)
    order = statements.DscRevocation(sc_kid, int(time.time()), "key_compromise")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await federation.submit(federation.signed(order, "alice"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(caught.value) is Reason.STORE_UNAVAILABLE and "etcd" in caught.value.details()
    assert reason(federation, sc_code) is Reason.NONE
    assert reason(federation, zj_code) is Reason.PROVINCE_SUSPENDED

    # Members back: writes work again and the view catches up.
    etcd3.restart(0)
    etcd3.restart(1)
    order = statements.DscRevocation(sc_kid, int(time.time()), "key_compromise")
    await wait_for(lambda: _submits(federation, order), timeout=30, what="writes again")
    version = federation.gateway.view.province("330000").version  # type: ignore[union-attr]
    await federation.propose_and_approve(statements.Resume("330000", "back"), base=version)
    await wait_for(lambda: reason(federation, sc_code) is Reason.KEY_REVOKED, timeout=15,
                   what="the revocation")  # fmt: skip
    await wait_for(lambda: reason(federation, zj_code) is Reason.NONE, timeout=15,
                   what="the resumption")  # fmt: skip


async def _submits(federation: Federation, order: statements.DscRevocation) -> bool:
    try:
        await federation.submit(federation.signed(order, "alice"))
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            return False
        raise
    return True
