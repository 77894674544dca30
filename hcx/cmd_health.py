"""``hcx node`` commands of the colour policy: apply, check in, explain, risk data, assistance.

Residents' front ends (operators) apply and check in; the health authority imports risk areas
and close contacts and asks other provinces for assistance; operators check and sign policies.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hcx.cli import subcommand, transport_from
from hcx.flags import CODE_ID, NODE, REQUEST_ID, Flag, code_id_arg
from healthcode.v1 import common_pb2, gateway_pb2, node_pb2, node_pb2_grpc
from nodes.provincial.health.policy import parse_policy, sign_policy
from nodes.provincial.issuance import validate_id_number
from nodes.provincial.wire import MAX_IMPORT_ENTRIES, declaration_to_proto, explain_in_words
from trust import pki
from trust.errors import InvalidRequest

LEVELS = {"low": 1, "medium": 2, "high": 3, "1": 1, "2": 2, "3": 3}
NODE_EXAMPLE = "--node 127.0.0.1:7001 --tls-dir var/330000/tls/operator"
AUTHORITY_EXAMPLE = "--node 127.0.0.1:7001 --tls-dir var/330000/tls/authority"


SYMPTOM = Flag("--symptom", "a symptom (repeatable)", {"action": "append", "default": []})
IMPORT_ID = Flag(
    "--import-id",
    "names the import in the audit (default: the file's digest; a re-run is one import)",
    {"default": ""},
)


def register(sub: Any) -> None:
    """The holder's commands, the policy tool, the health authority's commands."""
    _register_holder_commands(sub)
    _register_policy(sub)
    _register_authority_commands(sub)


def _register_holder_commands(sub: Any) -> None:
    p = subcommand(
        sub,
        "apply",
        "Apply for a code with a health declaration; the province's policy decides its colour.",
        f"hcx node apply {NODE_EXAMPLE} --id-number 330102199001011234 --name 张三明 "
        "--residence 330106 --fever --travel 420106@2026-11-28",
    )
    NODE.add(p)
    p.add_argument("--id-number", required=True, help="holder's resident ID number")
    p.add_argument("--name", required=True, help="holder's full name (only the mask is kept)")
    p.add_argument("--residence", required=True, help="GB/T 2260 district of residence")
    p.add_argument("--fever", action="store_true", help="declares a fever")
    SYMPTOM.add(p)
    p.add_argument("--contact", action="store_true", help="declares contact with a confirmed case")
    p.add_argument(
        "--travel", action="append", default=[], help="DISTRICT@DATE visited (repeatable)"
    )
    REQUEST_ID.add(p)
    p.set_defaults(handler=apply)

    p = subcommand(
        sub,
        "check-in",
        "The daily health check-in of a code's holder.",
        f"hcx node check-in {NODE_EXAMPLE} --code-id 3f2a9c0e5b7d41e8a6c2f09b1d3e5a77 "
        "--temperature 36.6",
    )
    NODE.add(p)
    CODE_ID.add(p)
    p.add_argument("--temperature", type=float, required=True, help="temperature in °C")
    SYMPTOM.add(p)
    REQUEST_ID.add(p)
    p.set_defaults(handler=check_in)

    for name, summary, handler in (
        ("state", "Show a code's colour, reason and quarantine progress.", state),
        ("explain", "Print a code's history in words: every change, its cause and rule.", explain),
    ):
        p = subcommand(
            sub, name, summary, f"hcx node {name} {NODE_EXAMPLE} 3f2a9c0e5b7d41e8a6c2f09b1d3e5a77"
        )
        NODE.add(p)
        p.add_argument("code_id", type=code_id_arg, help="code id (32 hex characters)")
        p.set_defaults(handler=handler)


def _register_policy(sub: Any) -> None:
    p = subcommand(
        sub,
        "policy",
        "Check a colour policy file, or sign it with an operator's key (docs/colour-policy.md).",
        "hcx node policy sign rules.json --key op/key.pem --cert op/cert.pem --out rules.cose",
    )
    p.add_argument("verb", choices=("check", "sign"), help="check: validate; sign: validate, sign")
    p.add_argument("file", type=Path, help="the policy (JSON)")
    p.add_argument("--province", default=None, help="refuse a policy of another province")
    p.add_argument("--key", type=Path, default=None, help="sign: the operator's private key")
    p.add_argument("--cert", type=Path, default=None, help="sign: the operator's certificate")
    p.add_argument("--out", type=Path, default=None, help="sign: where to write the signed file")
    p.set_defaults(handler=policy)


def _register_authority_commands(sub: Any) -> None:
    p = subcommand(
        sub,
        "import-risk-areas",
        "Health authority: import risk areas from CSV (district,level,valid_from,valid_until).",
        f"hcx node import-risk-areas {AUTHORITY_EXAMPLE} areas.csv",
    )
    NODE.add(p)
    p.add_argument("file", type=Path, help="CSV: district,level (low/medium/high),from,until")
    IMPORT_ID.add(p)
    p.set_defaults(handler=import_risk_areas)

    p = subcommand(
        sub,
        "import-contacts",
        "Health authority: import a close-contact list. ID numbers are hashed here with the "
        "province's holder key and never sent.",
        f"hcx node import-contacts {AUTHORITY_EXAMPLE} --holder-key var/330000/holder.key ids.txt",
    )
    NODE.add(p)
    p.add_argument("file", type=Path, help="one ID number per line (or 64 hex with --hashed)")
    p.add_argument("--holder-key", type=Path, default=None, help="the province's holder key file")
    p.add_argument("--hashed", action="store_true", help="lines are already HMAC-SHA256 in hex")
    p.add_argument("--listed-at", default=None, help="when the contacts were identified (now)")
    IMPORT_ID.add(p)
    p.set_defaults(handler=import_contacts)

    p = subcommand(
        sub,
        "assist",
        "Health authority: report an event about another province's code (跨省协查).",
        f"hcx node assist {AUTHORITY_EXAMPLE} --province 420000 "
        "--code-id 3f2a9c0e5b7d41e8a6c2f09b1d3e5a77 --kind close_contact --district 330106",
    )
    NODE.add(p)
    p.add_argument("--province", required=True, help="the province that issued the code")
    CODE_ID.add(p)
    p.add_argument(
        "--kind",
        required=True,
        choices=("close_contact", "confirmed_case", "risk_area_visit"),
        help="what happened",
    )
    p.add_argument("--at", default=None, help="when (ISO date or unix seconds; default now)")
    p.add_argument("--district", required=True, help="GB/T 2260 district where it happened")
    REQUEST_ID.add(p)
    p.set_defaults(handler=assist)

    p = subcommand(
        sub,
        "stats",
        "Province statistics: codes by colour and district, quarantines, check-ins, assistance.",
        f"hcx node stats {AUTHORITY_EXAMPLE}",
    )
    NODE.add(p)
    p.set_defaults(handler=stats)


def when_arg(value: str | None) -> int:
    """Unix seconds from an ISO 8601 date or time (UTC unless it says), or from digits."""
    if value is None:
        return int(datetime.now(UTC).timestamp())
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidRequest(f"{value!r} is not an ISO 8601 date or unix time") from e
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _stub(args: argparse.Namespace) -> Any:
    channel = transport_from(args).sync_channel(args.node)
    return channel, node_pb2_grpc.ProvincialNodeStub(channel)


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def print_state(state: Any) -> None:
    colour = common_pb2.Colour.Name(state.colour)
    print(f"code id {state.code_id.hex()}  {colour}  (policy {state.policy})")
    print(f"  reason: {state.reason}")
    if state.in_quarantine:
        print(
            f"  quarantine ({state.quarantine_rule}): {state.days_checked} of "
            f"{state.quarantine_days} days checked in, {state.days_missed} missed; "
            f"ends {_time(state.quarantine_ends_at)} if every check-in is made"
        )
        if state.next_check_in_by:
            print(f"  next check-in by {_time(state.next_check_in_by)}")


def apply(args: argparse.Namespace) -> int:
    travel = []
    for item in args.travel:
        district, _, when = item.partition("@")
        travel.append((district, when_arg(when or None)))
    declaration = declaration_to_proto(
        fever=args.fever,
        symptoms=args.symptom,
        contact=args.contact,
        residence=args.residence,
        travel=travel,
    )
    channel, stub = _stub(args)
    with channel:
        reply = stub.ApplyCode(
            node_pb2.ApplyCodeRequest(
                id_number=args.id_number,
                full_name=args.name,
                declaration=declaration,
                request_id=args.request_id or str(uuid.uuid4()),
            ),
            timeout=10,
        )
    print_state(reply.state)
    print(reply.code.token)
    return 0


def check_in(args: argparse.Namespace) -> int:
    channel, stub = _stub(args)
    with channel:
        reply = stub.CheckIn(
            node_pb2.CheckInRequest(
                code_id=args.code_id,
                temperature_c=args.temperature,
                symptoms=args.symptom,
                request_id=args.request_id or str(uuid.uuid4()),
            ),
            timeout=10,
        )
    print_state(reply)
    return 0


def state(args: argparse.Namespace) -> int:
    channel, stub = _stub(args)
    with channel:
        reply = stub.GetCodeState(node_pb2.GetCodeStateRequest(code_id=args.code_id), timeout=10)
    print_state(reply)
    return 0


def explain(args: argparse.Namespace) -> int:
    channel, stub = _stub(args)
    with channel:
        reply = stub.ExplainCode(node_pb2.GetCodeStateRequest(code_id=args.code_id), timeout=10)
    print_state(reply.state)
    for line in explain_in_words(list(reply.history), when=_time):
        print(f"  {line}")
    return 0


def policy(args: argparse.Namespace) -> int:
    text = args.file.read_bytes()
    checked = parse_policy(text, province=args.province)
    if args.verb == "check":
        print(f"policy {checked.label}: {len(checked.rules)} rules, valid")
        return 0
    if args.key is None or args.cert is None or args.out is None:
        raise InvalidRequest("policy sign needs --key, --cert and --out")
    key = pki.load_private_key_pem(args.key.read_bytes())
    cert = pki.load_certificate_pem(args.cert.read_bytes())
    args.out.write_bytes(sign_policy(text, key, cert))
    print(f"policy {checked.label} signed by {pki.spiffe_id(cert)} into {args.out}")
    return 0


def _risk_rows(path: Path) -> Iterator[node_pb2.RiskArea]:
    with path.open(newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].startswith("#") or row[0] == "district":
                continue
            if len(row) != 4 or row[1].strip().lower() not in LEVELS:
                raise InvalidRequest(
                    f"{path}:{number}: expected district,level,valid_from,valid_until"
                )
            district, level, since, until = (cell.strip() for cell in row)
            yield node_pb2.RiskArea(
                district=district,
                level=LEVELS[level.lower()],
                valid_from=when_arg(since),
                valid_until=when_arg(until),
            )


def _parts(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), MAX_IMPORT_ENTRIES):
        yield items[start : start + MAX_IMPORT_ENTRIES]


def _print_import(kind: str, totals: list[Any]) -> None:
    if totals and all(t.duplicate for t in totals):
        print(f"{kind}: applied before, nothing changed")
        return
    entries = sum(t.entries for t in totals)
    matched = sum(t.matched for t in totals)
    changed = sum(t.changed for t in totals)
    print(f"{kind}: {entries} entries, {matched} codes concerned, {changed} changed colour")


def import_risk_areas(args: argparse.Namespace) -> int:
    areas = list(_risk_rows(args.file))
    import_id = args.import_id or f"areas-{_digest(args.file)}"
    channel, stub = _stub(args)
    with channel:
        totals = [
            stub.ImportRiskAreas(
                node_pb2.ImportRiskAreasRequest(import_id=import_id, areas=part), timeout=60
            )
            for part in _parts(areas)
        ]
    _print_import(f"risk areas ({import_id})", totals)
    return 0


def _digest(path: Path) -> str:
    """The default import id: the file's own digest, so running the same file again (after a
    time-out, say) is the same import, which the node applies once."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


