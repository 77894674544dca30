"""The gateway's tunable defaults, each written once: the policy dataclasses (gateway.relay,
gateway.coalescer, gateway.breaker, gateway.admission, gateway.verification) and the command
line (``hcx gateway serve``, hence its HCX_* variables, TOML keys and docs/configuration.md)
read them from here. This module registers no metrics and imports nothing of the gateway, so
every hcx process may import it."""

from __future__ import annotations

from trust.verify import DEFAULT_MAX_OFFLINE_AGE_S

LISTEN = "127.0.0.1:50051"  # where the gateway serves, and where every command looks for it
REGISTRY = "sqlite:///var/national/registry.db"  # the embedded registry store
RELAY_TIMEOUT_S = 0.5  # longest wait for the issuer's live status
MAX_OFFLINE_AGE_S = DEFAULT_MAX_OFFLINE_AGE_S  # oldest token still VALID_OFFLINE
HEDGE_AFTER_S = 0.05  # before a slow status batch is also sent to another replica
COALESCE_WINDOW_S = 0.002  # a status batch stays open this long for more look-ups
BREAKER_FAILURES = 5  # consecutive failed status batches that open a province's circuit
BREAKER_OPEN_S = 1.0  # a circuit stays open this long before a half-open probe
# Codes being verified at once, all calls together: about 0.4 s of one core's checking
# (~200 us per code, bench/bench_gateway.py), so an admitted burst ends within deadlines.
MAX_IN_FLIGHT_CODES = 2048
SHED_LAG_UNARY_S = 0.05  # event-loop lag past which unary Verify calls are refused
SHED_LAG_BULK_S = 0.15  # ... and batches and stream items too
