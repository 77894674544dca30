"""Prometheus metrics of a provincial node (names documented in docs/verdicts.md).

Every series carries the node's ``province``: a test or a simulation runs several provinces'
nodes in one process, and a scrape of a deployed replica gets its instance from Prometheus.
A node process never imports the gateway's metrics, so it exports only these (and the shared
``hcx_authz_denials_total``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram

from nodes.provincial.stores.base import BulkRow, CodeRecord, ColourChange, NewCode, StatusStore
from trust.errors import InvalidRequest, NotFound
from trust.model import Colour

_T = TypeVar("_T")

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)

CODES_ISSUED = Counter(
    "hcx_node_codes_issued",
    "Codes signed and handed out, by how: issue (a new application) or refresh (a fresh token "
    "for a code the holder already has).",
    ["province", "how"],
)
COLOUR_CHANGES = Counter(
    "hcx_node_colour_changes",
    "Status updates applied, by the colour set and their cause (operator: SetStatus); a "
    "replayed request id counts once.",
    ["province", "colour", "cause"],
)
CHECK_INS = Counter(
    "hcx_node_check_ins",
    "Daily health check-ins received (a replayed request id counts).",
    ["province"],
)
ASSISTANCE = Counter(
    "hcx_node_assistance",
    "Cross-province assistance requests, by direction: sent (for this province's health "
    "authority) or received (about this province's codes); duplicates count once.",
    ["province", "direction"],
)
HEALTH_CODES = Gauge(
    "hcx_node_codes", "Codes by colour (refreshed by the colour clock).", ["province", "colour"]
)
QUARANTINES = Gauge(
    "hcx_node_quarantines", "Quarantines in progress (refreshed by the colour clock).", ["province"]
)
CHECK_IN_COMPLIANCE = Gauge(
    "hcx_node_check_in_compliance",
    "Share of the quarantined holders whose check-in of yesterday was due who made it.",
    ["province"],
)
POLICY_SIGNER_REVOKED = Gauge(
    "hcx_node_policy_signer_revoked",
    "1 when the trust list says the running colour policy's signer is revoked (re-sign it).",
    ["province"],
)
TRANSITIONS = Counter(
    "hcx_node_quarantines_completed",
    "Quarantines completed by the colour clock (each once, whichever replica ran it).",
    ["province"],
)
LOOKUP_SECONDS = Histogram(
    "hcx_node_lookup_seconds",
    "Time to answer a status look-up or a local verification, by API.",
    ["province", "api"],
    buckets=LATENCY_BUCKETS,
)
STORE_SECONDS = Histogram(
    "hcx_node_store_seconds",
    "Time of status store calls, by operation (get, get_many, set_colour, create_or_get_many).",
    ["province", "operation"],
    buckets=LATENCY_BUCKETS,
)
STORE_ERRORS = Counter(
    "hcx_node_store_errors",
    "Status store calls that failed for another reason than the request (database down, "
    "timeout, a bug), by operation.",
    ["province", "operation"],
)
REGISTERED = Gauge(
    "hcx_node_registered",
    "1 while this node holds a lease at the national gateway (and reports SERVING), else 0.",
    ["province", "node_id"],
)
REGISTRATIONS = Counter(
    "hcx_node_registrations",
    "Leases obtained from the national gateway (the first registration and every re-registration "
    "after a lost lease).",
    ["province", "node_id"],
)
LEFT_ROUTING = Counter(
    "hcx_node_left_routing",
    "Times the node left the gateways' routes because its status store did not answer "
    "(registered again once it does).",
    ["province", "node_id"],
)
GATEWAY_FAILOVERS = Counter(
    "hcx_node_gateway_failovers",
    "Times a failed registration call moved the node on to its next gateway.",
    ["province", "node_id"],
)
LEASES_LOST = Counter(
    "hcx_node_leases_lost",
    "Leases lost: the gateway no longer knew the lease, or no keep-alive succeeded within its TTL.",
    ["province", "node_id"],
)
TRUST_LIST_PULLS = Counter(
    "hcx_node_trust_list_pulls",
    "Trust-list pulls from the gateway, by outcome (changed, unchanged, failed, refused).",
    ["province", "outcome"],
)
TRUST_LIST_REVISION = Gauge(
    "hcx_node_trust_list_revision",
    "Registry revision of the verified trust list this node verifies and authorizes with.",
    ["province"],
)
TRUST_LIST_AGE = Gauge(
    "hcx_node_trust_list_age_seconds",
    "Seconds since the trust list was last verified fresh from the gateway (NaN before the "
    "first pull).",
    ["province"],
)


class MeteredStore:
    """A status store whose calls are timed and whose failures are counted, by operation."""

    def __init__(self, inner: StatusStore, province: str) -> None:
        self.inner = inner
        self.blocking = inner.blocking
        self.health = inner.health
        self._province = province

    def _timed(self, operation: str, call: Callable[[], _T]) -> _T:
        start = time.perf_counter()
        try:
            return call()
        except (InvalidRequest, NotFound):  # the request's own failure: the store worked
            raise
        except Exception:
            STORE_ERRORS.labels(self._province, operation).inc()
            raise
        finally:
            STORE_SECONDS.labels(self._province, operation).observe(time.perf_counter() - start)

    def create_or_get_many(self, codes: list[NewCode]) -> list[CodeRecord]:
        return self._timed("create_or_get_many", lambda: self.inner.create_or_get_many(codes))

    def get(self, code_id: bytes) -> CodeRecord | None:
        return self._timed("get", lambda: self.inner.get(code_id))

    def get_many(self, code_ids: list[bytes]) -> dict[bytes, CodeRecord]:
        return self._timed("get_many", lambda: self.inner.get_many(code_ids))

    def set_colour(
        self, *, code_id: bytes, colour: Colour, reason: str, request_id: str, now: float
    ) -> ColourChange:
        return self._timed(
            "set_colour",
            lambda: self.inner.set_colour(
                code_id=code_id, colour=colour, reason=reason, request_id=request_id, now=now
            ),
        )

    def bulk_load(self, rows: Iterable[BulkRow]) -> int:
        return self._timed("bulk_load", lambda: self.inner.bulk_load(rows))

    def ping(self) -> None:
        self._timed("ping", self.inner.ping)

    def count(self) -> int:
        return self._timed("count", self.inner.count)

    def size_bytes(self) -> int:
        return self._timed("size_bytes", self.inner.size_bytes)

    def close(self) -> None:
        self.inner.close()
