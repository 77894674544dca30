"""The issuer never makes a code the verifiers would refuse for its lifetime."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict, Unpack

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from nodes.provincial.issuance import DEFAULT_TOKEN_LIFETIME_S, Issuer, with_check_character
from nodes.provincial.stores import SqliteStatusStore
from trust.codeformat import decode_token
from trust.verify import DEFAULT_MAX_LIFETIME_S, TokenPolicy

NOW = 1_800_000_000.0


class Lifetimes(TypedDict, total=False):
    """The issuer's lifetime settings a test overrides."""

    token_lifetime: int
    max_lifetime: int


def _issuer(tmp_path: Path, **lifetimes: Unpack[Lifetimes]) -> Issuer:
    return Issuer(
        province="330000",
        signing_key=ec.generate_private_key(ec.SECP256R1()),
        kid=bytes(8),
        holder_key=bytes(32),
        store=SqliteStatusStore(tmp_path / "status.db"),
        clock=lambda: NOW,
        **lifetimes,
    )


def test_default_lifetime_is_within_the_default_maximum() -> None:
    assert DEFAULT_TOKEN_LIFETIME_S == 300
    assert DEFAULT_TOKEN_LIFETIME_S < DEFAULT_MAX_LIFETIME_S == TokenPolicy().max_lifetime


@pytest.mark.parametrize(
    "lifetimes",
    [
        pytest.param({"token_lifetime": DEFAULT_MAX_LIFETIME_S + 1}, id="one second too long"),
        pytest.param({"token_lifetime": 1200}, id="20 minutes"),
        pytest.param({"token_lifetime": 253_402_300_799}, id="until 9999-12-31"),
        pytest.param({"token_lifetime": 0}, id="zero"),
        pytest.param({"token_lifetime": -300}, id="negative"),
        pytest.param({"token_lifetime": 120, "max_lifetime": 60}, id="above a stricter maximum"),
    ],
)
def test_issuer_refuses_a_lifetime_above_the_maximum(tmp_path: Path, lifetimes: Lifetimes) -> None:
    with pytest.raises(ValueError, match="token lifetime"):
        _issuer(tmp_path, **lifetimes)


def test_issued_codes_live_exactly_the_configured_lifetime(tmp_path: Path) -> None:
    issuer = _issuer(tmp_path, token_lifetime=DEFAULT_MAX_LIFETIME_S)
    issued = issuer.issue(id_number=with_check_character("33010219900101001"), full_name="张三明")
    claims = decode_token(issued.token).claims
    assert claims.expires_at - claims.issued_at == DEFAULT_MAX_LIFETIME_S
