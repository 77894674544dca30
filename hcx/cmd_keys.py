"""``hcx node keys``: a province's own keys, made and kept locally; certificates uploaded.

Every registry change a province makes is a statement signed here with the province's own CA
key (trust.statements) and submitted through the Registry API with the operator's mTLS
identity: the gateway checks and stores it, and could not have made it.

Rotation with overlap: ``rotate`` archives the current DSC, makes and uploads a new one, and
retires the old one ``--overlap`` seconds from now. Every replica reading the key directory
switches by itself, once the registry has listed the new key for a few seconds
(nodes.provincial.signing), well within the shortest overlap allowed (20 s): codes signed with
the old key after the retirement time would be INVALID (KEY_RETIRED); codes signed before keep
verifying until they expire.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from hcx.cli import subcommand
from hcx.flags import GATEWAY, KEY_DIR, PROVINCE
from hcx.registry_client import parse_serial, submit
from nodes.credentials import issue_provincial_identity
from nodes.provincial.keys import (
    ProvinceDir,
    archive_signing_key,
    crl_statement,
    init_province,
    install_signing_key,
    load_ca,
    make_signing_certificate,
    new_signing_certificate,
    province_crl,
    retirement_statement,
    upload_statement,
)
from nodes.provincial.signing import MIN_ROTATION_OVERLAP_S, SETTLE_S
from trust import pki
from trust.errors import InvalidRequest
from trust.pki import kid


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="keys_action", required=True, metavar="KEYS_ACTION")
    _register_key_material(sub)
    _register_registry_changes(sub)


def _register_key_material(sub: Any) -> None:
    """Keys and certificates made on the province's own station."""
    p = subcommand(
        sub,
        "init",
        "Make the provincial CA key + CSR and the holder-hash key.",
        "hcx node keys init --province 330000 --dir var/330000",
    )
    PROVINCE.add(p)
    KEY_DIR.add(p)
    p.set_defaults(handler=keys_init)

    p = subcommand(
        sub,
        "new-dsc",
        "Make a signing key and certificate signed by the own CA.",
        "hcx node keys new-dsc --province 330000 --dir var/330000 --name dsc-2026",
    )
    PROVINCE.add(p)
    KEY_DIR.add(p)
    p.add_argument("--name", default="dsc-1", help="name of the DSC in its SAN")
    p.set_defaults(handler=keys_new_dsc)

    p = subcommand(
        sub,
        "issue-cert",
        "Issue a node, operator, checkpoint, health-authority or check-in station mTLS identity, "
        "or a web front's HTTPS certificate (--kind web --dns HOST), from the own CA.",
        "hcx node keys issue-cert --kind node --name hz-1 --dir var/330000 --out var/330000/hz-1",
    )
    p.add_argument(
        "--kind",
        required=True,
        choices=("node", "operator", "checkpoint", "authority", "checkin", "web"),
        help="identity kind",
    )
    p.add_argument("--name", required=True, help="name in the SPIFFE id (a node: its --node-id)")
    p.add_argument(
        "--dir",
        type=Path,
        required=True,
        help="the province's key directory (ca.pem, ca-key.pem, root.pem)",
    )
    p.add_argument("--out", type=Path, required=True, help="directory to write (--tls-dir)")
    p.add_argument(
        "--dns",
        action="append",
        default=[],
        metavar="HOST",
        help="host name (web: or address) a node or web front is reached by (repeatable; "
        "a node: loopback always)",
    )
    p.set_defaults(handler=keys_issue_cert)


