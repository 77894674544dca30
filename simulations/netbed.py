"""A multi-host test bed on Linux network namespaces: each host of the federation's layout in
its own namespace with its own address on a private bridge, and faults across real network
boundaries (a link cut between two hosts, a host isolated, healed again).

Nothing here needs iptables or tc (this kernel has neither netem nor an iptables binary):

* a **cut** between A and B is a route in each to the other's address through a neighbour that
  does not exist: packets are queued for an ARP answer that never comes and dropped, as on a
  cable that was pulled (connects time out, established connections stall; nothing is refused
  at once, which would be the easy case);
* a host **isolated** is cut from every other host of the bed, the observer included unless
  told otherwise (its processes keep running and answering whoever still reaches them: none).

Every bed cleans up after itself: its processes (killed by process group), its namespaces
(which take their interfaces with them), its bridge. ``sweep`` removes what a bed killed
before its clean-up left behind (names carry the ``hcxb`` prefix), and runs before each bed.
Traffic goes only to the bed's own addresses (10.213.0.0/16).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "hcxb"
SUBNET = "10.213"  # 10.213.<bed>.<host>/24: private, and nothing else of ours uses it
_PR_SET_PDEATHSIG = 1
_BOGUS_HOP = 254  # the neighbour no host has: a cut's next hop


class BedUnavailable(RuntimeError):
    """This machine cannot make namespaces (not root, or no ``ip``)."""


def available() -> str | None:
    """None if beds can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no ip command (iproute2)"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=10)


def sweep(prefix: str = PREFIX) -> list[str]:
    """Remove namespaces and bridges a bed left behind (a killed test run); what was removed."""
    removed = []
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    for line in listed:
        name = line.split(" ")[0].strip()
        if name.startswith(prefix):
            _kill_in(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show", check=False).stdout.split("\n"):
        parts = line.split(": ")
        if len(parts) > 1 and parts[1].split("@")[0].startswith(prefix):
            _ip("link", "del", parts[1].split("@")[0], check=False)
            removed.append(parts[1].split("@")[0])
    return removed


def _kill_in(namespace: str) -> None:
    """SIGKILL every process still in ``namespace`` (ip netns pids)."""
    pids = _ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


@dataclass
class Bed:
    """Hosts on one bridge. Use as a context manager: everything is removed on leaving."""

    names: Sequence[str]
    bed_id: int = field(default_factory=lambda: 1 + secrets.randbelow(250))
    hosts: dict[str, Host] = field(default_factory=dict)
    cuts: set[frozenset[str]] = field(default_factory=set)
    observer: str = ""  # the root namespace's address on the bridge (the test process)

    @property
    def tag(self) -> str:
        return f"{PREFIX}{self.bed_id}"

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    def __enter__(self) -> Bed:
        reason = available()
        if reason is not None:
            raise BedUnavailable(reason)
        sweep(self.tag)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        net = f"{SUBNET}.{self.bed_id}"
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{net}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        self.observer = f"{net}.1"
        for i, name in enumerate(self.names, start=10):
            namespace = f"{self.tag}-{name}"[:60]
            outside, inside = f"{self.tag}v{i}", f"{self.tag}i{i}"
            _ip("netns", "add", namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", namespace)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", namespace, "link", "set", inside, "name", "eth0")
            _ip("-n", namespace, "addr", "add", f"{net}.{i}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            self.hosts[name] = Host(name, namespace, f"{net}.{i}")

    # -- processes ---------------------------------------------------------------------------
    def spawn(
        self,
        host: str,
        argv: Sequence[str],
        *,
        log: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Run ``argv`` in ``host``'s namespace (its own process group; it dies with us)."""
        h = self.hosts[host]
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        try:
            process = subprocess.Popen(
                ["ip", "netns", "exec", h.namespace, *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            if log is not None:
                out.close()  # type: ignore[union-attr]
        h.processes.append(process)
        return process

    # -- faults ------------------------------------------------------------------------------
    def cut(self, a: str, b: str) -> None:
        """No packet between hosts ``a`` and ``b`` (either may be "observer")."""
        self._route(a, b, "replace")
        self._route(b, a, "replace")
        self.cuts.add(frozenset((a, b)))

    def heal(self, a: str, b: str) -> None:
        self._route(a, b, "del")
        self._route(b, a, "del")
        self.cuts.discard(frozenset((a, b)))

    def isolate(self, host: str, *, from_observer: bool = True) -> None:
        """``host`` cut from every other host (and from the test process, by default)."""
        for other in self.hosts:
            if other != host:
                self.cut(host, other)
        if from_observer:
            self.cut(host, "observer")

    def rejoin(self, host: str) -> None:
        for pair in [p for p in self.cuts if host in p]:
            a, b = sorted(pair)
            self.heal(a, b)

    def heal_all(self) -> None:
        for pair in list(self.cuts):
            a, b = sorted(pair)
            self.heal(a, b)

    def _route(self, source: str, target: str, action: str) -> None:
        net = f"{SUBNET}.{self.bed_id}"
        address = self.observer if target == "observer" else self.hosts[target].address
        bogus = f"{net}.{_BOGUS_HOP}"
        if source == "observer":
            args = ["route", action, f"{address}/32"]
            if action != "del":
                args += ["via", bogus, "dev", self.bridge]
            _ip(*args, check=action != "del")
            return
        args = ["-n", self.hosts[source].namespace, "route", action, f"{address}/32"]
        if action != "del":
            args += ["via", bogus, "dev", "eth0"]
        _ip(*args, check=action != "del")

    # -- clean-up ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every process, remove every namespace, route and the bridge; idempotent."""
        for pair in list(self.cuts):
            if "observer" in pair:
                (other,) = pair - {"observer"}
                with contextlib.suppress(Exception):
                    self._route("observer", other, "del")
        self.cuts.clear()
        for h in self.hosts.values():
            for process in h.processes:
                _stop(process)
            _kill_in(h.namespace)
            _ip("netns", "del", h.namespace, check=False)
        self.hosts.clear()
        _ip("link", "del", self.bridge, check=False)
        sweep(self.tag)

    def leftovers(self) -> list[str]:
        """Namespaces and interfaces of this bed still present (none after ``close``)."""
        names = [
            line.split(" ")[0]
            for line in _ip("netns", "list", check=False).stdout.split("\n")
            if line.startswith(self.tag)
        ]
        links = [
            line.split(": ")[1].split("@")[0]
            for line in _ip("-o", "link", "show", check=False).stdout.split("\n")
            if ": " in line and line.split(": ")[1].startswith(self.tag)
        ]
        return names + links


def _stop(process: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(grace)


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def wait_port(address: str, port: int, timeout: float) -> None:
    """Until something listens on ``address:port`` (seen from the observer)."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), 0.3):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {address}:{port} after {timeout} s")
