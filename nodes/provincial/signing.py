"""The node's current signing key, picked up from the province's key directory without a restart.

``hcx node keys rotate`` uploads a new certificate and, once the registry has taken it, writes
the new ``dsc.pem`` / ``dsc-key.pem``. Every replica notices the new files (a stat at most once
per ``check_every`` seconds, on the signing path and from ``watch``, a background task, so that
an idle replica's wait has run by its next request) and switches to the new key once the
national registry has known it for ``settle`` seconds — its own verified trust list lists the
new kid, and has for that long — so that no code is signed with a key that checkpoints
elsewhere would not find: the node's view and each gateway's follow the registry separately,
and a gateway whose etcd member is in an election sees the upload a few seconds after the
node may. Until then, and whenever the files
are unreadable or half-written, it keeps signing with the key it has (the old key stays valid
for the rotation's overlap, minutes, far longer than ``settle``) — unless the registry already
refuses the old key's codes (revoked after a compromise, retired, or not listed): then any
listed key is better, and the node switches without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from nodes.provincial.keys import ProvinceDir
from trust import pki
from trust.errors import PkiError
from trust.view import TrustView

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
# How long the registry must have listed a new key before the node signs with it: a gateway's
# view normally follows within milliseconds (bench/bench_registry.py: revocations reach two
# gateways in ~10 ms), an etcd leader election takes about a second on loopback and a few
# across hosts (docs/partitions.md). Rotation overlaps are minutes (hcx node keys rotate).
SETTLE_S = 5.0
# The shortest rotation overlap: a replica switches at most its trust list's pull interval
# (2 s), a file check (1 s) and the settle time after the upload; twice that, rounded up.
MIN_ROTATION_OVERLAP_S = 20


def registry_refuses(view: TrustView | None, kid: bytes, *, now: float) -> bool:
    """Does the registry refuse every code signed with ``kid`` from ``now`` on: not listed
    (UNKNOWN_KID), revoked, or retired? (No verified view yet: nothing is known refused.)"""
    if view is None:
        return False
    signer = view.signer(kid)
    if signer is None:
        return True
    return any(t is not None and t <= now for t in (signer.revoked_at, signer.retired_at))


@dataclass(frozen=True)
class SigningKey:
    private_key: pki.PrivateKey
    kid: bytes


class SigningKeySource:
    """The province's current DSC key, reloaded when the key files change."""

    def __init__(
        self,
        directory: ProvinceDir,
        *,
        known: Callable[[bytes], bool] = lambda kid: True,
        refused: Callable[[bytes], bool] = lambda kid: False,
        check_every: float = CHECK_EVERY_S,
        settle: float = SETTLE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._known = known  # is this kid in the verified national registry?
        self._refused = refused  # does the registry refuse this kid's codes now (revoked…)?
        self._check_every = check_every
        self._settle = settle
        self._clock = clock
        self._known_since: tuple[bytes, float] | None = None  # the new kid, first seen listed
        self._stamp = self._file_stamp()
        self._current = self._load()
        self._checked = clock()

    def current(self) -> SigningKey:
        now = self._clock()
        if now - self._checked >= self._check_every:
            self._checked = now
            self._maybe_reload()
        return self._current

    async def watch(self) -> None:
        """Check the files and the registry every ``check_every`` seconds, requests or none:
        the settle time of a new key runs from when the registry listed it, not from the
        next request (an idle replica would otherwise sign its first code after the old
        key's retirement with the old key). Runs until cancelled."""
        while True:
            try:
                self.current()
            except Exception:  # a bug here must not stop the checks: the signing path goes on
                log.exception("checking the signing key files failed")
            await asyncio.sleep(self._check_every)

    def _file_stamp(self) -> tuple[int, int]:
        stats = [self._directory.dsc_cert.stat(), self._directory.dsc_key.stat()]
        return max(s.st_mtime_ns for s in stats), sum(s.st_size for s in stats)

    def _load(self) -> SigningKey:
        certificate = pki.load_certificate_pem(self._directory.dsc_cert.read_bytes())
        key = pki.load_private_key_pem(self._directory.dsc_key.read_bytes())
        if not pki.same_public_key(key.public_key(), certificate.public_key()):
            raise PkiError("dsc-key.pem does not belong to dsc.pem")
        return SigningKey(private_key=key, kid=pki.kid(certificate))

    def _maybe_reload(self) -> None:
        try:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            candidate = self._load()
        except (OSError, ValueError, PkiError) as e:
            log.warning("signing key files unreadable, keeping the current key: %s", e)
            return
        if candidate.kid == self._current.kid:
            self._stamp, self._known_since = stamp, None
            return
        if not self._known(candidate.kid):
            self._known_since = None
            return  # uploaded but not yet in the registry: try again at the next check
        now = self._clock()
        if self._known_since is None or self._known_since[0] != candidate.kid:
            self._known_since = (candidate.kid, now)
        waited = now - self._known_since[1] >= self._settle
        if not waited and not self._refused(self._current.kid):
            return  # listed, but perhaps not yet everywhere: keep the key every gateway has
        self._stamp, self._current, self._known_since = stamp, candidate, None
        log.info("signing with the new key %s", candidate.kid.hex())
