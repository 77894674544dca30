"""The ``hcx`` command: one entry point, a subcommand per role."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from hcx import config
from nodes.options import DEFAULT_GATEWAY_ADDRESS
from nodes.tls import Transport
from trust.errors import HcxError, InvalidRequest

Handler = Callable[[argparse.Namespace], int]
DEFAULT_GATEWAY = DEFAULT_GATEWAY_ADDRESS  # where every command looks for the national gateway


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The example as written, and each option's default after its help, taken from the
    option's one definition (none shown for an off switch, nothing, or a help that says it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        unshown = default is None or default is False or default in ("", [], ())
        if unshown or default is argparse.SUPPRESS or not action.option_strings:
            return text
        if "default" in text:
            return text
        return f"{text} (default: %(default)s)"


def _parser(sub: Any, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"example:\n  {example}",
        formatter_class=HelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    from hcx import cmd_checkpoint, cmd_gateway, cmd_node, cmd_registry, cmd_sim

    parser = argparse.ArgumentParser(
        prog="hcx",
        description="hcx: the federated interprovincial health-code exchange.",
        epilog="example:\n  hcx sim      # a local federation: issue, verify across provinces",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML file with option values (also HCX_CONFIG)"
    )
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
            "hcx node serve --province 330000 --dir var/330000 --tls-dir var/330000/tls/node-1 "
            "--gateway 127.0.0.1:50051",
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
            "hcx checkpoint verify --gateway 127.0.0.1:50051 --tls-dir var/510000/tls/checkpoint "
            "--province 510000 --image code.png",
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
    _add_transport_to_network_commands(parser)
    reference = _parser(
        sub,
        "config-reference",
        "Print the reference of every option, its variable and default.",
        "hcx config-reference > docs/configuration.md",
    )
    reference.set_defaults(handler=lambda args: print(config.reference(build_parser())) or 0)
    return parser


def _config_file(argv: Sequence[str]) -> Path | None:
    """--config FILE (or HCX_CONFIG), looked up before parsing: it supplies defaults."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    value = os.environ.get("HCX_CONFIG")
    return Path(value) if value else None


def subcommand(sub: Any, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    """A second-level subcommand with a description and an example in its --help."""
    return _parser(sub, name, summary, example)


NETWORK_OPTIONS = frozenset({"gateway", "node", "listen"})


def _add_transport_to_network_commands(root: argparse.ArgumentParser) -> None:
    """Every command that speaks gRPC (it names a peer or a listen address) gets the
    transport flags: the same two flags, the same meaning, everywhere."""
    for _path, command in config.commands(root):
        dests = {action.dest for action in command._actions}
        if dests & NETWORK_OPTIONS and "tls_dir" not in dests:
            add_transport_flags(command)


def add_transport_flags(parser: argparse.ArgumentParser) -> None:
    """--tls-dir (this process's mTLS identity) and the loud development switch."""
    parser.add_argument(
        "--tls-dir",
        type=Path,
        default=None,
        help="mTLS identity: a directory with key.pem, cert.pem (certificate + issuing CA) "
        "and root.pem",
    )
    parser.add_argument(
        "--insecure-dev-only",
        action="store_true",
        help="DEVELOPMENT ONLY: plain-text gRPC, no authentication or authorization",
    )


def transport_from(args: argparse.Namespace) -> Transport:
    """The Transport the flags ask for; refuses to guess plain text."""
    if args.tls_dir is not None:
        return Transport.mtls(args.tls_dir)
    if args.insecure_dev_only:
        return Transport.insecure_dev_only()
    raise InvalidRequest(
        "give --tls-dir DIR (this process's mTLS identity) or, for development only, "
        "--insecure-dev-only"
    )


def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        config.apply(parser, file_values=config.load_file(_config_file(argv)))
    except HcxError as e:
        print(f"hcx: {e.message}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    from nodes.logging import configure_logging

    # JSON (request ids, no personal data) when stderr is not a terminal, i.e. for servers.
    configure_logging(verbose=args.verbose)
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
        print(f"hcx: {e.code().name}{label}: {e.details()}", file=sys.stderr)
        return 3
    except FileNotFoundError as e:
        print(f"hcx: file not found: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def path(value: str) -> Path:
    return Path(value)
