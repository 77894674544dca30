"""Registry writes as a gateway makes them, on the embedded store (a SQLite file, no server).

Statements: who may submit which kind (the authority table's writers, an operator only for its
own province), a statement the authority table refuses is never appended, a gateway without the
log key or with an inconsistent log appends nothing, and two gateways appending at once cannot
fork the log (the loser catches up and retries; an append that committed although the store
answered Conflict is answered once, from the log). Node routes: a node registers only as
itself, for an onboarded province, under a lease whose handle only its owner may use; a new
registration of the node replaces the old one, whose handle dies with its lease.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simulations.registry_builder import RegistryBuilder
from trust.errors import (
    Conflict,
    HcxError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
)
from trust.kv import Write
from trust.log import HEAD_KEY, Leaf, LogInconsistent, LogWriter, leaf_key
from trust.model import Reason
from trust.reader import LogReader
from trust.registry import (
    MAX_APPEND_ATTEMPTS,
    MAX_NODE_TTL_S,
    MIN_NODE_TTL_S,
    RefusedStatement,
    Registry,
    Submitter,
)
from trust.routes import (
    HANDLE_BYTES,
    MAX_ENDPOINT_CHARS,
    NodeRoute,
    decode_handle,
    decode_route,
    encode_handle,
    encode_route,
    handle_key,
    route_key,
)
from trust.statements import (
    CrlUpload,
    DscRevocation,
    DscUpload,
    Retirement,
    Suspension,
)
from trust.stores.embedded import EmbeddedStore
from trust.view import TrustView

ZJ, SC = "330000", "510000"
COORDINATOR = Submitter("spiffe://hcx/national/coordinator/alice", "coordinator")
ZJ_OPERATOR = Submitter(f"spiffe://hcx/province/{ZJ}/operator/op", "operator", ZJ)
SC_OPERATOR = Submitter(f"spiffe://hcx/province/{SC}/operator/op", "operator", SC)
ZJ_NODE = f"spiffe://hcx/province/{ZJ}/node/n1"


class Clock:
    """The store's and the gateway's clock, moved by the tests (never the machine's)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FlakyStore(EmbeddedStore):
    """The embedded store, answering Conflict to the log's appends as a scripted cluster
    would: ``conflicts`` times without writing, or after writing (a leader changed while the
    append committed)."""

    def __init__(self, path: Path, *, clock: Clock) -> None:
        super().__init__(path, clock=clock)
        self.conflicts = 0
        self.commit_then_conflict = False
        self.appends = 0

    async def transact(self, writes: Sequence[Write]) -> int:
        if any(w.key == HEAD_KEY for w in writes):
            self.appends += 1
            if self.commit_then_conflict:
                self.commit_then_conflict = False
                await super().transact(writes)
                raise Conflict("leader changed")
            if self.conflicts:
                self.conflicts -= 1
                raise Conflict("log/head changed concurrently")
        return await super().transact(writes)


@dataclass
class Gateway:
    """One gateway's registry over a store: its view, reader and what it told its feed."""

    builder: RegistryBuilder
    store: FlakyStore
    view: TrustView
    reader: LogReader
    registry: Registry
    clock: Clock
    changes: list[int] = field(default_factory=list)
    refreshes: list[int] = field(default_factory=list)

    async def stored(self) -> dict[str, bytes]:
        return {e.key: e.value for e in (await self.store.read_prefix("")).entries}


async def _gateway(
    builder: RegistryBuilder, store: FlakyStore, clock: Clock, *, log_key: bool = True
) -> Gateway:
    view = TrustView(roots=builder.roots, clock=clock)
    reader = LogReader(view)
    assert reader.load(await store.read_prefix(""))
    changes: list[int] = []
    refreshes: list[int] = []

    async def refresh() -> None:
        refreshes.append(view.revision)
        reader.load(await store.read_prefix(""))

    writer = LogWriter(store, builder.log_signer, clock=clock) if log_key else None
    registry = Registry(
        store=store, view=view, reader=reader, writer=writer, refresh=refresh,
        changed=lambda: changes.append(view.revision), clock=clock,
    )  # fmt: skip
    return Gateway(builder, store, view, reader, registry, clock, changes, refreshes)


@pytest.fixture
def builder() -> RegistryBuilder:
    world = RegistryBuilder()  # the clock of every statement below: builder.now
    world.onboard(ZJ, "浙江省")
    world.onboard(SC, "四川省")
    return world


@pytest.fixture
async def gateway(builder: RegistryBuilder, tmp_path: Path) -> Gateway:
    clock = Clock(builder.now + 1)
    store = FlakyStore(tmp_path / "registry.db", clock=clock)
    await builder.write_to(store)
    store.appends = 0  # count the gateway's own appends only
    return await _gateway(builder, store, clock)


def _suspension(builder: RegistryBuilder, province: str = SC) -> bytes:
    return builder.sign(Suspension(province, "incident"), "alice")


def _new_dsc(builder: RegistryBuilder, code: str) -> DscUpload:
    return DscUpload(builder.issue_dsc(builder.provinces[code].ca, code, "dsc-2")[0])


# -- statements --------------------------------------------------------------------------------
async def test_an_accepted_statement_is_the_next_leaf(gateway: Gateway) -> None:
    """The leaf names the verified submitter and the gateway's time; the view and the feed
    see it at once."""
    size = gateway.view.revision
    statement = _suspension(gateway.builder)
    decision = await gateway.registry.submit(statement, submitter=COORDINATOR)
    assert (decision.accepted, decision.index, decision.kind) == (True, size, "suspend")
    assert decision.effect == f"province {SC} suspended by alice: incident"
    leaf = Leaf.decode((await gateway.stored())[leaf_key(size)])
    assert (leaf.statement, leaf.actor, leaf.logged_at) == (statement, COORDINATOR.spiffe_id,
                                                            gateway.builder.now + 1)  # fmt: skip
    assert gateway.view.revision == size + 1
    assert gateway.view.province(SC).suspended  # type: ignore[union-attr]
    assert gateway.changes == [size + 1]
    assert gateway.refreshes == []


async def test_an_accepted_statement_is_logged_for_the_operator(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    size = gateway.view.revision
    with caplog.at_level(logging.INFO, logger="trust.registry"):
        await gateway.registry.submit(_suspension(gateway.builder), submitter=COORDINATOR)
    [record] = [r for r in caplog.records if r.name == "trust.registry"]
    assert record.getMessage() == "registry change"
    assert (record.index, record.kind, record.actor) == (  # type: ignore[attr-defined]
        size,
        "suspend",
        COORDINATOR.spiffe_id,
    )


def _upload(b: RegistryBuilder) -> bytes:
    return b.sign(_new_dsc(b, ZJ), b.provinces[ZJ].ca)


def _retire(b: RegistryBuilder) -> bytes:
    return b.sign(Retirement(b.provinces[ZJ].kid, b.now + 60), b.provinces[ZJ].ca)


def _crl(b: RegistryBuilder) -> bytes:
    return b.sign(CrlUpload(b.provinces[ZJ].crl([])), b.provinces[ZJ].ca)


def _revoke(b: RegistryBuilder) -> bytes:
    return b.sign(DscRevocation(b.provinces[ZJ].kid, b.now, "key_compromise"), "alice")


WRITERS = [
    pytest.param(_suspension, SC_OPERATOR, PermissionDenied, Reason.WRONG_ROLE,
                 "^a operator may not submit suspend statements$",
                 id="an operator orders a suspension"),
    pytest.param(_revoke, ZJ_OPERATOR, PermissionDenied, Reason.WRONG_ROLE,
                 "^a operator may not submit revoke-dsc statements$",
                 id="an operator orders a national revocation"),
    pytest.param(_upload, COORDINATOR, PermissionDenied, Reason.WRONG_ROLE,
                 "^a coordinator may not submit upload-dsc statements$",
                 id="a coordinator submits a province's upload"),
    pytest.param(_suspension, Submitter(ZJ_NODE, "node", ZJ), PermissionDenied,
                 Reason.WRONG_ROLE, "^a node may not submit suspend statements$",
                 id="a node submits a statement"),
    pytest.param(_suspension, Submitter.development("127.0.0.1:5555"), PermissionDenied,
                 Reason.WRONG_ROLE, "^a none may not submit suspend statements$",
                 id="a plain-text development caller"),
    pytest.param(_upload, SC_OPERATOR, PermissionDenied, Reason.WRONG_PROVINCE,
                 f"^{SC_OPERATOR.spiffe_id} may not submit for province {ZJ}$",
                 id="an operator uploads another province's DSC"),
    pytest.param(_retire, SC_OPERATOR, PermissionDenied, Reason.WRONG_PROVINCE,
                 f"^{SC_OPERATOR.spiffe_id} may not submit for province {ZJ}$",
                 id="an operator retires another province's DSC"),
    pytest.param(_crl, SC_OPERATOR, PermissionDenied, Reason.WRONG_PROVINCE,
                 f"^{SC_OPERATOR.spiffe_id} may not submit for province {ZJ}$",
                 id="an operator submits another province's CRL"),
    pytest.param(_upload, Submitter(ZJ_OPERATOR.spiffe_id, "operator", None), PermissionDenied,
                 Reason.WRONG_PROVINCE, f"may not submit for province {ZJ}$",
                 id="an operator without a province"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "submitter", "error", "reason", "match"), WRITERS)
async def test_only_the_tables_writers_may_submit(
    gateway: Gateway,
    make: Any,
    submitter: Submitter,
    error: type[HcxError],
    reason: Reason,
    match: str,
) -> None:
    before = await gateway.stored()
    with pytest.raises(error, match=match) as caught:
        await gateway.registry.submit(make(gateway.builder), submitter=submitter)
    assert caught.value.reason is reason
    assert await gateway.stored() == before
    assert gateway.changes == []


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_upload, id="its DSC"),
        pytest.param(_retire, id="a retirement of its DSC"),
        pytest.param(_crl, id="its CRL"),
    ],
)
async def test_an_operator_submits_for_its_own_province(gateway: Gateway, make: Any) -> None:
    decision = await gateway.registry.submit(make(gateway.builder), submitter=ZJ_OPERATOR)
    assert decision.accepted
    assert decision.province == ZJ
    assert gateway.view.revision == decision.index + 1


