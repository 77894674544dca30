"""A province's colour policy: named rules, as data, that decide a code's colour.

A policy is a JSON document (docs/colour-policy.md):

    {"format": "hcx-colour-policy/1", "province": "330000", "version": 3,
     "missed_check_in_adds_days": 1,
     "rules": [{"name": "contact-with-confirmed-case", "on": ["declaration"],
                "colour": "RED", "days": 14, "reason": "declared contact with a confirmed case",
                "when": {"===": [{"var": "declaration.contact_with_confirmed_case"}, true]}}]}

Every rule names the events it answers (``on``), the colour and the quarantine days it imposes,
the reason in words, and a CertLogic condition (``when``) over the event's facts. When an event
arrives, the matching rule of the highest colour decides (ties: the first in the file); no
match decides nothing. A policy is checked whole when it is loaded: a bad rule refuses the file
with the rule named (PolicyError). Operators sign what they edit (``signed_policy``).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from cryptography import x509

from nodes.provincial.health import certlogic
from trust import envelope, pki
from trust.errors import InvalidRequest, PkiError
from trust.model import Colour, is_province_code

FORMAT = "hcx-colour-policy/1"
MAX_POLICY_BYTES = 256 * 1024
MAX_RULES = 200
MAX_DAYS = 60
MAX_DEPTH = 32  # levels of nesting in one condition
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_RULE_KEYS = {"name", "on", "colour", "days", "reason", "when"}
_POLICY_KEYS = {
    "format",
    "province",
    "version",
    "description",
    "missed_check_in_adds_days",
    "rules",
}
SEVERITY = {Colour.GREEN: 0, Colour.YELLOW: 1, Colour.RED: 2}


class PolicyError(InvalidRequest):
    """A policy refused at load: what is wrong, and with which rule."""


class Event(enum.Enum):
    """What a rule can answer: each event brings its own facts (``FACTS``)."""

    DECLARATION = "declaration"  # ApplyCode: the holder's health declaration
    CHECK_IN = "check_in"  # CheckIn: the daily health check-in
    RISK_AREA = "risk_area"  # the health authority declared a district a risk area
    CLOSE_CONTACT = "close_contact"  # the holder is on an imported close-contact list
    ASSISTANCE = "assistance"  # another province reported an event about this code


# The facts each event brings, with a sample of each value's type: a rule may only read these
# (a misspelt path is an error at load, not a rule that silently never matches). Levels of risk
# are 0 none, 1 low, 2 medium, 3 high. CertLogic numbers are integers: temperatures in tenths.
_DECLARATION = {
    "fever": False,
    "symptoms": ["cough"],
    "symptom_count": 1,
    "contact_with_confirmed_case": False,
    "residence": "330106",
    "travel": ["420106"],
}
_RISK = {"residence_level": 0, "travel_level": 0}
FACTS: Mapping[Event, Mapping[str, Any]] = {
    Event.DECLARATION: {"declaration": _DECLARATION, "risk": _RISK},
    Event.CHECK_IN: {
        "check_in": {"temperature_tenths": 366, "symptoms": ["cough"], "symptom_count": 1}
    },
    Event.RISK_AREA: {"risk": _RISK, "area": {"district": "330106", "level": 3}},
    Event.CLOSE_CONTACT: {"close_contact": {"days_ago": 2}},
    Event.ASSISTANCE: {
        "assistance": {"kind": "close_contact", "district": "330106", "days_ago": 1}
    },
}


@dataclass(frozen=True)
class Rule:
    name: str
    events: frozenset[Event]
    colour: Colour
    days: int
    reason: str
    when: Any


@dataclass(frozen=True)
class Outcome:
    """What a rule decided: a colour held for ``days`` days of quarantine."""

    rule: str
    colour: Colour
    days: int
    reason: str


@dataclass(frozen=True)
class Policy:
    province: str  # "*": the built-in default, for any province
    version: int
    missed_check_in_adds_days: int
    rules: tuple[Rule, ...]
    description: str = ""
    digest: str = ""  # SHA-256 of the file's bytes: which rules exactly
    signer: x509.Certificate | None = None  # the operator who signed it (None: built in)

    @property
    def label(self) -> str:
        return f"{self.province} v{self.version}"

    def decide(self, event: Event, facts: Mapping[str, Any]) -> Outcome | None:
        """The outcome of ``event`` with ``facts``: the strictest matching rule, or None."""
        best: Rule | None = None
        for rule in self.rules:
            if event not in rule.events or not _matches(rule, facts):
                continue
            if best is None or SEVERITY[rule.colour] > SEVERITY[best.colour]:
                best = rule
        if best is None:
            return None
        return Outcome(best.name, best.colour, best.days, best.reason)


def _matches(rule: Rule, facts: Mapping[str, Any]) -> bool:
    return certlogic.evaluate(rule.when, dict(facts)) is True


def parse_policy(data: bytes, *, province: str | None = None) -> Policy:
    """A checked policy from its JSON text; PolicyError names what (and which rule) is wrong."""
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy is larger than {MAX_POLICY_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PolicyError(f"policy is not JSON: {e}") from e
    except RecursionError as e:
        raise PolicyError("policy nests too deep to be read") from e
    if not isinstance(doc, dict):
        raise PolicyError("policy must be a JSON object")
    unknown = set(doc) - _POLICY_KEYS
    if unknown:
        raise PolicyError(f"policy has unknown fields {sorted(unknown)}")
    if doc.get("format") != FORMAT:
        raise PolicyError(f'policy format must be "{FORMAT}"')
    owner = doc.get("province")
    if not isinstance(owner, str) or not (owner == "*" or is_province_code(owner)):
        raise PolicyError('policy province must be a GB/T 2260 province code or "*"')
    if province is not None and owner not in ("*", province):
        raise PolicyError(f"policy is for province {owner}, not {province}")
    version = _integer(doc.get("version"), "policy version", low=1, high=1 << 31)
    adds = _integer(
        doc.get("missed_check_in_adds_days", 1), "missed_check_in_adds_days", low=0, high=3
    )
    rules = doc.get("rules")
    if not isinstance(rules, list) or not 0 < len(rules) <= MAX_RULES:
        raise PolicyError(f"policy needs 1 to {MAX_RULES} rules")
    parsed = tuple(_rule(raw, index) for index, raw in enumerate(rules))
    names = [rule.name for rule in parsed]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise PolicyError(f'rule "{duplicate}" is defined twice')
    description = doc.get("description", "")
    if not isinstance(description, str) or len(description) > 2000:
        raise PolicyError("policy description must be text of at most 2000 characters")
    return Policy(owner, version, adds, parsed, description, hashlib.sha256(data).hexdigest())


def _integer(value: Any, what: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PolicyError(f"{what} must be an integer from {low} to {high}")
    return value


def _rule(raw: Any, index: int) -> Rule:
    if not isinstance(raw, dict):
        raise PolicyError(f"rule #{index + 1} is not an object")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise PolicyError(f"rule #{index + 1}: name must be 1-64 of a-z, 0-9 and -")

    def refuse(message: str) -> PolicyError:
        return PolicyError(f'rule "{name}": {message}')

    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise refuse(f"unknown fields {sorted(unknown)}")
    events = raw.get("on")
    known = {e.value: e for e in Event}
    if not isinstance(events, list) or not events or any(e not in known for e in events):
        raise refuse(f"on must list events among {sorted(known)}")
    colour_name = raw.get("colour")
    if colour_name not in ("YELLOW", "RED"):
        raise refuse("colour must be YELLOW or RED (green follows a completed quarantine)")
    days = raw.get("days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise refuse(f"days must be an integer from 1 to {MAX_DAYS}")
    reason = raw.get("reason")
    if not isinstance(reason, str) or not 0 < len(reason) <= 200:
        raise refuse("reason must be 1 to 200 characters of text")
    rule = Rule(
        name,
        frozenset(known[e] for e in events),
        Colour[colour_name],
        days,
        reason,
        raw.get("when"),
    )
    _check_condition(rule, refuse)
    return rule


def _check_condition(rule: Rule, refuse: Any) -> None:
    """Well formed, only allowed operators, only known facts, and a boolean on every event."""
    if _depth(rule.when) > MAX_DEPTH:
        raise refuse(f"when nests deeper than {MAX_DEPTH} levels")
    issues = certlogic.validate_format(rule.when)
    if issues:
        raise refuse(f"when is not CertLogic: {issues[0].message}")
    banned = certlogic.operators(rule.when) & set(certlogic.NOT_IN_POLICIES)
    if banned:
        raise refuse(f"operator {sorted(banned)[0]} is not available in colour policies")
    for event in rule.events:
        for found in _var_paths(rule.when):
            if not _known_path(FACTS[event], found):
                raise refuse(f'reads "{found[0]}", which a {event.value} event does not have')
        try:
            value = certlogic.evaluate(rule.when, dict(FACTS[event]))
        except Exception as e:  # the evaluator raises what Python raises: any is a bad rule
            raise refuse(f"when fails on a {event.value} event: {e}") from e
        if not isinstance(value, bool):
            raise refuse(f"when must give true or false, not {value!r}")


def _depth(expr: Any) -> int:
    """How deep an expression nests (without recursion: a hostile file may nest thousands)."""
    deepest, stack = 0, [(expr, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        children = (
            node
            if isinstance(node, list)
            else list(node.values())
            if isinstance(node, dict)
            else []
        )
        stack.extend((child, level + 1) for child in children)
    return deepest


def _var_paths(expr: Any, *, in_reduce: bool = False) -> list[tuple[str, bool]]:
    """Every data path the expression reads, and whether it is read inside a ``reduce``'s
    step (where the data is {current, accumulator, data})."""
    if isinstance(expr, list):
        return [found for item in expr for found in _var_paths(item, in_reduce=in_reduce)]
    if not isinstance(expr, dict):
        return []
    if "var" in expr and isinstance(expr["var"], str):
        return [(expr["var"], in_reduce)]
    if "reduce" in expr and isinstance(expr["reduce"], list):
        items, *rest = expr["reduce"] or [None]
        step = rest[0] if rest else None
        init = rest[1:]
        return (
            _var_paths(items, in_reduce=in_reduce)
            + _var_paths(init, in_reduce=in_reduce)
            + _var_paths(step, in_reduce=True)
        )
    return [found for values in expr.values() for found in _var_paths(values, in_reduce=in_reduce)]


def _known_path(facts: Mapping[str, Any], found: tuple[str, bool]) -> bool:
    """Whether the path names a fact (or a list element); inside a ``reduce`` step, the
    step's own data (``current``, ``accumulator``) or a fact under ``data.``."""
    path, in_reduce = found
    if in_reduce:
        if path in ("current", "accumulator") or path.startswith(("current.", "accumulator.")):
            return True
        if not path.startswith("data."):
            return False
        path = path.removeprefix("data.")
    value: Any = facts
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit():
            value = value[0] if value else None
        else:
            return False
    return True