def _register_registry_changes(sub: Any) -> None:
    """What the province submits to the national registry, signed by its own CA."""
    p = subcommand(
        sub,
        "upload",
        "Upload the province's current DSC to the national registry.",
        "hcx node keys upload --dir var/330000 --gateway 127.0.0.1:50051 "
        "--tls-dir var/330000/tls/operator",
    )
    KEY_DIR.add(p)
    GATEWAY.add(p)
    p.set_defaults(handler=keys_upload)

    p = subcommand(
        sub,
        "rotate",
        "New DSC uploaded; the current one retired after an overlap (nothing restarts).",
        "hcx node keys rotate --province 330000 --dir var/330000 --name dsc-2 --overlap 300",
    )
    PROVINCE.add(p)
    KEY_DIR.add(p)
    p.add_argument("--name", required=True, help="name of the new DSC in its SAN")
    p.add_argument(
        "--overlap",
        type=int,
        default=300,
        help=f"seconds until the old key retires (at least {MIN_ROTATION_OVERLAP_S})",
    )
    GATEWAY.add(p)
    p.set_defaults(handler=keys_rotate)

    p = subcommand(
        sub,
        "retire",
        "Retire a DSC: codes issued with it after --at are refused (KEY_RETIRED).",
        "hcx node keys retire --dir var/330000 --kid 0123456789abcdef",
    )
    KEY_DIR.add(p)
    p.add_argument("--kid", required=True, help="hex key id")
    p.add_argument("--at", type=float, default=None, help="unix time (default: now)")
    GATEWAY.add(p)
    p.set_defaults(handler=keys_retire)

    p = subcommand(
        sub,
        "revoke",
        "Revoke a certificate of the province: a new CRL signed by the own CA, uploaded.",
        "hcx node keys revoke --province 330000 --dir var/330000 --serial 1234 "
        "--reason key_compromise",
    )
    PROVINCE.add(p)
    KEY_DIR.add(p)
    p.add_argument("--serial", required=True, help="serial (hex 0x… as listed, or decimal)")
    p.add_argument("--reason", default="unspecified", help="CRL reason, e.g. key_compromise")
    GATEWAY.add(p)
    p.set_defaults(handler=keys_revoke)


def keys_issue_cert(args: argparse.Namespace) -> int:
    directory = ProvinceDir(args.dir)
    ca = load_ca(directory)
    root = pki.load_certificate_pem((args.dir / "root.pem").read_bytes())
    province = pki.province_of(ca.certificate) or ""
    identity = issue_provincial_identity(
        ca,
        root,
        province=province,
        kind=args.kind,
        name=args.name,
        out=args.out,
        dns_names=args.dns,
    )
    serial = pki.load_certificates_pem(identity.certificate_chain)[0].serial_number
    print(
        f"{args.kind} identity {args.name} of {province} (serial 0x{serial:x}) written to "
        f"{args.out} (--tls-dir); revoke it with --serial 0x{serial:x}"
    )
    return 0


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
    """Upload the current DSC and a fresh CRL (so every province has a current CRL)."""
    directory = ProvinceDir(args.dir)
    certificate = pki.load_certificate_pem(directory.dsc_cert.read_bytes())
    reply = submit(args, upload_statement(directory, certificate))
    crl = submit(args, crl_statement(directory, province_crl(directory)))
    print(f"{reply.effect}; {crl.effect}")
    return 0


def keys_rotate(args: argparse.Namespace) -> int:
    if args.overlap < MIN_ROTATION_OVERLAP_S:
        raise InvalidRequest(
            f"--overlap {args.overlap}: at least {MIN_ROTATION_OVERLAP_S} s, so that every "
            "replica has switched to the new key before the old one retires"
        )
    directory = ProvinceDir(args.dir)
    old = pki.load_certificate_pem(directory.dsc_cert.read_bytes())
    key, new = make_signing_certificate(directory, province=args.province, name=args.name)
    # The key directory changes only once the registry has taken the new certificate: a
    # refused or failed upload leaves the node signing with, and restarting on, the old key.
    submit(args, upload_statement(directory, new))
    archive_signing_key(directory)
    install_signing_key(directory, key, new)
    retired_at = time.time() + args.overlap  # counted from now, after the upload
    submit(args, retirement_statement(directory, kid(old), retired_at))
    print(
        f"new signing certificate {kid(new).hex()} uploaded; {kid(old).hex()} retires in "
        f"{args.overlap} s: nodes switch to the new key by themselves once the registry has "
        f"listed it for {SETTLE_S:.0f} s"
    )
    return 0


def keys_retire(args: argparse.Namespace) -> int:
    try:
        key_id = bytes.fromhex(args.kid)
    except ValueError:
        raise InvalidRequest(f"--kid {args.kid!r}: a key id in hex, as listed") from None
    directory = ProvinceDir(args.dir)
    if directory.dsc_cert.exists():
        signing = kid(pki.load_certificate_pem(directory.dsc_cert.read_bytes()))
        if key_id == signing:  # the replicas' codes would be KEY_RETIRED from --at on
            raise InvalidRequest(
                f"{key_id.hex()} is the key the nodes sign with (dsc.pem): rotate first "
                "(hcx node keys rotate retires it after an overlap)"
            )
    at = time.time() if args.at is None else args.at
    reply = submit(args, retirement_statement(directory, key_id, at))
    print(reply.effect)
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    directory = ProvinceDir(args.dir)
    serial = parse_serial(args.serial)
    crl = province_crl(directory, revoke_serial=serial, reason=args.reason)
    reply = submit(args, crl_statement(directory, crl))
    print(f"serial 0x{serial:x} revoked: {reply.effect}")
    return 0
