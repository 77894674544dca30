"""A running node picks up a rotated signing key without a restart (nodes/provincial/signing.py).

A real province directory (CA signed by a test root, DSCs made by ``new_signing_certificate``
as ``hcx node keys rotate`` does) and a clock the test moves. The node switches to a new key
only once its verified trust list knows the kid, never signs with a key file that does not
match its certificate, and keeps its key when the files are unreadable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nodes.provincial.keys import ProvinceDir, init_province, new_signing_certificate
from nodes.provincial.signing import MIN_ROTATION_OVERLAP_S, SETTLE_S, SigningKeySource
from trust import pki
from trust.errors import PkiError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def province(tmp_path: Path) -> ProvinceDir:
    directory = ProvinceDir(tmp_path / "330000")
    csr = init_province(directory, province="330000")
    root = pki.create_root_ca()
    ca = pki.sign_provincial_ca(root, csr, province="330000", name="浙江省")
    directory.ca_cert.write_bytes(pki.certificate_to_pem(ca))
    new_signing_certificate(directory, province="330000", name="dsc-1")
    return directory


def rotate(province: ProvinceDir, name: str) -> bytes:
    return pki.kid(new_signing_certificate(province, province="330000", name=name))


def current_kid(province: ProvinceDir) -> bytes:
    return pki.kid(pki.load_certificate_pem(province.dsc_cert.read_bytes()))


def test_a_new_key_is_used_once_the_registry_has_known_it_for_the_settle_time(
    province: ProvinceDir,
) -> None:
    clock, known = Clock(), set[bytes]()
    first = current_kid(province)
    source = SigningKeySource(province, known=known.__contains__, clock=clock)
    assert source.current().kid == first
    second = rotate(province, "dsc-2")
    clock.now += 5
    assert source.current().kid == first  # uploaded, not yet in the trust list
    known.add(second)
    assert source.current().kid == first  # checked less than a second ago
    clock.now += 1
    assert source.current().kid == first  # listed just now: a gateway may not have it yet
    clock.now += SETTLE_S - 1
    assert source.current().kid == first  # listed for less than the settle time
    clock.now += 1
    assert source.current().kid == second
    assert pki.same_public_key(
        source.current().private_key.public_key(),
        pki.load_certificate_pem(province.dsc_cert.read_bytes()).public_key(),
    )


def test_a_key_that_leaves_the_registry_view_starts_its_settle_time_again(
    province: ProvinceDir,
) -> None:
    """Listed, then not (a view rebuilt from a store that had lost it), then listed again: the
    node waits the whole settle time from the second listing, never the sum of the two."""
    clock, known = Clock(), set[bytes]()
    first = current_kid(province)
    source = SigningKeySource(province, known=known.__contains__, clock=clock)
    second = rotate(province, "dsc-2")
    known.add(second)
    clock.now += 1
    assert source.current().kid == first
    known.discard(second)
    clock.now += SETTLE_S
    assert source.current().kid == first
    known.add(second)
    clock.now += 1
    assert source.current().kid == first
    clock.now += SETTLE_S - 1
    assert source.current().kid == first
    clock.now += 1
    assert source.current().kid == second


def test_a_key_that_does_not_match_its_certificate_is_never_used(
    province: ProvinceDir,
) -> None:
    clock = Clock()
    first = current_kid(province)
    source = SigningKeySource(province, settle=0, clock=clock)
    kept_cert = province.dsc_cert.read_bytes()
    second = rotate(province, "dsc-2")
    new_cert = province.dsc_cert.read_bytes()
    province.dsc_cert.write_bytes(kept_cert)  # half-way: the new key, still the old certificate
    clock.now += 2
    assert source.current().kid == first
    province.dsc_cert.write_bytes(new_cert)  # the rest of the rotation arrives
    clock.now += 2
    assert source.current().kid == second


def test_unreadable_key_files_keep_the_current_key(province: ProvinceDir) -> None:
    clock = Clock()
    first = current_kid(province)
    source = SigningKeySource(province, settle=0, clock=clock)
    province.dsc_key.unlink()
    clock.now += 2
    assert source.current().kid == first
    province.dsc_cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage")
    clock.now += 2
    assert source.current().kid == first


def test_a_node_refuses_to_start_on_a_key_that_is_not_its_certificates(
    province: ProvinceDir,
) -> None:
    kept = province.dsc_cert.read_bytes()
    rotate(province, "dsc-2")
    province.dsc_cert.write_bytes(kept)
    with pytest.raises(PkiError, match=r"dsc-key\.pem does not belong to dsc\.pem"):
        SigningKeySource(province)


@pytest.mark.parametrize("overlap", [0, 5, MIN_ROTATION_OVERLAP_S - 1])
def test_a_rotation_with_an_overlap_shorter_than_a_switch_is_refused_before_anything_changes(
    province: ProvinceDir, overlap: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old key would retire while replicas still sign with it (KEY_RETIRED for genuine
    codes): `hcx node keys rotate` refuses, and the key directory is as it was."""
    from hcx.cli import main

    files = sorted(p.name for p in province.root.rglob("*"))
    before = province.dsc_cert.read_bytes(), province.dsc_key.read_bytes()
    argv = ["node", "keys", "rotate", "--province", "330000", "--dir", str(province.root),
            "--name", "dsc-2", "--overlap", str(overlap), "--insecure-dev-only"]  # fmt: skip
    assert main(argv) == 2
    assert "INVALID_REQUEST" in capsys.readouterr().err
    assert (province.dsc_cert.read_bytes(), province.dsc_key.read_bytes()) == before
    assert sorted(p.name for p in province.root.rglob("*")) == files


