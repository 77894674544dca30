"""A short national simulation end to end: real processes, real faults, invariants checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulations.report import write_report
from simulations.runner import SimConfig, run_simulation
from simulations.scenario import GatewayKilled, KeyCompromise, NodeCrash, Step
from trust.codeformat import decode_token

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_short_run_keeps_every_invariant_through_faults(tmp_path: Path) -> None:
    config = SimConfig(
        provinces=["110000", "310000", "440000"],
        travellers=300,
        duration=20.0,
        rate=60.0,
        inject_fraction=0.08,
        workdir=tmp_path,
        progress=False,
    )
    steps: list[Step] = [
        KeyCompromise(at=2.0, province_index=1, exposure_s=1.0),
        NodeCrash(at=4.0, province_index=2, down_s=2.0),
        GatewayKilled(at=6.0, gateway_index=1, down_s=2.0),
    ]
    result = run_simulation(config, steps)
    html, text, summary = write_report(result, tmp_path)

    assert {s.name: s.status for s in result.steps} == {s.name: "done" for s in steps}, text
    assert result.invariants.holds, text
    injected = summary["invariants"]["injected"]
    assert injected.get("forged", 0) + injected.get("tampered", 0) > 0  # bad codes were shown
    assert summary["verdicts"].get("VALID", 0) > 100
    assert summary["failovers"] > 0  # checkpoints moved to the surviving gateway
    assert "KEY_REVOKED" in summary["reasons"]
    page = html.read_text(encoding="utf-8")
    assert page.count("<svg") >= 4 and "all invariants hold" in page


def test_two_gateways_share_the_embedded_registry(tmp_path: Path) -> None:
    """Nodes registered through one gateway are routable through the other."""
    config = SimConfig(
        provinces=["110000", "310000"], travellers=100, duration=4.0, rate=40.0,
        replicas=1, workdir=tmp_path, progress=False,
    )  # fmt: skip
    result = run_simulation(config, steps=[])
    by_gateway = {
        g: [v for v in result.verifications if v.gateway == g and v.scan.kind == "genuine"]
        for g in (0, 1)
    }
    for gateway, seen in by_gateway.items():
        assert seen, f"gateway {gateway} answered nothing"
        assert all(v.verdict == "VALID" for v in seen), gateway  # both routes to both provinces


def test_on_a_test_bed_the_etcd_leader_is_lost_and_every_invariant_holds(tmp_path: Path) -> None:
    """``hcx sim --netns``: every process on a host of its own and the registry on three etcd
    members. The leader's host loses its network while a province rotates its key (a write
    only a new leader commits); traffic runs throughout; the bed leaves nothing behind."""
    from simulations import netbed
    from simulations.scenario import EtcdMemberLost
    from tests.support import bed_or_skip

    bed_or_skip()
    config = SimConfig(
        provinces=["110000", "310000", "440000"], travellers=200, duration=16.0, rate=40.0,
        replicas=1, workdir=tmp_path, progress=False, netns=True,
    )  # fmt: skip
    step = EtcdMemberLost(at=2.0, down_s=5.0, province_index=1)
    result = run_simulation(config, [step])
    _, text, summary = write_report(result, tmp_path)

    (done,) = result.steps
    assert done.status == "done", text
    assert "(the leader) cut off" in done.detail and "acknowledged in" in done.detail, done.detail
    assert result.invariants.holds, text
    genuine = [v for v in result.verifications if v.scan.kind == "genuine"]
    assert genuine
    # One refusal of a genuine code is right here: a code signed by the key the rotation just
    # uploaded, checked at a gateway whose member is cut off and has not seen the upload yet,
    # is of a signer that gateway cannot know (UNKNOWN_KID; never accepted unchecked). Replicas
    # wait 5 s after the registry lists a new key (nodes.provincial.signing.SETTLE_S), so it
    # takes a gateway cut off for longer than that; seen once in CI before the wait (1 of 608).
    # Any other refusal, or of any other key, is a failure.
    rotated = re.search(r"kid [0-9a-f]+ -> ([0-9a-f]+)", done.detail)
    assert rotated, done.detail
    refused = [v for v in genuine if v.verdict not in ("VALID", "VALID_OFFLINE")]
    assert all(
        (v.verdict, v.reason, decode_token(v.scan.token).kid.hex())
        == ("INVALID", "UNKNOWN_KID", rotated.group(1))
        for v in refused
    ), text
    assert len(refused) <= len(genuine) // 20, text
    assert summary["verdicts"].get("VALID", 0) > 100
    assert netbed.sweep() == []  # no namespace, bridge or veth left by the run
