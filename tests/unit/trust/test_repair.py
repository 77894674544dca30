"""Restoring a tampered store from a verified copy (``hcx registry repair``), on the embedded
store: each tamper an attacker with store write access could make is undone by putting back
exactly the verified bytes, after which a gateway's reader verifies the store again and still
sees the revocation. A dry run reports the same repair and writes nothing; a store whose log
is longer than the copy (a fork) is refused; a copy that does not verify is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulations.registry_builder import RegistryBuilder
from trust.errors import VerificationError
from trust.kv import KvStore
from trust.log import HEAD_KEY, LogInconsistent, leaf_key
from trust.model import Reason
from trust.reader import LogReader, encode_saved
from trust.repair import Repair, restore, verified_copy
from trust.routes import NodeRoute, encode_route
from trust.statements import DscRevocation, Suspension
from trust.stores.embedded import EmbeddedStore
from trust.verify import check_code
from trust.view import TrustView

ZJ = "330000"
ROUTE = NodeRoute(ZJ, "n1", "127.0.0.1:7001", f"spiffe://hcx/province/{ZJ}/node/n1", 5)


@dataclass
class World:
    builder: RegistryBuilder
    store: EmbeddedStore
    token: str  # a code of the key revoked at leaf ``revoked``
    revoked: int
    saved: bytes  # a gateway's persisted view of the sound store
    sound: dict[str, bytes]  # the sound store

    @property
    def size(self) -> int:
        return len(self.builder.leaves)

    def copy(self) -> TrustView:
        """The coordinator's verified copy: a gateway's persisted view, checked again."""
        return verified_copy(self.saved, self.builder.roots)

    async def stored(self) -> dict[str, bytes]:
        return {e.key: e.value for e in (await self.store.read_prefix("")).entries}


@pytest.fixture
async def world(tmp_path: Path) -> World:
    builder = RegistryBuilder()  # the clock of every statement below: builder.now
    zj = builder.onboard(ZJ, "浙江省")
    token = zj.token(issued_at=builder.now)
    builder.accept(builder.sign(DscRevocation(zj.kid, builder.now, "key_compromise"), "alice"))
    builder.onboard("510000", "四川省")
    store = EmbeddedStore(tmp_path / "registry.db")
    await builder.write_to(store)
    snapshot = await store.read_prefix("")
    view = TrustView(roots=builder.roots)
    assert LogReader(view).load(snapshot)
    sound = {e.key: e.value for e in snapshot.entries}
    return World(builder, store, token, len(builder.leaves) - 4, encode_saved(view), sound)


async def _verdict(world: World) -> Reason:
    view = TrustView(roots=world.builder.roots)
    assert LogReader(view).load(await world.store.read_prefix("")), "the store does not verify"
    try:
        check_code(world.token, view, now=world.builder.now + 1)
    except VerificationError as e:
        return e.reason
    return Reason.NONE


# -- tampers ------------------------------------------------------------------------------------
async def delete_the_revocation(w: World) -> None:
    await w.store.delete(leaf_key(w.revoked))


async def edit_the_revocation(w: World) -> None:
    raw = bytearray((await w.stored())[leaf_key(w.revoked)])
    raw[-5] ^= 0x01
    await w.store.put(leaf_key(w.revoked), bytes(raw))


async def swap_two_leaves(w: World) -> None:
    stored = await w.stored()
    a, b = leaf_key(w.revoked), leaf_key(w.revoked + 1)
    await w.store.put(a, stored[b])
    await w.store.put(b, stored[a])


async def truncate_the_tail(w: World) -> None:
    for index in range(w.revoked, w.size):
        await w.store.delete(leaf_key(index))
    await w.store.put(HEAD_KEY, w.builder.head(w.revoked))


async def delete_the_head(w: World) -> None:
    await w.store.delete(HEAD_KEY)


async def restore_an_older_head(w: World) -> None:
    await w.store.put(HEAD_KEY, w.builder.head(w.size - 1))


async def add_a_value_outside_the_log(w: World) -> None:
    await w.store.put("log/leaf/evil", b"x")
    await w.store.put("config/root", b"x")


@dataclass(frozen=True)
class Tamper:
    name: str
    run: Callable[[World], Awaitable[None]]
    restored: Callable[[World], list[str]]
    removed: tuple[str, ...] = ()


TAMPERS = [
    Tamper("a leaf deleted", delete_the_revocation, lambda w: [leaf_key(w.revoked)]),
    Tamper("a leaf edited", edit_the_revocation, lambda w: [leaf_key(w.revoked)]),
    Tamper("two leaves swapped", swap_two_leaves,
           lambda w: [leaf_key(w.revoked), leaf_key(w.revoked + 1)]),
    Tamper("the tail truncated and an older head put back", truncate_the_tail,
           lambda w: [*(leaf_key(i) for i in range(w.revoked, w.size)), HEAD_KEY]),
    Tamper("the head deleted", delete_the_head, lambda w: [HEAD_KEY]),
    Tamper("an older head restored", restore_an_older_head, lambda w: [HEAD_KEY]),
    Tamper("values outside the log", add_a_value_outside_the_log, lambda w: [],
           removed=("config/root", "log/leaf/evil")),
]  # fmt: skip


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.name for t in TAMPERS])
async def test_a_tamper_is_undone_by_re_appending_the_verified_bytes(
    world: World, tamper: Tamper
) -> None:
    await tamper.run(world)
    assert await world.stored() != world.sound
    repair = await restore(world.store, world.copy())
    assert repair == Repair(restored=tamper.restored(world), removed=list(tamper.removed))
    assert await _verdict(world) is Reason.KEY_REVOKED
    assert await world.stored() == world.sound


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.name for t in TAMPERS])
async def test_a_dry_run_reports_the_repair_and_writes_nothing(
    world: World, tamper: Tamper
) -> None:
    await tamper.run(world)
    before = await world.store.read_prefix("")
    repair = await restore(world.store, world.copy(), dry_run=True)
    assert repair == Repair(restored=tamper.restored(world), removed=list(tamper.removed))
    assert await world.store.read_prefix("") == before


async def test_a_sound_store_needs_no_repair(world: World) -> None:
    before = await world.store.read_prefix("")
    assert await restore(world.store, world.copy()) == Repair()
    assert await world.store.read_prefix("") == before


async def test_node_routes_are_not_the_logs_to_remove(world: World) -> None:
    await world.store.put(ROUTE.key, encode_route(ROUTE))
    await world.store.put("handles/" + "ab" * 32, b"handle")
    await delete_the_head(world)
    repair = await restore(world.store, world.copy())
    assert repair == Repair(restored=[HEAD_KEY])
    stored = await world.stored()
    assert stored[ROUTE.key] == encode_route(ROUTE)
    assert stored["handles/" + "ab" * 32] == b"handle"


async def test_a_store_whose_log_is_longer_than_the_copy_is_a_fork(world: World) -> None:
    """A leaf beyond the copy cannot be told from a legitimate newer log: people decide."""
    copy = world.copy()
    world.builder.onboard("460000", "海南省")
    await _append_rest(world, copy.log.size)
    before = await world.store.read_prefix("")
    first_extra = leaf_key(copy.log.size)
    with pytest.raises(
        LogInconsistent,
        match=rf"^the store's log is longer than the copy \({first_extra} and more\): a fork, "
        "not a tamper this copy can undo; compare the tree heads first$",
    ) as caught:
        await restore(world.store, copy)
    assert caught.value.key == first_extra
    assert caught.value.reason is Reason.LOG_INCONSISTENT
    assert await world.store.read_prefix("") == before


async def test_one_leaf_beyond_the_copy_is_a_fork_too(world: World) -> None:
    """Even a lone leaf at exactly the copy's size (the head not moved) is refused."""
    copy = world.copy()
    world.builder.accept(world.builder.sign(Suspension(ZJ, "incident"), "alice"))
    await world.store.put(leaf_key(copy.log.size), world.builder.leaves[-1].raw)
    with pytest.raises(LogInconsistent, match=r"longer than the copy") as caught:
        await restore(world.store, copy, dry_run=True)
    assert caught.value.key == leaf_key(copy.log.size)


