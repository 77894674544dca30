"""The Grafana dashboard: its PromQL, its jobs and its provisioning, read from the files.

That every series it queries is really exported is checked against a running gateway and etcd
in tests/integration/test_deploy_metrics.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.deploy import deployment as d
from tests.unit.deploy.dashboard import (
    DASHBOARD,
    PROVISIONING,
    dashboard,
    expressions,
    series_names,
)
from tests.unit.deploy.test_prometheus import jobs


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
        "hcx_gateway_log_root_prefix",  # gateways that disagree about the registry log
        "hcx_gateway_log_inconsistent",
        # the node row: issuance, colour changes, look-ups, store, leases, trust-list age
        "hcx_node_codes_issued_total",
        "hcx_node_colour_changes_total",
        "hcx_node_lookup_seconds_bucket",
        "hcx_node_store_seconds_bucket",
        "hcx_node_store_errors_total",
        "hcx_node_registered",
        "hcx_node_leases_lost_total",
        "hcx_node_trust_list_age_seconds",
    ):
        assert series in text
    assert "by (verdict)" in text and "by (issuer, verdict)" in text


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
