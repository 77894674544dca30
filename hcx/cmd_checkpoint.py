"""``hcx checkpoint``: verify a traveller's code through the national gateway."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cryptography import x509

from hcx.cli import run_async, subcommand, transport_from
from hcx.flags import GATEWAY, PINNED_ROOT
from hcx.qr import read_qr_image
from healthcode.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, trustlist_pb2
from nodes.convert import verdict_in_words
from nodes.options import add_options, values
from trust import pki, trustlist
from trust.errors import DecodeError, InvalidRequest, VerificationError
from trust.verify import DEFAULT_MAX_OFFLINE_AGE_S, check_code, check_offline_age
from web.options import StationOptions


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = subcommand(
        sub,
        "verify",
        "Verify one code; prints the verdict and colour.",
        "hcx checkpoint verify --gateway 127.0.0.1:50051 --tls-dir var/510000/tls/checkpoint "
        "--province 510000 --image code.png",
    )
    p.add_argument(
        "token",
        nargs="?",
        default=None,
        help="the QR code's text (HCX1:...), or - to read it from standard input",
    )
    p.add_argument("--token-file", type=Path, default=None, help="read the token from a file")
    p.add_argument(
        "--image",
        type=Path,
        default=None,
        help="read the token from a picture of its QR code (PNG or JPEG, exactly one code)",
    )
    GATEWAY.add(p)
    p.add_argument("--province", default="", help="the checkpoint's province code")
    p.add_argument("--checkpoint-id", default="cli", help="checkpoint name for logs")
    p.add_argument("--timeout", type=float, default=2.0, help="deadline in seconds")
    p.add_argument("--offline", action="store_true", help="no network: verify against --trust-list")
    p.add_argument("--trust-list", type=Path, help="signed trust list (hcx checkpoint fetch)")
    PINNED_ROOT.add(p)
    p.add_argument(
        "--max-offline-age",
        type=int,
        default=DEFAULT_MAX_OFFLINE_AGE_S,
        help="with --offline: oldest token (s) still VALID_OFFLINE, as at the gateway",
    )
    p.add_argument(
        "--state",
        type=Path,
        help="where the highest accepted trust-list revision is kept (default: LIST.state)",
    )
    p.set_defaults(handler=verify)

    p = subcommand(
        sub,
        "fetch",
        "Fetch and verify the signed trust list for offline use (refuses rollbacks).",
        "hcx checkpoint fetch --gateway 127.0.0.1:50051 --tls-dir var/510000/tls/checkpoint "
        "--out trust-list.cbor",
    )
    GATEWAY.add(p)
    PINNED_ROOT.add(p)
    p.add_argument("--out", type=Path, required=True, help="where to store the list")
    p.set_defaults(handler=fetch)

    p = subcommand(
        sub,
        "serve",
        "Run the checkpoint station: the staff page over HTTPS, verification through the "
        "gateways, offline on the held trust list when none answers.",
        "hcx checkpoint serve --province 510000 --name chengdu-east "
        "--gateway 127.0.0.1:50051,127.0.0.1:50052 "
        "--tls-dir var/510000/tls/checkpoint --web-tls var/510000/tls/web --state-dir "
        "var/510000/station --listen 0.0.0.0:8443",
    )
    add_options(p, StationOptions)
    p.set_defaults(handler=serve)

    p = subcommand(
        sub,
        "enrol",
        "Make a one-time enrolment code for a staff device (15 minutes, one use).",
        "hcx checkpoint enrol --state-dir var/510000/station --device gate-3-phone",
    )
    p.add_argument("--state-dir", type=Path, required=True, help="the station's --state-dir")
    p.add_argument("--device", required=True, help="the device's name (shown in the logs)")
    p.add_argument("--ttl", type=int, default=15 * 60, help="seconds the code stays usable")
    p.set_defaults(handler=enrol)


def read_token(args: argparse.Namespace) -> str:
    """The token from the command line, ``-`` (standard input), ``--token-file`` or a picture
    of its QR code (``--image``): exactly one of them."""
    given = [args.token is not None, args.token_file is not None, args.image is not None]
    if sum(given) > 1:
        raise InvalidRequest("give one of: the token, --token-file, --image")
    if args.image is not None:
        return read_qr_image(args.image)
    if args.token_file is not None:
        return args.token_file.read_text(encoding="utf-8").strip()
    if args.token == "-":
        return sys.stdin.read().strip()
    if args.token is None:  # an empty token given is verified (INVALID BAD_ENCODING)
        raise InvalidRequest(
            "give the token (HCX1:...), - for standard input, --token-file or --image"
        )
    return str(args.token)


def verify(args: argparse.Namespace) -> int:
    args.token = read_token(args)
    if args.offline:
        return verify_offline(args)
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = gateway_pb2_grpc.GatewayStub(channel).Verify(
            gateway_pb2.VerifyRequest(
                token=args.token,
                checkpoint_province=args.province,
                checkpoint_id=args.checkpoint_id,
            ),
            timeout=args.timeout,
        )
    print(verdict_in_words(reply))
    return 0 if reply.verdict != common_pb2.INVALID else 1


def _roots(args: argparse.Namespace) -> list[x509.Certificate]:
    """The pinned national root(s): --root, else the root.pem of --tls-dir."""
    path = args.root
    if path is None and getattr(args, "tls_dir", None) is not None:
        path = args.tls_dir / "root.pem"
    if path is None:
        raise InvalidRequest("give --root (the pinned national root) or --tls-dir")
    return pki.load_certificates_pem(path.read_bytes())


def verify_offline(args: argparse.Namespace) -> int:
    """Verify with no network: trust list checked (signer, signature, not-after, rollback,
    fork, its log verified like a gateway's), then the code's signature, chain, validity and
    revocation; colour at issuance, for a code at most --max-offline-age old (TOKEN_TOO_OLD
    otherwise, as at the gateway)."""
    if args.trust_list is None:
        raise InvalidRequest("--offline needs --trust-list FILE")
    roots = _roots(args)
    held = trustlist.HeldHead(args.state or args.trust_list.with_suffix(".state"))
    now = time.time()
    trust_list, view = held.accept(args.trust_list.read_bytes(), roots, now=now)
    if now > trust_list.next_update:
        print(f"warning: trust list revision {trust_list.revision} is due for an update")
    try:
        check = check_code(args.token, view, now=now)
        check_offline_age(check, max_offline_age=args.max_offline_age)
    except (DecodeError, VerificationError) as e:
        print(f"INVALID {e.reason.name}: {e.message}")
        return 1
    claims = check.claims
    print(
        f"VALID_OFFLINE {claims.colour.name} (colour at issuance, {int(now - claims.issued_at)} s "
        f"old) issuer {claims.issuer} holder {claims.masked_name} …{claims.id_tail} "
        f"[trust list revision {trust_list.revision}]"
    )
    return 0


def fetch(args: argparse.Namespace) -> int:
    """Fetch the full list, verify it (and that it extends the list held), then keep it."""
    roots = _roots(args)
    held = trustlist.HeldHead(args.out.with_suffix(".state"))
    with transport_from(args).sync_channel(args.gateway) as channel:
        reply = gateway_pb2_grpc.GatewayStub(channel).GetTrustList(
            trustlist_pb2.GetTrustListRequest(), timeout=10
        )
    trust_list, view = held.accept(reply.signed_list, roots, now=time.time(), keep=args.out)
    print(
        f"trust list revision {trust_list.revision} ({len(view.provinces())} provinces, "
        f"{len(view.signers())} signing certificates) saved"
    )
    return 0


def serve(args: argparse.Namespace) -> int:
    from web.station import StationConfig, run_station_until_signalled

    options = StationOptions(**values(StationOptions, args))
    config = StationConfig(
        province=options.province,
        name=options.name,
        gateways=options.gateways,
        transport=transport_from(args),
        roots=tuple(_roots(args)),
        web_tls=options.web_tls,
        state_dir=options.state_dir,
        listen=options.listen,
        timeout=options.timeout,
        max_offline_age=options.max_offline_age,
    )
    run_async(run_station_until_signalled(config, options.port_file))
    return 0


def enrol(args: argparse.Namespace) -> int:
    from web.station import new_enrolment

    try:
        code = new_enrolment(args.state_dir, args.device, now=time.time(), ttl=args.ttl)
    except ValueError as e:
        raise InvalidRequest(str(e)) from e
    print(f"enrolment code for {args.device}: {code} (one use, {args.ttl // 60} min)")
    return 0
