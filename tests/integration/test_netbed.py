"""The network-namespace test bed itself: hosts reach each other over the bridge, a cut drops
packets between two hosts only, an isolated host reaches no one, healing restores everything,
and nothing is left behind, even when the test body fails."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from simulations import netbed
from tests.support import bed_or_skip

pytestmark = pytest.mark.integration

SERVER = (
    "import socket,sys\n"
    "s=socket.create_server(('0.0.0.0',7000))\n"
    "while True:\n"
    "    c,_=s.accept(); c.sendall(b'hello '+sys.argv[1].encode()); c.close()\n"
)
CLIENT = (
    "import socket,sys\n"
    "try:\n"
    "    c=socket.create_connection((sys.argv[1],7000),1.0); print(c.recv(64).decode())\n"
    "except OSError as e:\n"
    "    print('FAILED', type(e).__name__); sys.exit(1)\n"
)


@pytest.fixture
def bed() -> object:
    bed_or_skip()
    with netbed.Bed(["a", "b", "c"]) as made:
        for name in ("a", "b", "c"):
            made.spawn(name, [sys.executable, "-c", SERVER, name])
        for host in made.hosts.values():
            netbed.wait_port(host.address, 7000, timeout=10)
        yield made
    assert made.leftovers() == []


def reach(bed: netbed.Bed, source: str, target: str) -> str:
    """What host ``source`` gets when it connects to ``target`` (FAILED … if it cannot)."""
    h = bed.hosts[source]
    done = subprocess.run(
        ["ip", "netns", "exec", h.namespace, sys.executable, "-c", CLIENT,
         bed.hosts[target].address],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    return done.stdout.strip()


def test_hosts_reach_each_other_on_their_own_addresses(bed: netbed.Bed) -> None:
    assert reach(bed, "a", "b") == "hello b"
    assert reach(bed, "c", "a") == "hello a"
    assert len({h.address for h in bed.hosts.values()}) == 3
    assert all(h.address.startswith("10.213.") for h in bed.hosts.values())


def test_a_cut_drops_one_pair_only_and_heals(bed: netbed.Bed) -> None:
    bed.cut("a", "b")
    started = time.monotonic()
    assert reach(bed, "a", "b").startswith("FAILED")
    assert time.monotonic() - started >= 0.9  # dropped (a timeout), not refused at once
    assert reach(bed, "b", "a").startswith("FAILED")
    assert reach(bed, "a", "c") == "hello c" and reach(bed, "c", "b") == "hello b"
    bed.heal("a", "b")
    assert reach(bed, "a", "b") == "hello b"


def test_an_isolated_host_keeps_running_and_reaches_no_one(bed: netbed.Bed) -> None:
    bed.isolate("b")
    assert reach(bed, "a", "b").startswith("FAILED")
    assert reach(bed, "b", "c").startswith("FAILED")
    with pytest.raises(OSError):
        netbed.wait_port(bed.hosts["b"].address, 7000, timeout=1.5)  # the observer too
    assert all(p.poll() is None for p in bed.hosts["b"].processes)  # still running
    assert reach(bed, "a", "c") == "hello c"
    bed.rejoin("b")
    assert reach(bed, "a", "b") == "hello b"
    netbed.wait_port(bed.hosts["b"].address, 7000, timeout=5)


def test_nothing_is_left_behind_when_the_body_fails() -> None:
    bed_or_skip()
    made = netbed.Bed(["x", "y"])
    with pytest.raises(RuntimeError, match="the test failed"), made:
        process = made.spawn("x", [sys.executable, "-c", "import time; time.sleep(60)"])
        made.cut("x", "y")
        made.cut("x", "observer")
        raise RuntimeError("the test failed")
    assert made.leftovers() == [] and process.poll() is not None
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert f"{netbed.SUBNET}.{made.bed_id}." not in routes


def test_sweep_removes_what_a_killed_run_left() -> None:
    bed_or_skip()
    made = netbed.Bed(["z"])
    made.__enter__()  # never left: as if the test process had been killed here
    assert made.leftovers()
    removed = netbed.sweep(made.tag)
    assert removed and made.leftovers() == []
