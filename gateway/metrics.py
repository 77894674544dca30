"""Prometheus metrics of the national gateway (names documented in docs/verdicts.md)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

VERIFICATIONS = Counter(
    "hcx_gateway_verifications",
    "Verifications answered, by issuing province, verdict and reason.",
    ["issuer", "verdict", "reason"],
)
VERIFY_SECONDS = Histogram(
    "hcx_gateway_verify_seconds",
    "Time to answer one verification request, relay to the issuer included, by API.",
    ["api"],
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
VERIFY_ITEMS = Histogram(
    "hcx_gateway_verify_request_items",
    "Codes per verification request, by API (Verify, VerifyBatch, VerifyStream).",
    ["api"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
RELAY_BATCH_SIZE = Histogram(
    "hcx_gateway_relay_batch_size",
    "Code ids per GetStatusBatch call to a provincial node, by province.",
    ["province"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
RELAY_HEDGES = Counter(
    "hcx_gateway_relay_hedges",
    "Status batches also sent to a second replica because the first was slow.",
    ["province"],
)
BREAKER_STATE = Gauge(
    "hcx_gateway_breaker_state",
    "Circuit breaker of each issuing province: 0 closed, 1 open, 2 half-open.",
    ["province"],
)
COALESCER_QUEUED = Gauge(
    "hcx_gateway_status_lookups_queued",
    "Status look-ups waiting in the coalescer or on the wire, all provinces.",
)
OVERLOAD_REJECTIONS = Counter(
    "hcx_gateway_overload_rejections",
    "Look-ups refused with RESOURCE_EXHAUSTED because a province's queue was full.",
    ["province"],
)
SHED = Counter(
    "hcx_gateway_shed",
    "Calls (or stream items) refused on entry with RESOURCE_EXHAUSTED: the gateway at capacity.",
    ["rpc", "why"],  # why: lag, in_flight, deadline
)
LOOP_LAG = Gauge(
    "hcx_gateway_event_loop_lag_seconds",
    "How late the event loop runs (least of the last three 20 ms ticks); sheds calls.",
)
REGISTRY_UPDATED = Gauge(
    "hcx_gateway_registry_updated_timestamp_seconds",
    "Unix time at which the gateway's verified view last changed (full load or watch event).",
)
REGISTRY_AGE = Gauge(
    "hcx_gateway_registry_age_seconds",
    "Seconds since the gateway's verified view last changed (full load or watch event).",
)
_registry_updated_at = [0.0]  # one mutable cell: read at scrape time by REGISTRY_AGE


def mark_registry_updated(now: float | None = None) -> None:
    """Record that the verified view just changed (called by the feed)."""
    _registry_updated_at[0] = time.time() if now is None else now
    REGISTRY_UPDATED.set(_registry_updated_at[0])


def _registry_age() -> float:
    updated = _registry_updated_at[0]
    return max(0.0, time.time() - updated) if updated else 0.0


REGISTRY_AGE.set_function(_registry_age)
ASSISTANCE = Counter(
    "hcx_gateway_assistance",
    "Cross-province assistance requests relayed, by requesting and issuing province and how "
    "they ended (ok, duplicate, or the gRPC status).",
    ["from_province", "to_province", "outcome"],
)
