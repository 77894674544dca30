"""The node's copy of the national registry: the signed trust list, pulled and verified.

The node pulls the trust list (signed by the national trust-list key, carrying the registry
log's signed tree head and leaves) from the gateway every few seconds, as a delta with a
consistency proof once it holds a full list, and folds it exactly as a gateway does
(trust.reader, trust.authority). The resulting view answers two questions: "is this caller's
certificate revoked?" (the node's authorizer) and "is this code good?" (local verification
of the province's own codes, through trust.verify.check_code like every other verifier). A
list that is older than the one held (rollback), forks from it, or is past its not-after is
refused, and the node keeps the last good one; once that one expires the node stops answering
local verifications itself and forwards them to the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import grpc
from cryptography import x509

from healthcode.v1 import gateway_pb2_grpc, trustlist_pb2
from nodes.identity import Identity
from nodes.provincial import metrics
from nodes.tasks import cancel_and_wait
from trust import cbor, trustlist
from trust.errors import HcxError
from trust.files import replace_file
from trust.kv import KvEntry, Snapshot
from trust.log import HEAD_KEY, leaf_key
from trust.reader import LogReader
from trust.view import TrustView

log = logging.getLogger(__name__)

DEFAULT_PULL_INTERVAL_S = 2.0  # a pull of an unchanged list is a small signed delta


class TrustListFollower:
    """Pulls the trust list; ``view()`` is the latest verified one while it is not expired."""

    def __init__(
        self,
        *,
        gateway: gateway_pb2_grpc.GatewayStub,
        roots: Sequence[x509.Certificate],
        interval: float = DEFAULT_PULL_INTERVAL_S,
        clock: Callable[[], float] = time.time,
        state_file: Path | None = None,
        province: str = "",
    ) -> None:
        self._gateway = gateway
        self._province = province
        self._verified_at: float | None = None  # when a pull last verified a fresh list
        metrics.TRUST_LIST_AGE.labels(province).set_function(self._age)
        self._roots = list(roots)
        self._interval = interval
        self._clock = clock
        self._view = TrustView(roots=self._roots, clock=clock)
        self._reader = LogReader(self._view)
        self._list: trustlist.TrustList | None = None
        self._task: asyncio.Task[None] | None = None
        self._state_file = state_file  # the last list, kept across restarts (re-verified)

    def view(self) -> TrustView | None:
        """The verified view, or None before the first list and once the held one expired."""
        if self._list is None or self._clock() > self._list.not_after:
            return None
        return self._view

    def is_revoked(self, caller: Identity) -> bool:
        """Revoked per the latest trust list. Before the first list arrives nothing is known
        to be revoked; the first pull happens before the node starts serving."""
        if self._list is None:
            return False
        return self._view.certificate_revoked(
            issuer_province=caller.issuer_province,
            serial=caller.serial,
            issuer_key_id=caller.issuer_key_id,
        )

    async def pull(self) -> bool:
        """Fetch and verify the changes since the list held (the whole list the first time);
        False, and the old list kept, on failure. An unchanged list costs no rebuild."""
        since = self._list.revision if self._list is not None else 0
        try:
            reply = await self._gateway.GetTrustList(
                trustlist_pb2.GetTrustListRequest(since_revision=since), timeout=5.0
            )
            checked = trustlist.verify(reply.signed_list, self._roots, now=self._clock())
            merged = self._merge(checked)
        except (grpc.aio.AioRpcError, HcxError) as e:
            log.warning("trust list not updated: %s", getattr(e, "message", e))
            self._count("failed")
            return False
        if self._list is not None and merged.revision == self._list.revision:
            self._list = merged  # fresher times, same log
            self._verified_at = self._clock()
            self._count("unchanged")
            return True
        if not self._take(merged):
            self._count("refused")
            return False
        self._verified_at = self._clock()
        self._count("changed")
        self._save(reply.signed_list)
        return True

    def _count(self, outcome: str) -> None:
        metrics.TRUST_LIST_PULLS.labels(self._province, outcome).inc()

    def _age(self) -> float:
        return math.nan if self._verified_at is None else self._clock() - self._verified_at

    def _take(self, merged: trustlist.TrustList) -> bool:
        if not self._reader.load(_snapshot(merged)):
            assert self._reader.inconsistent is not None
            log.error("trust list refused: %s", self._reader.inconsistent.message)
            self._reader.inconsistent = None
            return False
        self._list = merged
        metrics.TRUST_LIST_REVISION.labels(self._province).set(merged.revision)
        return True

    def _save(self, signed: bytes) -> None:
        """The last signed list (for its times) and every leaf (for the log), atomically."""
        if self._state_file is None or self._list is None:
            return
        data = cbor.encode({"signed": signed, "leaves": list(self._list.leaves)})
        try:
            replace_file(self._state_file, data)
        except OSError as e:
            log.warning("could not keep the trust list in %s: %s", self._state_file, e)

    def load_saved(self) -> bool:
        """Start from the list kept on disk, verified again like a fresh one (its signature,
        not-after, and log); False when there is none or it does not verify."""
        if self._state_file is None or not self._state_file.exists():
            return False
        try:
            doc = cbor.expect_map(
                cbor.decode_canonical(self._state_file.read_bytes(), what="kept trust list"),
                what="kept trust list",
            )
            cbor.exact_keys(doc, ("signed", "leaves"), what="kept trust list")
            last = trustlist.verify(doc["signed"], self._roots, now=self._clock())
            leaves = doc["leaves"]
            if not isinstance(leaves, list) or not all(type(x) is bytes for x in leaves):
                raise trustlist.TrustListError("kept trust list has bad leaves")
            kept = replace(last, since=0, leaves=tuple(leaves), proof=())
        except (HcxError, OSError) as e:
            log.warning("kept trust list %s not used: %s", self._state_file, e)
            return False
        if not self._take(kept):
            return False
        # Its age runs from when the gateway signed it, not from this restart: a node that
        # restarts while the gateway is unreachable shows how old its list really is.
        self._verified_at = float(kept.issued_at)
        return True

    def _merge(self, checked: trustlist.TrustList) -> trustlist.TrustList:
        if checked.since == 0:
            return checked
        if self._list is None:
            raise trustlist.TrustListError("a delta arrived before any full list")
        return trustlist.merge(self._list, checked, self._view.roots)

    async def start(self) -> None:
        self.load_saved()
        await self.pull()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.pull()

    async def stop(self) -> None:
        # A stopped follower verifies nothing: its age is no longer this province's.
        metrics.TRUST_LIST_AGE.labels(self._province).set_function(lambda: math.nan)
        await cancel_and_wait(self._task)


def _snapshot(trust_list: trustlist.TrustList) -> Snapshot:
    entries = [KvEntry(leaf_key(i), leaf, 0) for i, leaf in enumerate(trust_list.leaves)]
    if trust_list.head:
        entries.append(KvEntry(HEAD_KEY, trust_list.head, 0))
    return Snapshot(tuple(entries), trust_list.revision)
