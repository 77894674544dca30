"""``hcx checkpoint``: verify a traveller's code through the national gateway."""

from __future__ import annotations

import argparse

import grpc

from hcx.cli import subcommand
from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = subcommand(
        sub,
        "verify",
        "Verify one code; prints the verdict and colour.",
        "hcx checkpoint verify --gateway 127.0.0.1:50051 --province 510000 'HCX1:...'",
    )
    p.add_argument("token", help="the QR code's text (HCX1:...)")
    p.add_argument("--gateway", default="127.0.0.1:50051", help="national gateway address")
    p.add_argument("--province", default="", help="the checkpoint's province code")
    p.add_argument("--checkpoint-id", default="cli", help="checkpoint name for logs")
    p.add_argument("--timeout", type=float, default=2.0, help="deadline in seconds")
    p.set_defaults(handler=verify)


def verify(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.gateway) as channel:
        reply = gateway_pb2_grpc.GatewayStub(channel).Verify(
            gateway_pb2.VerifyRequest(
                token=args.token,
                checkpoint_province=args.province,
                checkpoint_id=args.checkpoint_id,
            ),
            timeout=args.timeout,
        )
    print(describe(reply))
    return 0 if reply.verdict != common_pb2.INVALID else 1


def describe(reply: gateway_pb2.VerifyResponse) -> str:
    verdict = common_pb2.Verdict.Name(reply.verdict)
    if reply.verdict == common_pb2.INVALID:
        return f"{verdict} {common_pb2.Reason.Name(reply.reason)}: {reply.message}"
    colour = common_pb2.Colour.Name(reply.colour)
    age = (
        f" (colour {reply.colour_age_seconds} s old)"
        if reply.verdict == common_pb2.VALID_OFFLINE
        else ""
    )
    return (
        f"{verdict} {colour}{age} issuer {reply.issuer} holder {reply.masked_name} …{reply.id_tail}"
    )