async def _append_rest(world: World, start: int) -> None:
    for index in range(start, world.size):
        await world.store.put(leaf_key(index), world.builder.leaves[index].raw)
    await world.store.put(HEAD_KEY, world.builder.head())


async def test_a_copy_without_a_log_restores_nothing(world: World) -> None:
    empty = TrustView(roots=world.builder.roots)
    before = await world.store.read_prefix("")
    with pytest.raises(LogInconsistent, match=r"^the copy holds no log$"):
        await restore(world.store, empty)
    assert await world.store.read_prefix("") == before


async def test_an_empty_store_is_refilled(tmp_path: Path, world: World) -> None:
    """A store lost entirely (a new cluster): every leaf and the head come back."""
    fresh: KvStore = EmbeddedStore(tmp_path / "new.db")
    repair = await restore(fresh, world.copy())
    assert repair == Repair(restored=[*(leaf_key(i) for i in range(world.size)), HEAD_KEY])
    view = TrustView(roots=world.builder.roots)
    assert LogReader(view).load(await fresh.read_prefix(""))
    assert view.revision == world.size


def test_a_verified_copy_is_the_saved_log() -> None:
    builder = RegistryBuilder()
    builder.onboard(ZJ, "浙江省")
    copy = verified_copy(encode_saved(builder.view()), builder.roots)
    assert [leaf.raw for leaf in copy.log.leaves] == [leaf.raw for leaf in builder.leaves]
    assert copy.province(ZJ) is not None


def test_a_copy_edited_on_disk_is_refused() -> None:
    builder = RegistryBuilder()
    builder.onboard(ZJ, "浙江省")
    saved = bytearray(encode_saved(builder.view()))
    saved[len(saved) // 2] ^= 0x01
    with pytest.raises(LogInconsistent):
        verified_copy(bytes(saved), builder.roots)


def test_a_copy_of_another_federation_is_refused() -> None:
    builder = RegistryBuilder()
    other = RegistryBuilder()
    with pytest.raises(LogInconsistent, match=r"^tree head refused: ") as caught:
        verified_copy(encode_saved(builder.view()), other.roots)
    assert caught.value.key == HEAD_KEY


def test_a_file_that_is_no_saved_view_is_refused() -> None:
    builder = RegistryBuilder()
    with pytest.raises(LogInconsistent, match=r"^saved view refused: ") as caught:
        verified_copy(b"not a view", builder.roots)
    assert caught.value.key == "view file"
