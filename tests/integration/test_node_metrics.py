"""A provincial node's own metrics move with what it does (docs/verdicts.md, "Node metrics").

Real gRPC servers on 127.0.0.1: codes issued and refreshed by the operator, colour changes
(a replayed request id counted once), look-ups by the gateway, the lease and the trust list.
The series are read from the process's registry, where the in-process nodes register them.
"""

from __future__ import annotations

import math
import uuid

import pytest
from prometheus_client import REGISTRY

from healthcode.v1 import common_pb2, gateway_pb2, node_pb2
from simulations.inprocess import Federation
from tests.support import wait_for

pytestmark = pytest.mark.integration

ZJ = "330000"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_issuance_refresh_and_colour_changes_are_counted(federation: Federation) -> None:
    node = federation.nodes[ZJ].stub
    issued_before = value("hcx_node_codes_issued_total", province=ZJ, how="issue")
    refreshed_before = value("hcx_node_codes_issued_total", province=ZJ, how="refresh")
    red_before = value("hcx_node_colour_changes_total", province=ZJ, colour="RED", cause="operator")

    issued = await federation.issue(ZJ)
    await federation.issue(ZJ)
    await node.RefreshCode(node_pb2.RefreshCodeRequest(code_id=issued.code_id), timeout=5)
    request = node_pb2.SetStatusRequest(
        code_id=issued.code_id, colour=common_pb2.RED, reason="close contact",
        request_id=str(uuid.uuid4()),
    )  # fmt: skip
    await node.SetStatus(request, timeout=5)
    await node.SetStatus(request, timeout=5)  # the same request id again: applied once

    assert value("hcx_node_codes_issued_total", province=ZJ, how="issue") == issued_before + 2
    assert value("hcx_node_codes_issued_total", province=ZJ, how="refresh") == refreshed_before + 1
    assert (
        value("hcx_node_colour_changes_total", province=ZJ, colour="RED", cause="operator")
        == red_before + 1
    )


async def test_look_ups_and_store_calls_are_timed(federation: Federation) -> None:
    issued = await federation.issue(ZJ)
    lookups = value("hcx_node_lookup_seconds_count", province=ZJ, api="GetStatusBatch")
    store_calls = value("hcx_node_store_seconds_count", province=ZJ, operation="get_many")
    reply = await federation.gateway_stub.Verify(
        gateway_pb2.VerifyRequest(token=issued.token, checkpoint_province="510000"), timeout=5
    )
    assert reply.verdict == common_pb2.VALID  # the gateway asked 330000's node for the colour
    assert value("hcx_node_lookup_seconds_count", province=ZJ, api="GetStatusBatch") > lookups
    assert value("hcx_node_store_seconds_count", province=ZJ, operation="get_many") > store_calls
    # An unknown code is the request's failure, not the store's.
    errors = value("hcx_node_store_errors_total", province=ZJ, operation="get")
    await federation.nodes[ZJ].stub.GetStatus(
        node_pb2.GetStatusRequest(code_id=bytes(16)), timeout=5
    )
    assert value("hcx_node_store_errors_total", province=ZJ, operation="get") == errors


async def test_the_lease_and_the_trust_list_are_reported(federation: Federation) -> None:
    assert value("hcx_node_registered", province=ZJ, node_id="n1") == 1
    assert value("hcx_node_registrations_total", province=ZJ, node_id="n1") >= 1
    revision = federation.gateway.view.revision
    await wait_for(
        lambda: value("hcx_node_trust_list_revision", province=ZJ) == revision,
        timeout=10, what="the node's trust list at the gateway's revision",
    )  # fmt: skip
    age = value("hcx_node_trust_list_age_seconds", province=ZJ)
    assert not math.isnan(age) and 0 <= age < 30
    await federation.nodes[ZJ].stop()
    del federation.nodes[ZJ]
    assert value("hcx_node_registered", province=ZJ, node_id="n1") == 0
