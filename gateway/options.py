"""The options of ``hcx gateway serve``, each defined once (nodes.options): its type, default
and help are a field of ``GatewayOptions``. The command line, its HCX_* variables, TOML keys
and docs/configuration.md are generated from it, and the gateway's policy dataclasses
(gateway.relay, gateway.coalescer, gateway.breaker, gateway.admission, gateway.verification)
take their defaults from it. This module registers no metrics and imports nothing else of the
gateway, so every hcx process may import it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nodes.options import DEFAULT_GATEWAY_ADDRESS, option
from trust.errors import InvalidRequest
from trust.verify import DEFAULT_MAX_OFFLINE_AGE_S


def parse_shed_lag(spec: str) -> tuple[float, float]:
    """``"50/150"`` -> (0.05, 0.15) seconds; InvalidRequest for anything else."""
    try:
        unary, bulk = (float(part) / 1000 for part in spec.split("/"))
    except ValueError:
        raise InvalidRequest(
            f"--shed-lag-ms {spec!r}: expected UNARY/BULK in ms, e.g. 50/150"
        ) from None
    if not 0 < unary <= bulk:
        raise InvalidRequest(f"--shed-lag-ms {spec!r}: both positive, unary at most bulk")
    return unary, bulk


@dataclass(frozen=True, kw_only=True)
class GatewayOptions:
    registry: str = option(
        "sqlite:///var/national/registry.db",
        help="registry store URL (by default the embedded SQLite file)",
    )
    root_cert: Path = option(help="pinned national root(s) (PEM bundle)")
    listen: str = option(DEFAULT_GATEWAY_ADDRESS, help="host:port to serve on")
    workers: int = option(
        0,
        help="gateway processes sharing the port, one per core by default (0); 1 serves in "
        "this process",
    )
    metrics_port: int | None = option(None, help="Prometheus port (0: any)")
    port_file: Path | None = option(None, help="write the bound port here")
    relay_timeout: float = option(0.5, help="seconds to wait for the issuer's live status")
    max_offline_age: int = option(
        DEFAULT_MAX_OFFLINE_AGE_S,
        help="oldest token (s) still VALID_OFFLINE when the issuer is down",
    )
    hedge_after: float = option(
        0.05, help="seconds before a slow status batch is also sent to another replica"
    )
    coalesce_window: float = option(0.002, help="seconds a status batch waits for more look-ups")
    breaker_failures: int = option(
        5, help="consecutive failed status batches that open a province's circuit"
    )
    breaker_open: float = option(1.0, help="seconds a circuit stays open before a half-open probe")
    view_file: Path | None = option(
        None,
        help="where the last verified registry view is kept, served while the store is down",
    )
    trust_list_cert: Path | None = option(
        None, help="trust-list signing certificate (enables GetTrustList/WatchTrustList)"
    )
    trust_list_key: Path | None = option(None, help="its private key (0600)")
    log_cert: Path | None = option(
        None,
        help="registry log signing certificate (enables registry writes: Submit, RegisterNode)",
    )
    log_key: Path | None = option(None, help="its private key (0600)")
    pin_head: Path | None = option(
        None,
        help="signed tree head a fresh gateway starts from (hcx registry head --out FILE): "
        "the registry's log must extend it",
    )
    rate_limit: tuple[str, ...] = option(
        (),
        metavar="ROLE=RATE[/BURST]",
        help="per-caller rate limit of a role, e.g. checkpoint=5000/10000 (repeatable; "
        "defaults in docs/security.md)",
    )
    # Codes being verified at once, all calls together: about 0.4 s of one core's checking
    # (~200 us per code, bench/bench_gateway.py), so an admitted burst ends within deadlines.
    max_in_flight_codes: int = option(
        2048,
        help="codes verified at once by one gateway process; past it calls are refused with "
        "RESOURCE_EXHAUSTED (docs/capacity.md)",
    )
    shed_lag_ms: str = option(
        "50/150",
        metavar="UNARY/BULK",
        help="refuse unary Verify calls (then batches and stream items too) with "
        "RESOURCE_EXHAUSTED while the event loop runs this late (docs/capacity.md)",
    )


SHED_LAG_UNARY_S, SHED_LAG_BULK_S = parse_shed_lag(GatewayOptions.shed_lag_ms)
