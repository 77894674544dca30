"""Verification for the province's own checkpoints, answered by its node.

A code of this province whose key id is one of the province's own signing certificates is
checked here: signature, validity, then the live colour from the province's own store, with no
round trip to the national tier. Anything else (another province's code, or a key id this node
does not hold, e.g. a retired key) is for the national gateway, which holds the whole registry.
What the node cannot see locally: a suspension or a revocation decided by the coordinators
(docs/status-store.md, "local verification").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from cryptography import x509

from nodes.provincial.stores import StatusStore
from trust import pki
from trust.codeformat import CodeClaims, DecodedCode, decode_token, verify_token_signature
from trust.cose import VerifyingKey
from trust.errors import HcxError, PkiError
from trust.model import Reason, Verdict
from trust.verify import DEFAULT_CLOCK_SKEW_S, Outcome, check_validity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnSigner:
    """One of the province's own signing certificates, its key parsed once."""

    kid: bytes
    public_key: VerifyingKey
    not_before: float
    not_after: float


def load_own_signers(directory: Path, *, province: str) -> dict[bytes, OwnSigner]:
    """Signing certificates (``dsc*.pem``) in the province directory issued by its own CA."""
    ca = pki.load_certificate_pem((directory / "ca.pem").read_bytes())
    signers: dict[bytes, OwnSigner] = {}
    for path in sorted(directory.glob("dsc*.pem")):
        if "key" in path.name:
            continue
        try:
            cert = _own_certificate(path, ca, province)
        except (PkiError, ValueError, TypeError) as e:
            log.warning("ignoring %s for local verification: %s", path.name, e)
            continue
        signers[pki.kid(cert)] = OwnSigner(
            kid=pki.kid(cert),
            public_key=cert.public_key(),  # type: ignore[arg-type]
            not_before=cert.not_valid_before_utc.replace(tzinfo=UTC).timestamp(),
            not_after=cert.not_valid_after_utc.replace(tzinfo=UTC).timestamp(),
        )
    return signers


def _own_certificate(path: Path, ca: x509.Certificate, province: str) -> x509.Certificate:
    cert = pki.load_certificate_pem(path.read_bytes())
    if pki.province_of(cert) != province:
        raise PkiError(f"certificate belongs to province {pki.province_of(cert)}")
    cert.verify_directly_issued_by(ca)  # raises ValueError/InvalidSignature-as-ValueError
    return cert


class LocalVerifier:
    """Checks the province's own codes against its own certificates and store."""

    def __init__(
        self,
        *,
        province: str,
        signers: dict[bytes, OwnSigner],
        store: StatusStore,
        clock: Callable[[], float] = time.time,
        clock_skew: int = DEFAULT_CLOCK_SKEW_S,
    ) -> None:
        self.province = province
        self._signers = signers
        self._store = store
        self._clock = clock
        self._skew = clock_skew

    def check(self, token: str) -> Outcome | None:
        """A local verdict, or None when only the national gateway can decide."""
        try:
            decoded = decode_token(token)
        except HcxError as e:
            return Outcome(Verdict.INVALID, e.reason, e.message)
        signer = self._signers.get(decoded.kid)
        if decoded.claims.issuer != self.province or signer is None:
            return None
        try:
            self._verify(decoded, signer)
        except HcxError as e:
            return Outcome(
                Verdict.INVALID, e.reason, e.message, claims=decoded.claims, kid=signer.kid
            )
        return self._live(decoded.claims, signer.kid)

    def _verify(self, decoded: DecodedCode, signer: OwnSigner) -> None:
        verify_token_signature(decoded, signer.public_key)
        check_validity(
            decoded.claims,
            not_before=signer.not_before,
            not_after=signer.not_after,
            now=self._clock(),
            clock_skew=self._skew,
        )

    def _live(self, claims: CodeClaims, kid: bytes) -> Outcome:
        record = self._store.get(claims.code_id)
        if record is None:
            return Outcome(
                Verdict.INVALID,
                Reason.UNKNOWN_CODE,
                f"province {self.province} does not know this code",
                claims=claims,
                kid=kid,
            )
        return Outcome(
            Verdict.VALID,
            Reason.NONE,
            "live colour from the province's own store",
            claims=claims,
            kid=kid,
            colour=record.colour,
            status_version=record.status_version,
        )
