"""``hcx registry``: national coordinators' commands."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from hcx.cli import subcommand, transport_from
from healthcode.v1 import gateway_pb2_grpc, registry_pb2, registry_pb2_grpc, trustlist_pb2
from nodes.credentials import issue_national_identity
from nodes.provincial.keys import write_public
from trust import pki, trustlist
from trust.export import export_pem
from trust.registry import REVOCATION_REASONS

DEFAULT_GATEWAY = "127.0.0.1:50051"


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = subcommand(
        sub,
        "init",
        "Create the national root CA and the trust-list signing key (key files 0600).",
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

    for name, suspended in (("suspend", True), ("resume", False)):
        p = subcommand(
            sub,
            name,
            f"{name.capitalize()} a province (suspended: all its codes are INVALID).",
            f"hcx registry {name} --province 330000 --why 'incident 42'",
        )
        p.add_argument("--gateway", default=DEFAULT_GATEWAY, help="national registry address")
        p.add_argument("--province", required=True, help="GB/T 2260 code")
        p.add_argument("--why", default="", help="recorded in the audit log")
        p.set_defaults(handler=suspend, suspended=suspended)

    p = subcommand(
        sub,
        "revoke",
        "Revoke a DSC (by kid or serial) or a provincial CA (by serial) from a time on.",
        "hcx registry revoke --kid 0123456789abcdef --reason key_compromise",
    )
    p.add_argument("--gateway", default=DEFAULT_GATEWAY, help="national registry address")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--kid", help="hex key id of a DSC")
    target.add_argument("--serial", help="decimal serial of a DSC or provincial CA")
    p.add_argument(
        "--reason",
        default="unspecified",
        choices=sorted(REVOCATION_REASONS),
        help="CRL reason",
    )
    p.add_argument("--at", type=int, default=0, help="unix time of the revocation (default now)")
    p.set_defaults(handler=revoke)

    p = subcommand(
        sub,
        "audit",
        "Print the audit log; --verify exits 1 when an entry was edited or deleted.",
        "hcx registry audit --verify",
    )
    p.add_argument("--gateway", default=DEFAULT_GATEWAY, help="national registry address")
    p.add_argument("--verify", action="store_true", help="fail unless the chain is intact")
    p.set_defaults(handler=audit_log)

    p = subcommand(
        sub,
        "export",
        "Write root, provincial CAs, DSCs and CRLs as PEM files for openssl verify -crl_check.",
        "hcx registry export --root var/national/root.pem --out var/export",
    )
    p.add_argument("--gateway", default=DEFAULT_GATEWAY, help="gateway serving GetTrustList")
    p.add_argument("--trust-list", type=Path, help="export from this file instead")
    p.add_argument("--root", type=Path, required=True, help="pinned national root (PEM)")
    p.add_argument("--out", type=Path, required=True, help="directory for the PEM files")
    p.set_defaults(handler=export)

    p = subcommand(
        sub,
        "issue-cert",
        "Issue a gateway or coordinator mTLS identity signed by the national root.",
        "hcx registry issue-cert --kind gateway --name gw-1 --root-dir var/national "
        "--out var/national/gw-1",
    )
    p.add_argument("--kind", required=True, choices=pki.NATIONAL_KINDS, help="identity kind")
    p.add_argument("--name", required=True, help="name in the SPIFFE id, e.g. gw-1 or alice")
    p.add_argument("--root-dir", type=Path, required=True, help="holds root.pem, root-key.pem")
    p.add_argument(
        "--dns",
        action="append",
        default=[],
        metavar="HOST",
        help="host name a gateway is reached by (repeatable; loopback always)",
    )
    p.add_argument("--out", type=Path, required=True, help="directory to write (--tls-dir)")
    p.set_defaults(handler=issue_cert)


def issue_cert(args: argparse.Namespace) -> int:
    root = pki.Authority(
        certificate=pki.load_certificate_pem((args.root_dir / "root.pem").read_bytes()),
        private_key=pki.load_private_key_pem((args.root_dir / "root-key.pem").read_bytes()),
    )
    issue_national_identity(root, kind=args.kind, name=args.name, out=args.out, dns_names=args.dns)
    print(f"{args.kind} identity {args.name} written to {args.out} (use it as --tls-dir)")
    return 0


def init(args: argparse.Namespace) -> int:
    args.dir.mkdir(parents=True, exist_ok=True)
    root = pki.create_root_ca()
    pki.write_private_key(args.dir / "root-key.pem", root.private_key)
    write_public(args.dir / "root.pem", root.certificate.public_bytes(Encoding.PEM))
    signer_key = pki.generate_private_key()
    csr = pki.make_csr(signer_key, common_name="hcx national trust-list signer")
    signer = pki.sign_trust_list_signer(root, csr)
    pki.write_private_key(args.dir / "trust-list-key.pem", signer_key)
    write_public(args.dir / "trust-list.pem", pki.certificate_to_pem(signer))
    print(
        f"national root CA written to {args.dir}/root.pem, trust-list signer to trust-list.pem "
        "(keys: root-key.pem, trust-list-key.pem, mode 0600)"
    )
    return 0


def suspend(args: argparse.Namespace) -> int:
    with transport_from(args).sync_channel(args.gateway) as channel:
        registry_pb2_grpc.RegistryStub(channel).SuspendProvince(
            registry_pb2.SuspendProvinceRequest(
                province=args.province, suspended=args.suspended, why=args.why
            ),
            timeout=10,
        )
    print(f"province {args.province} {'suspended' if args.suspended else 'resumed'}")
    return 0


def revoke(args: argparse.Namespace) -> int:
    request = registry_pb2.RevokeCertificateRequest(
        kid=bytes.fromhex(args.kid) if args.kid else b"",
        serial=args.serial or "",
        reason=args.reason,
        revoked_at=args.at,
    )
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).RevokeCertificate(request, timeout=10)
    print(f"revoked: {reply.revoked}")
    return 0


def audit_log(args: argparse.Namespace) -> int:
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).AuditLog(
            registry_pb2.AuditLogRequest(), timeout=10
        )
    for e in reply.entries:
        when = datetime.fromtimestamp(e.at, tz=UTC).isoformat(timespec="seconds")
        print(f"{e.seq:6d} {when} {e.actor:<30} {e.action:<18} {e.subject} {e.detail}")
    for problem in reply.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    if args.verify:
        print("audit log intact" if reply.intact else "audit log TAMPERED", file=sys.stderr)
        return 0 if reply.intact else 1
    return 0


def export(args: argparse.Namespace) -> int:
    root = pki.load_certificate_pem(args.root.read_bytes())
    if args.trust_list is not None:
        signed = args.trust_list.read_bytes()
    else:
        with transport_from(args).sync_channel(args.gateway) as channel:
            signed = (
                gateway_pb2_grpc.GatewayStub(channel)
                .GetTrustList(trustlist_pb2.GetTrustListRequest(), timeout=10)
                .signed_list
            )
    view = trustlist.verify(signed, [root], now=time.time()).view([root])
    written = export_pem(view, root, args.out)
    print(f"{len(written)} PEM files written to {args.out}")
    return 0


def onboard(args: argparse.Namespace) -> int:
    with transport_from(args).sync_channel(args.gateway) as channel:
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
    with transport_from(args).sync_channel(args.gateway) as channel:
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
