"""What every registry command shares: a signing identity kept on this station, and Submit.

A coordinator's or a province's command signs its statement here, with the key in its own
identity directory (``key.pem`` + ``cert.pem``: the coordinator's certificate, or the
province's CA), then submits the signed bytes through the Registry API. The gateway only checks
and stores them: nothing it does can sign in anyone's name.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hcx.cli import transport_from
from healthcode.v1 import registry_pb2, registry_pb2_grpc
from trust import pki, statements
from trust.errors import InvalidRequest


def load_authority(
    directory: Path, *, key: str = "key.pem", cert: str = "cert.pem"
) -> pki.Authority:
    """The signing identity in ``directory`` (the first certificate of cert.pem is its own)."""
    certificates = pki.load_certificates_pem((directory / cert).read_bytes())
    return pki.Authority(
        certificate=certificates[0],
        private_key=pki.load_private_key_pem((directory / key).read_bytes()),
    )


def coordinator(args: argparse.Namespace) -> pki.Authority:
    """The coordinator's own signing identity: ``--key-dir``, else its ``--tls-dir``."""
    directory = getattr(args, "key_dir", None) or args.tls_dir
    if directory is None:
        raise InvalidRequest("give --tls-dir (or --key-dir): the coordinator's own identity")
    return load_authority(directory)


def sign(body: statements.Body, signer: pki.Authority) -> bytes:
    """A statement of ``body`` signed now by ``signer``."""
    statement = statements.make(body, signed_at=int(time.time()))
    return statements.sign(statement, signer.private_key, signer.certificate)


def submit(args: argparse.Namespace, statement: bytes) -> registry_pb2.SubmitResponse:
    """Submit a signed statement to ``--gateway``; the gateway's answer, or a gRPC error."""
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply: registry_pb2.SubmitResponse = registry_pb2_grpc.RegistryStub(channel).Submit(
            registry_pb2.SubmitRequest(statement=statement), timeout=10
        )
    return reply


def submit_and_print(args: argparse.Namespace, statement: bytes) -> int:
    reply = submit(args, statement)
    print(f"{reply.effect} [log entry {reply.index}, tree size {reply.tree_size}]")
    if reply.proposal_id and reply.kind == "propose":
        print(f"proposal id {reply.proposal_id.hex()}")
    return 0


def parse_serial(text: str) -> int:
    """A certificate serial as listed (hex, ``0x…``) or in decimal (digits only)."""
    value = text.strip().lower()
    try:
        if value.startswith("0x"):
            return int(value[2:], 16)
        if value.isdigit():
            return int(value)
        return int(value, 16)
    except ValueError as e:
        raise InvalidRequest(f"not a serial: {text!r} (hex like 0x1f2e…, or decimal)") from e
