"""Every conformance case through every verifier: the same verdict and reason everywhere.

Each verifier gets the whole table in one call (so batch verifiers see every hostile item
next to good ones), and each (verifier, case) pair is its own named test.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conformance.cases import CASES, hostile_tokens, valid_tokens
from tests.conformance.verifiers import VERIFIERS, Answer, Verifier
from tests.conformance.world import World, make_world
from trust.model import Reason, Verdict

BY_NAME = {v.name: v for v in VERIFIERS}


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(scope="module")
def tokens(world: World) -> dict[str, str]:
    return {name: case.make(world) for name, case in CASES.items()}


@pytest.fixture(scope="module")
def answers(world: World, tokens: dict[str, str]) -> dict[str, dict[str, Answer]]:
    """Each verifier's answers to the table: {verifier: {case: (verdict, reason)}}."""
    names = list(tokens)
    table: dict[str, dict[str, Answer]] = {}
    for verifier in VERIFIERS:
        applicable = [n for n in names if verifier.applies_to(CASES[n])]
        got = asyncio.run(verifier.verify(world, [tokens[n] for n in applicable]))
        assert len(got) == len(applicable), f"{verifier.name} answered {len(got)} of {len(names)}"
        table[verifier.name] = dict(zip(applicable, got, strict=True))
    return table


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("verifier", list(BY_NAME))
def test_case(answers: dict[str, dict[str, Answer]], verifier: str, case: str) -> None:
    spec = BY_NAME[verifier]
    if not spec.applies_to(CASES[case]):
        pytest.skip(f"{verifier} cannot run {sorted(CASES[case].tags)} cases")
    assert answers[verifier][case] == spec.expected(CASES[case])


def test_every_refusal_reason_of_a_code_is_in_the_table() -> None:
    code_reasons = {
        Reason.BAD_ENCODING, Reason.MALFORMED, Reason.NON_CANONICAL,
        Reason.UNSUPPORTED_ALGORITHM, Reason.UNKNOWN_KID, Reason.BAD_SIGNATURE,
        Reason.ISSUER_MISMATCH, Reason.EXPIRED, Reason.NOT_YET_VALID, Reason.KEY_REVOKED,
        Reason.PROVINCE_SUSPENDED, Reason.KEY_NOT_VALID_AT_ISSUANCE, Reason.KEY_RETIRED,
        Reason.UNKNOWN_PROVINCE, Reason.LIFETIME_TOO_LONG, Reason.TOKEN_TOO_OLD,
    }  # fmt: skip
    in_table = {c.reason for c in CASES.values()} | {
        c.offline_reason for c in CASES.values() if c.offline_reason is not None
    }
    assert code_reasons <= in_table


def test_case_tokens_are_distinct(tokens: dict[str, str]) -> None:
    # A copy-pasted row testing nothing new shows up as two equal tokens.
    seen: dict[str, str] = {}
    for name, token in tokens.items():
        assert token not in seen or CASES[name].reason != CASES[seen[token]].reason, (
            f"{name!r} and {seen[token]!r} are the same token"
        )
        seen.setdefault(token, name)


# --- more attacks: random mutations of valid codes are never accepted --------------------------


@pytest.mark.parametrize("verifier", list(BY_NAME))
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_codes_are_never_accepted(world: World, verifier: str, data: st.DataObject) -> None:
    spec: Verifier = BY_NAME[verifier]
    originals = _originals(world)
    token = data.draw(hostile_tokens(originals), label="token")
    [(verdict, reason)] = asyncio.run(spec.verify(world, [token]))
    if token in originals:
        return  # the mutation changed nothing
    assert verdict is Verdict.INVALID, f"{token!r} accepted: {verdict.name}"
    assert reason is not Reason.NONE


_ORIGINALS: dict[int, list[str]] = {}


def _originals(world: World) -> list[str]:
    """The valid codes mutations start from, made once per world."""
    return _ORIGINALS.setdefault(id(world), valid_tokens(world))


def test_the_originals_are_accepted_by_every_verifier(world: World) -> None:
    for spec in VERIFIERS:
        answers = asyncio.run(spec.verify(world, _originals(world)))
        assert all(verdict is not Verdict.INVALID for verdict, _ in answers), spec.name


def test_the_fast_decoder_gives_every_case_the_general_decoders_answer(
    tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """decode_token takes an exact-layout path for the codes issuers make (trust/cose.py,
    decode_sign1_exact); with it switched off every case decodes, or fails, the same way."""
    from trust import codeformat
    from trust.errors import DecodeError

    def outcome(token: str) -> object:
        try:
            decoded = codeformat.decode_token(token)
        except DecodeError as e:
            return (e.reason, e.message)
        return (decoded.claims, decoded.kid, decoded.alg, decoded.sign1.payload,
                decoded.sign1.signature, decoded.sign1.protected_bytes)  # fmt: skip

    fast = {name: outcome(token) for name, token in tokens.items()}
    monkeypatch.setattr(codeformat, "decode_sign1_exact", lambda data: None)
    assert {name: outcome(token) for name, token in tokens.items()} == fast
