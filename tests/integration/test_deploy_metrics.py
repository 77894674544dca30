"""The Grafana dashboard queries only metrics that the running services really export.

A real ``hcx gateway serve`` process and a real etcd are started on 127.0.0.1 and their
/metrics pages read; every series name in the dashboard's PromQL must be served there
(``foo_total`` by a counter ``foo``, ``_bucket``/``_sum``/``_count`` by a histogram).
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from tests.integration.etcd import EtcdCluster, etcd, free_port  # noqa: F401
from tests.support import wait_until
from tests.unit.deploy.dashboard import (
    PROMETHEUS_SERIES,
    exported_series,
    expressions,
    series_names,
)

pytestmark = pytest.mark.integration


def scrape(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> str:
    """The /metrics page on ``port``, once the process serves it."""

    def page() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"the gateway exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            return None

    return wait_until(page, timeout=timeout, interval=0.1, what=f"/metrics on port {port}")


@pytest.fixture(scope="module")
def gateway_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a real ``hcx gateway serve`` (embedded registry, loopback)."""
    tmp = tmp_path_factory.mktemp("gateway")
    hcx = [sys.executable, "-m", "hcx"]
    subprocess.run([*hcx, "registry", "init", "--dir", str(tmp)], check=True, timeout=60)
    port = free_port()
    process = subprocess.Popen(
        [*hcx, "gateway", "serve", "--insecure-dev-only", "--registry",
         f"sqlite:///{tmp / 'registry.db'}", "--root-cert", str(tmp / "root.pem"),
         "--listen", "127.0.0.1:0", "--metrics-port", str(port)],
        stderr=(tmp / "gateway.log").open("wb"),
    )  # fmt: skip
    try:
        yield scrape(port, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_dashboard_queries_only_metrics_the_gateway_exports(gateway_metrics: str) -> None:
    exported = exported_series(gateway_metrics)
    assert "hcx_gateway_verifications_total" in exported  # the scrape really is the gateway's
    for expr in expressions():
        for name in series_names(expr) - PROMETHEUS_SERIES:
            if name.startswith("etcd_"):
                continue  # checked against a real etcd below
            assert name in exported, f"dashboard queries {name}, not exported: {expr}"


def test_dashboard_etcd_queries_exist_in_a_real_etcd(etcd: EtcdCluster) -> None:  # noqa: F811
    with urllib.request.urlopen(f"http://{etcd.members[0].endpoint}/metrics", timeout=10) as r:
        exported = exported_series(r.read().decode())
    wanted = {n for e in expressions() for n in series_names(e) if n.startswith("etcd_")}
    assert wanted and wanted <= exported
