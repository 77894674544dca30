"""``hcx node``: provincial operators' commands (keys, server, issuing, colours)."""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime
from pathlib import Path

import segno

from hcx import cmd_health, cmd_keys
from hcx.cli import run_async, subcommand, transport_from
from hcx.flags import CODE_ID, NODE, REQUEST_ID
from healthcode.v1 import common_pb2, node_pb2, node_pb2_grpc
from nodes.options import add_options, values
from nodes.provincial.main import NodeConfig, serve
from trust.files import replace_file
from web.options import ResidentWebOptions

COLOURS = {"green": common_pb2.GREEN, "yellow": common_pb2.YELLOW, "red": common_pb2.RED}


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    cmd_keys.register(
        subcommand(
            sub,
            "keys",
            "Make and upload the province's keys (kept local).",
            "hcx node keys init --province 330000 --dir var/330000",
        )
    )

    p = subcommand(
        sub,
        "serve",
        "Serve the province's node and register with the gateway.",
        "hcx node serve --province 330000 --dir var/330000 --tls-dir var/330000/tls/node-1 "
        "--gateway 127.0.0.1:50051",
    )
    add_options(p, NodeConfig)
    p.set_defaults(handler=run_serve)

    p = subcommand(
        sub,
        "issue",
        "Issue a code for a holder; prints the code id and token.",
        "hcx node issue --node 127.0.0.1:7001 --tls-dir var/330000/tls/operator "
        "--id-number 330102199001011234 --name 张三明 --token-out code.txt",
    )
    NODE.add(p)
    p.add_argument("--id-number", required=True, help="holder's resident ID number")
    p.add_argument("--name", required=True, help="holder's full name (only the mask is encoded)")
    p.add_argument(
        "--colour", type=colour_arg, choices=sorted(COLOURS), default=None, help="initial colour"
    )
    p.add_argument("--png", type=Path, default=None, help="also write the QR code to this PNG")
    p.add_argument("--token-out", type=Path, default=None, help="also write the token to a file")
    p.set_defaults(handler=issue)

    p = subcommand(
        sub,
        "set-status",
        "Change a code's colour.",
        "hcx node set-status --node 127.0.0.1:7001 --tls-dir var/330000/tls/operator "
        "--code-id 3f2a9c0e5b7d41e8a6c2f09b1d3e5a77 --colour RED --reason 'confirmed case'",
    )
    NODE.add(p)
    CODE_ID.add(p)
    p.add_argument(
        "--colour",
        type=colour_arg,
        required=True,
        choices=sorted(COLOURS),
        help="the new colour (any case: green, GREEN)",
    )
    p.add_argument("--reason", default="", help="why the colour changes")
    REQUEST_ID.add(p)
    p.set_defaults(handler=set_status)

    p = subcommand(
        sub,
        "status",
        "Show a code's live status.",
        "hcx node status --node 127.0.0.1:7001 --tls-dir var/330000/tls/operator "
        "--code-id 3f2a9c0e5b7d41e8a6c2f09b1d3e5a77",
    )
    NODE.add(p)
    CODE_ID.add(p)
    p.set_defaults(handler=status)

    p = subcommand(
        sub,
        "web",
        "Serve the residents' page: my code as a QR, its colour and reason, the daily "
        "check-in (HTTPS, in front of the node replicas).",
        "hcx node web --province 330000 --node 127.0.0.1:7001,127.0.0.1:7002 "
        "--tls-dir var/330000/tls/operator --web-tls var/330000/tls/web --listen 0.0.0.0:8444",
    )
    add_options(p, ResidentWebOptions)
    p.set_defaults(handler=run_web)

    cmd_health.register(sub)


def run_web(args: argparse.Namespace) -> int:
    from web.traveller import ResidentWebConfig, serve_until_signalled

    options = ResidentWebOptions(**values(ResidentWebOptions, args))
    config = ResidentWebConfig(
        province=options.province,
        nodes=options.nodes,
        transport=transport_from(args),
        web_tls=options.web_tls,
        listen=options.listen,
    )
    run_async(serve_until_signalled(config, options.port_file))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    config = NodeConfig(**values(NodeConfig, args), transport=transport_from(args))
    run_async(serve(config))
    return 0


def issue(args: argparse.Namespace) -> int:
    colour = COLOURS[args.colour] if args.colour else common_pb2.COLOUR_UNSPECIFIED
    with transport_from(args).sync_channel(args.node) as channel:
        reply = node_pb2_grpc.ProvincialNodeStub(channel).IssueCode(
            node_pb2.IssueCodeRequest(id_number=args.id_number, full_name=args.name, colour=colour),
            timeout=5,
        )
    print(f"code id {reply.code_id.hex()}  colour {common_pb2.Colour.Name(reply.colour)}")
    print(reply.token)
    if args.png is not None:
        write_qr_png(reply.token, args.png)
        print(f"QR code written to {args.png}")
    if args.token_out is not None:
        replace_file(args.token_out, reply.token.encode() + b"\n")
        print(f"token written to {args.token_out}")
    return 0


def colour_arg(value: str) -> str:
    """Colour names in any case, as every tool prints them (GREEN, RED)."""
    return value.strip().lower()


def write_qr_png(token: str, path: Path) -> None:
    """Render the token as a QR code; alphanumeric mode is why the text is base45."""
    qr = segno.make_qr(token, error="m", mode="alphanumeric")
    qr.save(str(path), kind="png", scale=4, border=4)


def set_status(args: argparse.Namespace) -> int:
    with transport_from(args).sync_channel(args.node) as channel:
        reply = node_pb2_grpc.ProvincialNodeStub(channel).SetStatus(
            node_pb2.SetStatusRequest(
                code_id=args.code_id,
                colour=COLOURS[args.colour],
                reason=args.reason,
                request_id=args.request_id or str(uuid.uuid4()),
            ),
            timeout=5,
        )
    print(f"{common_pb2.Colour.Name(reply.status.colour)} version {reply.status.status_version}")
    return 0


def status(args: argparse.Namespace) -> int:
    with transport_from(args).sync_channel(args.node) as channel:
        reply = node_pb2_grpc.ProvincialNodeStub(channel).GetStatus(
            node_pb2.GetStatusRequest(code_id=args.code_id), timeout=5
        )
    if not reply.found:
        print("unknown code")
        return 1
    changed = datetime.fromtimestamp(reply.updated_at, UTC).isoformat(timespec="seconds")
    print(f"{common_pb2.Colour.Name(reply.colour)} version {reply.status_version} since {changed}")
    return 0
