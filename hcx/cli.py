"""The ``hcx`` command: one entry point, a subcommand per role."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from trust.errors import HcxError

Handler = Callable[[argparse.Namespace], int]


def _parser(sub: Any, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    from hcx import cmd_checkpoint, cmd_gateway, cmd_node, cmd_registry, cmd_sim

    parser = argparse.ArgumentParser(
        prog="hcx",
        description="hcx: the federated interprovincial health-code exchange.",
        epilog="example:\n  hcx sim            # a local federation: issue, verify across provinces",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="role", required=True, metavar="ROLE")
    cmd_registry.register(
        _parser(
            sub,
            "registry",
            "National coordinators: root CA, provinces, signing certificates.",
            "hcx registry init --dir var/national",
        )
    )
    cmd_node.register(
        _parser(
            sub,
            "node",
            "Provincial operators: keys, the node server, issuing codes.",
            "hcx node serve --province 330000 --dir var/330000 --gateway 127.0.0.1:50051",
        )
    )
    cmd_gateway.register(
        _parser(
            sub,
            "gateway",
            "The national gateway: verification relay and registry API.",
            "hcx gateway serve --root-cert var/national/root.pem",
        )
    )
    cmd_checkpoint.register(
        _parser(
            sub,
            "checkpoint",
            "Checkpoints: verify a traveller's code.",
            "hcx checkpoint verify --gateway 127.0.0.1:50051 'HCX1:...'",
        )
    )
    cmd_sim.register(
        _parser(
            sub,
            "sim",
            "Run a local federation on 127.0.0.1 and print what happened.",
            "hcx sim --provinces 330000,510000,460000",
        )
    )
    return parser


def subcommand(sub: Any, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    """A second-level subcommand with a description and an example in its --help."""
    return _parser(sub, name, summary, example)


def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except HcxError as e:
        print(f"hcx: error [{e.reason.name}]: {e.message}", file=sys.stderr)
        return 2
    except grpc.RpcError as e:
        from nodes.grpc_edge import reason_of

        reason = reason_of(e)
        label = f" [{reason.name}]" if reason else ""
        print(f"hcx: {e.code().name}{label}: {e.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 3
    except FileNotFoundError as e:
        print(f"hcx: file not found: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def path(value: str) -> Path:
    return Path(value)
