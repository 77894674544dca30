"""deploy/prometheus/prometheus.yml scrapes exactly the metrics ports the services open."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.support import require_tool
from tests.unit.deploy import deployment as d

PROMETHEUS_FILE = d.ROOT / "deploy" / "prometheus" / "prometheus.yml"
ETCD_METRICS_PORT = 2381


def jobs() -> dict[str, set[str]]:
    document: dict[str, Any] = yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))
    return {
        job["job_name"]: {t for sc in job["static_configs"] for t in sc["targets"]}
        for job in document["scrape_configs"]
    }


def opened_metrics_endpoints(role: str) -> set[str]:
    """host:port of /metrics of every hcx service of a role, as hcx parses its options."""
    endpoints = set()
    for name, service in d.hcx_services().items():
        argv = d.command(service)
        if d.role_path(argv)[0] == role:
            port = d.parse(argv, d.environment(service)).metrics_port
            assert port, f"{name} opens no metrics port"
            endpoints.add(f"{name}:{port}")
    return endpoints


@pytest.mark.parametrize("role", ["gateway", "node"])
def test_prometheus_scrapes_every_hcx_service_on_its_metrics_port(role: str) -> None:
    assert jobs()[role] == opened_metrics_endpoints(role)


def test_prometheus_scrapes_every_etcd_member_on_its_metrics_url() -> None:
    members = {n for n in d.services() if n.startswith("etcd-")}
    for name in members:
        assert f"--listen-metrics-urls=http://0.0.0.0:{ETCD_METRICS_PORT}" in d.command(
            d.services()[name]
        )
    assert jobs()["etcd"] == {f"{m}:{ETCD_METRICS_PORT}" for m in members}


def test_compose_mounts_this_prometheus_config() -> None:
    volumes = d.services()["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes


def test_promtool_accepts_the_config() -> None:
    promtool = require_tool("promtool", install="apt-get install prometheus")
    done = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
