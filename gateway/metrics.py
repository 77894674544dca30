"""Prometheus metrics of the national gateway (names documented in docs/verdicts.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

VERIFICATIONS = Counter(
    "hcx_gateway_verifications",
    "Verifications answered, by issuing province, verdict and reason.",
    ["issuer", "verdict", "reason"],
)
VERIFY_SECONDS = Histogram(
    "hcx_gateway_verify_seconds",
    "Time to answer one verification, relay to the issuer included.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
)
RELAY_SECONDS = Histogram(
    "hcx_gateway_relay_seconds",
    "Time of status look-ups at provincial nodes, by province and outcome.",
    ["province", "outcome"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)
REGISTRY_REVISION = Gauge(
    "hcx_gateway_registry_revision", "Registry revision of the gateway's verified view."
)
REGISTRY_REJECTED = Counter(
    "hcx_gateway_registry_rejected_values",
    "Registry values that failed verification against the pinned roots and were not served.",
)
LIVE_NODES = Gauge("hcx_gateway_live_nodes", "Registered provincial node replicas.", ["province"])
