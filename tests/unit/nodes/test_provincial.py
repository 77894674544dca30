"""Issuance and local verification on a real SQLite store in a temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from nodes.provincial.checkpoint import LocalVerifier, load_own_signers
from nodes.provincial.issuance import Holder, Issuer, with_check_character
from nodes.provincial.keys import ProvinceDir, init_province, new_signing_certificate, write_public
from nodes.provincial.stores import SqliteStatusStore, StatusStore, open_store
from trust import pki
from trust.base45 import b45decode, b45encode
from trust.codeformat import decode_token
from trust.errors import InvalidRequest, NotFound
from trust.model import Colour, Reason, Verdict

PROVINCE = "330000"
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def province_dir(tmp_path_factory: pytest.TempPathFactory) -> ProvinceDir:
    files = ProvinceDir(tmp_path_factory.mktemp("province") / PROVINCE)
    csr = init_province(files, province=PROVINCE)
    root = pki.create_root_ca()
    ca = pki.sign_provincial_ca(root, csr, province=PROVINCE, name="浙江省")
    write_public(files.ca_cert, ca.public_bytes(Encoding.PEM))
    new_signing_certificate(files, province=PROVINCE, name="dsc-1")
    return files


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStatusStore]:
    opened = SqliteStatusStore(tmp_path / "status.db")
    yield opened
    opened.close()


def make_issuer(files: ProvinceDir, store: StatusStore, now: float = NOW) -> Issuer:
    cert = pki.load_certificate_pem(files.dsc_cert.read_bytes())
    return Issuer(
        province=PROVINCE,
        signing_key=pki.load_private_key_pem(files.dsc_key.read_bytes()),
        kid=pki.kid(cert),
        holder_key=files.holder_key.read_bytes(),
        store=store,
        clock=lambda: now,
    )


def holder(n: int) -> str:
    return with_check_character(f"33010219900101{n:03d}")


def test_issue_gives_a_holder_one_code_id_and_hides_the_id_number(
    province_dir: ProvinceDir, store: SqliteStatusStore
) -> None:
    issuer = make_issuer(province_dir, store)
    first = issuer.issue(id_number=holder(1), full_name="张三明")
    again = issuer.issue(id_number=holder(1).lower(), full_name="张三明")
    assert again.record.code_id == first.record.code_id
    claims = decode_token(first.token).claims
    assert (claims.masked_name, claims.id_tail) == ("张*明", holder(1)[-4:])
    assert claims.expires_at - claims.issued_at == 300
    raw = (store.path).read_bytes()
    assert holder(1).encode() not in raw


def test_issue_batch_commits_many_codes_and_refresh_keeps_the_code_id(
    province_dir: ProvinceDir, store: SqliteStatusStore
) -> None:
    issuer = make_issuer(province_dir, store)
    issued = issuer.issue_batch([Holder(holder(n), "李四") for n in range(50)])
    assert len({i.record.code_id for i in issued}) == 50 and store.count() == 50
    refreshed = make_issuer(province_dir, store, now=NOW + 60).refresh(issued[7].record.code_id)
    assert refreshed.record.code_id == issued[7].record.code_id
    assert refreshed.expires_at == issued[7].expires_at + 60
    with pytest.raises(NotFound):
        issuer.refresh(b"\x00" * 16)


@pytest.mark.parametrize(
    ("id_number", "name"),
    [
        pytest.param("33010219900101001", "张三", id="17-characters"),
        pytest.param(holder(1)[:-1] + ("0" if holder(1)[-1] != "0" else "1"), "张三", id="check"),
        pytest.param(holder(1), "", id="empty-name"),
        pytest.param(holder(1), "名" * 65, id="long-name"),
    ],
)
def test_bad_holders_are_refused(
    province_dir: ProvinceDir, store: SqliteStatusStore, id_number: str, name: str
) -> None:
    with pytest.raises(InvalidRequest):
        make_issuer(province_dir, store).issue(id_number=id_number, full_name=name)
    assert store.count() == 0


def verifier(files: ProvinceDir, store: StatusStore, now: float) -> LocalVerifier:
    signers = load_own_signers(files.root, province=PROVINCE)
    return LocalVerifier(province=PROVINCE, signers=signers, store=store, clock=lambda: now)


def test_own_codes_get_the_live_colour_from_the_store(
    province_dir: ProvinceDir, store: SqliteStatusStore
) -> None:
    issued = make_issuer(province_dir, store).issue(id_number=holder(2), full_name="王五")
    check = verifier(province_dir, store, NOW + 10)
    assert check.check(issued.token).colour is Colour.GREEN
    store.set_colour(
        code_id=issued.record.code_id, colour=Colour.RED, reason="case", request_id="x", now=NOW
    )
    verdict = check.check(issued.token)
    assert verdict is not None  # answered locally, not forwarded
    assert (verdict.verdict, verdict.colour, verdict.status_version) == (
        Verdict.VALID,
        Colour.RED,
        2,
    )


def tampered(token: str) -> str:
    """Flip one byte of the signature (the end of the COSE structure) and re-encode."""
    import zlib

    raw = bytearray(zlib.decompress(b45decode(token.removeprefix("HCX1:"))))
    raw[-1] ^= 0x01
    return "HCX1:" + b45encode(zlib.compress(bytes(raw)))


@pytest.mark.parametrize(
    ("mutate", "at", "reason"),
    [
        pytest.param(lambda t: t, NOW + 301, Reason.EXPIRED, id="expired"),
        pytest.param(lambda t: t, NOW - 3600, Reason.NOT_YET_VALID, id="from-the-future"),
        pytest.param(tampered, NOW + 1, Reason.BAD_SIGNATURE, id="bad-signature"),
        pytest.param(lambda t: "HCX1:not base45!", NOW, Reason.BAD_ENCODING, id="garbage"),
    ],
)
def test_bad_own_codes_are_invalid_locally(
    province_dir: ProvinceDir,
    store: SqliteStatusStore,
    mutate: Callable[[str], str],
    at: float,
    reason: Reason,
) -> None:
    issued = make_issuer(province_dir, store).issue(id_number=holder(3), full_name="赵六")
    verdict = verifier(province_dir, store, at).check(mutate(issued.token))
    assert verdict is not None and (verdict.verdict, verdict.reason) == (Verdict.INVALID, reason)


def test_unknown_own_code_and_foreign_codes(
    province_dir: ProvinceDir, tmp_path: Path, store: SqliteStatusStore
) -> None:
    other_store = open_store(str(tmp_path / "other.db"))
    issued = make_issuer(province_dir, other_store).issue(id_number=holder(4), full_name="钱七")
    verdict = verifier(province_dir, store, NOW).check(issued.token)
    assert verdict is not None
    assert (verdict.verdict, verdict.reason) == (Verdict.INVALID, Reason.UNKNOWN_CODE)
    foreign = LocalVerifier(province="510000", signers={}, store=store, clock=lambda: NOW)
    assert foreign.check(issued.token) is None  # forwarded to the national gateway
    other_store.close()
