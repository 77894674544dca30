"""The one verdict module, check by check: one named row per check of trust.verify.check_code.

Every reason check_code can give has a row that reaches it, next to the row that passes just
inside the same check's boundary; each refusal row fails if its check is removed. The view is
a small fake (signer() and province()), so no registry is involved.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trust.base45 import b45decode, b45encode
from trust.codeformat import PREFIX, CodeClaims, issue_token
from trust.cose import VerifyingKey
from trust.errors import DecodeError, HcxError, VerificationError
from trust.model import Colour, Reason
from trust.verify import (
    DEFAULT_CLOCK_SKEW_S,
    DEFAULT_MAX_LIFETIME_S,
    DEFAULT_MAX_OFFLINE_AGE_S,
    DEFAULT_POLICY,
    CodeCheck,
    TokenPolicy,
    check_code,
    check_offline_age,
)

NOW = 1_800_000_000
ZJ, SC = "330000", "510000"
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
KID = bytes.fromhex("33000000000000d1")
UNKNOWN_KID = bytes.fromhex("ffffffffffffffff")
SKEW = DEFAULT_CLOCK_SKEW_S
YEAR = 365 * 86400


@dataclass(frozen=True)
class Signer:
    """The fields of a trusted signing certificate that check_code reads."""

    kid: bytes = KID
    province: str = ZJ
    certificate: Any = None  # not read by check_code
    public_key: VerifyingKey = field(default_factory=KEY.public_key)
    not_before: float = NOW - YEAR
    not_after: float = NOW + YEAR
    revoked_at: float | None = None
    revocation_reason: str = ""
    retired_at: float | None = None


@dataclass(frozen=True)
class Province:
    code: str
    suspended: bool = False


class FakeView:
    """signer(kid) and province(code), from plain dictionaries."""

    def __init__(self, signer: Signer | None = None, provinces: dict[str, Province] | None = None):
        self._signers = {KID: signer or Signer()}
        self._provinces = provinces if provinces is not None else {ZJ: Province(ZJ)}

    def signer(self, kid: bytes) -> Signer | None:
        return self._signers.get(kid)

    def province(self, code: str) -> Province | None:
        return self._provinces.get(code)


def token(
    *,
    iat: int = NOW,
    lifetime: int = 300,
    exp: int | None = None,
    iss: str = ZJ,
    key: ec.EllipticCurvePrivateKey = KEY,
    kid: bytes = KID,
) -> str:
    claims = CodeClaims(
        issuer=iss,
        code_id=bytes(range(16)),
        issued_at=iat,
        expires_at=iat + lifetime if exp is None else exp,
        colour=Colour.GREEN,
        status_version=1,
        masked_name="张*明",
        id_tail="123X",
    )
    return issue_token(claims, signing_key=key, kid=kid)


def recompressed(text: str, level: int) -> str:
    return PREFIX + b45encode(zlib.compress(zlib.decompress(b45decode(text[5:])), level))


def signer(**changes: Any) -> FakeView:
    return FakeView(Signer(**changes))


@dataclass(frozen=True)
class Row:
    token: str
    view: FakeView = field(default_factory=FakeView)
    now: float = NOW
    policy: TokenPolicy = DEFAULT_POLICY
    reason: Reason = Reason.NONE  # NONE: the code passes every check
    message: str = ""  # the refusal's whole message, where the check writes its own


ROWS = {
    # --- decode (trust.codeformat): each family of decode failure reaches check_code's caller
    "valid code": Row(token()),
    "decode: not base45": Row("HCX1:abc", reason=Reason.BAD_ENCODING),
    "decode: not a COSE_Sign1": Row(
        PREFIX + b45encode(zlib.compress(b"\x84\x01\x02\x03\x04", 0)), reason=Reason.MALFORMED
    ),
    "decode: another zlib level": Row(recompressed(token(), 9), reason=Reason.NON_CANONICAL),
    # --- kid
    "kid not in the view": Row(
        token(kid=UNKNOWN_KID),
        reason=Reason.UNKNOWN_KID,
        message="no trusted signing certificate with kid ffffffffffffffff",
    ),
    # --- province
    "province not onboarded": Row(
        token(),
        view=FakeView(provinces={}),
        reason=Reason.UNKNOWN_PROVINCE,
        message="province 330000 is not onboarded",
    ),
    "province suspended": Row(
        token(),
        view=FakeView(provinces={ZJ: Province(ZJ, True)}),
        reason=Reason.PROVINCE_SUSPENDED,
        message="province 330000 is suspended",
    ),
    "another province suspended": Row(
        token(), view=FakeView(provinces={ZJ: Province(ZJ), SC: Province(SC, True)})
    ),
    # --- revocation
    "key revoked before now": Row(
        token(),
        view=signer(revoked_at=NOW - 1, revocation_reason="key_compromise"),
        reason=Reason.KEY_REVOKED,
        message="signing key 33000000000000d1 is revoked (key_compromise)",
    ),
    "key revoked at exactly now": Row(
        token(), view=signer(revoked_at=NOW), reason=Reason.KEY_REVOKED
    ),
    "key revoked before the code was issued, code still unexpired": Row(
        token(iat=NOW - 100), view=signer(revoked_at=NOW - 200), reason=Reason.KEY_REVOKED
    ),
    "revocation in the future is not yet effective": Row(token(), view=signer(revoked_at=NOW + 1)),
    # --- signature (algorithm, then the signature itself)
    "signer key of another algorithm": Row(
        token(),
        view=signer(public_key=ed25519.Ed25519PrivateKey.generate().public_key()),
        reason=Reason.UNSUPPORTED_ALGORITHM,
    ),
    "signed by another key under the real kid": Row(
        token(key=OTHER_KEY), reason=Reason.BAD_SIGNATURE
    ),
    # --- issuer
    "iss names another province than the key's": Row(
        token(iss=SC),
        view=FakeView(provinces={ZJ: Province(ZJ), SC: Province(SC)}),
        reason=Reason.ISSUER_MISMATCH,
    ),
    # --- the code's own times
    "expired exactly now": Row(
        token(iat=NOW - 300), reason=Reason.EXPIRED, message="code expired 0 s ago"
    ),
    "expired a minute ago": Row(
        token(iat=NOW - 360), reason=Reason.EXPIRED, message="code expired 60 s ago"
    ),
    "expires in one second": Row(token(iat=NOW - 299)),
    "issued beyond the clock skew": Row(
        token(iat=NOW + SKEW + 1),
        reason=Reason.NOT_YET_VALID,
        message="code issued in the future",
    ),
    "issued in the future within the clock skew": Row(token(iat=NOW + SKEW)),
    "no clock skew allowed": Row(
        token(iat=NOW + 1), policy=TokenPolicy(clock_skew=0), reason=Reason.NOT_YET_VALID
    ),
    # --- the key's validity when the code was issued
    "issued before the key's not-before beyond the skew": Row(
        token(),
        view=signer(not_before=NOW + SKEW + 1),
        reason=Reason.KEY_NOT_VALID_AT_ISSUANCE,
        message="the signing certificate was not valid when the code was issued",
    ),
    "issued before the key's not-before within the skew": Row(
        token(), view=signer(not_before=NOW + SKEW)
    ),
    "issued after the key's not-after": Row(
        token(), view=signer(not_after=NOW - 1), reason=Reason.KEY_NOT_VALID_AT_ISSUANCE
    ),
    "issued at the key's not-after": Row(token(), view=signer(not_after=NOW)),
    # --- retirement
    "issued after the key was retired": Row(
        token(),
        view=signer(retired_at=NOW - 1),
        reason=Reason.KEY_RETIRED,
        message="code issued after its signing key was retired",
    ),
    "issued before the key was retired": Row(token(iat=NOW - 10), view=signer(retired_at=NOW - 5)),
    "issued at the moment of retirement": Row(token(), view=signer(retired_at=NOW)),
    # --- lifetime
    "lifetime one second above the maximum": Row(
        token(lifetime=DEFAULT_MAX_LIFETIME_S + 1),
        reason=Reason.LIFETIME_TOO_LONG,
        message="code lives 361 s (exp - iat), longer than the maximum 360 s",
    ),
    "lifetime at the maximum": Row(token(lifetime=DEFAULT_MAX_LIFETIME_S)),
    "expires 9999-12-31": Row(token(exp=253_402_300_799), reason=Reason.LIFETIME_TOO_LONG),
    "retired key, early iat, expires 9999-12-31": Row(
        token(iat=NOW - 3600, exp=253_402_300_799),
        view=signer(retired_at=NOW - 60),
        reason=Reason.LIFETIME_TOO_LONG,
    ),
    "a stricter verifier's maximum": Row(
        token(), policy=TokenPolicy(max_lifetime=120), reason=Reason.LIFETIME_TOO_LONG
    ),
}


def _refusal(row: Row) -> tuple[Reason, str]:
    try:
        check_code(row.token, row.view, now=row.now, policy=row.policy)
    except HcxError as e:
        assert isinstance(e, DecodeError | VerificationError)
        return e.reason, e.message
    return Reason.NONE, ""


@pytest.mark.parametrize("name", list(ROWS))
def test_check(name: str) -> None:
    row = ROWS[name]
    reason, message = _refusal(row)
    assert reason is row.reason
    if row.message:
        assert message == row.message


def test_every_reason_check_code_gives_has_a_row() -> None:
    reachable = {
        Reason.BAD_ENCODING, Reason.MALFORMED, Reason.NON_CANONICAL,
        Reason.UNSUPPORTED_ALGORITHM, Reason.UNKNOWN_KID, Reason.UNKNOWN_PROVINCE,
        Reason.PROVINCE_SUSPENDED, Reason.KEY_REVOKED, Reason.BAD_SIGNATURE,
        Reason.ISSUER_MISMATCH, Reason.EXPIRED, Reason.NOT_YET_VALID,
        Reason.KEY_NOT_VALID_AT_ISSUANCE, Reason.KEY_RETIRED, Reason.LIFETIME_TOO_LONG,
    }  # fmt: skip
    assert {row.reason for row in ROWS.values()} == reachable | {Reason.NONE}


def test_a_passing_code_says_what_was_established() -> None:
    view = FakeView()
    check = check_code(token(iat=NOW - 30), view, now=NOW)
    assert isinstance(check, CodeCheck)
    assert (check.claims.issuer, check.signer, check.checked_at, check.age) == (
        ZJ,
        view.signer(KID),
        NOW,
        30,
    )
    assert check.explain() == (
        "code of province 330000 signed by kid 33000000000000d1, issued 30 s ago, "
        "colour at issuance GREEN, expires in 270 s"
    )


def test_clock_skew_keyword_still_overrides_the_policy() -> None:
    with pytest.raises(VerificationError) as caught:
        check_code(token(iat=NOW + 1), FakeView(), now=NOW, clock_skew=0)
    assert caught.value.reason is Reason.NOT_YET_VALID
    check_code(token(iat=NOW + 100), FakeView(), now=NOW, clock_skew=100)


NOT_SECONDS = "must be a non-negative number of seconds"
NO_LIFETIME = "max_lifetime must be positive: every code lives a while"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"clock_skew": -1}, f"clock_skew {NOT_SECONDS}", id="negative skew"),
        pytest.param({"max_lifetime": 0}, NO_LIFETIME, id="zero lifetime"),
        pytest.param({"max_lifetime": -5}, f"max_lifetime {NOT_SECONDS}", id="negative lifetime"),
        pytest.param({"clock_skew": 1.5}, f"clock_skew {NOT_SECONDS}", id="float skew"),
        pytest.param({"max_lifetime": True}, f"max_lifetime {NOT_SECONDS}", id="bool lifetime"),
    ],
)
def test_policy_values_are_checked(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        TokenPolicy(**values)


def test_default_policy() -> None:
    assert TokenPolicy() == TokenPolicy(clock_skew=60, max_lifetime=360)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TokenPolicy().clock_skew = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("age", "refused"),
    [(0, False), (DEFAULT_MAX_OFFLINE_AGE_S, False), (DEFAULT_MAX_OFFLINE_AGE_S + 1, True)],
    ids=["fresh", "at the limit", "one second over"],
)
def test_offline_age(age: int, refused: bool) -> None:
    check = check_code(token(iat=NOW - age, lifetime=DEFAULT_MAX_LIFETIME_S), FakeView(), now=NOW)
    if not refused:
        check_offline_age(check, max_offline_age=DEFAULT_MAX_OFFLINE_AGE_S)
        return
    too_old = rf"^token is {age} s old \(offline limit 300 s\)$"
    with pytest.raises(VerificationError, match=too_old) as caught:
        check_offline_age(check, max_offline_age=DEFAULT_MAX_OFFLINE_AGE_S)
    assert caught.value.reason is Reason.TOKEN_TOO_OLD


def test_the_gateway_and_the_offline_cli_share_one_offline_age() -> None:
    from gateway.verification import VerifyPolicy
    from hcx.cli import build_parser

    gateway_serve = build_parser().parse_args(["gateway", "serve", "--root-cert", "r.pem"])
    assert VerifyPolicy().max_offline_age == DEFAULT_MAX_OFFLINE_AGE_S == 300
    assert gateway_serve.max_offline_age == DEFAULT_MAX_OFFLINE_AGE_S


def test_every_reason_is_documented_with_its_number() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "verdicts.md").read_text("utf-8")
    for reason in Reason:
        if reason is not Reason.NONE:
            assert f"| {int(reason)} | `{reason.name}` |" in text, reason.name