def _rotate_argv(province: ProvinceDir, *extra: str) -> list[str]:
    return ["node", "keys", "rotate", "--province", "330000", "--dir", str(province.root),
            "--name", "dsc-2", "--insecure-dev-only", *extra]  # fmt: skip


def test_a_refused_upload_leaves_the_key_directory_as_it_was(
    province: ProvinceDir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry refuses (or never answers) the new certificate: a node restarted after
    must still sign with the old key, the one the registry lists, and nothing is retired."""
    import grpc

    from hcx import cmd_keys
    from hcx.cli import main

    class Refused(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.FAILED_PRECONDITION

        def details(self) -> str:
            return "province 330000 is suspended"

        def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
            return ()

    submitted: list[bytes] = []

    def refuse(args: object, statement: bytes) -> object:
        submitted.append(statement)
        raise Refused()

    monkeypatch.setattr(cmd_keys, "submit", refuse)
    files = sorted(p.name for p in province.root.rglob("*"))
    before = province.dsc_cert.read_bytes(), province.dsc_key.read_bytes()
    assert main(_rotate_argv(province)) != 0
    assert len(submitted) == 1  # the upload only: no retirement of the old key
    assert (province.dsc_cert.read_bytes(), province.dsc_key.read_bytes()) == before
    assert sorted(p.name for p in province.root.rglob("*")) == files


def test_a_rotation_installs_the_new_key_only_after_its_upload_and_retires_the_old_one_last(
    province: ProvinceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hcx import cmd_keys
    from hcx.cli import main
    from trust import statements

    old = current_kid(province)
    seen: list[tuple[str, bytes]] = []  # statement kind, dsc.pem's kid when it was submitted

    class Reply:
        effect, index, tree_size, proposal_id, kind = "ok", 1, 1, b"", "upload-dsc"

    def accept(args: object, statement: bytes) -> Reply:
        seen.append((statements.open_statement(statement).statement.kind, current_kid(province)))
        return Reply()

    monkeypatch.setattr(cmd_keys, "submit", accept)
    assert main(_rotate_argv(province, "--overlap", "60")) == 0
    new = current_kid(province)
    assert new != old
    assert seen == [("upload-dsc", old), ("retire-dsc", new)]
    assert (province.root / f"dsc-{old.hex()}.pem").exists()  # the old key archived


def test_retiring_the_key_the_nodes_sign_with_is_refused(
    province: ProvinceDir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hcx import cmd_keys
    from hcx.cli import main

    monkeypatch.setattr(cmd_keys, "submit", lambda args, statement: pytest.fail("submitted"))
    argv = ["node", "keys", "retire", "--dir", str(province.root), "--insecure-dev-only"]
    assert main([*argv, "--kid", current_kid(province).hex()]) == 2
    assert "rotate first" in capsys.readouterr().err
    assert main([*argv, "--kid", "not-hex"]) == 2
    assert "a key id in hex" in capsys.readouterr().err


async def test_an_idle_replica_has_waited_the_settle_time_by_its_next_request(
    province: ProvinceDir,
) -> None:
    """No request for a long while after a rotation: the background watch runs the settle
    time from when the registry listed the key, so the first request after the old key's
    retirement is signed with the new key (a wait started by that request would sign it
    with the retired one: KEY_RETIRED)."""
    import asyncio

    from nodes.tasks import cancel_and_wait

    clock, known = Clock(), set[bytes]()
    first = current_kid(province)
    source = SigningKeySource(province, known=known.__contains__, check_every=0.01, clock=clock)
    watch = asyncio.create_task(source.watch())
    try:
        second = rotate(province, "dsc-2")
        known.add(second)
        clock.now += 1
        await asyncio.sleep(0.1)  # the watch sees it listed
        clock.now += SETTLE_S + 300  # hours of nothing: the old key has retired meanwhile
        await asyncio.sleep(0.1)
        assert source.current().kid == second  # the first request, no wait of its own
        assert first != second
    finally:
        await cancel_and_wait(watch)


def test_a_settle_time_is_not_carried_over_from_an_earlier_listing(
    province: ProvinceDir,
) -> None:
    """The new key was listed once (its wait began), then the files went back to the old key
    and the registry dropped the new one; when both come back the wait starts again."""
    clock, known = Clock(), set[bytes]()
    first = current_kid(province)
    old_files = province.dsc_cert.read_bytes(), province.dsc_key.read_bytes()
    source = SigningKeySource(province, known=known.__contains__, clock=clock)
    second = rotate(province, "dsc-2")
    new_files = province.dsc_cert.read_bytes(), province.dsc_key.read_bytes()
    known.add(second)
    clock.now += 1
    assert source.current().kid == first  # listed: the wait begins
    province.dsc_cert.write_bytes(old_files[0])
    province.dsc_key.write_bytes(old_files[1])
    clock.now += 1
    assert source.current().kid == first  # the files are the old key again
    known.discard(second)
    clock.now += 100
    province.dsc_cert.write_bytes(new_files[0])
    province.dsc_key.write_bytes(new_files[1])
    known.add(second)
    clock.now += 1
    assert source.current().kid == first  # listed again just now: wait again
    clock.now += SETTLE_S
    assert source.current().kid == second


def test_a_node_whose_key_the_registry_refuses_switches_without_waiting(
    province: ProvinceDir,
) -> None:
    """After a compromise the leaked key is revoked as soon as its successor is uploaded:
    every code signed with the leaked key is refused anyway, so the node takes the listed new
    key at its next check instead of signing refused codes for the settle time."""
    clock, known, refused = Clock(), set[bytes](), set[bytes]()
    first = current_kid(province)
    source = SigningKeySource(
        province, known=known.__contains__, refused=refused.__contains__, clock=clock
    )
    second = rotate(province, "dsc-2")
    known.add(second)
    clock.now += 1
    assert source.current().kid == first  # the old key is good: wait
    refused.add(first)  # revoked
    clock.now += 1
    assert source.current().kid == second


def test_what_the_registry_refuses_is_read_from_its_verified_view() -> None:
    from nodes.provincial.signing import registry_refuses
    from simulations.registry_builder import RegistryBuilder
    from trust import statements

    builder = RegistryBuilder()
    zj = builder.onboard("330000")
    now = builder.now
    stranger = pki.kid(builder.issue_dsc(zj.ca, "330000", "never-uploaded")[0])
    retiring, _ = builder.new_dsc(zj.ca, "330000", "retiring")
    builder.accept(builder.sign(statements.Retirement(pki.kid(retiring), now + 60), zj.ca))
    view = builder.view()
    assert not registry_refuses(None, zj.kid, now=now)  # no view yet: nothing known
    assert not registry_refuses(view, zj.kid, now=now)
    assert registry_refuses(view, stranger, now=now)  # not listed: UNKNOWN_KID
    assert not registry_refuses(view, pki.kid(retiring), now=now + 59)
    assert registry_refuses(view, pki.kid(retiring), now=now + 60)
    builder.accept(builder.sign(statements.DscRevocation(zj.kid, now, "key_compromise"), "alice"))
    assert registry_refuses(builder.view(), zj.kid, now=now)
