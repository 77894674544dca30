"""The verified in-memory view of the trust registry: what the verification hot path reads.

Every value read from a store is re-verified here against the pinned national root(s): a
province record is sealed by a root and its CA chains to it; a signing certificate chains to
its province's CA; a retirement is sealed by that CA; a revocation order by a root; a CRL is
signed by its CA. A value that fails (or a trust value deleted behind the registry's back) is
rejected, reported once through ``on_rejected``, and the last good value for that key keeps
serving. A validly signed but older province record or CRL (a replay) is rejected too.
Nothing in here performs I/O.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trust import pki, records
from trust.errors import HcxError
from trust.kv import EventKind, KvEvent, Snapshot

log = logging.getLogger(__name__)

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
T = TypeVar("T")
SIGNER_MEMO_S = 60.0  # a verified chain is re-checked at least this often (validity periods)

# Trust material: never legitimately deleted by the registry (it retires and revokes instead).
TRUST_PREFIXES = (
    records.PROVINCES,
    records.DSCS,
    records.RETIRED,
    records.REVOKED,
    records.CRLS,
)


@dataclass(frozen=True)
class TrustedSigner:
    """A signing certificate whose chain to the national root was verified, key parsed once."""

    kid: bytes
    province: str
    certificate: x509.Certificate
    public_key: PublicKey
    not_before: float
    not_after: float
    revoked_at: float | None = None  # every code fails from this time on (KEY_REVOKED)
    revocation_reason: str = ""
    retired_at: float | None = None  # codes issued after this fail (KEY_RETIRED)


class TrustView:
    """Provinces, signing certificates and live nodes, each verified before it is served."""

    def __init__(
        self,
        *,
        roots: Sequence[x509.Certificate],
        clock: Callable[[], float] = time.time,
        on_rejected: Callable[[str, str], None] | None = None,
    ) -> None:
        if not roots:
            raise ValueError("a trust view needs at least one pinned root certificate")
        self._roots = tuple(roots)
        self._clock = clock
        self._on_rejected = on_rejected
        self._raw: dict[str, tuple[bytes, int]] = {}
        self._accepted: dict[str, tuple[bytes, int]] = {}
        self._parsed: dict[str, Any] = {}
        self._rejected: set[tuple[str, bytes]] = set()
        # Chain checks cost several ECDSA verifies; a rebuild re-checks only what changed.
        self._signer_memo: dict[tuple[bytes, bytes], tuple[float, TrustedSigner]] = {}
        self._provinces: dict[str, records.ProvinceRecord] = {}
        self._signers: dict[bytes, TrustedSigner] = {}
        self._nodes: dict[str, dict[str, records.NodeRecord]] = {}
        self.revision = 0
        self._root_crls: tuple[x509.CertificateRevocationList, ...] = ()
        self._province_crls: dict[str, x509.CertificateRevocationList] = {}

    # -- reads (hot path) -------------------------------------------------------------------
    def signer(self, kid: bytes) -> TrustedSigner | None:
        return self._signers.get(kid)

    def province(self, code: str) -> records.ProvinceRecord | None:
        return self._provinces.get(code)

    def provinces(self) -> list[records.ProvinceRecord]:
        return [self._provinces[c] for c in sorted(self._provinces)]

    def signers(self) -> list[TrustedSigner]:
        return sorted(self._signers.values(), key=lambda s: (s.province, s.kid))

    def nodes(self, province: str) -> list[records.NodeRecord]:
        return sorted(self._nodes.get(province, {}).values(), key=lambda n: n.node_id)

    def accepted_entries(self, *, since: int = 0) -> list[tuple[str, bytes, int]]:
        """Verified trust values (key, stored bytes, mod revision) changed after ``since``:
        what a trust list or a persisted view carries."""
        return sorted(
            (key, value, rev) for key, (value, rev) in self._accepted.items() if rev > since
        )

    # -- updates ----------------------------------------------------------------------------
    def load(self, snapshot: Snapshot) -> None:
        """Replace the view with a full read; trust values missing from it count as deleted."""
        present = {entry.key for entry in snapshot.entries}
        for key in [k for k in self._raw if k not in present]:
            self._take(key, None, snapshot.revision)
        self._nodes.clear()
        for entry in snapshot.entries:
            self._take(entry.key, entry.value, entry.mod_revision)
        self._rebuild()
        self.revision = max(self.revision, snapshot.revision)

    def apply(self, events: Iterable[KvEvent]) -> None:
        """Apply watched changes (in revision order)."""
        rebuild = False
        for event in events:
            value = event.value if event.kind is EventKind.PUT else None
            rebuild |= self._take(event.key, value, event.revision)
            self.revision = max(self.revision, event.revision)
        if rebuild:
            self._rebuild()

    def _take(self, key: str, value: bytes | None, revision: int) -> bool:
        """Record one raw change; True when trust material (not a node) changed."""
        if key.startswith(records.NODES):
            self._take_node(key, value)
            return False
        if not key.startswith(TRUST_PREFIXES):
            return False  # audit entries and unknown keys are not served by the view
        if value is None:
            if key in self._raw:
                self._reject(key, "trust value deleted behind the registry's back", b"")
            return False
        self._raw[key] = (value, revision)
        return True

    def _take_node(self, key: str, value: bytes | None) -> None:
        _, province, node_id = ([*key.split("/", 2), "", ""])[:3]
        if value is None:
            self._nodes.get(province, {}).pop(node_id, None)
            return
        try:
            node = records.decode_node(value)
        except HcxError as e:
            self._reject(key, e.message, value)
            return
        if (node.province, node.node_id) != (province, node_id):
            self._reject(key, "node record does not match its key", value)
            return
        self._nodes.setdefault(province, {})[node_id] = node

    # -- verification -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        provinces = self._verify_prefix(records.PROVINCES, self._verify_province, now)
        by_code = {p.code: p for p in provinces.values()}
        root_crls = self._verify_prefix(records.ROOT_CRL, self._verify_root_crl, now)
        signers = self._verify_prefix(
            records.DSCS, lambda k, v, t: self._verify_signer(k, v, by_code, t), now
        )
        by_kid = {s.kid: s for s in signers.values()}
        crls = self._verify_prefix(
            records.CRLS, lambda k, v, t: self._verify_crl(k, v, by_code), now
        )
        retired = self._verify_prefix(
            records.RETIRED, lambda k, v, t: self._verify_retirement(k, v, by_kid, by_code), now
        )
        revoked = self._verify_prefix(records.REVOKED, self._verify_revocation, now)
        self._signers = _with_status(by_kid, by_code, root_crls, crls, retired, revoked)
        self._provinces = by_code
        self._root_crls = tuple(root_crls.values())
        self._province_crls = {k.removeprefix(records.CRLS): crl for k, crl in crls.items()}

    def certificate_revoked(self, *, issuer_province: str | None, serial: int) -> bool:
        """True when a caller certificate (node, operator, checkpoint, gateway, coordinator) is
        revoked: by its provincial CA's CRL, or because the root revoked that CA, or — for the
        root's own leaves — by the root CRL. A certificate of a province not onboarded counts
        as revoked."""
        if issuer_province is None:
            return any(
                crl.get_revoked_certificate_by_serial_number(serial) for crl in self._root_crls
            )
        province = self._provinces.get(issuer_province)
        if province is None:
            return True
        ca_serial = province.ca_certificate.serial_number
        if any(crl.get_revoked_certificate_by_serial_number(ca_serial) for crl in self._root_crls):
            return True
        crl = self._province_crls.get(issuer_province)
        return crl is not None and crl.get_revoked_certificate_by_serial_number(serial) is not None

    def _verify_prefix(
        self, prefix: str, verify: Callable[[str, bytes, datetime], T], now: datetime
    ) -> dict[str, T]:
        """Verify every raw value under ``prefix``; a failure keeps the last good value."""
        result: dict[str, T] = {}
        for key, (value, revision) in self._raw.items():
            if not key.startswith(prefix) or (prefix == records.CRLS and key == records.ROOT_CRL):
                continue
            try:
                parsed = verify(key, value, now)
                self._check_not_older(key, parsed)
                result[key] = parsed
                self._parsed[key] = parsed
                self._accepted[key] = (value, revision)
            except HcxError as e:
                self._reject(key, e.message, value)
                if key in self._parsed:
                    result[key] = self._parsed[key]
        return result

    def _check_not_older(self, key: str, parsed: object) -> None:
        """Refuse a validly signed but older value replayed over a newer one."""
        previous = self._parsed.get(key)
        if (
            isinstance(parsed, records.ProvinceRecord)
            and isinstance(previous, records.ProvinceRecord)
            and parsed.seq < previous.seq
        ):
            raise HcxError(f"province record seq {parsed.seq} < {previous.seq} (replay)")
        if (
            isinstance(parsed, x509.CertificateRevocationList)
            and isinstance(previous, x509.CertificateRevocationList)
            and _crl_number(parsed) < _crl_number(previous)
        ):
            raise HcxError("CRL number went backwards (replay of an older CRL)")

    def _verify_province(self, key: str, value: bytes, now: datetime) -> records.ProvinceRecord:
        record = records.decode_province(self._unseal_by_root(key, value))
        if key != records.province_key(record.code):
            raise HcxError("province record stored under another province's key")
        if pki.verify_provincial_ca(record.ca_certificate, self._roots, at=now) != record.code:
            raise HcxError("provincial CA certificate is for another province")
        return record

    def _unseal_by_root(self, key: str, value: bytes) -> bytes:
        error: HcxError = HcxError("no pinned root")
        for root in self._roots:
            try:
                return records.unseal(key, value, root)
            except HcxError as e:
                error = e
        raise error

    def _verify_root_crl(
        self, key: str, value: bytes, now: datetime
    ) -> x509.CertificateRevocationList:
        crl = records.decode_crl(value)
        for root in self._roots:
            if crl.issuer == root.subject:
                pki.verify_crl(crl, root)
                return crl
        raise HcxError("root CRL is not issued by a pinned root")

    def _verify_crl(
        self, key: str, value: bytes, provinces: dict[str, records.ProvinceRecord]
    ) -> x509.CertificateRevocationList:
        province = provinces.get(key.removeprefix(records.CRLS))
        if province is None:
            raise HcxError(f"CRL of unknown province {key}")
        crl = records.decode_crl(value)
        pki.verify_crl(crl, province.ca_certificate)
        return crl

    def _verify_retirement(
        self,
        key: str,
        value: bytes,
        signers: dict[bytes, TrustedSigner],
        provinces: dict[str, records.ProvinceRecord],
    ) -> records.Retirement:
        kid = bytes.fromhex(key.removeprefix(records.RETIRED)) if _is_hex(key[8:]) else b""
        signer = signers.get(kid)
        if signer is None:
            raise HcxError("retirement of an unknown signing certificate")
        ca = provinces[signer.province].ca_certificate
        retirement = records.decode_retirement(records.unseal(key, value, ca))
        if retirement.kid != kid:
            raise HcxError("retirement stored under another kid")
        return retirement

    def _verify_revocation(self, key: str, value: bytes, now: datetime) -> records.Revocation:
        revocation = records.decode_revocation(self._unseal_by_root(key, value))
        if key != records.revoked_key(revocation.kid):
            raise HcxError("revocation stored under another kid")
        return revocation

    def _verify_signer(
        self,
        key: str,
        value: bytes,
        provinces: dict[str, records.ProvinceRecord],
        now: datetime,
    ) -> TrustedSigner:
        province_record = provinces.get(records.decode_signing_cert(value).province)
        ca_der = (
            b""
            if province_record is None
            else pki.certificate_to_der(province_record.ca_certificate)
        )
        memo_key = (value, ca_der)
        cached = self._signer_memo.get(memo_key)
        if cached is not None and now.timestamp() - cached[0] < SIGNER_MEMO_S:
            return cached[1]
        signer = self._verify_signer_uncached(key, value, provinces, now)
        self._signer_memo[memo_key] = (now.timestamp(), signer)
        return signer

    def _verify_signer_uncached(
        self,
        key: str,
        value: bytes,
        provinces: dict[str, records.ProvinceRecord],
        now: datetime,
    ) -> TrustedSigner:
        record = records.decode_signing_cert(value)
        if key != records.signing_cert_key(record.kid):
            raise HcxError("signing certificate stored under a key that is not its kid")
        province = provinces.get(record.province)
        if province is None:
            raise HcxError(f"signing certificate of unknown province {record.province}")
        certificate = record.certificate
        # An expired DSC is checked as of its last valid moment: codes it signed before then
        # are still judged by their own iat and exp (trust.verify).
        at = min(now, certificate.not_valid_after_utc)
        if pki.verify_dsc_chain(certificate, province.ca_certificate, self._roots, at=at) != (
            record.province
        ):
            raise HcxError("signing certificate belongs to another province")
        public_key = certificate.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise HcxError("signing certificate has an unsupported key type")
        return TrustedSigner(
            kid=record.kid,
            province=record.province,
            certificate=certificate,
            public_key=public_key,
            not_before=certificate.not_valid_before_utc.timestamp(),
            not_after=certificate.not_valid_after_utc.timestamp(),
        )

    def _reject(self, key: str, why: str, value: bytes) -> None:
        """Log and count a rejected value once (a rebuild re-checks it every time)."""
        fingerprint = (key, hashlib.sha256(value).digest())
        if fingerprint in self._rejected:
            return
        self._rejected.add(fingerprint)
        log.warning("registry value rejected: %s: %s", key, why, extra={"key": key, "why": why})
        if self._on_rejected is not None:
            self._on_rejected(key, why)


def _with_status(
    signers: dict[bytes, TrustedSigner],
    provinces: dict[str, records.ProvinceRecord],
    root_crls: dict[str, x509.CertificateRevocationList],
    crls: dict[str, x509.CertificateRevocationList],
    retired: dict[str, records.Retirement],
    revoked: dict[str, records.Revocation],
) -> dict[bytes, TrustedSigner]:
    """Signers of onboarded provinces, marked with their revocation and retirement times."""
    result: dict[bytes, TrustedSigner] = {}
    for kid, signer in signers.items():
        if signer.province not in provinces:
            continue
        times: list[tuple[float, str]] = []
        ca = provinces[signer.province].ca_certificate
        for crl in root_crls.values():
            when = pki.revoked_at(crl, ca.serial_number)
            if when is not None:
                times.append((when.timestamp(), "provincial CA revoked by the national root"))
        own_crl = crls.get(records.crl_key(signer.province))
        when = (
            None if own_crl is None else pki.revoked_at(own_crl, signer.certificate.serial_number)
        )
        if when is not None:
            times.append((when.timestamp(), "revoked by its provincial CA"))
        order = revoked.get(records.revoked_key(kid))
        if order is not None:
            times.append((order.revoked_at, f"revoked nationally: {order.reason}"))
        retirement = retired.get(records.retired_key(kid))
        result[kid] = replace(
            signer,
            revoked_at=min(times)[0] if times else None,
            revocation_reason=min(times)[1] if times else "",
            retired_at=None if retirement is None else retirement.retired_at,
        )
    return result


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True
