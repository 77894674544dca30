"""Keeps a node's view of revoked caller certificates current, from the signed trust list.

The node pulls the national trust list (signed, chain-checked, rollback refused) from the
gateway every few seconds and answers "is this caller's certificate revoked?" from it, so a
revoked checkpoint or operator certificate is refused on its next call after the next pull,
without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

import grpc
from cryptography import x509

from healthcode.v1 import gateway_pb2_grpc, trustlist_pb2
from nodes.identity import Identity
from trust import trustlist
from trust.errors import HcxError
from trust.view import TrustView

log = logging.getLogger(__name__)

DEFAULT_PULL_INTERVAL_S = 2.0  # a pull of an unchanged list is a small signed delta


class RevocationFollower:
    """Pulls the trust list; ``is_revoked`` reads the latest verified one."""

    def __init__(
        self,
        *,
        gateway: gateway_pb2_grpc.GatewayStub,
        roots: Sequence[x509.Certificate],
        interval: float = DEFAULT_PULL_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._gateway = gateway
        self._roots = list(roots)
        self._interval = interval
        self._clock = clock
        self._view: TrustView | None = None
        self._list: trustlist.TrustList | None = None
        self._task: asyncio.Task[None] | None = None

    def is_revoked(self, caller: Identity) -> bool:
        """Revoked per the latest trust list. Before the first list arrives nothing is known
        to be revoked; the first pull happens before the node starts serving."""
        if self._view is None:
            return False
        return self._view.certificate_revoked(
            issuer_province=caller.issuer_province, serial=caller.serial
        )

    async def pull(self) -> bool:
        """Fetch and verify the changes since the list held (the whole list the first time);
        False, and the old list kept, on failure. An unchanged list costs no rebuild."""
        since = self._list.revision if self._list is not None else 0
        try:
            reply = await self._gateway.GetTrustList(
                trustlist_pb2.GetTrustListRequest(since_revision=since), timeout=5.0
            )
            checked = trustlist.verify(
                reply.signed_list, self._roots, now=self._clock(), held_revision=since
            )
            if self._list is not None and checked.revision == self._list.revision:
                return True
            merged = checked if checked.since == 0 else trustlist.merge(self._list, checked)  # type: ignore[arg-type]
        except (grpc.aio.AioRpcError, HcxError) as e:
            log.warning("trust list not updated: %s", getattr(e, "message", e))
            return False
        self._list = merged
        self._view = merged.view(self._roots)
        return True

    async def start(self) -> None:
        await self.pull()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.pull()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
