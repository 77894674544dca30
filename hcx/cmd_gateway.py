"""``hcx gateway``: run the national gateway."""

from __future__ import annotations

import argparse

from gateway.options import GatewayOptions, parse_shed_lag
from hcx.cli import run_async, subcommand, transport_from
from nodes.options import add_options, values
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
    add_options(p, GatewayOptions)
    p.set_defaults(handler=run)


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

    options = GatewayOptions(**values(GatewayOptions, args))
    unary_lag, bulk_lag = parse_shed_lag(options.shed_lag_ms)
    if options.max_in_flight_codes < MAX_BATCH_TOKENS:  # else a full batch is never admitted
        raise InvalidRequest(
            f"--max-in-flight-codes must be at least {MAX_BATCH_TOKENS} (the largest batch)"
        )
    admission = AdmissionPolicy(
        max_in_flight_codes=options.max_in_flight_codes, unary_lag_s=unary_lag, bulk_lag_s=bulk_lag
    )
    config = GatewayConfig(
        registry=options.registry,
        root_cert=options.root_cert,
        transport=transport_from(args),
        listen=options.listen,
        metrics_port=options.metrics_port,
        port_file=options.port_file,
        view_file=options.view_file,
        trust_list_cert=options.trust_list_cert,
        trust_list_key=options.trust_list_key,
        log_cert=options.log_cert,
        log_key=options.log_key,
        pinned_head=options.pin_head,
        rate_limits=parse_limits(list(options.rate_limit)),
        limits=ServingLimits(admission=admission),
        policy=VerifyPolicy(
            relay_timeout=options.relay_timeout, max_offline_age=options.max_offline_age
        ),
        relay=RelayPolicy(hedge_after=options.hedge_after),
        coalescing=CoalescerPolicy(
            window=options.coalesce_window,
            breaker=BreakerPolicy(
                failure_threshold=options.breaker_failures, open_seconds=options.breaker_open
            ),
        ),
    )
    workers = options.workers or default_workers()
    if workers < 0:
        raise InvalidRequest("--workers must be 0 (one per core) or more")
    if workers == 1:
        run_async(serve(config))
    else:
        serve_workers(config, workers)
    return 0
