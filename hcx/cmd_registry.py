"""``hcx registry``: national coordinators' commands."""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.serialization import Encoding

from hcx.cli import subcommand
from healthcode.v1 import registry_pb2, registry_pb2_grpc
from nodes.provincial.keys import write_public
from trust import pki

DEFAULT_GATEWAY = "127.0.0.1:50051"


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = subcommand(
        sub,
        "init",
        "Create the national root CA (key file written 0600).",
        "hcx registry init --dir var/national",
    )
    p.add_argument("--dir", type=Path, required=True, help="directory for root.pem, root-key.pem")
    p.set_defaults(handler=init)

    p = subcommand(
        sub,
        "onboard-province",
        "Sign a province's CA from its CSR and record the province.",
        "hcx registry onboard-province --province 330000 --name 浙江省 "
        "--csr var/330000/ca.csr --out var/330000/ca.pem",
    )
    p.add_argument("--gateway", default=DEFAULT_GATEWAY, help="national registry address")
    p.add_argument("--province", required=True, help="GB/T 2260 code, e.g. 330000")
    p.add_argument("--name", required=True, help="official name, e.g. 浙江省")
    p.add_argument("--csr", type=Path, required=True, help="the province's CA CSR (PEM)")
    p.add_argument("--out", type=Path, required=True, help="where to write the signed CA (PEM)")
    p.set_defaults(handler=onboard)

    p = subcommand(
        sub,
        "list",
        "List provinces and their signing certificates.",
        "hcx registry list --gateway 127.0.0.1:50051",
    )
    p.add_argument("--gateway", default=DEFAULT_GATEWAY, help="national registry address")
    p.set_defaults(handler=list_registry)


def init(args: argparse.Namespace) -> int:
    args.dir.mkdir(parents=True, exist_ok=True)
    root = pki.create_root_ca()
    pki.write_private_key(args.dir / "root-key.pem", root.private_key)
    write_public(args.dir / "root.pem", root.certificate.public_bytes(Encoding.PEM))
    print(f"national root CA written to {args.dir}/root.pem (key: root-key.pem, mode 0600)")
    return 0


def onboard(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).OnboardProvince(
            registry_pb2.OnboardProvinceRequest(
                province=args.province, name=args.name, csr_pem=args.csr.read_bytes()
            ),
            timeout=10,
        )
    write_public(args.out, reply.ca_certificate_pem)
    write_public(args.out.with_name("root.pem"), reply.root_certificate_pem)
    print(f"province {args.province} onboarded; CA certificate written to {args.out}")
    return 0


def list_registry(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.gateway) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        provinces = stub.ListProvinces(registry_pb2.ListProvincesRequest(), timeout=10)
        certificates = stub.ListCertificates(registry_pb2.ListCertificatesRequest(), timeout=10)
    for p in provinces.provinces:
        state = "SUSPENDED" if p.suspended else "active"
        print(f"{p.code}  {p.name}  {state}")
        for c in certificates.certificates:
            if c.province == p.code:
                print(f"    dsc {c.kid.hex()}  valid {c.not_before} .. {c.not_after}")
    return 0
