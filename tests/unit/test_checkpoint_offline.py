"""``hcx checkpoint verify --offline`` applies the gateway's maximum offline age.

The trust list is faked (its format is tested in tests/unit/trust and over gRPC in
tests/integration/test_registry_trustlist.py); what is tested here is that an offline
checkpoint refuses an old code as the gateway does: INVALID TOKEN_TOO_OLD.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hcx import cmd_checkpoint
from trust.codeformat import CodeClaims, issue_token
from trust.model import Colour
from trust.verify import DEFAULT_MAX_OFFLINE_AGE_S

KEY = ec.generate_private_key(ec.SECP256R1())
KID = bytes(8)


class _Signer(SimpleNamespace):
    pass


class _View:
    def signer(self, kid: bytes) -> Any:
        if kid != KID:
            return None
        return _Signer(
            kid=KID,
            province="330000",
            certificate=None,
            public_key=KEY.public_key(),
            not_before=0.0,
            not_after=4e9,
            revoked_at=None,
            revocation_reason="",
            retired_at=None,
        )

    def province(self, code: str) -> Any:
        return SimpleNamespace(code=code, suspended=False) if code == "330000" else None


class _TrustList(SimpleNamespace):
    def view(self, roots: object) -> _View:
        return _View()


class _Held:
    def __init__(self, path: object) -> None:
        pass

    def get(self) -> Any:
        return 0

    def check(self, *args: object) -> None:
        pass

    def raise_to(self, *args: object) -> None:
        pass


@dataclass
class Offline:
    parser: argparse.ArgumentParser
    trust_list: Path

    def args(self, token: str, *flags: str) -> argparse.Namespace:
        argv = ["verify", "--offline", "--trust-list", str(self.trust_list), token, *flags]
        return self.parser.parse_args(argv)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Offline:
    """The checkpoint commands, with a trust list that verifies and trusts KID."""
    fake = SimpleNamespace(
        HeldRevision=_Held,
        verify=lambda *a, **k: _TrustList(revision=7, next_update=time.time() + 60),
    )
    monkeypatch.setattr(cmd_checkpoint, "trustlist", fake)
    monkeypatch.setattr(cmd_checkpoint, "_roots", lambda args: [])
    (tmp_path / "tl.cbor").write_bytes(b"signed list")
    parser = argparse.ArgumentParser()
    cmd_checkpoint.register(parser)
    return Offline(parser, tmp_path / "tl.cbor")


def _token(age: int) -> str:
    now = int(time.time())
    claims = CodeClaims(
        issuer="330000",
        code_id=bytes(16),
        issued_at=now - age,
        expires_at=now - age + 360,
        colour=Colour.GREEN,
        status_version=1,
        masked_name="张*明",
        id_tail="123X",
    )
    return issue_token(claims, signing_key=KEY, kid=KID)


def test_max_offline_age_defaults_to_the_gateways(offline: Offline) -> None:
    assert offline.args("HCX1:").max_offline_age == DEFAULT_MAX_OFFLINE_AGE_S == 300


@pytest.mark.parametrize(
    ("age", "flags", "expected"),
    [
        pytest.param(10, (), "VALID_OFFLINE GREEN", id="fresh"),
        pytest.param(DEFAULT_MAX_OFFLINE_AGE_S - 5, (), "VALID_OFFLINE GREEN", id="within 300 s"),
        pytest.param(DEFAULT_MAX_OFFLINE_AGE_S + 5, (), "INVALID TOKEN_TOO_OLD", id="over 300 s"),
        pytest.param(90, ("--max-offline-age", "60"), "INVALID TOKEN_TOO_OLD", id="stricter"),
        pytest.param(330, ("--max-offline-age", "340"), "VALID_OFFLINE GREEN", id="laxer"),
    ],
)
def test_offline_verdict_by_age(
    offline: Offline,
    capsys: pytest.CaptureFixture[str],
    age: int,
    flags: tuple[str, ...],
    expected: str,
) -> None:
    code = cmd_checkpoint.verify(offline.args(_token(age), *flags))
    out = capsys.readouterr().out
    assert out.startswith(expected), out
    assert code == (0 if expected.startswith("VALID") else 1)
