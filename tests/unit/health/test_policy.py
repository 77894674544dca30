"""The colour policy: the default rules case by case, refusals at load, signed policies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nodes.provincial.health.policy import (
    Event,
    PolicyError,
    default_policy,
    open_signed_policy,
    parse_policy,
    sign_policy,
)
from simulations.registry_builder import RegistryBuilder
from trust import envelope, pki
from trust.errors import VerificationError
from trust.model import Colour

ZJ, HB = "330000", "420000"


def declaration(**overrides: Any) -> dict[str, Any]:
    facts: dict[str, dict[str, Any]] = {
        "declaration": {
            "fever": False,
            "symptoms": [],
            "symptom_count": 0,
            "contact_with_confirmed_case": False,
            "residence": "330106",
            "travel": [],
        },
        "risk": {"residence_level": 0, "travel_level": 0},
    }
    for path, value in overrides.items():
        group, name = path.split("__")
        facts[group][name] = value
    return facts


def check_in(temperature: int, symptoms: int = 0) -> dict[str, Any]:
    names = ["cough", "fatigue", "diarrhoea"][:symptoms]
    return {
        "check_in": {
            "temperature_tenths": temperature,
            "symptoms": names,
            "symptom_count": symptoms,
        }
    }


def area(level: int, residence_level: int, travel_level: int = 0) -> dict[str, Any]:
    return {
        "risk": {"residence_level": residence_level, "travel_level": travel_level},
        "area": {"district": "330106", "level": level},
    }


def assistance(kind: str, days_ago: int) -> dict[str, Any]:
    return {"assistance": {"kind": kind, "district": "420106", "days_ago": days_ago}}


# One named row per case: (name, event, facts, expected rule or None, colour, days).
DEFAULT_RULES = [
    ("nothing declared", Event.DECLARATION, declaration(), None, None, 0),
    (
        "contact with a case",
        Event.DECLARATION,
        declaration(declaration__contact_with_confirmed_case=True),
        "contact-with-confirmed-case",
        Colour.RED,
        14,
    ),
    (
        "fever",
        Event.DECLARATION,
        declaration(declaration__fever=True),
        "fever-declared",
        Colour.YELLOW,
        7,
    ),
    (
        "symptoms",
        Event.DECLARATION,
        declaration(declaration__symptom_count=2),
        "symptoms-declared",
        Colour.YELLOW,
        7,
    ),
    (
        "fever and contact: the stricter wins",
        Event.DECLARATION,
        declaration(declaration__fever=True, declaration__contact_with_confirmed_case=True),
        "contact-with-confirmed-case",
        Colour.RED,
        14,
    ),
    (
        "lives in a high-risk area",
        Event.DECLARATION,
        declaration(risk__residence_level=3),
        "lives-in-high-risk-area",
        Colour.RED,
        14,
    ),
    (
        "lives in a medium-risk area",
        Event.DECLARATION,
        declaration(risk__residence_level=2),
        "lives-in-medium-risk-area",
        Colour.YELLOW,
        7,
    ),
    (
        "lives in a low-risk area",
        Event.DECLARATION,
        declaration(risk__residence_level=1),
        None,
        None,
        0,
    ),
    (
        "travelled through a high-risk area",
        Event.DECLARATION,
        declaration(risk__travel_level=3),
        "travelled-through-risk-area",
        Colour.YELLOW,
        7,
    ),
    (
        "travelled through a low-risk area",
        Event.DECLARATION,
        declaration(risk__travel_level=1),
        None,
        None,
        0,
    ),
    ("check-in well", Event.CHECK_IN, check_in(366), None, None, 0),
    ("check-in at 37.2", Event.CHECK_IN, check_in(372), None, None, 0),
    ("check-in at 37.3", Event.CHECK_IN, check_in(373), "fever-at-check-in", Colour.YELLOW, 7),
    (
        "check-in with a cough",
        Event.CHECK_IN,
        check_in(366, 1),
        "symptoms-at-check-in",
        Colour.YELLOW,
        7,
    ),
    (
        "declaration rules ignore check-ins",
        Event.CHECK_IN,
        {**check_in(366), **declaration(declaration__fever=True)},
        None,
        None,
        0,
    ),
    (
        "resident of a new high-risk area",
        Event.RISK_AREA,
        area(3, 3),
        "resident-of-new-high-risk-area",
        Colour.RED,
        14,
    ),
    (
        "visitor of a new high-risk area",
        Event.RISK_AREA,
        area(3, 0, 3),
        "visited-new-risk-area",
        Colour.YELLOW,
        7,
    ),
    (
        "resident of a new medium-risk area",
        Event.RISK_AREA,
        area(2, 2),
        "visited-new-risk-area",
        Colour.YELLOW,
        7,
    ),
    ("resident of a new low-risk area", Event.RISK_AREA, area(1, 1), None, None, 0),
    (
        "listed close contact, 2 days ago",
        Event.CLOSE_CONTACT,
        {"close_contact": {"days_ago": 2}},
        "listed-close-contact",
        Colour.RED,
        14,
    ),
    (
        "listed close contact, 20 days ago",
        Event.CLOSE_CONTACT,
        {"close_contact": {"days_ago": 20}},
        None,
        None,
        0,
    ),
    (
        "reported close contact",
        Event.ASSISTANCE,
        assistance("close_contact", 1),
        "reported-close-contact",
        Colour.RED,
        14,
    ),
    (
        "reported confirmed case",
        Event.ASSISTANCE,
        assistance("confirmed_case", 0),
        "reported-close-contact",
        Colour.RED,
        14,
    ),
    (
        "reported risk-area visit",
        Event.ASSISTANCE,
        assistance("risk_area_visit", 3),
        "reported-risk-area-visit",
        Colour.YELLOW,
        7,
    ),
    (
        "reported visit a month ago",
        Event.ASSISTANCE,
        assistance("risk_area_visit", 30),
        None,
        None,
        0,
    ),
]


@pytest.mark.parametrize(
    ("event", "facts", "rule", "colour", "days"),
    [pytest.param(*row[1:], id=row[0]) for row in DEFAULT_RULES],
)
def test_default_policy(
    event: Event, facts: dict[str, Any], rule: str | None, colour: Colour | None, days: int
) -> None:
    outcome = default_policy().decide(event, facts)
    if rule is None:
        assert outcome is None
    else:
        assert outcome is not None
        assert (outcome.rule, outcome.colour, outcome.days) == (rule, colour, days)
        assert outcome.reason


def test_default_policy_follows_the_seed() -> None:
    policy = default_policy()
    assert policy.missed_check_in_adds_days == 1
    assert {r.days for r in policy.rules if r.colour is Colour.RED} == {14}
    assert {r.days for r in policy.rules if r.colour is Colour.YELLOW} == {7}


def _policy(*rules: dict[str, Any], **fields: Any) -> bytes:
    doc = {
        "format": "hcx-colour-policy/1",
        "province": ZJ,
        "version": 2,
        "rules": list(rules),
        **fields,
    }
    return json.dumps(doc).encode()


def _deep(levels: int) -> bytes:
    """A policy whose rule's condition nests ``levels`` deep (as text: json.dumps would not)."""
    text = _policy(_rule(when="DEEP")).decode()
    return text.replace('"DEEP"', '{"!": [' * levels + "true" + "]}" * levels).encode()


