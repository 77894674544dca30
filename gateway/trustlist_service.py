"""GetTrustList / WatchTrustList of the Gateway service: the signed trust list for checkpoints.

Kept apart from gateway/service.py (verification) so the trust list has one owner; it is one
of the parts the Gateway service is composed of (gateway.main.gateway_bindings).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from healthcode.v1 import trustlist_pb2
from trust import pki, trustlist
from trust.errors import NotConfigured
from trust.view import TrustView

WATCH_POLL_S = 0.1


def load_signer(cert: Path | None, key: Path | None) -> pki.Authority | None:
    """The trust-list signing key and certificate, when this gateway was given them."""
    if cert is None or key is None:
        return None
    return pki.Authority(
        certificate=pki.load_certificate_pem(cert.read_bytes()),
        private_key=pki.load_private_key_pem(key.read_bytes()),
    )


class TrustListService:
    """Signs the gateway's verified view as a trust list, full or as a delta."""

    def __init__(
        self,
        *,
        view: TrustView,
        signer: pki.Authority | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._view = view
        self._signer = signer
        self._clock = clock

    def _response(self, since: int) -> trustlist_pb2.TrustListResponse:
        assert self._signer is not None
        since = max(0, min(since, self._view.revision))
        signed = trustlist.build(self._view, self._signer, now=self._clock(), since=since)
        return trustlist_pb2.TrustListResponse(
            signed_list=signed, revision=self._view.revision, since_revision=since
        )

    async def _require_signer(self, context: Any) -> None:
        if self._signer is None:
            raise NotConfigured("this gateway holds no trust-list signing key (--trust-list-key)")

    async def GetTrustList(self, request: Any, context: Any) -> trustlist_pb2.TrustListResponse:
        await self._require_signer(context)
        return self._response(request.since_revision)

    async def WatchTrustList(
        self, request: Any, context: Any
    ) -> AsyncIterator[trustlist_pb2.TrustListResponse]:
        await self._require_signer(context)
        sent = self._view.revision
        yield self._response(request.since_revision)
        while True:
            await asyncio.sleep(WATCH_POLL_S)
            if self._view.revision != sent:
                previous, sent = sent, self._view.revision
                yield self._response(previous)
