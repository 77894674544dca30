"""Coordinator and provincial operations on the trust registry, over any KvStore.

Every write is a compare-and-put, so two coordinators acting at once cannot lose an update.
Every certificate is checked against the pinned roots before it is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from cryptography import x509

from trust import pki, records
from trust.errors import Conflict, InvalidRequest, NotFound, PkiError
from trust.kv import KvStore
from trust.model import Reason, is_province_code

MIN_NODE_TTL_S = 2
MAX_NODE_TTL_S = 60


class RegistryOperations:
    """What the Registry API does; the gRPC servicer only translates messages."""

    def __init__(
        self,
        *,
        store: KvStore,
        roots: Sequence[x509.Certificate],
        root_authority: pki.Authority | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._roots = tuple(roots)
        self._root = root_authority
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    async def onboard_province(
        self, *, province: str, name: str, csr_pem: bytes
    ) -> x509.Certificate:
        """Sign the province's CA from its CSR and record the province."""
        if self._root is None:
            raise InvalidRequest("this registry holds no root key: onboarding happens offline")
        if not is_province_code(province):
            raise InvalidRequest(f"not a GB/T 2260 province code: {province!r}")
        if not name.strip():
            raise InvalidRequest("province name is empty")
        if await self._store.get(records.province_key(province)) is not None:
            raise Conflict(f"province {province} is already onboarded")
        csr = pki.load_csr_pem(csr_pem)
        ca = pki.sign_provincial_ca(self._root, csr, province=province, name=name, now=self._now())
        record = records.ProvinceRecord(code=province, name=name, ca_certificate=ca)
        await self._store.put(
            records.province_key(province), records.encode_province(record), expect_revision=0
        )
        return ca

    async def province(self, code: str) -> records.ProvinceRecord:
        """The province record, with its CA re-verified against the roots."""
        entry = await self._store.get(records.province_key(code))
        if entry is None:
            raise NotFound(f"province {code} is not onboarded", reason=Reason.UNKNOWN_PROVINCE)
        record = records.decode_province(entry.value)
        if pki.verify_provincial_ca(record.ca_certificate, self._roots, at=self._now()) != code:
            raise PkiError(f"stored CA of province {code} does not verify")
        return record

    async def upload_signing_certificate(self, certificate_pem: bytes) -> records.SigningCertRecord:
        """Check chain, province match, validity and kid uniqueness, then store the DSC."""
        certificate = pki.load_certificate_pem(certificate_pem)
        province = pki.province_of(certificate)
        if province is None:
            raise PkiError("signing certificate names no province in its SAN")
        ca = (await self.province(province)).ca_certificate
        now = self._now()
        if certificate.not_valid_after_utc <= now:
            raise PkiError("signing certificate has already expired")
        pki.verify_dsc_chain(
            certificate, ca, self._roots, at=max(now, certificate.not_valid_before_utc)
        )
        record = records.SigningCertRecord(
            kid=pki.kid(certificate), province=province, certificate=certificate
        )
        key = records.signing_cert_key(record.kid)
        existing = await self._store.get(key)
        if existing is not None:
            if records.decode_signing_cert(existing.value).certificate == certificate:
                return record  # the same upload again changes nothing
            raise Conflict(f"kid {record.kid.hex()} collides with another certificate")
        await self._store.put(key, records.encode_signing_cert(record), expect_revision=0)
        return record

    async def register_node(
        self, *, province: str, node_id: str, endpoint: str, ttl_seconds: int
    ) -> tuple[int, int]:
        """Record a node replica under a fresh lease; returns (lease id, granted TTL)."""
        await self.province(province)
        if not node_id or "/" in node_id or len(node_id) > 64:
            raise InvalidRequest(f"bad node id {node_id!r}")
        if not endpoint or len(endpoint) > 255:
            raise InvalidRequest("bad endpoint")
        ttl = min(max(ttl_seconds or 10, MIN_NODE_TTL_S), MAX_NODE_TTL_S)
        lease = await self._store.grant_lease(ttl)
        record = records.NodeRecord(province=province, node_id=node_id, endpoint=endpoint)
        await self._store.put(
            records.node_key(province, node_id), records.encode_node(record), lease=lease
        )
        return lease, ttl