def _rule(**overrides: Any) -> dict[str, Any]:
    rule = {
        "name": "fever",
        "on": ["declaration"],
        "colour": "YELLOW",
        "days": 7,
        "reason": "fever",
        "when": {"===": [{"var": "declaration.fever"}, True]},
    }
    rule.update(overrides)
    return rule


# One named row per refusal: (name, policy bytes, words the error must contain).
REFUSALS = [
    ("not JSON", b"{rules:", "not JSON"),
    ("not an object", b"[]", "JSON object"),
    ("wrong format", _policy(_rule(), format="other/1"), "format"),
    ("unknown field", _policy(_rule(), colour="RED"), "unknown fields"),
    ("bad province", _policy(_rule(), province="33"), "province"),
    ("other province", _policy(_rule(), province=HB), "for province 420000"),
    ("version 0", _policy(_rule(), version=0), "version"),
    ("version is text", _policy(_rule(), version="2"), "version"),
    ("no rules", _policy(), "1 to 200 rules"),
    (
        "adds too many days",
        _policy(_rule(), missed_check_in_adds_days=9),
        "missed_check_in_adds_days",
    ),
    ("rule without a name", _policy(_rule(name="")), "rule #1"),
    ("rule named twice", _policy(_rule(), _rule()), 'rule "fever" is defined twice'),
    ("unknown event", _policy(_rule(on=["birthday"])), 'rule "fever": on must list'),
    ("green rule", _policy(_rule(colour="GREEN")), 'rule "fever": colour'),
    ("zero days", _policy(_rule(days=0)), 'rule "fever": days'),
    ("days as float", _policy(_rule(days=7.5)), 'rule "fever": days'),
    ("too many days", _policy(_rule(days=365)), 'rule "fever": days'),
    ("no reason", _policy(_rule(reason="")), 'rule "fever": reason'),
    ("unknown rule field", _policy(_rule(priority=1)), 'rule "fever": unknown fields'),
    ("not CertLogic", _policy(_rule(when={"or": [True, False]})), 'unrecognised operator: "or"'),
    (
        "float literal",
        _policy(
            _rule(when={">=": [{"var": "check_in.temperature_tenths"}, 37.3]}, on=["check_in"])
        ),
        "non-integer",
    ),
    (
        "misspelt fact",
        _policy(_rule(when={"===": [{"var": "declaration.fevr"}, True]})),
        'reads "declaration.fevr"',
    ),
    (
        "fact of another event",
        _policy(_rule(when={">=": [{"var": "check_in.temperature_tenths"}, 373]})),
        "which a declaration event does not have",
    ),
    ("not a boolean", _policy(_rule(when={"var": "declaration.residence"})), "true or false"),
    (
        "DCC-only operator",
        _policy(_rule(when={"dccDateOfBirth": [{"var": "declaration.residence"}]})),
        "not available",
    ),
    ("too large", b" " * 300_000, "larger than"),
    (
        "reduce's data outside a reduce",
        _policy(_rule(when={"===": [{"var": "data.declaration.fever"}, True]})),
        'reads "data.declaration.fever"',
    ),
    (
        "misspelt fact inside a reduce",
        _policy(
            _rule(
                when={
                    "reduce": [
                        {"var": "declaration.symptoms"},
                        {"if": [{"var": "data.declaration.fevr"}, True, {"var": "accumulator"}]},
                        False,
                    ]
                }
            )
        ),
        'reads "data.declaration.fevr"',
    ),
    ("nested 40 deep", _deep(40), "deeper than 32"),
    ("nested 20,000 deep", _deep(20_000), "nests too deep"),
]


