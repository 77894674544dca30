"""The Grafana dashboard queries only metrics that the running services really export.

A real ``hcx gateway serve`` process and a real etcd are started on 127.0.0.1 and their
/metrics pages read; every series name in the dashboard's PromQL must be served there
(``foo_total`` by a counter ``foo``, ``_bucket``/``_sum``/``_count`` by a histogram).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.etcd import EtcdCluster, etcd, free_port  # noqa: F401
from tests.unit.deploy import deployment as d
from tests.unit.deploy.test_prometheus import jobs

DASHBOARD = d.ROOT / "deploy" / "grafana" / "dashboards" / "hcx-federation.json"
PROVISIONING = d.ROOT / "deploy" / "grafana" / "provisioning"
# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "untyped": ("",),
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def expressions() -> list[str]:
    panels = dashboard()["panels"]
    found = [t["expr"] for p in panels for t in p.get("targets", [])]
    found += [v["query"]["query"] for v in dashboard()["templating"]["list"]]
    return found


def series_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (inside {} or by/without lists) or durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, legend text
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"label_values\(([^,)]+),[^)]*\)", r"(\1)", expr)  # Grafana variable query
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        rest = expr[match.end() :].lstrip()
        word = match.group(0)
        if rest.startswith("(") or word.lower() in PROMQL_WORDS or word.startswith("$"):
            continue
        if expr[max(0, match.start() - 1)] == "$":
            continue  # a Grafana variable
        names.add(word)
    return names


def exported_series(metrics_text: str) -> set[str]:
    """Series names a /metrics page can produce, from its # TYPE lines."""
    series = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            series |= {name + s for s in SUFFIXES[kind]}
            if kind == "counter" and name.endswith("_total"):
                series.add(name)  # exposition names the family foo_total
    return series


def scrape(port: int, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


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
        yield scrape(port)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_expression_parser_finds_metric_names() -> None:
    """The extractor itself, on the shapes the dashboard uses."""
    expr = (
        'histogram_quantile(0.99, sum by (le, api) (rate(hcx_x_seconds_bucket{a="b c"}[1m])))'
        ' / on (api) group_left max(up{job="node"}) and label_values(hcx_y, province)'
    )
    assert series_names(expr) == {"hcx_x_seconds_bucket", "up", "hcx_y"}


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    text = " ".join(expressions())
    for series in (
        "hcx_gateway_verifications_total",  # by verdict and province
        "hcx_gateway_verify_seconds_bucket",  # latency
        "hcx_gateway_breaker_state",
        "hcx_gateway_registry_revision",
        "hcx_gateway_live_nodes",  # node liveness as the gateways see it
        'up{job="node"}',  # and as Prometheus sees it
    ):
        assert series in text
    assert "by (verdict)" in text and "by (issuer, verdict)" in text


def test_dashboard_queries_only_metrics_the_gateway_exports(gateway_metrics: str) -> None:
    exported = exported_series(gateway_metrics)
    assert "hcx_gateway_verifications_total" in exported  # the scrape really is the gateway's
    for expr in expressions():
        for name in series_names(expr) - PROMETHEUS_SERIES:
            if name.startswith("etcd_"):
                continue  # checked against a real etcd below
            assert name in exported, f"dashboard queries {name}, not exported: {expr}"


@pytest.mark.integration
def test_dashboard_etcd_queries_exist_in_a_real_etcd(etcd: EtcdCluster) -> None:  # noqa: F811
    with urllib.request.urlopen(f"http://{etcd.members[0].endpoint}/metrics", timeout=10) as r:
        exported = exported_series(r.read().decode())
    wanted = {n for e in expressions() for n in series_names(e) if n.startswith("etcd_")}
    assert wanted and wanted <= exported


def test_up_queries_name_prometheus_jobs() -> None:
    for expr in expressions():
        for job in re.findall(r'job="([^"]+)"', expr):
            assert job in jobs(), f"no Prometheus job {job!r}: {expr}"


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    import yaml

    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "hcx.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    volumes = d.services()["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in volumes
    for panel in dashboard()["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
    assert (
        Path(DASHBOARD).name
        in d.services()["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    )
