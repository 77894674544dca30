"""The verified in-memory view of the trust registry: what the verification hot path reads.

A view serves one verified log (trust.log.VerifiedLog) and the state derived from it
(trust.authority.RegistryState): provinces, signing certificates with their retirement and
revocation times, the coordinators, and revoked caller certificates. It changes only by
:meth:`TrustView.install` of a log that extends the one it serves, so whatever the store does,
the view never goes below the largest log it verified: everything that log revoked stays
revoked. Node routes (routing, not trust) sit beside it. Nothing in here performs I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from trust import pki
from trust.authority import Decision, ProvinceState, RegistryState, SigningKey
from trust.errors import HcxError
from trust.log import VerifiedLog
from trust.routes import NodeRoute, decode_route, route_key
from trust.statements import ROOT_ISSUER

log = logging.getLogger(__name__)

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class TrustedSigner:
    """A signing certificate the log accepted, its key parsed once."""

    kid: bytes
    province: str
    certificate: x509.Certificate
    public_key: PublicKey
    not_before: float
    not_after: float
    revoked_at: float | None = None  # every code fails from this time on (KEY_REVOKED)
    revocation_reason: str = ""
    retired_at: float | None = None  # codes issued after this fail (KEY_RETIRED)


@dataclass(frozen=True)
class ProvinceRecord:
    """An onboarded province as checkpoints see it."""

    code: str
    name: str
    ca_certificate: x509.Certificate
    suspended: bool
    version: int


class TrustView:
    """Provinces, signing certificates and routes; replaced whole when the log grows."""

    def __init__(
        self,
        *,
        roots: Sequence[x509.Certificate],
        clock: Callable[[], float] = time.time,
        on_rejected: Callable[[str, str], None] | None = None,
    ) -> None:
        if not roots:
            raise ValueError("a trust view needs at least one pinned root certificate")
        self.pinned_roots = tuple(roots)
        self._clock = clock
        self._on_rejected = on_rejected
        self.log = VerifiedLog()
        self.state = RegistryState(pinned_roots=self.pinned_roots)
        self.decisions: list[Decision] = []
        self._signers: dict[bytes, TrustedSigner] = {}
        self._provinces: dict[str, ProvinceRecord] = {}
        self._keys: dict[bytes, PublicKey] = {}  # parsed once per certificate fingerprint
        self._routes: dict[str, dict[str, NodeRoute]] = {}

    # -- reads (hot path) -------------------------------------------------------------------
    def signer(self, kid: bytes) -> TrustedSigner | None:
        return self._signers.get(kid)

    def province(self, code: str) -> ProvinceRecord | None:
        return self._provinces.get(code)

    def provinces(self) -> list[ProvinceRecord]:
        return [self._provinces[c] for c in sorted(self._provinces)]

    def signers(self) -> list[TrustedSigner]:
        return sorted(self._signers.values(), key=lambda s: (s.province, s.kid))

    def nodes(self, province: str) -> list[NodeRoute]:
        return sorted(self._routes.get(province, {}).values(), key=lambda n: n.node_id)

    @property
    def revision(self) -> int:
        """The size of the verified log: it only grows (trust lists carry it)."""
        return self.log.size

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        """The roots the log's root metadata names (the pinned ones before genesis)."""
        return self.state.roots

    def certificate_revoked(
        self, *, issuer_province: str | None, serial: int, issuer_key_id: bytes | None = None
    ) -> bool:
        """True when a caller certificate is revoked: by a CRL of its province, by a
        coordinator, because its provincial CA was revoked or replaced, or — for the root's
        own leaves — by a coordinator's revocation. A certificate of a province not onboarded
        counts as revoked."""
        now = self._clock()
        if issuer_province is None:
            return self.state.caller_revoked(issuer=ROOT_ISSUER, serial=serial, now=now)
        province = self.state.provinces.get(issuer_province)
        if province is None:
            return True
        if province.ca_revoked_at is not None and province.ca_revoked_at <= now:
            return True
        if issuer_key_id is not None and issuer_key_id != _key_id(province.ca):
            return True  # issued by a CA the province no longer has
        return self.state.caller_revoked(issuer=issuer_province, serial=serial, now=now)

    # -- updates ----------------------------------------------------------------------------
    def install(
        self, verified: VerifiedLog, state: RegistryState, decisions: list[Decision]
    ) -> None:
        """Serve ``verified`` and the state derived from it (the caller checked that it
        extends the log served now)."""
        if verified.size < self.log.size:
            raise ValueError("a view never goes back to a smaller log")
        for decision in decisions:
            if not decision.accepted:
                self._reject(f"log/leaf/{decision.index:012d}", decision.effect)
        self.log, self.state = verified, state
        self.decisions = [*self.decisions, *decisions] if decisions else self.decisions
        self._rebuild()

    def set_routes(self, entries: Iterable[tuple[str, bytes]]) -> None:
        """Replace every route with those stored (key, value)."""
        self._routes = {}
        for key, value in entries:
            self.put_route(key, value)

    def put_route(self, key: str, value: bytes) -> None:
        try:
            route = decode_route(key, value)
        except HcxError as e:
            self._reject(key, e.message)
            return
        self._routes.setdefault(route.province, {})[route.node_id] = route

    def drop_route(self, key: str) -> None:
        _, _, rest = key.partition("/")
        province, _, node_id = rest.partition("/")
        if route_key(province, node_id) == key:
            self._routes.get(province, {}).pop(node_id, None)

    def routes(self) -> list[NodeRoute]:
        return [r for by_id in self._routes.values() for r in by_id.values()]

    # -- derived tables -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        state = self.state
        self._provinces = {
            code: ProvinceRecord(p.code, p.name, p.ca, p.suspended, p.version)
            for code, p in state.provinces.items()
        }
        self._signers = {
            kid: signer
            for kid, key in state.signing_keys.items()
            if (signer := self._trusted(key, state)) is not None
        }

    def _trusted(self, key: SigningKey, state: RegistryState) -> TrustedSigner | None:
        province = state.provinces.get(key.province)
        if province is None:
            return None
        public_key = self._public_key(key)
        if public_key is None:
            return None
        times = [*key.revocations, *_ca_revocations(key, province)]
        by_crl = state.revoked.get((key.province, key.certificate.serial_number))
        if by_crl is not None:
            times.append(by_crl)
        first = min(times) if times else None
        certificate = key.certificate
        return TrustedSigner(
            kid=key.kid,
            province=key.province,
            certificate=certificate,
            public_key=public_key,
            not_before=certificate.not_valid_before_utc.timestamp(),
            not_after=certificate.not_valid_after_utc.timestamp(),
            revoked_at=first[0] if first else None,
            revocation_reason=first[1] if first else "",
            retired_at=None if key.retired_at is None else float(key.retired_at),
        )

    def _public_key(self, key: SigningKey) -> PublicKey | None:
        fingerprint = pki.fingerprint(key.certificate)
        found = self._keys.get(fingerprint)
        if found is None:
            candidate = key.certificate.public_key()
            if not isinstance(candidate, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
                return None
            found = self._keys[fingerprint] = candidate
        return found

    def _reject(self, key: str, why: str) -> None:
        log.warning("registry entry refused: %s: %s", key, why, extra={"key": key, "why": why})
        if self._on_rejected is not None:
            self._on_rejected(key, why)


def _ca_revocations(key: SigningKey, province: ProvinceState) -> list[tuple[float, str]]:
    """When the DSC's provincial CA stopped counting: revoked, or replaced by a new CA."""
    times: list[tuple[float, str]] = []
    if key.ca_fingerprint == pki.fingerprint(province.ca):
        if province.ca_revoked_at is not None:
            times.append((province.ca_revoked_at, "its provincial CA is revoked"))
    else:
        replaced = province.ca_replaced_at.get(key.ca_fingerprint)
        times.append((replaced if replaced is not None else 0.0, "its provincial CA was replaced"))
    return times


def _key_id(certificate: x509.Certificate) -> bytes | None:
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return bytes(ski.value.digest)
