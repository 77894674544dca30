"""Exporting the verified registry as PEM files: the layout ``openssl verify -crl_check`` reads,
every file holding exactly the certificate or CRL the log verified, and nothing for what the
log refused or never held.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulations.registry_builder import RegistryBuilder
from trust import pki
from trust.export import export_pem
from trust.statements import CrlUpload
from trust.view import TrustView

NOW = int(time.time())  # openssl checks validity against the wall clock
ZJ, SC = "330000", "510000"


@pytest.fixture
def builder() -> RegistryBuilder:
    """Two provinces; 330000 with a second DSC and a CRL revoking its first."""
    b = RegistryBuilder(clock=NOW)
    zj = b.onboard(ZJ, "浙江省")
    b.onboard(SC, "四川省")
    b.new_dsc(zj.ca, ZJ, "dsc-2")
    crl = zj.crl([zj.dsc.serial_number], revoked_at=datetime.fromtimestamp(NOW - 60, tz=UTC))
    b.accept(b.sign(CrlUpload(crl), zj.ca))
    return b


def _dsc_paths(out: Path, builder: RegistryBuilder) -> list[Path]:
    view = builder.view()
    return [out / s.province / "dsc" / f"{s.kid.hex()}.pem" for s in view.signers()]


def test_every_verified_certificate_and_crl_is_written_where_openssl_looks(
    builder: RegistryBuilder, tmp_path: Path
) -> None:
    out = tmp_path / "export" / "pem"  # made, parents too
    view = builder.view()
    written = export_pem(view, out)
    assert written == [
        out / "root.pem",
        out / ZJ / "ca.pem",
        out / ZJ / "crl.pem",
        out / SC / "ca.pem",
        *_dsc_paths(out, builder),
    ]
    assert len(_dsc_paths(out, builder)) == 3
    assert sorted(p for p in out.rglob("*") if p.is_file()) == sorted(written)
    assert pki.load_certificates_pem((out / "root.pem").read_bytes()) == builder.roots
    for code, province in builder.provinces.items():
        assert pki.load_certificate_pem((out / code / "ca.pem").read_bytes()) == (
            province.ca.certificate
        )
    crl = pki.load_crl_pem((out / ZJ / "crl.pem").read_bytes())
    assert crl == view.state.crls[ZJ]
    assert not (out / SC / "crl.pem").exists(), "a province without a CRL has none"
    for signer in view.signers():
        path = out / signer.province / "dsc" / f"{signer.kid.hex()}.pem"
        assert pki.load_certificate_pem(path.read_bytes()) == signer.certificate


def test_an_export_over_an_earlier_one_replaces_its_files(
    builder: RegistryBuilder, tmp_path: Path
) -> None:
    out = tmp_path / "pem"
    first = export_pem(builder.view(), out)
    (out / "root.pem").write_bytes(b"stale")
    again = export_pem(builder.view(), out)
    assert again == first
    assert pki.load_certificates_pem((out / "root.pem").read_bytes()) == builder.roots


def test_a_province_without_signing_certificates_gets_an_empty_dsc_folder(
    tmp_path: Path,
) -> None:
    b = RegistryBuilder(clock=NOW)
    b.onboard(ZJ)
    view = b.view()
    state = view.state.copy()
    state.signing_keys.clear()
    view.install(view.log, state, [])
    written = export_pem(view, tmp_path)
    assert written == [tmp_path / "root.pem", tmp_path / ZJ / "ca.pem"]
    assert (tmp_path / ZJ / "dsc").is_dir() and not any((tmp_path / ZJ / "dsc").iterdir())


def test_every_root_goes_into_root_pem(tmp_path: Path) -> None:
    """Before genesis (and during a root rotation) a view trusts more than one root."""
    roots = [pki.create_root_ca().certificate for _ in range(2)]
    written = export_pem(TrustView(roots=roots), tmp_path)
    assert written == [tmp_path / "root.pem"]
    pem = (tmp_path / "root.pem").read_bytes()
    assert pem == b"".join(pki.certificate_to_pem(root) for root in roots)
    assert pki.load_certificates_pem(pem) == roots


def test_openssl_verifies_the_exported_chain_and_sees_the_crl(
    builder: RegistryBuilder, tmp_path: Path
) -> None:
    from tests.support import require  # a skip locally, a failure in CI (tests/support.py)

    require(shutil.which("openssl"), what="openssl", install="apt-get install openssl")
    export_pem(builder.view(), tmp_path)
    zj = builder.provinces[ZJ]
    revoked = tmp_path / ZJ / "dsc" / f"{zj.kid.hex()}.pem"
    others = [p for p in (tmp_path / ZJ / "dsc").iterdir() if p != revoked]
    assert len(others) == 1

    def verify(dsc: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "verify", "-crl_check", "-purpose", "any",
             "-CAfile", tmp_path / "root.pem", "-untrusted", tmp_path / ZJ / "ca.pem",
             "-CRLfile", tmp_path / ZJ / "crl.pem", dsc],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    refused = verify(revoked)
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr
    accepted = verify(others[0])
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
