"""Coordinator and provincial operations on the trust registry, over any KvStore.

Every write is a compare-and-put, so two coordinators acting at once cannot lose an update.
Every certificate is checked against the pinned roots before it is written, national values
are sealed with the root key (trust.records.seal) and every change is appended to the signed,
hash-chained audit log (trust.audit) naming the caller (``actor``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from cryptography import x509

from trust import audit, pki, records
from trust.errors import Conflict, InvalidRequest, NotFound, PkiError
from trust.kv import KvStore
from trust.model import Reason, is_province_code

log = logging.getLogger(__name__)

MIN_NODE_TTL_S = 2
MAX_NODE_TTL_S = 60
COORDINATOR_CLI = "coordinator-cli"
REVOCATION_REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key_compromise": x509.ReasonFlags.key_compromise,
    "ca_compromise": x509.ReasonFlags.ca_compromise,
    "superseded": x509.ReasonFlags.superseded,
    "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
}
ROOT_CRL_VALIDITY_S = 7 * 24 * 3600


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

    def _coordinator(self) -> pki.Authority:
        if self._root is None:
            raise InvalidRequest(
                "this registry holds no coordinator (root) key: national changes happen "
                "on a coordinator's registry"
            )
        return self._root

    async def _audit(self, actor: str, action: str, subject: str, detail: str = "") -> None:
        if self._root is None:
            # A keyless gateway still accepts provinces' own signed uploads (their values carry
            # their own signatures); it cannot seal an audit entry. Known gap: an online audit
            # key for gateways (docs/registry.md, "Known limits").
            log.warning("audit entry not written (no coordinator key): %s %s", action, subject)
            return
        await audit.append(
            self._store,
            self._coordinator().private_key,
            actor=actor,
            action=action,
            subject=subject,
            detail=detail,
            at=self._clock(),
        )

    async def _put_province(self, record: records.ProvinceRecord, *, expect_revision: int) -> None:
        key = records.province_key(record.code)
        sealed = records.seal(key, records.encode_province(record), self._coordinator().private_key)
        await self._store.put(key, sealed, expect_revision=expect_revision)

    async def onboard_province(
        self, *, province: str, name: str, csr_pem: bytes, actor: str = COORDINATOR_CLI
    ) -> x509.Certificate:
        """Sign the province's CA from its CSR and record the province."""
        root = self._coordinator()
        if not is_province_code(province):
            raise InvalidRequest(f"not a GB/T 2260 province code: {province!r}")
        if not name.strip():
            raise InvalidRequest("province name is empty")
        if await self._store.get(records.province_key(province)) is not None:
            raise Conflict(f"province {province} is already onboarded")
        csr = pki.load_csr_pem(csr_pem)
        ca = pki.sign_provincial_ca(root, csr, province=province, name=name, now=self._now())
        record = records.ProvinceRecord(code=province, name=name, ca_certificate=ca, seq=1)
        await self._put_province(record, expect_revision=0)
        await self._audit(actor, "onboard-province", province, f"CA serial {ca.serial_number}")
        return ca

    async def set_suspended(
        self, province: str, suspended: bool, *, actor: str = COORDINATOR_CLI, why: str = ""
    ) -> records.ProvinceRecord:
        """Suspend (codes of the province become INVALID) or resume a province."""
        entry = await self._store.get(records.province_key(province))
        if entry is None:
            raise NotFound(f"province {province} is not onboarded", reason=Reason.UNKNOWN_PROVINCE)
        current = await self.province(province)
        record = records.ProvinceRecord(
            code=current.code,
            name=current.name,
            ca_certificate=current.ca_certificate,
            suspended=suspended,
            seq=current.seq + 1,
        )
        await self._put_province(record, expect_revision=entry.mod_revision)
        await self._audit(actor, "suspend" if suspended else "resume", province, why)
        return record

    async def province(self, code: str) -> records.ProvinceRecord:
        """The province record, with its CA re-verified against the roots."""
        entry = await self._store.get(records.province_key(code))
        if entry is None:
            raise NotFound(f"province {code} is not onboarded", reason=Reason.UNKNOWN_PROVINCE)
        record = records.decode_province(records.unseal(entry.key, entry.value, self._roots[0]))
        if pki.verify_provincial_ca(record.ca_certificate, self._roots, at=self._now()) != code:
            raise PkiError(f"stored CA of province {code} does not verify")
        return record

    async def upload_signing_certificate(
        self,
        certificate_pem: bytes,
        *,
        actor: str = "province-operator",
        uploader_province: str | None = None,
    ) -> records.SigningCertRecord:
        """Check chain, province match, validity and kid uniqueness, then store the DSC."""
        certificate = pki.load_certificate_pem(certificate_pem)
        province = pki.province_of(certificate)
        if province is None:
            raise PkiError("signing certificate names no province in its SAN")
        if uploader_province is not None and uploader_province != province:
            raise PkiError(
                f"province {uploader_province} cannot upload a signing certificate of {province}"
            )
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
        await self._audit(actor, "upload-dsc", province, f"kid {record.kid.hex()}")
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

    # -- revocation, retirement, CRLs, audit ------------------------------------------------------
    async def upload_crl(
        self, province: str, crl_der: bytes, *, actor: str = "province-operator"
    ) -> int:
        """Store a CRL the province signed with its own CA; its CRL number must increase."""
        ca = (await self.province(province)).ca_certificate
        crl = records.decode_crl(crl_der)
        pki.verify_crl(crl, ca)
        key = records.crl_key(province)
        existing = await self._store.get(key)
        number = _crl_number(crl)
        if existing is not None and number <= _crl_number(records.decode_crl(existing.value)):
            raise Conflict(f"CRL number {number} of {province} does not increase")
        await self._store.put(
            key, crl_der, expect_revision=0 if existing is None else existing.mod_revision
        )
        serials = ",".join(str(r.serial_number) for r in crl)
        await self._audit(actor, "upload-crl", province, f"CRL {number} revokes [{serials}]")
        return number

    async def retire(self, sealed_retirement: bytes, kid: bytes, *, actor: str) -> float:
        """Store a retirement the province sealed with its CA key; returns the retirement time."""
        signer = await self._signing_cert(kid)
        ca = (await self.province(signer.province)).ca_certificate
        key = records.retired_key(kid)
        retirement = records.decode_retirement(records.unseal(key, sealed_retirement, ca))
        if retirement.kid != kid:
            raise InvalidRequest("retirement names another kid")
        existing = await self._store.get(key)
        if existing is not None:
            raise Conflict(f"signing certificate {kid.hex()} is already retired")
        await self._store.put(key, sealed_retirement, expect_revision=0)
        await self._audit(actor, "retire-dsc", signer.province, f"kid {kid.hex()}")
        return retirement.retired_at

    async def _signing_cert(self, kid: bytes) -> records.SigningCertRecord:
        entry = await self._store.get(records.signing_cert_key(kid))
        if entry is None:
            raise NotFound(
                f"no signing certificate with kid {kid.hex()}", reason=Reason.UNKNOWN_KID
            )
        return records.decode_signing_cert(entry.value)

    async def revoke(
        self,
        *,
        kid: bytes | None = None,
        serial: int | None = None,
        reason: str = "unspecified",
        at: float | None = None,
        actor: str = COORDINATOR_CLI,
    ) -> str:
        """Revoke a DSC (by kid or serial: a root-sealed revocation order) or a provincial CA
        (by serial: the root CRL). Returns what was revoked."""
        if reason not in REVOCATION_REASONS:
            raise InvalidRequest(f"unknown revocation reason {reason!r}")
        when = self._clock() if at is None else at
        if kid is None and serial is not None:
            province = await self._province_with_ca_serial(serial)
            if province is not None:
                await self._revoke_provincial_ca(province, serial, reason, when)
                await self._audit(actor, "revoke-ca", province.code, f"serial {serial} {reason}")
                return f"provincial CA of {province.code}"
            kid = await self._kid_of_serial(serial)
        if kid is None:
            raise InvalidRequest("revoke needs a kid or a serial")
        dsc = await self._signing_cert(kid)
        order = records.Revocation(kid=kid, province=dsc.province, revoked_at=when, reason=reason)
        key = records.revoked_key(kid)
        body = records.encode_revocation(order)
        sealed = records.seal(key, body, self._coordinator().private_key)
        try:
            await self._store.put(key, sealed, expect_revision=0)
        except Conflict as e:
            raise Conflict(f"signing certificate {kid.hex()} is already revoked") from e
        await self._audit(actor, "revoke-dsc", dsc.province, f"kid {kid.hex()} {reason}")
        return f"signing certificate {kid.hex()} of {dsc.province}"

    async def _province_with_ca_serial(self, serial: int) -> records.ProvinceRecord | None:
        snapshot = await self._store.read_prefix(records.PROVINCES)
        for entry in snapshot.entries:
            code = entry.key.removeprefix(records.PROVINCES)
            record = await self.province(code)
            if record.ca_certificate.serial_number == serial:
                return record
        return None

    async def _kid_of_serial(self, serial: int) -> bytes:
        snapshot = await self._store.read_prefix(records.DSCS)
        for entry in snapshot.entries:
            record = records.decode_signing_cert(entry.value)
            if record.certificate.serial_number == serial:
                return record.kid
        raise NotFound(f"no certificate with serial {serial}")

    async def _revoke_provincial_ca(
        self, province: records.ProvinceRecord, serial: int, reason: str, when: float
    ) -> None:
        root = self._coordinator()
        existing = await self._store.get(records.ROOT_CRL)
        previous = None if existing is None else records.decode_crl(existing.value)
        entries = (
            []
            if previous is None
            else [
                pki.RevokedEntry(
                    r.serial_number, r.revocation_date_utc, x509.ReasonFlags.unspecified
                )
                for r in previous
            ]
        )
        if any(e.serial == serial for e in entries):
            raise Conflict(f"provincial CA of {province.code} is already revoked")
        entries.append(
            pki.RevokedEntry(
                serial, datetime.fromtimestamp(when, tz=UTC), REVOCATION_REASONS[reason]
            )
        )
        now = self._now()
        crl = pki.make_crl(
            root.certificate,
            root.private_key,
            entries,
            this_update=now,
            next_update=datetime.fromtimestamp(self._clock() + ROOT_CRL_VALIDITY_S, tz=UTC),
            crl_number=0 if previous is None else _crl_number(previous) + 1,
        )
        await self._store.put(
            records.ROOT_CRL,
            pki.crl_to_der(crl),
            expect_revision=0 if existing is None else existing.mod_revision,
        )

    async def audit_log(self) -> audit.AuditReport:
        """The whole audit log, each entry's signature and hash link checked."""
        snapshot = await self._store.read_prefix(records.AUDIT)
        return audit.verify_log(snapshot.entries, self._roots)


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0