async def test_an_operators_retirement_of_an_unknown_kid_is_refused(gateway: Gateway) -> None:
    """The province of a kid nobody uploaded is nobody's: no operator may retire it."""
    b = gateway.builder
    statement = b.sign(Retirement(b"\x01" * 8, b.now), b.provinces[ZJ].ca)
    with pytest.raises(PermissionDenied, match=r"may not submit for province None$"):
        await gateway.registry.submit(statement, submitter=ZJ_OPERATOR)


async def test_a_refused_statement_is_never_appended(gateway: Gateway) -> None:
    """The dry run refuses it with the authority table's reason and message."""
    b = gateway.builder
    statement = b.sign(Suspension("460000", "not onboarded"), "alice")
    before = await gateway.stored()
    with pytest.raises(RefusedStatement, match=r"^refused: province 460000 is not onboarded$") as e:
        await gateway.registry.submit(statement, submitter=COORDINATOR)
    assert e.value.reason is Reason.UNKNOWN_PROVINCE
    assert await gateway.stored() == before
    assert gateway.view.state.refused == 0  # the dry run ran on a copy


async def test_a_replayed_statement_is_refused(gateway: Gateway) -> None:
    statement = _suspension(gateway.builder)
    await gateway.registry.submit(statement, submitter=COORDINATOR)
    with pytest.raises(RefusedStatement) as caught:
        await gateway.registry.submit(statement, submitter=COORDINATOR)
    assert caught.value.reason is Reason.REPLAYED


