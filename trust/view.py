"""The verified in-memory view of the trust registry: what the verification hot path reads.

Every value read from a store is re-verified here against the pinned national root(s): a
provincial CA must chain to a root, a signing certificate to its province's CA. A value that
fails is rejected, reported through ``on_rejected`` and the last good value for that key keeps
serving. Nothing in here performs I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trust import pki, records
from trust.errors import HcxError
from trust.kv import EventKind, KvEvent, Snapshot

log = logging.getLogger(__name__)

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class TrustedSigner:
    """A signing certificate whose chain to the national root was verified, key parsed once."""

    kid: bytes
    province: str
    certificate: x509.Certificate
    public_key: PublicKey
    not_before: float
    not_after: float


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
        self._raw: dict[str, bytes] = {}
        self._provinces: dict[str, records.ProvinceRecord] = {}
        self._signers: dict[bytes, TrustedSigner] = {}
        self._nodes: dict[str, dict[str, records.NodeRecord]] = {}
        self.revision = 0

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

    # -- updates ----------------------------------------------------------------------------
    def load(self, snapshot: Snapshot) -> None:
        """Replace the view with a full read of the store."""
        self._raw.clear()
        self._nodes.clear()
        for entry in snapshot.entries:
            self._take(entry.key, entry.value)
        self._rebuild()
        self.revision = snapshot.revision

    def apply(self, events: Iterable[KvEvent]) -> None:
        """Apply watched changes (in revision order)."""
        rebuild = False
        for event in events:
            value = event.value if event.kind is EventKind.PUT else None
            rebuild |= self._take(event.key, value)
            self.revision = max(self.revision, event.revision)
        if rebuild:
            self._rebuild()

    def _take(self, key: str, value: bytes | None) -> bool:
        """Record one raw change; True when trust material (not a node) changed."""
        if key.startswith("nodes/"):
            self._take_node(key, value)
            return False
        if value is None:
            self._raw.pop(key, None)
        else:
            self._raw[key] = value
        return True

    def _take_node(self, key: str, value: bytes | None) -> None:
        _, province, node_id = (key.split("/", 2) + ["", ""])[:3]
        if value is None:
            self._nodes.get(province, {}).pop(node_id, None)
            return
        try:
            node = records.decode_node(value)
        except HcxError as e:
            self._reject(key, e.message)
            return
        if (node.province, node.node_id) != (province, node_id):
            self._reject(key, "node record does not match its key")
            return
        self._nodes.setdefault(province, {})[node_id] = node

    def _rebuild(self) -> None:
        now = datetime.fromtimestamp(self._clock(), tz=UTC)
        provinces = self._verified_provinces(now)
        self._signers = self._verified_signers(provinces, now)
        self._provinces = provinces

    def _verified_provinces(self, now: datetime) -> dict[str, records.ProvinceRecord]:
        result: dict[str, records.ProvinceRecord] = {}
        for key, value in self._raw.items():
            if not key.startswith("provinces/"):
                continue
            try:
                record = records.decode_province(value)
                if key != records.province_key(record.code):
                    raise HcxError("province record stored under another province's key")
                if (
                    pki.verify_provincial_ca(record.ca_certificate, self._roots, at=now)
                    != record.code
                ):
                    raise HcxError("provincial CA certificate is for another province")
                result[record.code] = record
            except HcxError as e:
                self._reject(key, e.message)
                self._keep_last_good_province(key, result)
        return result

    def _keep_last_good_province(self, key: str, result: dict[str, records.ProvinceRecord]) -> None:
        code = key.removeprefix("provinces/")
        if code in self._provinces:
            result[code] = self._provinces[code]

    def _verified_signers(
        self, provinces: dict[str, records.ProvinceRecord], now: datetime
    ) -> dict[bytes, TrustedSigner]:
        result: dict[bytes, TrustedSigner] = {}
        for key, value in self._raw.items():
            if not key.startswith("dsc/"):
                continue
            try:
                signer = self._verify_signer(key, value, provinces, now)
                result[signer.kid] = signer
            except HcxError as e:
                self._reject(key, e.message)
                previous = self._signers.get(bytes.fromhex(key[4:]) if _is_hex(key[4:]) else b"")
                if previous is not None and previous.province in provinces:
                    result[previous.kid] = previous
        return result

    def _verify_signer(
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

    def _reject(self, key: str, why: str) -> None:
        log.warning("registry value rejected", extra={"key": key, "why": why})
        if self._on_rejected is not None:
            self._on_rejected(key, why)


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True
