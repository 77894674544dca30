"""``hcx checkpoint verify --offline`` applies the gateway's maximum offline age.

The trust list is a real one, signed and folded (tests/registry_builder.py); what is tested
here is that an offline checkpoint refuses an old code as the gateway does: INVALID
TOKEN_TOO_OLD.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hcx import cmd_checkpoint
from tests.registry_builder import RegistryBuilder
from trust import pki, trustlist
from trust.verify import DEFAULT_MAX_OFFLINE_AGE_S


@dataclass
class Offline:
    parser: argparse.ArgumentParser
    trust_list: Path
    root: Path
    registry: RegistryBuilder

    def args(self, token: str, *flags: str) -> argparse.Namespace:
        argv = ["verify", "--offline", "--trust-list", str(self.trust_list),
                "--root", str(self.root), token, *flags]  # fmt: skip
        return self.parser.parse_args(argv)


@pytest.fixture
def offline(tmp_path: Path) -> Offline:
    """The checkpoint commands, with a real signed trust list of a registry that has 330000."""
    registry = RegistryBuilder()
    registry.onboard("330000", "浙江省")
    signed = trustlist.build(registry.view(), registry.trust_list_signer, now=time.time())
    (tmp_path / "tl.cbor").write_bytes(signed)
    (tmp_path / "root.pem").write_bytes(pki.certificate_to_pem(registry.root.certificate))
    parser = argparse.ArgumentParser()
    cmd_checkpoint.register(parser)
    return Offline(parser, tmp_path / "tl.cbor", tmp_path / "root.pem", registry)


def _token(offline: Offline, age: int) -> str:
    return offline.registry.provinces["330000"].token(issued_at=time.time() - age, lifetime=360)


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
    code = cmd_checkpoint.verify(offline.args(_token(offline, age), *flags))
    out = capsys.readouterr().out
    assert out.startswith(expected), out
    assert code == (0 if expected.startswith("VALID") else 1)