async def test_a_gateway_without_the_log_key_appends_nothing(gateway: Gateway) -> None:
    reader = await _gateway(gateway.builder, gateway.store, gateway.clock, log_key=False)
    with pytest.raises(InvalidRequest, match=r"^this gateway holds no log key: submit to a "):
        await reader.registry.submit(_suspension(gateway.builder), submitter=COORDINATOR)
    assert gateway.store.appends == 0


async def test_an_inconsistent_log_refuses_writes(gateway: Gateway) -> None:
    gateway.reader.inconsistent = LogInconsistent("leaf 3 is missing from the store")
    with pytest.raises(LogInconsistent, match=r"^registry writes are refused: leaf 3 is missing"):
        await gateway.registry.submit(_suspension(gateway.builder), submitter=COORDINATOR)
    assert gateway.store.appends == 0


async def test_two_gateways_appending_at_once_do_not_fork(gateway: Gateway) -> None:
    """The second gateway's view is one leaf behind: its append conflicts, it reads the
    store again and appends its statement after the other's."""
    other = await _gateway(gateway.builder, gateway.store, gateway.clock)
    size = gateway.view.revision
    first = await other.registry.submit(_suspension(gateway.builder, ZJ), submitter=COORDINATOR)
    second = await gateway.registry.submit(_suspension(gateway.builder), submitter=COORDINATOR)
    assert (first.index, second.index) == (size, size + 1)
    assert gateway.refreshes == [size]
    assert gateway.view.revision == size + 2
    assert gateway.view.province(ZJ).suspended  # type: ignore[union-attr]
    stored = await gateway.stored()
    assert Leaf.decode(stored[leaf_key(size + 1)]).statement == _last_statement(gateway)


