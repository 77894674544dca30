"""``hcx gateway``: run the national gateway."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.main import GatewayConfig, serve
from gateway.verification import VerifyPolicy
from hcx.cli import run_async, subcommand


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
        default="sqlite:///var/national/registry.db",
        help="registry store URL (default: embedded SQLite file)",
    )
    p.add_argument("--root-cert", type=Path, required=True, help="pinned national root (PEM)")
    p.add_argument(
        "--root-key",
        type=Path,
        default=None,
        help="root CA key: only where coordinators onboard provinces online",
    )
    p.add_argument("--listen", default="127.0.0.1:50051", help="host:port to serve on")
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (0: any)")
    p.add_argument("--port-file", type=Path, default=None, help="write the bound port here")
    p.add_argument(
        "--relay-timeout",
        type=float,
        default=0.5,
        help="seconds to wait for the issuer's live status (default 0.5)",
    )
    p.add_argument(
        "--max-offline-age",
        type=int,
        default=300,
        help="oldest token (s) still VALID_OFFLINE when the issuer is down",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = GatewayConfig(
        registry=args.registry,
        root_cert=args.root_cert,
        root_key=args.root_key,
        listen=args.listen,
        metrics_port=args.metrics_port,
        port_file=args.port_file,
        policy=VerifyPolicy(relay_timeout=args.relay_timeout, max_offline_age=args.max_offline_age),
    )
    run_async(serve(config))
    return 0
