"""The node's trust-list follower reports what it verifies with: revision, pulls, age.

A real signed trust list of a test registry, kept on disk as a node keeps it; the gateway is
a stub that cannot be reached, as during an outage. The age of a list loaded after a restart
runs from when the gateway signed it, so a node cut off from every gateway shows its list
growing old instead of looking fresh (or NaN, which no alert would catch).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import REGISTRY

from nodes.provincial.trustlist import TrustListFollower
from simulations.registry_builder import RegistryBuilder
from trust import cbor, trustlist

PROVINCE = "510000"


class Unreachable:
    """A gateway stub whose every call fails as a dead link does."""

    async def GetTrustList(self, request: Any, timeout: float) -> Any:
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
        )


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"province": PROVINCE, **labels})


def kept_list(tmp_path: Path) -> tuple[RegistryBuilder, Path, int]:
    registry = RegistryBuilder()
    signed_at = int(time.time())
    registry.onboard("330000", "浙江省")
    signed = trustlist.build(registry.view(), registry.trust_list_signer, now=signed_at)
    checked = trustlist.verify(signed, [registry.root.certificate], now=signed_at)
    path = tmp_path / "trust-list.cbor"
    path.write_bytes(cbor.encode({"signed": signed, "leaves": list(checked.leaves)}))
    return registry, path, signed_at


async def test_a_list_kept_across_a_restart_reports_its_real_age(tmp_path: Path) -> None:
    registry, path, signed_at = kept_list(tmp_path)
    now = [signed_at + 40.0]
    follower = TrustListFollower(
        gateway=Unreachable(),
        roots=[registry.root.certificate],
        clock=lambda: now[0],
        state_file=path,
        province=PROVINCE,
    )
    assert math.isnan(sample("hcx_node_trust_list_age_seconds"))  # type: ignore[arg-type]
    assert follower.load_saved()
    assert follower.view() is not None
    assert sample("hcx_node_trust_list_age_seconds") == 40.0
    assert sample("hcx_node_trust_list_revision") == registry.view().revision
    failed = sample("hcx_node_trust_list_pulls_total", outcome="failed") or 0.0
    assert not await follower.pull()  # the gateway is still down
    now[0] += 20
    assert sample("hcx_node_trust_list_age_seconds") == 60.0
    assert sample("hcx_node_trust_list_pulls_total", outcome="failed") == failed + 1
