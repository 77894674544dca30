"""tests/support.py itself: one CI test, skips that fail in CI, waits that say what they saw."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests import support


@pytest.mark.parametrize(
    ("value", "ci"),
    [
        (None, False),
        ("", False),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ("true", True),
        ("1", True),
        ("yes", True),
        ("0", True),  # only "" and "false" mean "not CI"
    ],
)
def test_ci_is_any_value_but_empty_or_false(
    monkeypatch: pytest.MonkeyPatch, value: str | None, ci: bool
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert support.in_ci() is ci


def test_a_missing_tool_skips_locally_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install nothing-here"):
        support.require_tool("hcx-no-such-tool", install="apt-get install nothing-here")


def test_a_missing_tool_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "True")
    with pytest.raises(pytest.fail.Exception, match=r"required in CI.*apt-get install x"):
        support.require_tool("hcx-no-such-tool", install="apt-get install x")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL"):
        support.require(False, what="PostgreSQL", install="apt-get install postgresql")


def test_a_present_tool_is_found_by_name_or_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert support.require_tool(sys.executable, install="-") == sys.executable
    support.require(True, what="anything", install="-")  # no skip, no failure


def test_wait_until_returns_the_value_that_ended_the_wait() -> None:
    seen = iter([0, [], "ready"])
    assert support.wait_until(lambda: next(seen), timeout=5, interval=0, what="x") == "ready"


def test_wait_until_fails_with_what_it_waited_for_and_the_last_value() -> None:
    polls: list[int] = []

    def routed_nodes() -> list[str]:
        polls.append(1)
        return []

    with pytest.raises(AssertionError, match=r"waited 0\.05 s for a routed node; last seen: \[\]"):
        support.wait_until(routed_nodes, timeout=0.05, what="a routed node")
    assert len(polls) >= 2  # polled until the deadline, not once


async def test_wait_for_accepts_sync_and_async_conditions() -> None:
    ticks: list[int] = []

    async def answered() -> int:
        await asyncio.sleep(0)
        ticks.append(1)
        return len(ticks) if len(ticks) >= 3 else 0

    assert await support.wait_for(answered, timeout=5, interval=0, what="three ticks") == 3
    assert await support.wait_for(lambda: "done", timeout=5, what="x") == "done"
    with pytest.raises(AssertionError, match="for nothing; last seen: None"):
        await support.wait_for(lambda: None, timeout=0.05, what="nothing")


def test_a_registry_builder_behind_the_machine_clock_still_builds() -> None:
    """A module's NOW is taken when it is imported; in a long run its tests come many minutes
    later. Every certificate the builder issues is dated by its own clock, so a log built an
    hour "in the past" is accepted at that time (it was refused: the root and coordinators
    were issued at the machine's clock, after the genesis statement's time)."""
    import time

    from simulations.registry_builder import RegistryBuilder

    builder = RegistryBuilder(clock=time.time() - 3600)
    builder.onboard("330000", "浙江省")
    assert [d.accepted for d in builder.decisions] == [True] * len(builder.decisions)
    assert len(builder.decisions) >= 3  # genesis, the proposal and its approval
