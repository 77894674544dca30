"""Issuance and local verification on a real SQLite store in a temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nodes.provincial.checkpoint import LocalVerifier
from nodes.provincial.issuance import Holder, Issuer, with_check_character
from nodes.provincial.stores import SqliteStatusStore, StatusStore, open_status_store
from simulations.registry_builder import RegistryBuilder
from trust import statements
from trust.base45 import b45decode, b45encode
from trust.codeformat import decode_token
from trust.errors import InvalidRequest, NotFound
from trust.model import Colour, Reason, Verdict
from trust.view import TrustView

PROVINCE = "330000"
NOW = 1_800_000_000.0


@pytest.fixture
def registry() -> RegistryBuilder:
    """The national registry as the node's trust list shows it: the province onboarded."""
    built = RegistryBuilder(clock=NOW)
    built.onboard(PROVINCE, "浙江省")
    built.onboard("510000", "四川省")
    return built


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStatusStore]:
    opened = SqliteStatusStore(tmp_path / "status.db")
    yield opened
    opened.close()


HOLDER_KEY = b"\x07" * 32


def make_issuer(registry: RegistryBuilder, store: StatusStore, now: float = NOW) -> Issuer:
    province = registry.provinces[PROVINCE]
    return Issuer(
        province=PROVINCE,
        signing_key=province.dsc_key,
        kid=province.kid,
        holder_key=HOLDER_KEY,
        store=store,
        clock=lambda: now,
    )


def holder(n: int) -> str:
    return with_check_character(f"33010219900101{n:03d}")


def test_issue_gives_a_holder_one_code_id_and_hides_the_id_number(
    registry: RegistryBuilder, store: SqliteStatusStore
) -> None:
    issuer = make_issuer(registry, store)
    first = issuer.issue(id_number=holder(1), full_name="张三明")
    again = issuer.issue(id_number=holder(1).lower(), full_name="张三明")
    assert again.record.code_id == first.record.code_id
    claims = decode_token(first.token).claims
    assert (claims.masked_name, claims.id_tail) == ("张*明", holder(1)[-4:])
    assert claims.expires_at - claims.issued_at == 300
    raw = store.path.read_bytes()
    assert holder(1).encode() not in raw


def test_issue_batch_commits_many_codes_and_refresh_keeps_the_code_id(
    registry: RegistryBuilder, store: SqliteStatusStore
) -> None:
    issuer = make_issuer(registry, store)
    issued = issuer.issue_batch([Holder(holder(n), "李四") for n in range(50)])
    assert len({i.record.code_id for i in issued}) == 50 and store.count() == 50
    refreshed = make_issuer(registry, store, now=NOW + 60).refresh(issued[7].record.code_id)
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
    registry: RegistryBuilder, store: SqliteStatusStore, id_number: str, name: str
) -> None:
    with pytest.raises(InvalidRequest):
        make_issuer(registry, store).issue(id_number=id_number, full_name=name)
    assert store.count() == 0


class HeldList:
    """The node's trust list, as nodes.provincial.trustlist holds it (None: none held)."""

    def __init__(self, view: TrustView | None) -> None:
        self._view = view

    def view(self) -> TrustView | None:
        return self._view


def verifier(
    registry: RegistryBuilder, store: StatusStore, now: float, *, province: str = PROVINCE
) -> LocalVerifier:
    held = HeldList(registry.view())
    return LocalVerifier(province=province, trust=held, store=store, clock=lambda: now)  # type: ignore[arg-type]


def test_own_codes_get_the_live_colour_from_the_store(
    registry: RegistryBuilder, store: SqliteStatusStore
) -> None:
    issued = make_issuer(registry, store).issue(id_number=holder(2), full_name="王五")
    check = verifier(registry, store, NOW + 10)
    first = check.check(issued.token)
    assert first is not None  # answered locally, not forwarded
    assert first.colour is Colour.GREEN
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
    return "HCX1:" + b45encode(zlib.compress(bytes(raw), 0))  # the canonical level: only the
    # signature differs


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
    registry: RegistryBuilder,
    store: SqliteStatusStore,
    mutate: Callable[[str], str],
    at: float,
    reason: Reason,
) -> None:
    issued = make_issuer(registry, store).issue(id_number=holder(3), full_name="赵六")
    verdict = verifier(registry, store, at).check(mutate(issued.token))
    assert verdict is not None and (verdict.verdict, verdict.reason) == (Verdict.INVALID, reason)


def test_unknown_own_code_and_foreign_codes(
    registry: RegistryBuilder, tmp_path: Path, store: SqliteStatusStore
) -> None:
    other_store = open_status_store(str(tmp_path / "other.db"))
    issued = make_issuer(registry, other_store).issue(id_number=holder(4), full_name="钱七")
    verdict = verifier(registry, store, NOW).check(issued.token)
    assert verdict is not None
    assert (verdict.verdict, verdict.reason) == (Verdict.INVALID, Reason.UNKNOWN_CODE)
    foreign = verifier(registry, store, NOW, province="510000")
    assert foreign.check(issued.token) is None  # forwarded to the national gateway
    unlisted = LocalVerifier(province=PROVINCE, trust=HeldList(None), store=store)  # type: ignore[arg-type]
    assert unlisted.check(issued.token) is None  # no trust list held: never answered on less
    other_store.close()


def _retire(r: RegistryBuilder) -> None:
    zj = r.provinces[PROVINCE]
    r.accept(r.sign(statements.Retirement(zj.kid, int(NOW) - 5), zj.ca))


def _province_crl(r: RegistryBuilder) -> None:
    zj = r.provinces[PROVINCE]
    r.accept(r.sign(statements.CrlUpload(zj.crl([zj.dsc.serial_number])), zj.ca))


def _coordinators_revoke(r: RegistryBuilder) -> None:
    kid = r.provinces[PROVINCE].kid
    r.accept(r.sign(statements.DscRevocation(kid, int(NOW) - 5, "key_compromise"), "alice"))


def _suspend(r: RegistryBuilder) -> None:
    r.accept(r.sign(statements.Suspension(PROVINCE, "incident"), "bob"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(_retire, Reason.KEY_RETIRED, id="key retired by the province"),
        pytest.param(_province_crl, Reason.KEY_REVOKED, id="key revoked in the province's CRL"),
        pytest.param(_coordinators_revoke, Reason.KEY_REVOKED, id="key revoked nationally"),
        pytest.param(_suspend, Reason.PROVINCE_SUSPENDED, id="province suspended"),
    ],
)
def test_the_nodes_own_verify_refuses_what_the_gateway_refuses(
    registry: RegistryBuilder,
    store: SqliteStatusStore,
    change: Callable[[RegistryBuilder], None],
    reason: Reason,
) -> None:
    """Regression: a node's own Verify answered VALID for codes of a retired, CRL-revoked or
    nationally revoked key and of a suspended province, which the gateway refused."""
    issued = make_issuer(registry, store).issue(id_number=holder(5), full_name="孙八")
    change(registry)
    verdict = verifier(registry, store, NOW + 1).check(issued.token)
    assert verdict is not None and (verdict.verdict, verdict.reason) == (Verdict.INVALID, reason)