def hash_ids(lines: list[str], holder_key: bytes) -> list[bytes]:
    """The status store's pseudonym of each ID number: HMAC-SHA256(holder key, number)."""
    return [
        hmac.digest(holder_key, validate_id_number(line).encode(), "sha256")
        for line in lines
        if line.strip()
    ]


def import_contacts(args: argparse.Namespace) -> int:
    lines = [line.strip() for line in args.file.read_text(encoding="utf-8").splitlines()]
    if args.hashed:
        refs = [bytes.fromhex(line) for line in lines if line]
    elif args.holder_key is None:
        raise InvalidRequest("--holder-key is needed to hash ID numbers (or give --hashed lines)")
    else:
        refs = hash_ids(lines, args.holder_key.read_bytes())
    import_id = args.import_id or f"contacts-{_digest(args.file)}"
    channel, stub = _stub(args)
    with channel:
        totals = [
            stub.ImportCloseContacts(
                node_pb2.ImportCloseContactsRequest(
                    import_id=import_id, listed_at=when_arg(args.listed_at), holder_refs=part
                ),
                timeout=60,
            )
            for part in _parts(refs)
        ]
    _print_import(f"close contacts ({import_id})", totals)
    return 0


def assist(args: argparse.Namespace) -> int:
    channel, stub = _stub(args)
    with channel:
        ack = stub.SendAssistance(
            gateway_pb2.AssistanceRequest(
                request_id=args.request_id or str(uuid.uuid4()),
                province=args.province,
                code_id=args.code_id,
                event_kind=args.kind,
                event_at=when_arg(args.at),
                district=args.district,
            ),
            timeout=15,
        )
    seen = " (already received)" if ack.duplicate else ""
    colour = common_pb2.Colour.Name(ack.colour)
    print(f"province {ack.province} decided{seen}: {ack.rule or 'no rule'} → {colour}")
    print(f"  {ack.decision}")
    return 0


def stats(args: argparse.Namespace) -> int:
    channel, stub = _stub(args)
    with channel:
        s = stub.GetStatistics(node_pb2.GetStatisticsRequest(), timeout=30)
    print(f"codes: {s.green} green, {s.yellow} yellow, {s.red} red")
    compliance = f"{s.check_ins_made}/{s.check_ins_due}" if s.check_ins_due else "none due"
    print(f"quarantines in progress: {s.in_quarantine}; yesterday's check-ins: {compliance}")
    print(f"assistance: {s.assistance_sent} sent, {s.assistance_received} received")
    for d in s.districts:
        print(f"  {d.district}: {d.green} green, {d.yellow} yellow, {d.red} red")
    sys.stdout.flush()
    return 0