def _last_statement(gateway: Gateway) -> bytes:
    return gateway.view.log.leaves[-1].statement


async def test_a_statement_that_became_invalid_meanwhile_is_refused_on_retry(
    gateway: Gateway,
) -> None:
    """After the conflict the statement is judged again on the new state."""
    other = await _gateway(gateway.builder, gateway.store, gateway.clock)
    b = gateway.builder
    serial = b.coordinators["alice"].certificate.serial_number
    from trust.statements import CertRevocation

    revoke_alice = b.sign(CertRevocation("root", serial, b.now, "key_compromise"), "bob")
    await other.registry.submit(revoke_alice, submitter=COORDINATOR)
    with pytest.raises(RefusedStatement) as caught:
        await gateway.registry.submit(_suspension(b), submitter=COORDINATOR)
    assert caught.value.reason is Reason.SIGNER_REVOKED
    assert gateway.refreshes == [gateway.view.revision - 1]


async def test_an_append_that_committed_despite_a_conflict_is_answered_once(
    gateway: Gateway,
) -> None:
    """A compare-and-put retried after a leader change reports Conflict although it
    committed: the gateway finds its statement in the log and appends nothing twice."""
    size = gateway.view.revision
    gateway.store.commit_then_conflict = True
    statement = _suspension(gateway.builder)
    decision = await gateway.registry.submit(statement, submitter=COORDINATOR)
    assert (decision.accepted, decision.index, decision.kind) == (True, size, "suspend")
    assert decision.effect == f"province {SC} suspended by alice: incident"
    assert gateway.store.appends == 1
    stored = await gateway.stored()
    assert leaf_key(size + 1) not in stored
    assert Leaf.decode(stored[leaf_key(size)]).statement == statement


async def test_a_log_too_contended_to_append_is_unavailable(gateway: Gateway) -> None:
    gateway.store.conflicts = MAX_APPEND_ATTEMPTS + 5
    with pytest.raises(StoreUnavailable, match=r"^the registry log is too contended to append"):
        await gateway.registry.submit(_suspension(gateway.builder), submitter=COORDINATOR)
    assert gateway.store.appends == MAX_APPEND_ATTEMPTS == 10
    assert len(gateway.refreshes) == MAX_APPEND_ATTEMPTS


async def test_the_last_attempt_may_still_append(gateway: Gateway) -> None:
    gateway.store.conflicts = MAX_APPEND_ATTEMPTS - 1
    decision = await gateway.registry.submit(_suspension(gateway.builder), submitter=COORDINATOR)
    assert decision.accepted
    assert gateway.store.appends == MAX_APPEND_ATTEMPTS


async def test_undecodable_statement_is_refused_before_anything(gateway: Gateway) -> None:
    from trust.errors import DecodeError

    with pytest.raises(DecodeError):
        await gateway.registry.submit(b"\x00not a statement", submitter=COORDINATOR)
    assert gateway.store.appends == 0


# -- node routes -------------------------------------------------------------------------------
async def _register(gateway: Gateway, *, ttl: int = 10, node_id: str = "n1") -> tuple[bytes, int]:
    return await gateway.registry.register_node(
        owner=f"spiffe://hcx/province/{ZJ}/node/{node_id}", province=ZJ, node_id=node_id,
        endpoint="127.0.0.1:7001", ttl_seconds=ttl,
    )  # fmt: skip


