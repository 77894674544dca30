"""``hcx node keys``: a province's own keys, made and kept locally; certificates uploaded."""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc

from hcx.cli import subcommand
from healthcode.v1 import registry_pb2, registry_pb2_grpc
from nodes.provincial.keys import ProvinceDir, init_province, new_signing_certificate
from trust.pki import kid


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="keys_action", required=True, metavar="KEYS_ACTION")
    p = subcommand(
        sub,
        "init",
        "Make the provincial CA key + CSR and the holder-hash key.",
        "hcx node keys init --province 330000 --dir var/330000",
    )
    p.add_argument("--province", required=True)
    p.add_argument("--dir", type=Path, required=True)
    p.set_defaults(handler=keys_init)

    p = subcommand(
        sub,
        "new-dsc",
        "Make a signing key and certificate signed by the own CA.",
        "hcx node keys new-dsc --province 330000 --dir var/330000 --name dsc-2026",
    )
    p.add_argument("--province", required=True)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--name", default="dsc-1", help="name of the DSC in its SAN")
    p.set_defaults(handler=keys_new_dsc)

    p = subcommand(
        sub,
        "upload",
        "Upload the province's current DSC to the national registry.",
        "hcx node keys upload --dir var/330000 --gateway 127.0.0.1:50051",
    )
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--gateway", default="127.0.0.1:50051")
    p.set_defaults(handler=keys_upload)


def keys_init(args: argparse.Namespace) -> int:
    init_province(ProvinceDir(args.dir), province=args.province)
    print(f"CA key and CSR written to {args.dir}; send ca.csr to the national coordinators")
    return 0


def keys_new_dsc(args: argparse.Namespace) -> int:
    certificate = new_signing_certificate(
        ProvinceDir(args.dir), province=args.province, name=args.name
    )
    print(f"signing certificate {kid(certificate).hex()} written to {args.dir}/dsc.pem")
    return 0


def keys_upload(args: argparse.Namespace) -> int:
    pem = ProvinceDir(args.dir).dsc_cert.read_bytes()
    with grpc.insecure_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).UploadSigningCertificate(
            registry_pb2.UploadSigningCertificateRequest(certificate_pem=pem), timeout=10
        )
    print(f"uploaded signing certificate {reply.kid.hex()} of province {reply.province}")
    return 0
