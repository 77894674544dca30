"""The Grafana dashboard's queries and what a /metrics page exports, read without a server.

Shared by the dashboard's unit tests (parsing only) and the integration test that scrapes a
real gateway and a real etcd (tests/integration/test_deploy_metrics.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.unit.deploy import deployment as d

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
