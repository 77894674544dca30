"""``hcx gateway``: run the national gateway."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from gateway import defaults
from hcx.cli import run_async, subcommand, transport_from
from nodes.ratelimit import parse_limits
from trust.errors import InvalidRequest


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = subcommand(
        sub,
        "serve",
        "Serve Gateway and Registry on one port until SIGTERM.",
        "hcx gateway serve --registry sqlite:///var/national/registry.db "
        "--root-cert var/national/root.pem --listen 127.0.0.1:50051",
    )
    p.add_argument(
        "--registry",
        default=defaults.REGISTRY,
        help="registry store URL (by default the embedded SQLite file)",
    )
    p.add_argument(
        "--root-cert", type=Path, required=True, help="pinned national root(s) (PEM bundle)"
    )
    p.add_argument("--listen", default=defaults.LISTEN, help="host:port to serve on")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="gateway processes sharing the port, one per core by default (0); 1 serves in "
        "this process",
    )
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (0: any)")
    p.add_argument("--port-file", type=Path, default=None, help="write the bound port here")
    p.add_argument(
        "--relay-timeout",
        type=float,
        default=defaults.RELAY_TIMEOUT_S,
        help="seconds to wait for the issuer's live status",
    )
    p.add_argument(
        "--max-offline-age",
        type=int,
        default=defaults.MAX_OFFLINE_AGE_S,
        help="oldest token (s) still VALID_OFFLINE when the issuer is down",
    )
    p.add_argument(
        "--hedge-after",
        type=float,
        default=defaults.HEDGE_AFTER_S,
        help="seconds before a slow status batch is also sent to another replica",
    )
    p.add_argument(
        "--coalesce-window",
        type=float,
        default=defaults.COALESCE_WINDOW_S,
        help="seconds a status batch waits for more look-ups",
    )
    p.add_argument(
        "--breaker-failures",
        type=int,
        default=defaults.BREAKER_FAILURES,
        help="consecutive failed status batches that open a province's circuit",
    )
    p.add_argument(
        "--breaker-open",
        type=float,
        default=defaults.BREAKER_OPEN_S,
        help="seconds a circuit stays open before a half-open probe",
    )
    p.add_argument(
        "--view-file",
        type=Path,
        default=None,
        help="where the last verified registry view is kept, served while the store is down",
    )
    p.add_argument(
        "--trust-list-cert",
        type=Path,
        default=None,
        help="trust-list signing certificate (enables GetTrustList/WatchTrustList)",
    )
    p.add_argument("--trust-list-key", type=Path, default=None, help="its private key (0600)")
    p.add_argument(
        "--log-cert",
        type=Path,
        default=None,
        help="registry log signing certificate (enables registry writes: Submit, RegisterNode)",
    )
    p.add_argument("--log-key", type=Path, default=None, help="its private key (0600)")
    p.add_argument(
        "--pin-head",
        type=Path,
        default=None,
        help="signed tree head a fresh gateway starts from (hcx registry head --out FILE): "
        "the registry's log must extend it",
    )
    p.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="ROLE=RATE[/BURST]",
        help="per-caller rate limit of a role, e.g. checkpoint=5000/10000 (repeatable; "
        "defaults in docs/security.md)",
    )
    p.add_argument(
        "--max-in-flight-codes",
        type=int,
        default=None,
        help="codes verified at once by one gateway process; past it calls are refused with "
        f"RESOURCE_EXHAUSTED (default {defaults.MAX_IN_FLIGHT_CODES}, docs/capacity.md)",
    )
    p.add_argument(
        "--shed-lag-ms",
        default=f"{defaults.SHED_LAG_UNARY_S * 1000:g}/{defaults.SHED_LAG_BULK_S * 1000:g}",
        metavar="UNARY/BULK",
        help="refuse unary Verify calls (then batches and stream items too) with "
        "RESOURCE_EXHAUSTED while the event loop runs this late (docs/capacity.md)",
    )
    p.set_defaults(handler=run)


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


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every hcx process parses the whole command line, and only
    # a gateway may register the gateway's metric families (a node exports its own).
    from gateway.admission import AdmissionPolicy
    from gateway.breaker import BreakerPolicy
    from gateway.coalescer import CoalescerPolicy
    from gateway.main import GatewayConfig, serve, serve_workers
    from gateway.relay import RelayPolicy
    from gateway.service import MAX_BATCH_TOKENS, ServingLimits
    from gateway.verification import VerifyPolicy
    from gateway.workers import default_workers

    unary_lag, bulk_lag = parse_shed_lag(args.shed_lag_ms)
    admission = AdmissionPolicy(unary_lag_s=unary_lag, bulk_lag_s=bulk_lag)
    if args.max_in_flight_codes is not None:
        if args.max_in_flight_codes < MAX_BATCH_TOKENS:  # else a full batch is never admitted
            raise InvalidRequest(
                f"--max-in-flight-codes must be at least {MAX_BATCH_TOKENS} (the largest batch)"
            )
        admission = dataclasses.replace(admission, max_in_flight_codes=args.max_in_flight_codes)
    config = GatewayConfig(
        registry=args.registry,
        root_cert=args.root_cert,
        transport=transport_from(args),
        listen=args.listen,
        metrics_port=args.metrics_port,
        port_file=args.port_file,
        view_file=args.view_file,
        trust_list_cert=args.trust_list_cert,
        trust_list_key=args.trust_list_key,
        log_cert=args.log_cert,
        log_key=args.log_key,
        pinned_head=args.pin_head,
        rate_limits=parse_limits(args.rate_limit),
        limits=ServingLimits(admission=admission),
        policy=VerifyPolicy(relay_timeout=args.relay_timeout, max_offline_age=args.max_offline_age),
        relay=RelayPolicy(hedge_after=args.hedge_after),
        coalescing=CoalescerPolicy(
            window=args.coalesce_window,
            breaker=BreakerPolicy(
                failure_threshold=args.breaker_failures, open_seconds=args.breaker_open
            ),
        ),
    )
    workers = args.workers or default_workers()
    if workers < 0:
        raise InvalidRequest("--workers must be 0 (one per core) or more")
    if workers == 1:
        run_async(serve(config))
    else:
        serve_workers(config, workers)
    return 0
