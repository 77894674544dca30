"""Onboarding writes keys and certificates whole or not at all, and never over what exists.

Each command of docs/operations.md section 1 is run here through the real CLI, interrupted at
its worst moment (a write that fails part-way), then run again with the same arguments: the
rerun completes it, and an existing output is refused before anything is written (Conflict:
ALREADY_EXISTS), leaving the existing files byte for byte as they were.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hcx.cli import build_parser
from nodes.provincial.keys import ProvinceDir
from trust import files, pki
from trust.errors import Conflict
from trust.files import new_directory, write_directory, write_new


def hcx(*argv: str) -> None:
    """Run one hcx command in this process, as the shell would (its errors propagate)."""
    args = build_parser().parse_args(list(argv))
    assert args.handler(args) == 0


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


class Interrupted(Exception):
    pass


def fail_on_write(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """Let ``after`` synced writes through, then fail the next one (a full disk, a kill)."""
    real = files._write_synced
    count = {"n": 0}

    def flaky(path: Path, data: bytes, mode: int) -> None:
        count["n"] += 1
        if count["n"] > after:
            raise Interrupted(f"write of {path.name} failed")
        real(path, data, mode)

    monkeypatch.setattr(files, "_write_synced", flaky)


# --- the primitives ---------------------------------------------------------------------


def test_write_new_never_replaces_a_file(tmp_path: Path) -> None:
    target = tmp_path / "ca.pem"
    write_new(target, b"first")
    with pytest.raises(Conflict, match=r"ca\.pem already exists: refusing to overwrite it"):
        write_new(target, b"second")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["ca.pem"]  # no temporary file left


def test_write_new_makes_a_secret_0600_from_the_start(tmp_path: Path) -> None:
    write_new(tmp_path / "key.pem", b"k", mode=files.SECRET)
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600


def test_a_directory_appears_whole(tmp_path: Path) -> None:
    out = tmp_path / "tls" / "node-1"
    write_directory(out, {"key.pem": (b"k", files.SECRET), "cert.pem": (b"c", files.PUBLIC)})
    assert snapshot(out) == {"cert.pem": b"c", "key.pem": b"k"}
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600


def test_an_empty_directory_is_filled(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    write_directory(out, {"a": (b"1", files.PUBLIC)})
    assert snapshot(out) == {"a": b"1"}


def test_a_directory_that_is_not_empty_is_refused_before_any_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "identity"
    out.mkdir()
    (out / "key.pem").write_bytes(b"the real key")
    fail_on_write(monkeypatch, after=0)  # any write would fail the test with Interrupted
    with pytest.raises(Conflict, match="identity already exists and is not empty"):
        write_directory(out, {"key.pem": (b"another", files.SECRET)})
    assert snapshot(out) == {"key.pem": b"the real key"}


def test_an_interrupted_directory_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_on_write(monkeypatch, after=1)
    with pytest.raises(Interrupted):
        write_directory(tmp_path / "out", {"a": (b"1", 0o644), "b": (b"2", 0o644)})
    assert list(tmp_path.iterdir()) == []  # neither the directory nor its temporary twin


def test_a_directory_built_in_the_body_appears_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "national"
    with pytest.raises(Interrupted), new_directory(out) as work:
        (work / "root.pem").write_bytes(b"r")
        raise Interrupted("killed")
    assert list(tmp_path.iterdir()) == []


# --- the commands -------------------------------------------------------------------------


@pytest.fixture
def national(tmp_path: Path) -> Path:
    hcx("registry", "init", "--dir", str(tmp_path / "national"))
    return tmp_path / "national"


def test_registry_init_interrupted_runs_again_from_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "national"
    fail_on_write(monkeypatch, after=3)  # the 4th file: the log signer's certificate
    with pytest.raises(Interrupted):
        hcx("registry", "init", "--dir", str(out))
    assert not out.exists()  # no root key without its genesis: nothing at all
    monkeypatch.undo()
    hcx("registry", "init", "--dir", str(out))
    assert {"root-key.pem", "root.pem", "genesis.cbor"} <= {p.name for p in out.iterdir()}
    before = snapshot(out)
    with pytest.raises(Conflict, match=r"root-key\.pem already exists"):
        hcx("registry", "init", "--dir", str(out))
    assert snapshot(out) == before


def test_province_init_resumes_and_never_replaces_its_ca_key(tmp_path: Path) -> None:
    province = ProvinceDir(tmp_path / "440000")
    hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))
    ca_key = province.ca_key.read_bytes()
    csr = province.ca_csr.read_bytes()
    with pytest.raises(Conflict, match="already initialised"):
        hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))
    assert (province.ca_key.read_bytes(), province.ca_csr.read_bytes()) == (ca_key, csr)
    # Stopped after the CA key (the CSR and the holder key never written): the same command
    # finishes the job with the same key.
    province.ca_csr.unlink()
    province.holder_key.unlink()
    hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))
    assert province.ca_key.read_bytes() == ca_key
    request = pki.load_csr_pem(province.ca_csr.read_bytes())
    key = pki.load_private_key_pem(ca_key)
    assert request.public_key() == key.public_key()
    assert len(province.holder_key.read_bytes()) == 32


def test_a_csr_for_another_key_is_refused(tmp_path: Path) -> None:
    province = ProvinceDir(tmp_path / "440000")
    hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))
    other = ProvinceDir(tmp_path / "other")
    hcx("node", "keys", "init", "--province", "440000", "--dir", str(other.root))
    province.ca_csr.write_bytes(other.ca_csr.read_bytes())
    province.holder_key.unlink()
    with pytest.raises(Conflict, match="is not for the CA key"):
        hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))


def test_sign_ca_refuses_before_writing_and_resumes(national: Path, tmp_path: Path) -> None:
    province = ProvinceDir(tmp_path / "srv" / "440000")
    hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))
    sign = ("registry", "sign-ca", "--root-dir", str(national), "--province", "440000",
            "--name", "广东省", "--csr", str(province.ca_csr))  # fmt: skip
    out = tmp_path / "new" / "dir" / "ca.pem"  # a directory that does not exist yet
    # Interrupted after the root was written and before the CA: the rerun completes it.
    out.parent.mkdir(parents=True)
    out.with_name("root.pem").write_bytes((national / "root.pem").read_bytes())
    hcx(*sign, "--out", str(out))
    ca = pki.load_certificate_pem(out.read_bytes())
    assert ca.public_key() == pki.load_csr_pem(province.ca_csr.read_bytes()).public_key()
    before = snapshot(out.parent)
    with pytest.raises(Conflict, match=r"ca\.pem already exists"):
        hcx(*sign, "--out", str(out))
    assert snapshot(out.parent) == before
    # A root.pem of another federation next to the output is never overwritten.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "root.pem").write_bytes(b"another root")
    with pytest.raises(Conflict, match="holds another root"):
        hcx(*sign, "--out", str(elsewhere / "ca.pem"))
    assert snapshot(elsewhere) == {"root.pem": b"another root"}


def test_an_identity_is_issued_once(national: Path, tmp_path: Path) -> None:
    province = ProvinceDir(tmp_path / "440000")
    hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))
    hcx("registry", "sign-ca", "--root-dir", str(national), "--province", "440000",
        "--name", "广东省", "--csr", str(province.ca_csr),
        "--out", str(province.ca_cert))  # fmt: skip
    out = province.root / "tls" / "node-1"
    issue = ("node", "keys", "issue-cert", "--kind", "node", "--name", "node-1",
             "--dir", str(province.root), "--out", str(out))  # fmt: skip
    hcx(*issue)
    before = snapshot(province.root / "tls")
    with pytest.raises(Conflict, match="node-1 already exists and is not empty"):
        hcx(*issue)
    assert snapshot(province.root / "tls") == before
    key = province.root / "tls" / "node-1" / "key.pem"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_issue_cert_prints_the_serial_to_revoke_it_by(
    national: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gateway-3"
    hcx("registry", "issue-cert", "--kind", "gateway", "--name", "gateway-3",
        "--root-dir", str(national), "--out", str(out))  # fmt: skip
    serial = pki.load_certificates_pem((out / "cert.pem").read_bytes())[0].serial_number
    assert f"(serial 0x{serial:x})" in capsys.readouterr().out


def test_a_lost_holder_key_is_never_made_again(national: Path, tmp_path: Path) -> None:
    """Past initialisation a missing file is lost, not unfinished: a new holder key would give
    every holder a new code id (and the default colour), so init refuses and says why."""
    province = ProvinceDir(tmp_path / "440000")
    hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))
    hcx("registry", "sign-ca", "--root-dir", str(national), "--province", "440000",
        "--name", "广东省", "--csr", str(province.ca_csr),
        "--out", str(province.ca_cert))  # fmt: skip
    province.holder_key.unlink()
    with pytest.raises(Conflict, match=r"already holds ca\.pem but not holder-key\.bin: restore"):
        hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))
    assert not province.holder_key.exists()


def test_a_csr_without_its_key_or_of_another_province_is_refused(tmp_path: Path) -> None:
    province = ProvinceDir(tmp_path / "440000")
    hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))
    province.holder_key.unlink()
    with pytest.raises(Conflict, match="was made for another province than 510000"):
        hcx("node", "keys", "init", "--province", "510000", "--dir", str(province.root))
    key = province.ca_key.read_bytes()
    province.ca_key.unlink()
    with pytest.raises(Conflict, match="exists without its CA key"):
        hcx("node", "keys", "init", "--province", "440000", "--dir", str(province.root))
    assert not province.ca_key.exists() and key  # nothing new was written


def test_the_current_directory_is_a_valid_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    hcx("registry", "init", "--dir", ".")
    assert (tmp_path / "root-key.pem").exists() and (tmp_path / "genesis.cbor").exists()
