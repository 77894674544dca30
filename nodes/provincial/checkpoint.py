"""Verification for the province's own checkpoints, answered by its node.

A code of this province is checked here with the one verification function every verifier
uses (trust.verify.check_code: encoding, kid, province status, revocations, retirement,
signature, issuer, times, lifetime) against the same verified national view as everyone else:
the signed trust list the node pulls (nodes.provincial.trustlist). The live colour then comes
from the province's own store, with no round trip to the national tier. A code of another
province, or any code while the node holds no current trust list, is for the national gateway:
the node never answers on less than the full check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from nodes.provincial.stores import StatusStore
from nodes.provincial.trustlist import TrustListFollower
from trust.codeformat import decode_token
from trust.errors import HcxError
from trust.model import Reason, Verdict
from trust.verify import CodeCheck, Outcome, check_code

log = logging.getLogger(__name__)


class LocalVerifier:
    """Checks the province's own codes against the national view and its own store."""

    def __init__(
        self,
        *,
        province: str,
        trust: TrustListFollower,
        store: StatusStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.province = province
        self._trust = trust
        self._store = store
        self._clock = clock

    def check(self, token: str) -> Outcome | None:
        """A local verdict, or None when only the national gateway can decide."""
        try:
            issuer = decode_token(token).claims.issuer
        except HcxError as e:  # the encoding alone decides: the same verdict everywhere
            return Outcome(Verdict.INVALID, e.reason, e.message)
        view = self._trust.view()
        if issuer != self.province or view is None:
            return None
        try:
            checked = check_code(token, view, now=self._clock())
        except HcxError as e:
            return Outcome(Verdict.INVALID, e.reason, e.message)
        return self._live(checked)

    def _live(self, checked: CodeCheck) -> Outcome:
        claims, kid = checked.claims, checked.signer.kid
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
