"""Real etcd servers for the tests: one member, or a 3-member cluster, on 127.0.0.1 free ports
(simulations.loopback starts them). Without an etcd binary the test fails in CI and is skipped
elsewhere (tests.support.missing). Each server gets a data directory under the test's tmp_path
and is killed at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulations import loopback
from simulations.loopback import EtcdCluster, EtcdMember, ServerUnavailable, free_port
from tests.support import missing

__all__ = ["EtcdCluster", "EtcdMember", "etcd", "etcd3", "etcd_binary", "free_port", "make_cluster"]


def etcd_binary(name: str = "etcd") -> str:
    """Path of ``etcd`` (or ``etcdctl``); fails in CI, skips elsewhere, when there is none."""
    try:
        return loopback.etcd_binary(name)
    except ServerUnavailable as e:
        missing(what=e.what, install=e.install)


def make_cluster(
    tmp: Path, size: int, *, names: list[str] | None = None, token: str | None = None
) -> EtcdCluster:
    """``size`` members on free loopback ports, named ``names`` (default m0, m1, ...)."""
    etcd_binary(), etcd_binary("etcdctl")
    return loopback.make_cluster(tmp, size, names=names, token=token)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A single-member etcd on loopback, torn down after the test."""
    cluster = make_cluster(tmp_path, 1)
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd3(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A 3-member etcd cluster on loopback, torn down after the test."""
    cluster = make_cluster(tmp_path, 3)
    yield cluster
    cluster.stop()
