"""What a gateway does with registry writes: check signed statements, append them, route nodes.

No server holds an authority of its own. A gateway receives a statement somebody signed on
their own station, checks that the submitter may submit it (the authority table's writers),
tries it on a copy of the current state (trust.authority: who signed, how many, which wins),
and appends it to the log (trust.log) with its log key, which attests order, never content.
The audit record is the leaf itself: the statement, its signer, the verified submitter, the
time. Node routes are the only thing written without a signed statement: they are bound to the
verified mTLS identity that made them, live under a store lease, and are never trusted (the
relay checks the server's certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from trust import pki
from trust.authority import AUTHORITY, Decision
from trust.errors import (
    Conflict,
    HcxError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    StoreUnavailable,
)
from trust.kv import KvStore, Write
from trust.log import LogInconsistent, LogWriter
from trust.model import Reason, is_province_code
from trust.reader import LogReader
from trust.routes import (
    HANDLE_BYTES,
    MAX_ENDPOINT_CHARS,
    NodeRoute,
    decode_handle,
    decode_route,
    encode_handle,
    encode_route,
    handle_key,
    is_node_id,
    route_key,
)
from trust.statements import (
    CrlUpload,
    DscUpload,
    Retirement,
    SignedStatement,
    open_statement,
)
from trust.view import TrustView

log = logging.getLogger(__name__)

MIN_NODE_TTL_S = 2
MAX_NODE_TTL_S = 60
MAX_APPEND_ATTEMPTS = 10


@dataclass(frozen=True)
class Submitter:
    """Who submits (the verified mTLS identity): the audit actor and the writers check."""

    spiffe_id: str
    role: str  # coordinator, operator, node, gateway, checkpoint
    province: str | None = None

    @classmethod
    def development(cls, peer: str) -> Submitter:
        """A plain-text development caller: no identity, so it may submit nothing."""
        return cls(spiffe_id=f"insecure-dev peer {peer}", role="none")


class RefusedStatement(HcxError):
    """The registry refused a statement; ``reason`` is the authority table's verdict."""


