"""``hcx registry``: national coordinators' commands, run on a coordinator's own station.

Every change is a statement signed here with the coordinator's own key (``--tls-dir``, or
``--key-dir`` when the signing identity lives elsewhere) and submitted through the Registry
API. Removing trust (suspend, revoke) takes one coordinator; adding or restoring it (onboard,
resume, add or remove a coordinator) is a proposal that M of N coordinators approve. The
national root key is used only by ``init``, ``genesis``, ``sign-ca``, ``issue-cert`` and
``rotate-root``, which run and exit on the offline station: no server ever holds it.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from hcx.cli import run_async, subcommand, transport_from
from hcx.flags import GATEWAY, PROVINCE
from hcx.registry_client import coordinator, load_authority, parse_serial, sign, submit_and_print
from healthcode.v1 import gateway_pb2_grpc, registry_pb2, registry_pb2_grpc, trustlist_pb2
from nodes.credentials import issue_national_identity, issue_service_signer
from trust import pki, statements, trustlist
from trust.authority import MAX_PROPOSAL_S
from trust.errors import Conflict, InvalidRequest, NotFound
from trust.export import export_pem
from trust.files import new_directory, replace_file, write_new
from trust.log import LogInconsistent

PROPOSAL_LIFETIME_S = 3 * 24 * 3600  # default; at most MAX_PROPOSAL_S


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    _register_offline(sub)
    _register_changes(sub)
    _register_proposals(sub)
    _register_reads(sub)
    _register_recovery(sub)


def _key_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key-dir",
        type=Path,
        default=None,
        help="the coordinator's signing identity (key.pem, cert.pem); default: --tls-dir",
    )


def _register_offline(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub,
        "init",
        "Create the national root, the trust-list and log signers, coordinator identities and "
        "the signed genesis root metadata (keys 0600; run on the offline station).",
        "hcx registry init --dir var/national --coordinators alice,bob,carol --threshold 2",
    )
    p.add_argument("--dir", type=Path, required=True, help="directory to create")
    p.add_argument(
        "--coordinators", default="alice,bob,carol", help="names of the first coordinators"
    )
    p.add_argument("--threshold", type=int, default=2, help="M: approvals to add trust")
    p.set_defaults(handler=init)

    p = subcommand(
        sub,
        "genesis",
        "Sign root metadata version 1 (roots, coordinators, threshold) with the root key.",
        "hcx registry genesis --root-dir var/national --threshold 2 "
        "--coordinator alice/cert.pem --coordinator bob/cert.pem --out genesis.cbor",
    )
    p.add_argument("--root-dir", type=Path, required=True, help="holds root.pem, root-key.pem")
    p.add_argument("--threshold", type=int, required=True, help="M of the coordinators")
    p.add_argument(
        "--coordinator", type=Path, action="append", required=True, help="a coordinator's cert"
    )
    p.add_argument("--out", type=Path, required=True, help="where to write the statement")
    p.set_defaults(handler=genesis)

    p = subcommand(
        sub,
        "rotate-root",
        "Sign the next root metadata with the current root: name a successor root (cross-"
        "signed by the old one), keep or change coordinators and threshold.",
        "hcx registry rotate-root --root-dir var/national --new-root var/new-root/root.pem "
        "--gateway 127.0.0.1:50051 --tls-dir var/national/coordinators/alice",
    )
    p.add_argument("--root-dir", type=Path, required=True, help="the current root's directory")
    p.add_argument(
        "--new-root", type=Path, action="append", default=[], help="root certificate to list"
    )
    p.add_argument("--keep-old", action="store_true", help="keep listing the current root")
    p.add_argument("--threshold", type=int, default=0, help="new threshold (default: same)")
    GATEWAY.add(p)
    p.set_defaults(handler=rotate_root)

    p = subcommand(
        sub,
        "sign-ca",
        "Sign a province's CA certificate from its CSR with the root key (offline; the "
        "province is trusted only once M coordinators approve its onboarding).",
        "hcx registry sign-ca --root-dir var/national --province 440000 --name 广东省 "
        "--csr 440000-ca.csr --out 440000-ca.pem",
    )
    p.add_argument("--root-dir", type=Path, required=True, help="holds root.pem, root-key.pem")
    PROVINCE.add(p)
    p.add_argument("--name", required=True, help="official name, e.g. 广东省")
    p.add_argument("--csr", type=Path, required=True, help="the province's CA CSR (PEM)")
    p.add_argument("--out", type=Path, required=True, help="the CA certificate to write (new)")
    p.set_defaults(handler=sign_ca)

    p = subcommand(
        sub,
        "issue-cert",
        "Issue a national identity signed by the root: a gateway or coordinator (mTLS), the "
        "log signer or the trust-list signer.",
        "hcx registry issue-cert --kind gateway --name gw-1 --root-dir var/national "
        "--out var/national/gw-1",
    )
    p.add_argument(
        "--kind",
        required=True,
        choices=(*pki.NATIONAL_KINDS, "log", "trust-list"),
        help="identity kind",
    )
    p.add_argument("--name", default="", help="name in the SPIFFE id (gateway, coordinator)")
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


def _register_changes(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub,
        "submit",
        "Submit a statement signed elsewhere (e.g. the genesis from init).",
        "hcx registry submit --file var/national/genesis.cbor --tls-dir var/national/alice",
    )
    p.add_argument("--file", type=Path, required=True, help="the signed statement")
    GATEWAY.add(p)
    p.set_defaults(handler=submit_file)

    p = subcommand(
        sub,
        "onboard-province",
        "Propose onboarding a province with its root-signed CA (M coordinators approve).",
        "hcx registry onboard-province --province 440000 --name 广东省 --ca 440000-ca.pem "
        "--gateway 127.0.0.1:50051 --tls-dir var/national/coordinators/alice",
    )
    PROVINCE.add(p)
    p.add_argument("--name", required=True, help="official name, e.g. 广东省")
    p.add_argument("--ca", type=Path, required=True, help="the CA certificate from sign-ca")
    GATEWAY.add(p)
    _key_dir(p)
    p.set_defaults(handler=propose, change="onboard")

    p = subcommand(
        sub,
        "suspend",
        "Suspend a province at once (one coordinator): all its codes are INVALID.",
        "hcx registry suspend --province 330000 --why 'incident 42' "
        "--tls-dir var/national/coordinators/alice",
    )
    PROVINCE.add(p)
    p.add_argument("--why", default="", help="recorded in the log")
    GATEWAY.add(p)
    _key_dir(p)
    p.set_defaults(handler=suspend)

    p = subcommand(
        sub,
        "resume",
        "Propose resuming a suspended province (M coordinators approve).",
        "hcx registry resume --province 330000 --why 'new CA onboarded' "
        "--tls-dir var/national/coordinators/alice",
    )
    PROVINCE.add(p)
    p.add_argument("--why", default="", help="recorded in the log")
    GATEWAY.add(p)
    _key_dir(p)
    p.set_defaults(handler=propose, change="resume")

    p = subcommand(
        sub,
        "revoke",
        "Revoke at once (one coordinator): a DSC by kid, a provincial CA or any other "
        "certificate by serial (hex as listed, or decimal).",
        "hcx registry revoke --kid 0123456789abcdef --reason key_compromise "
        "--tls-dir var/national/coordinators/alice",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--kid", help="hex key id of a DSC")
    target.add_argument("--serial", help="serial of a provincial CA or another certificate")
    p.add_argument(
        "--issuer",
        default="",
        help="with --serial: 'root' or the issuing province's code (default: a provincial CA)",
    )
    p.add_argument(
        "--reason",
        default="unspecified",
        choices=sorted(statements.REVOCATION_REASONS),
        help="revocation reason",
    )
    p.add_argument(
        "--at", type=int, default=0, help="unix time it takes effect (default now; may be past)"
    )
    GATEWAY.add(p)
    _key_dir(p)
    p.set_defaults(handler=revoke)


def _register_proposals(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub,
        "propose",
        "Propose a change that adds or restores trust; it applies once M coordinators signed.",
        "hcx registry propose --change add-coordinator --cert dave/cert.pem "
        "--tls-dir var/national/coordinators/alice",
    )
    p.add_argument(
        "--change",
        required=True,
        choices=("onboard", "resume", "add-coordinator", "remove-coordinator"),
        help="what to change",
    )
    p.add_argument("--province", default="", help="onboard, resume: the province")
    p.add_argument("--name", default="", help="onboard: its name; remove-coordinator: who")
    p.add_argument("--ca", type=Path, default=None, help="onboard: the CA certificate")
    p.add_argument("--cert", type=Path, default=None, help="add-coordinator: the certificate")
    p.add_argument("--why", default="", help="resume: why")
    p.add_argument(
        "--expires-in", type=int, default=PROPOSAL_LIFETIME_S, help="seconds (at most 7 days)"
    )
    GATEWAY.add(p)
    _key_dir(p)
    p.set_defaults(handler=propose)

    p = subcommand(
        sub,
        "approve",
        "Approve a pending proposal (shown in full first): by id (a unique prefix is enough) "
        "or as the only pending proposal concerning --province.",
        "hcx registry approve --proposal 3fa9c1 --tls-dir var/national/coordinators/bob",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--proposal", help="proposal id or a unique prefix")
    which.add_argument("--province", help="the only pending proposal concerning this province")
    GATEWAY.add(p)
    _key_dir(p)
    p.set_defaults(handler=approve)

    p = subcommand(
        sub,
        "reject",
        "Reject a pending proposal: one rejection closes it.",
        "hcx registry reject --proposal 3fa9c1 --why 'CSR hash not confirmed' "
        "--tls-dir var/national/coordinators/carol",
    )
    p.add_argument("--proposal", required=True, help="proposal id or a unique prefix")
    p.add_argument("--why", default="", help="recorded in the log")
    GATEWAY.add(p)
    _key_dir(p)
    p.set_defaults(handler=reject)

    p = subcommand(
        sub,
        "pending",
        "List pending proposals (--all: every proposal) with their approvals.",
        "hcx registry pending --tls-dir var/national/coordinators/bob",
    )
    p.add_argument("--all", action="store_true", help="also applied, rejected, stale, expired")
    GATEWAY.add(p)
    p.set_defaults(handler=pending)


def _register_recovery(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub,
        "repair",
        "Restore the registry log in the store from a gateway's verified view file: put back "
        "the exact leaves and tree head it verified, remove values outside the log (re-append, "
        "never rewrite). Needs store access; run by a coordinator during an incident.",
        "hcx registry repair --registry etcd://etcd-1:2379 --from /var/lib/hcx/gw-1/view.cbor "
        "--root var/national/root.pem",
    )
    p.add_argument("--registry", required=True, help="registry store URL")
    p.add_argument("--from", dest="copy", type=Path, required=True, help="a gateway's --view-file")
    p.add_argument("--root", type=Path, required=True, help="pinned national root(s) (PEM)")
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be restored, change nothing"
    )
    p.set_defaults(handler=repair)

    p = subcommand(
        sub,
        "head",
        "Fetch the registry log's signed tree head, verify it, and write it for "
        "`hcx gateway serve --pin-head` (a fresh gateway then refuses an older store).",
        "hcx registry head --gateway 127.0.0.1:50051 --tls-dir var/national/coordinators/alice "
        "--root var/national/root.pem --out head.cbor",
    )
    GATEWAY.add(p)
    p.add_argument("--root", type=Path, required=True, help="pinned national root(s) (PEM)")
    p.add_argument("--out", type=Path, required=True, help="where to write the signed head")
    p.set_defaults(handler=head)


def repair(args: argparse.Namespace) -> int:
    from trust.repair import restore, verified_copy
    from trust.stores import open_registry_store

    copy = verified_copy(args.copy.read_bytes(), pki.load_certificates_pem(args.root.read_bytes()))

    async def run() -> int:
        store = open_registry_store(args.registry)
        try:
            done = await restore(store, copy, dry_run=args.dry_run)
        finally:
            await store.close()
        verb = "would restore" if args.dry_run else "restored"
        for key in done.restored:
            print(f"{verb} {key}")
        for key in done.removed:
            print(f"{'would remove' if args.dry_run else 'removed'} {key} (not in the log)")
        print(f"log of {copy.revision} entries: {len(done.restored)} restored, "
              f"{len(done.removed)} removed")  # fmt: skip
        return 0

    return int(run_async(run()))


def head(args: argparse.Namespace) -> int:
    from trust.log import open_head

    roots = pki.load_certificates_pem(args.root.read_bytes())
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).GetLog(
            registry_pb2.GetLogRequest(limit=1), timeout=10
        )
    verified = open_head(reply.tree_head, roots)
    replace_file(args.out, reply.tree_head)
    print(f"tree head of size {verified.size}, root {verified.root.hex()} written to {args.out}")
    return 0


def _register_reads(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub,
        "list",
        "List provinces, their CA serials and signing certificates with their status.",
        "hcx registry list --gateway 127.0.0.1:50051 --tls-dir var/330000/tls/operator",
    )
    GATEWAY.add(p)
    p.set_defaults(handler=list_registry)

    p = subcommand(
        sub,
        "list-certificates",
        "List signing certificates with serials, validity, retirement and revocation.",
        "hcx registry list-certificates --province 330000",
    )
    p.add_argument("--province", default="", help="only this province")
    GATEWAY.add(p)
    p.set_defaults(handler=list_certificates)

    p = subcommand(
        sub,
        "coordinators",
        "List the coordinators, the threshold and the root metadata version.",
        "hcx registry coordinators --gateway 127.0.0.1:50051 "
        "--tls-dir var/national/coordinators/alice",
    )
    GATEWAY.add(p)
    p.set_defaults(handler=coordinators)

    p = subcommand(
        sub,
        "audit",
        "Print the registry log in words; --verify checks the whole tree, tail included, on "
        "this station (signed head, every leaf, every --peer a prefix of the newest, the head "
        "held in --state extended) and exits 1 unless it is intact.",
        "hcx registry audit --verify --peer gateway-2:50051 --state audit.state",
    )
    p.add_argument("--verify", action="store_true", help="fail unless the log is intact")
    _log_readers(p)
    p.set_defaults(handler=audit_log)

    p = subcommand(
        sub,
        "monitor",
        "Follow the registry log like a CT monitor: print every change in words (who, what, "
        "which province); exit 1 on an inconsistency (fork, rollback, tampered store).",
        "hcx registry monitor --gateway gateway-1:50051 --peer gateway-2:50051 "
        "--tls-dir var/national/coordinators/alice "
        "--state monitor.state --root var/national/root.pem",
    )
    _log_readers(p)
    p.add_argument("--interval", type=float, default=5.0, help="seconds between rounds")
    p.add_argument("--rounds", type=int, default=0, help="stop after N rounds (0: never)")
    p.set_defaults(handler=monitor)

    p = subcommand(
        sub,
        "export",
        "Write root, provincial CAs, DSCs and CRLs as PEM files for openssl verify -crl_check.",
        "hcx registry export --root var/national/root.pem --out var/export",
    )
    GATEWAY.add(p)
    p.add_argument("--trust-list", type=Path, help="export from this file instead")
    p.add_argument("--root", type=Path, required=True, help="pinned national root (PEM)")
    p.add_argument("--out", type=Path, required=True, help="directory for the PEM files")
    p.set_defaults(handler=export)


# -- the offline station -------------------------------------------------------------------------
def _refuse_existing(*paths: Path) -> None:
    """Refuse before anything is written: a rerun must not overwrite keys or certificates."""
    for path in paths:
        if path.exists():
            raise Conflict(f"{path} already exists: refusing to overwrite it")


def init(args: argparse.Namespace) -> int:
    names = [n for n in args.coordinators.split(",") if n]
    if not 1 <= args.threshold <= len(names):
        raise InvalidRequest("the threshold must be between 1 and the number of coordinators")
    _refuse_existing(args.dir / "root-key.pem", args.dir / "genesis.cbor")
    with new_directory(args.dir) as work:  # all of it, or nothing: a rerun starts afresh
        root = pki.create_root_ca()
        pki.write_private_key(work / "root-key.pem", root.private_key)
        replace_file(work / "root.pem", root.certificate.public_bytes(Encoding.PEM))
        issue_service_signer(root, kind="trust-list", out=work / "trust-list")
        issue_service_signer(root, kind="log", out=work / "log")
        certificates = []
        for name in names:
            identity = issue_national_identity(
                root, kind="coordinator", name=name, out=work / "coordinators" / name
            )
            certificates.append(pki.load_certificates_pem(identity.certificate_chain)[0])
        metadata = statements.RootMetadata(
            1, (root.certificate,), args.threshold, tuple(certificates)
        )
        replace_file(work / "genesis.cbor", sign(metadata, root))
    print(
        f"national root, trust-list and log signers and {len(names)} coordinator identities "
        f"written to {args.dir}; genesis (threshold {args.threshold} of {len(names)}) in "
        f"{args.dir}/genesis.cbor: submit it with `hcx registry submit`"
    )
    return 0


def genesis(args: argparse.Namespace) -> int:
    _refuse_existing(args.out)
    root = load_authority(args.root_dir, key="root-key.pem", cert="root.pem")
    certificates = tuple(pki.load_certificate_pem(p.read_bytes()) for p in args.coordinator)
    metadata = statements.RootMetadata(1, (root.certificate,), args.threshold, certificates)
    replace_file(args.out, sign(metadata, root))
    print(f"genesis root metadata written to {args.out}")
    return 0


def rotate_root(args: argparse.Namespace) -> int:
    root = load_authority(args.root_dir, key="root-key.pem", cert="root.pem")
    with transport_from(args).sync_channel(args.gateway) as channel:
        current = registry_pb2_grpc.RegistryStub(channel).ListCoordinators(
            registry_pb2.ListCoordinatorsRequest(), timeout=10
        )
    roots = [pki.load_certificate_pem(p.read_bytes()) for p in args.new_root]
    if args.keep_old or not roots:
        roots.insert(0, root.certificate)
    metadata = statements.RootMetadata(
        version=current.root_version + 1,
        roots=tuple(roots),
        threshold=args.threshold or current.threshold,
        coordinators=tuple(
            pki.load_certificate_pem(c.certificate_pem)
            for c in current.coordinators
            if not c.revoked
        ),
    )
    return submit_and_print(args, sign(metadata, root))


def sign_ca(args: argparse.Namespace) -> int:
    _refuse_existing(args.out)
    root = load_authority(args.root_dir, key="root-key.pem", cert="root.pem")
    root_pem = pki.certificate_to_pem(root.certificate)
    root_out = args.out.with_name("root.pem")
    if root_out.exists() and root_out.read_bytes() != root_pem:
        raise Conflict(f"{root_out} holds another root: refusing to overwrite it")
    csr = pki.load_csr_pem(args.csr.read_bytes())
    ca = pki.sign_provincial_ca(root, csr, province=args.province, name=args.name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # The root first: a run interrupted after it resumes with the same command.
    if not root_out.exists():
        write_new(root_out, root_pem)
    write_new(args.out, pki.certificate_to_pem(ca))
    print(
        f"CA of {args.province} (serial 0x{ca.serial_number:x}, SHA-256 "
        f"{pki.fingerprint(ca).hex()}) written to {args.out}; now propose its onboarding"
    )
    return 0


def issue_cert(args: argparse.Namespace) -> int:
    root = load_authority(args.root_dir, key="root-key.pem", cert="root.pem")
    if args.kind in ("log", "trust-list"):
        issue_service_signer(root, kind=args.kind, out=args.out)
        print(f"{args.kind} signer written to {args.out} (cert.pem, key.pem)")
        return 0
    if not args.name:
        raise InvalidRequest(f"a {args.kind} identity needs --name")
    identity = issue_national_identity(
        root, kind=args.kind, name=args.name, out=args.out, dns_names=args.dns
    )
    serial = pki.load_certificates_pem(identity.certificate_chain)[0].serial_number
    print(
        f"{args.kind} identity {args.name} (serial 0x{serial:x}) written to {args.out} "
        "(use it as --tls-dir)"
    )
    return 0


# -- changes -------------------------------------------------------------------------------------
def submit_file(args: argparse.Namespace) -> int:
    return submit_and_print(args, args.file.read_bytes())


def suspend(args: argparse.Namespace) -> int:
    return submit_and_print(
        args, sign(statements.Suspension(args.province, args.why), coordinator(args))
    )


def revoke(args: argparse.Namespace) -> int:
    at = args.at or int(time.time())
    if args.kid:
        body: statements.Body = statements.DscRevocation(bytes.fromhex(args.kid), at, args.reason)
    else:
        serial = parse_serial(args.serial)
        province = _province_with_ca_serial(args, serial) if not args.issuer else None
        if province is not None:
            body = statements.CaRevocation(province, serial, at, args.reason)
        elif args.issuer:
            body = statements.CertRevocation(args.issuer, serial, at, args.reason)
        else:
            raise NotFound(f"no provincial CA with serial 0x{serial:x}; name its --issuer")
    return submit_and_print(args, sign(body, coordinator(args)))


def _province_with_ca_serial(args: argparse.Namespace, serial: int) -> str | None:
    for province in _provinces(args):
        if int(province.ca_serial, 16) == serial:
            return str(province.code)
    return None


def _provinces(args: argparse.Namespace) -> list[registry_pb2.Province]:
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).ListProvinces(
            registry_pb2.ListProvincesRequest(), timeout=10
        )
    return list(reply.provinces)


def _change(args: argparse.Namespace) -> tuple[statements.Change, int]:
    """The change asked for, and the base version of its subject (read from the registry)."""
    if args.change in ("onboard", "resume"):
        if not args.province:
            raise InvalidRequest(f"--change {args.change} needs --province")
        current = next((p for p in _provinces(args) if p.code == args.province), None)
        base = int(current.version) if current is not None else 0
        if args.change == "resume":
            return statements.Resume(args.province, args.why), base
        if args.ca is None or not args.name:
            raise InvalidRequest("--change onboard needs --name and --ca")
        ca = pki.load_certificate_pem(args.ca.read_bytes())
        return statements.Onboard(args.province, args.name, ca), base
    with transport_from(args).sync_channel(args.gateway) as channel:
        version = registry_pb2_grpc.RegistryStub(channel).ListCoordinators(
            registry_pb2.ListCoordinatorsRequest(), timeout=10
        )
    base = _coordinator_version(version)
    if args.change == "add-coordinator":
        if args.cert is None:
            raise InvalidRequest("--change add-coordinator needs --cert")
        return statements.AddCoordinator(pki.load_certificate_pem(args.cert.read_bytes())), base
    if not args.name:
        raise InvalidRequest("--change remove-coordinator needs --name")
    return statements.RemoveCoordinator(args.name), base


def _coordinator_version(reply: registry_pb2.ListCoordinatorsResponse) -> int:
    return int(reply.coordinator_version)


def propose(args: argparse.Namespace) -> int:
    change, base = _change(args)
    wanted = getattr(args, "expires_in", PROPOSAL_LIFETIME_S)  # not asked by the aliases
    lifetime = min(max(60, wanted), MAX_PROPOSAL_S - 60)
    body = statements.Proposal(change, base, int(time.time()) + lifetime)
    return submit_and_print(args, sign(body, coordinator(args)))


def _find_proposal(args: argparse.Namespace) -> registry_pb2.ProposalInfo:
    by_province = getattr(args, "province", None)
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).ListProposals(
            registry_pb2.ListProposalsRequest(all=not by_province), timeout=10
        )
    if by_province:
        found = [p for p in reply.proposals if p.province == by_province]
        if len(found) != 1:
            raise InvalidRequest(f"{len(found)} pending proposals concern {by_province}; name one")
        return found[0]
    prefix = args.proposal.strip().lower()
    found = [p for p in reply.proposals if p.id.hex().startswith(prefix)]
    if len(prefix) < 6 or len(found) != 1:
        raise InvalidRequest(f"{args.proposal!r} names {len(found)} proposals; give more of the id")
    return found[0]


def approve(args: argparse.Namespace) -> int:
    proposal = _find_proposal(args)
    print(f"approving: {proposal.change} (proposed by {proposal.proposer}, {proposal.status})")
    return submit_and_print(args, sign(statements.Approval(proposal.id), coordinator(args)))


def reject(args: argparse.Namespace) -> int:
    proposal = _find_proposal(args)
    print(f"rejecting: {proposal.change} (proposed by {proposal.proposer})")
    return submit_and_print(
        args, sign(statements.Rejection(proposal.id, args.why), coordinator(args))
    )


# -- reads ---------------------------------------------------------------------------------------
def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds") if ts else "-"


def pending(args: argparse.Namespace) -> int:
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).ListProposals(
            registry_pb2.ListProposalsRequest(all=args.all), timeout=10
        )
    for p in reply.proposals:
        print(
            f"{p.id.hex()[:16]}  {p.status:<8} {len(p.approvals)}/{p.threshold} "
            f"({', '.join(p.approvals)})  expires {_when(p.expires_at)}  {p.change}"
        )
    if not reply.proposals:
        print("no proposals" if args.all else "no pending proposals")
    return 0


def list_registry(args: argparse.Namespace) -> int:
    with transport_from(args).sync_channel(args.gateway) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        provinces = stub.ListProvinces(registry_pb2.ListProvincesRequest(), timeout=10)
        certificates = stub.ListCertificates(registry_pb2.ListCertificatesRequest(), timeout=10)
    for p in provinces.provinces:
        state = "SUSPENDED" if p.suspended else "active"
        print(f"{p.code}  {p.name}  {state}  CA serial 0x{p.ca_serial}")
        for c in certificates.certificates:
            if c.province == p.code:
                print(f"    dsc {c.kid.hex()}  serial 0x{c.serial}  {_status(c)}")
    return 0


def _status(c: registry_pb2.SigningCertificate) -> str:
    text = f"valid {_when(c.not_before)} .. {_when(c.not_after)}"
    if c.retired_at:
        text += f"  retires {_when(c.retired_at)}"
    if c.revoked_at:
        text += f"  REVOKED from {_when(c.revoked_at)} ({c.revocation_reason})"
    return text


def list_certificates(args: argparse.Namespace) -> int:
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).ListCertificates(
            registry_pb2.ListCertificatesRequest(province=args.province), timeout=10
        )
    for c in reply.certificates:
        print(f"{c.province}  dsc {c.kid.hex()}  serial 0x{c.serial}  {_status(c)}")
    return 0


def coordinators(args: argparse.Namespace) -> int:
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).ListCoordinators(
            registry_pb2.ListCoordinatorsRequest(), timeout=10
        )
    print(f"root metadata v{reply.root_version}: {reply.threshold} of {len(reply.coordinators)}")
    for c in reply.coordinators:
        print(f"    {c.name}  serial 0x{c.serial}{'  REVOKED' if c.revoked else ''}")
    return 0


def _log_readers(p: argparse.ArgumentParser) -> None:
    GATEWAY.add(p)
    p.add_argument(
        "--peer", action="append", default=[], metavar="GATEWAY", help="another gateway to compare"
    )
    p.add_argument("--root", type=Path, default=None, help="pinned root(s); default --tls-dir's")
    p.add_argument("--state", type=Path, default=None, help="largest tree head verified here")


def _checked_log(args: argparse.Namespace) -> tuple[list[Any], Any]:
    """Every gateway's log fetched and cross-checked; (roots, the newest log)."""
    from hcx.log_client import HeldLogHead, fetch, newest

    path = args.root or (args.tls_dir / "root.pem" if args.tls_dir else None)
    if path is None:
        raise InvalidRequest("give --root or --tls-dir (its root.pem is the pinned root)")
    roots = pki.load_certificates_pem(path.read_bytes())
    transport = transport_from(args)
    logs = [fetch(transport, g, roots) for g in [args.gateway, *args.peer]]
    for log in logs:
        if not log.intact:
            raise LogInconsistent(f"{log.gateway}: its store fails verification: {log.problem}")
    best = newest(logs)
    held = HeldLogHead(args.state)
    held.check(best)
    held.raise_to(best)
    return roots, best