async def test_a_registration_writes_a_route_and_a_handle_under_one_lease(
    gateway: Gateway,
) -> None:
    handle, ttl = await _register(gateway)
    assert (len(handle), ttl) == (HANDLE_BYTES, 10)
    stored = await gateway.stored()
    route = decode_route(route_key(ZJ, "n1"), stored[route_key(ZJ, "n1")])
    assert (route.endpoint, route.owner) == ("127.0.0.1:7001", ZJ_NODE)
    assert decode_handle(stored[handle_key(handle)]) == (route.key, route.lease)
    assert await gateway.registry.keep_alive(owner=ZJ_NODE, handle=handle) == 10
    gateway.clock.now += 11  # no keep-alive for a whole TTL: both vanish together
    assert await gateway.store.get(route.key) is None
    assert await gateway.store.get(handle_key(handle)) is None


@pytest.mark.parametrize(
    ("asked", "granted"),
    [
        pytest.param(0, 10, id="unset: the default"),
        pytest.param(1, MIN_NODE_TTL_S, id="below the minimum"),
        pytest.param(2, 2, id="the minimum"),
        pytest.param(30, 30, id="within bounds"),
        pytest.param(60, 60, id="the maximum"),
        pytest.param(3600, MAX_NODE_TTL_S, id="above the maximum"),
    ],
)
async def test_a_registrations_ttl_is_bounded(gateway: Gateway, asked: int, granted: int) -> None:
    handle, ttl = await _register(gateway, ttl=asked)
    assert ttl == granted
    assert await gateway.registry.keep_alive(owner=ZJ_NODE, handle=handle) == granted
    assert (MIN_NODE_TTL_S, MAX_NODE_TTL_S) == (2, 60)


async def test_a_new_registration_replaces_the_old_one(gateway: Gateway) -> None:
    old, _ = await _register(gateway)
    new, _ = await _register(gateway)
    with pytest.raises(NotFound, match=r"^no such registration \(expired or replaced\)$") as e:
        await gateway.registry.keep_alive(owner=ZJ_NODE, handle=old)
    assert e.value.reason is Reason.UNKNOWN_LEASE
    assert await gateway.store.get(handle_key(old)) is None  # revoked with its lease
    assert await gateway.registry.keep_alive(owner=ZJ_NODE, handle=new) == 10


async def test_replacing_a_registration_whose_lease_expired(gateway: Gateway) -> None:
    """The old route is still stored (its lease ran out between the read and the revoke, or
    it was stored without one): the new registration goes ahead."""
    stale = NodeRoute(ZJ, "n1", "127.0.0.1:7000", ZJ_NODE, lease=987654)
    await gateway.store.put(stale.key, encode_route(stale))
    handle, _ = await _register(gateway)
    assert await gateway.registry.keep_alive(owner=ZJ_NODE, handle=handle) == 10


async def test_replacing_a_value_that_is_not_a_route(gateway: Gateway) -> None:
    await gateway.store.put(route_key(ZJ, "n1"), b"garbage")
    handle, _ = await _register(gateway)
    stored = await gateway.stored()
    assert decode_route(route_key(ZJ, "n1"), stored[route_key(ZJ, "n1")]).owner == ZJ_NODE
    assert await gateway.registry.keep_alive(owner=ZJ_NODE, handle=handle) == 10


async def test_a_new_registration_leaves_other_nodes_alone(gateway: Gateway) -> None:
    other, _ = await _register(gateway, node_id="n2")
    await _register(gateway)
    await _register(gateway)
    assert await gateway.registry.keep_alive(owner=f"{ZJ_NODE[:-2]}n2", handle=other) == 10