class Registry:
    """Registry writes over one store, checked against one gateway's verified view."""

    def __init__(
        self,
        *,
        store: KvStore,
        view: TrustView,
        reader: LogReader,
        writer: LogWriter | None,
        refresh: Callable[[], Awaitable[None]],
        changed: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._view = view
        self._reader = reader
        self._writer = writer
        self._refresh = refresh  # a full read of the store into the view
        self._changed = changed  # told after an append (the view file is written again)
        self._clock = clock
        self._lock = asyncio.Lock()

    # -- statements ---------------------------------------------------------------------------
    async def submit(self, statement: bytes, *, submitter: Submitter) -> Decision:
        """Append ``statement`` if the authority table allows it; the decision says what it did."""
        signed = open_statement(statement)
        self._check_writer(signed, submitter)
        if self._writer is None:
            raise InvalidRequest("this gateway holds no log key: submit to a gateway that has one")
        async with self._lock:
            for _ in range(MAX_APPEND_ATTEMPTS):
                if self._reader.inconsistent is not None:
                    raise LogInconsistent(
                        f"registry writes are refused: {self._reader.inconsistent.message}"
                    )
                leaf = self._writer.leaf(statement, actor=submitter.spiffe_id)
                decision = self._view.state.copy().apply(leaf)
                if not decision.accepted:
                    raise RefusedStatement(decision.effect, reason=decision.reason)
                try:
                    appended = await self._writer.append(self._view.log, leaf)
                except Conflict:
                    await self._refresh()  # another gateway appended first: catch up, retry
                    if signed.id in self._view.state.seen:  # ours committed after all
                        return self._decision_of(statement)
                    continue
                self._reader.install_appended(appended)
                self._changed()
                log.info(
                    "registry change",
                    extra={"index": decision.index, "kind": decision.kind,
                           "actor": submitter.spiffe_id},
                )  # fmt: skip
                return decision
        raise StoreUnavailable("the registry log is too contended to append; try again")

    def _decision_of(self, statement: bytes) -> Decision:
        """The decision of a statement already in the log (an append whose first attempt
        committed although the store answered Conflict after a leader change)."""
        for leaf, decision in zip(self._view.log.leaves, self._view.decisions, strict=False):
            if leaf.statement == statement:
                return decision
        raise StoreUnavailable("the statement is in the log but not in this view yet; retry")

    def _check_writer(self, signed: SignedStatement, submitter: Submitter) -> None:
        """The authority table's writers: who may submit this kind, for which province."""
        body = signed.statement.body
        kind = signed.statement.kind
        rule = AUTHORITY[kind]
        if submitter.role not in rule.writers:
            raise PermissionDenied(
                f"a {submitter.role} may not submit {kind} statements", reason=Reason.WRONG_ROLE
            )
        if submitter.role == "operator":
            province = self._province_of(body)
            if province != submitter.province:
                raise PermissionDenied(
                    f"{submitter.spiffe_id} may not submit for province {province}",
                    reason=Reason.WRONG_PROVINCE,
                )

    def _province_of(self, body: object) -> str | None:
        if isinstance(body, DscUpload):
            return pki.province_of(body.certificate)
        if isinstance(body, Retirement):
            return self._view.state.province_of_kid(body.kid)
        if isinstance(body, CrlUpload):
            for code, province in self._view.state.provinces.items():
                if body.crl.issuer == province.ca.subject:
                    return code
        return None

    # -- node routes --------------------------------------------------------------------------
    async def register_node(
        self, *, owner: str, province: str, node_id: str, endpoint: str, ttl_seconds: int
    ) -> tuple[bytes, int]:
        """Route ``province``/``node_id`` to ``endpoint`` under a fresh lease, replacing any
        older registration of that node atomically; returns (handle, granted TTL)."""
        self._check_route(owner=owner, province=province, node_id=node_id, endpoint=endpoint)
        ttl = min(max(ttl_seconds or 10, MIN_NODE_TTL_S), MAX_NODE_TTL_S)
        key = route_key(province, node_id)
        previous = await self._store.get(key)
        lease = await self._store.grant_lease(ttl)
        handle = secrets.token_bytes(HANDLE_BYTES)
        route = NodeRoute(province, node_id, endpoint, owner, lease)
        await self._store.transact(
            [
                Write(key, encode_route(route), lease=lease),
                Write(
                    handle_key(handle), encode_handle(key, lease), expect_revision=0, lease=lease
                ),
            ]
        )
        if previous is not None:
            await self._drop_previous(key, previous.value)
        return handle, ttl

    async def _drop_previous(self, key: str, value: bytes) -> None:
        """Revoke the replaced registration's lease (its handle dies with it)."""
        try:
            old = decode_route(key, value)
        except HcxError:
            return  # not a route we wrote: nothing of ours to drop
        with contextlib.suppress(NotFound):  # already expired
            await self._store.revoke_lease(old.lease)

    def _check_route(self, *, owner: str, province: str, node_id: str, endpoint: str) -> None:
        if not is_province_code(province) or self._view.province(province) is None:
            raise NotFound(
                f"province {province!r} is not onboarded", reason=Reason.UNKNOWN_PROVINCE
            )
        if not is_node_id(node_id):
            raise InvalidRequest(f"bad node id {node_id!r} (a DNS label)")
        if not endpoint or len(endpoint) > MAX_ENDPOINT_CHARS or not endpoint.isprintable():
            raise InvalidRequest("bad endpoint")
        if owner != f"spiffe://hcx/province/{province}/node/{node_id}":
            raise PermissionDenied(
                f"{owner} may register only as itself", reason=Reason.LEASE_NOT_YOURS
            )

    async def keep_alive(self, *, owner: str | None, handle: bytes) -> int:
        """Refresh the registration behind ``handle``; its TTL."""
        route = await self._owned(owner, handle)
        try:
            return await self._store.keep_alive(route.lease)
        except NotFound as e:
            raise NotFound("the registration expired", reason=Reason.UNKNOWN_LEASE) from e

    async def deregister(self, *, owner: str | None, handle: bytes) -> None:
        route = await self._owned(owner, handle)
        try:
            await self._store.revoke_lease(route.lease)
        except NotFound as e:
            raise NotFound("the registration expired", reason=Reason.UNKNOWN_LEASE) from e

    async def _owned(self, owner: str | None, handle: bytes) -> NodeRoute:
        """The live registration ``handle`` refers to, if ``owner`` made it (None: a
        development server without identities, where only the handle counts)."""
        unknown = NotFound(
            "no such registration (expired or replaced)", reason=Reason.UNKNOWN_LEASE
        )
        if len(handle) != HANDLE_BYTES:
            raise unknown
        entry = await self._store.get(handle_key(handle))
        if entry is None:
            raise unknown
        try:
            key, lease = decode_handle(entry.value)
            current = await self._store.get(key)
            route = decode_route(key, current.value) if current is not None else None
        except HcxError as e:
            raise unknown from e
        if route is None or route.lease != lease:
            raise unknown  # replaced by a newer registration of the node
        if owner is not None and route.owner != owner:
            raise PermissionDenied(
                f"the registration belongs to {route.owner}", reason=Reason.LEASE_NOT_YOURS
            )
        return route