def monitor(args: argparse.Namespace) -> int:
    from hcx.log_client import decisions

    printed, rounds = 0, 0
    while True:
        try:
            roots, best = _checked_log(args)
        except LogInconsistent as e:
            print(f"INCONSISTENT: {e.message}", file=sys.stderr)
            return 1
        for d in decisions(roots, best.leaves)[printed:]:
            mark = "" if d.accepted else "REFUSED "
            print(f"{d.index:6d} {_when(d.logged_at)} {d.signer:<45} {mark}{d.effect}", flush=True)
        printed = len(best.leaves)
        rounds += 1
        if args.rounds and rounds >= args.rounds:
            return 0
        time.sleep(args.interval)


def audit_log(args: argparse.Namespace) -> int:
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = registry_pb2_grpc.RegistryStub(channel).AuditLog(
            registry_pb2.AuditLogRequest(), timeout=30
        )
    for e in reply.entries:
        mark = "" if e.accepted else "REFUSED "
        print(f"{e.index:6d} {_when(e.logged_at)} {e.actor:<45} {mark}{e.effect}")
    for problem in reply.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    if not args.verify:
        return 0
    try:
        _, best = _checked_log(args)
    except LogInconsistent as e:
        print(f"registry log INCONSISTENT: {e.message}", file=sys.stderr)
        return 1
    size = best.head.size if best.head is not None else 0
    print(f"registry log intact: {size} entries, every one checked here", file=sys.stderr)
    return 0


def export(args: argparse.Namespace) -> int:
    roots = pki.load_certificates_pem(args.root.read_bytes())
    if args.trust_list is not None:
        signed = args.trust_list.read_bytes()
    else:
        with transport_from(args).sync_channel(args.gateway) as channel:
            signed = (
                gateway_pb2_grpc.GatewayStub(channel)
                .GetTrustList(trustlist_pb2.GetTrustListRequest(), timeout=10)
                .signed_list
            )
    view = trustlist.verify(signed, roots, now=time.time()).view(roots)
    written = export_pem(view, args.out)
    print(f"{len(written)} PEM files written to {args.out}")
    return 0