@pytest.mark.parametrize(("text", "words"), [pytest.param(r[1], r[2], id=r[0]) for r in REFUSALS])
def test_a_bad_policy_is_refused_with_the_rule_named(text: bytes, words: str) -> None:
    with pytest.raises(PolicyError, match=None) as refused:
        parse_policy(text, province=ZJ)
    assert words in str(refused.value)


# -- signed policies: only an operator of the province may sign its rules -------------------------
@pytest.fixture(scope="module")
def world() -> RegistryBuilder:
    built = RegistryBuilder()
    built.onboard(ZJ, "浙江省")
    built.onboard(HB, "湖北省")
    return built


def _identity(world: RegistryBuilder, province: str, kind: str) -> tuple[Any, Any]:
    key = pki.generate_private_key()
    csr = pki.make_csr(key, common_name=kind)
    cert = pki.sign_leaf(
        world.provinces[province].ca, csr, province=province, kind=kind, name="ops"
    )
    return key, cert


def _open(world: RegistryBuilder, data: bytes, province: str = ZJ) -> Any:
    return open_signed_policy(
        data,
        province=province,
        provincial_ca=world.provinces[province].ca.certificate,
        roots=[world.root.certificate],
    )


def test_an_operator_of_the_province_signs_its_policy(world: RegistryBuilder) -> None:
    key, cert = _identity(world, ZJ, "operator")
    policy = _open(world, sign_policy(_policy(_rule()), key, cert))
    assert (policy.province, policy.version, policy.rules[0].name) == (ZJ, 2, "fever")


@pytest.mark.parametrize("kind", ["checkpoint", "node", "authority"])
def test_other_roles_of_the_province_cannot_sign_its_policy(
    world: RegistryBuilder, kind: str
) -> None:
    key, cert = _identity(world, ZJ, kind)
    with pytest.raises(PolicyError, match="not an operator"):
        _open(world, sign_policy(_policy(_rule()), key, cert))


def test_an_operator_of_another_province_cannot_sign_it(world: RegistryBuilder) -> None:
    key, cert = _identity(world, HB, "operator")
    with pytest.raises(PolicyError, match="not an operator"):
        _open(world, sign_policy(_policy(_rule()), key, cert))


def test_a_policy_for_any_province_must_name_its_province_when_signed(
    world: RegistryBuilder,
) -> None:
    key, cert = _identity(world, ZJ, "operator")
    with pytest.raises(PolicyError, match="must name its province"):
        _open(world, sign_policy(_policy(_rule(), province="*"), key, cert))


def test_an_edited_signed_policy_is_refused(world: RegistryBuilder) -> None:
    key, cert = _identity(world, ZJ, "operator")
    signed = sign_policy(_policy(_rule()), key, cert)
    edited = signed.replace(b'"days": 7', b'"days": 1')
    assert edited != signed
    with pytest.raises(VerificationError):
        _open(world, edited)


def test_a_signature_made_for_another_purpose_is_refused(world: RegistryBuilder) -> None:
    key, cert = _identity(world, ZJ, "operator")
    statement = envelope.seal(envelope.Purpose.STATEMENT, _policy(_rule()), key, cert)
    with pytest.raises(VerificationError):
        _open(world, statement)


def test_a_reduce_over_the_facts_is_a_valid_rule() -> None:
    rule = _rule(
        name="cough-counted",
        when={
            "reduce": [
                {"var": "declaration.symptoms"},
                {"if": [{"===": [{"var": "current"}, "cough"]}, True, {"var": "accumulator"}]},
                False,
            ]
        },
    )
    policy = parse_policy(_policy(rule), province=ZJ)
    facts = declaration(declaration__symptoms=["fatigue", "cough"])
    outcome = policy.decide(Event.DECLARATION, facts)
    assert outcome is not None and outcome.rule == "cough-counted"


def test_a_bad_policy_is_never_signed(world: RegistryBuilder) -> None:
    key, cert = _identity(world, ZJ, "operator")
    with pytest.raises(PolicyError):
        sign_policy(_policy(_rule(days=0)), key, cert)