def default_policy() -> Policy:
    """The built-in policy (docs/colour-policy.md): red 14 days, yellow 7, a missed check-in
    adds a day, green when the quarantine is complete."""
    text = resources.files(__package__).joinpath("default-policy.json").read_bytes()
    return parse_policy(text)


# -- signed policies ------------------------------------------------------------------------------
def sign_policy(text: bytes, private_key: Any, certificate: x509.Certificate) -> bytes:
    """The operator's signed policy file (an hcx envelope for the colour-policy purpose)."""
    parse_policy(text)  # never sign a policy that would be refused
    return envelope.seal(envelope.Purpose.COLOUR_POLICY, text, private_key, certificate)


def open_signed_policy(
    data: bytes,
    *,
    province: str,
    provincial_ca: x509.Certificate,
    roots: list[x509.Certificate],
    at: datetime | None = None,
) -> Policy:
    """A signed policy, checked: signature, signer an operator of ``province`` whose
    certificate chains to the province CA and the pinned root now, then the rules."""
    opened = envelope.open_verified(envelope.Purpose.COLOUR_POLICY, data, what="colour policy")
    moment = at or datetime.now(UTC)
    try:
        signer_province = pki.verify_leaf_chain(
            opened.signer,
            provincial_ca,
            roots,
            at=moment,
            kind="operator",
            clock_skew=timedelta(minutes=5),
        )
    except PkiError as e:
        raise PolicyError(f"policy signer is not an operator of the province: {e}") from e
    if signer_province != province:
        raise PolicyError(f"policy signed by an operator of {signer_province}, not {province}")
    policy = parse_policy(opened.payload, province=province)
    if policy.province != province:
        raise PolicyError(f"a signed policy must name its province {province}, not *")
    return replace(policy, signer=opened.signer)