async def test_a_handle_already_taken_is_never_overwritten(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two registrations that drew the same handle (128 random bits; forced here): the second
    fails as a whole, and the first keeps its handle and its route."""
    monkeypatch.setattr("trust.registry.secrets.token_bytes", lambda n: b"\x05" * n)
    handle, _ = await _register(gateway)
    with pytest.raises(Conflict):
        await _register(gateway, node_id="n2")
    assert await gateway.store.get(route_key(ZJ, "n2")) is None
    assert await gateway.registry.keep_alive(owner=ZJ_NODE, handle=handle) == 10
    with pytest.raises(PermissionDenied):
        await gateway.registry.keep_alive(owner=f"{ZJ_NODE[:-2]}n2", handle=handle)


REGISTRATIONS = [
    pytest.param(dict(province="33000"), NotFound, Reason.UNKNOWN_PROVINCE,
                 "^province '33000' is not onboarded$", id="not a province code"),
    pytest.param(dict(province="460000"), NotFound, Reason.UNKNOWN_PROVINCE,
                 "^province '460000' is not onboarded$", id="a province not onboarded"),
    pytest.param(dict(node_id="-n1"), InvalidRequest, Reason.INVALID_REQUEST,
                 r"^bad node id '-n1' \(a DNS label\)$", id="not a node id"),
    pytest.param(dict(endpoint=""), InvalidRequest, Reason.INVALID_REQUEST, "^bad endpoint$",
                 id="empty endpoint"),
    pytest.param(dict(endpoint="h" * (MAX_ENDPOINT_CHARS + 1)), InvalidRequest,
                 Reason.INVALID_REQUEST, "^bad endpoint$", id="endpoint too long"),
    pytest.param(dict(endpoint="127.0.0.1:7001\n"), InvalidRequest, Reason.INVALID_REQUEST,
                 "^bad endpoint$", id="endpoint not printable"),
    pytest.param(dict(owner="spiffe://hcx/province/330000/node/n2"), PermissionDenied,
                 Reason.LEASE_NOT_YOURS,
                 "^spiffe://hcx/province/330000/node/n2 may register only as itself$",
                 id="another node of the province"),
    pytest.param(dict(owner="spiffe://hcx/province/510000/node/n1"), PermissionDenied,
                 Reason.LEASE_NOT_YOURS, "may register only as itself$",
                 id="the same node id of another province"),
    pytest.param(dict(owner="spiffe://hcx/province/330000/operator/n1"), PermissionDenied,
                 Reason.LEASE_NOT_YOURS, "may register only as itself$",
                 id="an operator of the province"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "error", "reason", "match"), REGISTRATIONS)
async def test_a_node_registers_only_as_itself(
    gateway: Gateway, changes: dict[str, str], error: type[HcxError], reason: Reason, match: str
) -> None:
    args = dict(owner=ZJ_NODE, province=ZJ, node_id="n1", endpoint="127.0.0.1:7001")
    args.update(changes)
    before = await gateway.stored()
    with pytest.raises(error, match=match) as caught:
        await gateway.registry.register_node(**args, ttl_seconds=10)
    assert caught.value.reason is reason
    assert await gateway.stored() == before


async def test_the_longest_endpoint_registers(gateway: Gateway) -> None:
    endpoint = "h" * MAX_ENDPOINT_CHARS
    await gateway.registry.register_node(
        owner=ZJ_NODE, province=ZJ, node_id="n1", endpoint=endpoint, ttl_seconds=10
    )
    stored = await gateway.stored()
    assert decode_route(route_key(ZJ, "n1"), stored[route_key(ZJ, "n1")]).endpoint == endpoint


async def test_only_the_owner_keeps_a_registration_alive(gateway: Gateway) -> None:
    handle, _ = await _register(gateway)
    intruder = "spiffe://hcx/province/330000/node/n2"
    for attempt in (gateway.registry.keep_alive, gateway.registry.deregister):
        with pytest.raises(PermissionDenied, match=f"^the registration belongs to {ZJ_NODE}$") as e:
            await attempt(owner=intruder, handle=handle)
        assert e.value.reason is Reason.LEASE_NOT_YOURS
    assert await gateway.store.get(route_key(ZJ, "n1")) is not None


async def test_without_identities_the_handle_is_enough(gateway: Gateway) -> None:
    """A development server (no mTLS identity: owner None) checks only the handle."""
    handle, _ = await _register(gateway)
    assert await gateway.registry.keep_alive(owner=None, handle=handle) == 10
    await gateway.registry.deregister(owner=None, handle=handle)
    assert await gateway.store.get(route_key(ZJ, "n1")) is None


async def test_deregistering_drops_the_route_and_the_handle(gateway: Gateway) -> None:
    handle, _ = await _register(gateway)
    await _register(gateway, node_id="n2")
    await gateway.registry.deregister(owner=ZJ_NODE, handle=handle)
    assert await gateway.store.get(route_key(ZJ, "n1")) is None
    assert await gateway.store.get(handle_key(handle)) is None
    assert await gateway.store.get(route_key(ZJ, "n2")) is not None
    with pytest.raises(NotFound, match=r"^no such registration") as caught:
        await gateway.registry.keep_alive(owner=ZJ_NODE, handle=handle)
    assert caught.value.reason is Reason.UNKNOWN_LEASE


async def _forge_handle(gateway: Gateway, value: bytes) -> bytes:
    handle = b"\x07" * HANDLE_BYTES
    await gateway.store.put(handle_key(handle), value)
    return handle


async def _unknown(gateway: Gateway) -> bytes:
    await _register(gateway)
    return b"\x07" * HANDLE_BYTES


async def _alias(gateway: Gateway, alias: bytes) -> bytes:
    """A handle entry of another length naming a live registration (written to the store by
    someone who could write it): the gateway takes only handles it could have issued."""
    await _register(gateway)
    stored = await gateway.stored()
    route = decode_route(route_key(ZJ, "n1"), stored[route_key(ZJ, "n1")])
    await gateway.store.put(handle_key(alias), encode_handle(route.key, route.lease))
    return alias


async def _short(gateway: Gateway) -> bytes:
    return await _alias(gateway, b"\x07" * (HANDLE_BYTES - 1))


async def _long(gateway: Gateway) -> bytes:
    return await _alias(gateway, b"\x07" * (HANDLE_BYTES + 1))


async def _empty(gateway: Gateway) -> bytes:
    return await _alias(gateway, b"")


async def _garbage_handle(gateway: Gateway) -> bytes:
    await _register(gateway)
    return await _forge_handle(gateway, b"garbage")


async def _handle_of_a_route_gone(gateway: Gateway) -> bytes:
    return await _forge_handle(gateway, encode_handle(route_key(ZJ, "n9"), 1))


async def _handle_of_a_garbage_route(gateway: Gateway) -> bytes:
    await gateway.store.put(route_key(ZJ, "n1"), b"garbage")
    return await _forge_handle(gateway, encode_handle(route_key(ZJ, "n1"), 1))


async def _handle_of_another_lease(gateway: Gateway) -> bytes:
    await _register(gateway)
    stored = await gateway.stored()
    route = decode_route(route_key(ZJ, "n1"), stored[route_key(ZJ, "n1")])
    return await _forge_handle(gateway, encode_handle(route.key, route.lease + 1))


HANDLES = [
    pytest.param(_unknown, id="a handle never issued"),
    pytest.param(_short, id="a handle one byte short"),
    pytest.param(_long, id="a handle one byte long"),
    pytest.param(_empty, id="an empty handle"),
    pytest.param(_garbage_handle, id="a handle entry that is not a handle"),
    pytest.param(_handle_of_a_route_gone, id="a handle of a route that is gone"),
    pytest.param(_handle_of_a_garbage_route, id="a handle of a value that is not a route"),
    pytest.param(_handle_of_another_lease, id="a handle of another registration's lease"),
]


@pytest.mark.parametrize("make", HANDLES)
@pytest.mark.parametrize("action", ["keep_alive", "deregister"])
async def test_a_handle_that_names_no_live_registration(
    gateway: Gateway, make: Any, action: str
) -> None:
    handle = await make(gateway)
    before = await gateway.stored()
    with pytest.raises(NotFound, match=r"^no such registration \(expired or replaced\)$") as e:
        await getattr(gateway.registry, action)(owner=ZJ_NODE, handle=handle)
    assert e.value.reason is Reason.UNKNOWN_LEASE
    assert await gateway.stored() == before


@pytest.mark.parametrize("action", ["keep_alive", "deregister"])
async def test_a_registration_whose_lease_expired_under_it(gateway: Gateway, action: str) -> None:
    """The route and its handle are still there but the store no longer has their lease
    (it expired between the read and the call)."""
    route = NodeRoute(ZJ, "n1", "127.0.0.1:7001", ZJ_NODE, lease=987654)
    await gateway.store.put(route.key, encode_route(route))
    handle = await _forge_handle(gateway, encode_handle(route.key, route.lease))
    with pytest.raises(NotFound, match=r"^the registration expired$") as caught:
        await getattr(gateway.registry, action)(owner=ZJ_NODE, handle=handle)
    assert caught.value.reason is Reason.UNKNOWN_LEASE


def test_a_development_submitter_names_its_peer() -> None:
    who = Submitter.development("ipv4:127.0.0.1:5555")
    assert (who.spiffe_id, who.role, who.province) == (
        "insecure-dev peer ipv4:127.0.0.1:5555",
        "none",
        None,
    )
