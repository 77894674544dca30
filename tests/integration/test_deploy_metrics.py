"""The Grafana dashboard queries only metrics that the running services really export.

A real ``hcx gateway serve`` process, a real ``hcx node serve`` process and a real etcd are
started on 127.0.0.1 and their /metrics pages read; every series name in the dashboard's PromQL
must be served by the service it belongs to (``foo_total`` by a counter ``foo``,
``_bucket``/``_sum``/``_count`` by a histogram), and each page passes ``promtool check metrics``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.etcd import EtcdCluster, etcd, free_port  # noqa: F401
from tests.support import require_tool, wait_until
from tests.unit.deploy.dashboard import (
    PROMETHEUS_SERIES,
    exported_series,
    expressions,
    series_names,
)

pytestmark = pytest.mark.integration


def scrape(
    port: int, process: subprocess.Popen[bytes], timeout: float = 30.0, ready: str = ""
) -> str:
    """The /metrics page on ``port``, once the process serves it and it holds ``ready``."""

    def page() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = str(r.read().decode())
        except OSError:
            return None
        return text if ready in text else None

    return wait_until(page, timeout=timeout, interval=0.1, what=f"/metrics on port {port}")


@contextlib.contextmanager
def serving(command: list[str], log: Path, ready: str = "") -> Iterator[str]:
    """Run a server with ``--metrics-port``; its /metrics page (once it holds ``ready``)."""
    port = free_port()
    process = subprocess.Popen([*command, "--metrics-port", str(port)], stderr=log.open("wb"))
    try:
        yield scrape(port, process, ready=ready)
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def gateway_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a real ``hcx gateway serve`` (embedded registry, loopback)."""
    tmp = tmp_path_factory.mktemp("gateway")
    hcx = [sys.executable, "-m", "hcx"]
    subprocess.run([*hcx, "registry", "init", "--dir", str(tmp)], check=True, timeout=60)
    with serving(
        [*hcx, "gateway", "serve", "--insecure-dev-only", "--registry",
         f"sqlite:///{tmp / 'registry.db'}", "--root-cert", str(tmp / "root.pem"),
         "--listen", "127.0.0.1:0"],
        tmp / "gateway.log",
    ) as page:  # fmt: skip
        yield page


@pytest.fixture(scope="module")
def node_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a real ``hcx node serve``, its keys made by the documented commands. No
    gateway listens where it points: a node that cannot register still serves /metrics."""
    tmp = tmp_path_factory.mktemp("node")
    province = tmp / "330000"
    hcx = [sys.executable, "-m", "hcx"]
    for argv in (
        ["registry", "init", "--dir", str(tmp / "national")],
        ["node", "keys", "init", "--province", "330000", "--dir", str(province)],
        ["registry", "sign-ca", "--root-dir", str(tmp / "national"), "--province", "330000",
         "--name", "浙江省", "--csr", str(province / "ca.csr"), "--out", str(province / "ca.pem")],
        ["node", "keys", "new-dsc", "--province", "330000", "--dir", str(province)],
    ):  # fmt: skip
        subprocess.run([*hcx, *argv], check=True, timeout=60, capture_output=True)
    with serving(
        [*hcx, "node", "serve", "--insecure-dev-only", "--province", "330000",
         "--dir", str(province), "--gateway", f"127.0.0.1:{free_port()}",
         "--listen", "127.0.0.1:0"],
        tmp / "node.log",
        # /metrics is served before the node starts registering (on purpose: a node that
        # cannot register is the one to look at); read it once registration has begun.
        ready="hcx_node_registered{",
    ) as page:  # fmt: skip
        yield page


def test_dashboard_queries_only_metrics_the_gateway_exports(gateway_metrics: str) -> None:
    exported = exported_series(gateway_metrics)
    assert "hcx_gateway_verifications_total" in exported  # the scrape really is the gateway's
    for expr in expressions():
        for name in series_names(expr) - PROMETHEUS_SERIES:
            if name.startswith(("etcd_", "hcx_node_")):
                continue  # checked against a real etcd and a real node below
            assert name in exported, f"dashboard queries {name}, not exported: {expr}"


def test_dashboard_node_queries_exist_in_a_real_node(node_metrics: str) -> None:
    exported = exported_series(node_metrics)
    wanted = {n for e in expressions() for n in series_names(e) if n.startswith("hcx_node_")}
    assert len(wanted) >= 8
    missing = wanted - exported
    assert not missing, f"the dashboard queries node series a node does not export: {missing}"


def test_a_node_exports_its_own_families_not_the_gateways(node_metrics: str) -> None:
    exported = exported_series(node_metrics)
    assert not {n for n in exported if n.startswith("hcx_gateway_")}
    assert "hcx_authz_denials_total" in exported  # the shared edge counts refusals
    # The node is up but holds no lease: it says so.
    assert 'hcx_node_registered{node_id="node-1",province="330000"} 0.0' in node_metrics


@pytest.mark.parametrize("service", ["gateway_metrics", "node_metrics"])
def test_every_page_passes_promtool(service: str, request: pytest.FixtureRequest) -> None:
    page: str = request.getfixturevalue(service)
    promtool = require_tool("promtool", install="apt-get install prometheus")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=page.encode(), capture_output=True, timeout=30
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_dashboard_etcd_queries_exist_in_a_real_etcd(etcd: EtcdCluster) -> None:  # noqa: F811
    with urllib.request.urlopen(f"http://{etcd.members[0].endpoint}/metrics", timeout=10) as r:
        exported = exported_series(r.read().decode())
    wanted = {n for e in expressions() for n in series_names(e) if n.startswith("etcd_")}
    assert wanted and wanted <= exported
