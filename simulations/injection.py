"""Bad codes shown at checkpoints on purpose: each must be refused, and each is counted.

- forged: signed by a key the registry never saw (unknown kid), or by a rogue key that claims
  a real kid (bad signature);
- tampered: a genuine code with one byte of its signature changed (an edited screenshot);
- expired: signed by the province's real key, but its lifetime is over;
- compromised: signed with a province key after the scenario leaked it; accepted until the
  revocation is acknowledged, refused (KEY_REVOKED) from then on beyond the propagation bound.
"""

from __future__ import annotations

import random
import secrets
import time
import zlib
from dataclasses import replace

from simulations.federation import SigningKey
from trust import pki
from trust.base45 import b45decode, b45encode
from trust.codeformat import ISSUE_ZLIB_LEVEL, decode_token, issue_token

PREFIX = "HCX1:"
INJECTED_KINDS = ("forged", "tampered", "expired")


class Injector:
    """Makes bad variants of a genuine token."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._rogue = pki.generate_private_key()  # the forger's own key, never registered
        self.compromised: SigningKey | None = None

    def make(self, kind: str, token: str, key: SigningKey) -> str:
        claims = decode_token(token).claims
        now = int(time.time())
        if kind == "forged":
            kid = key.kid if self._rng.random() < 0.5 else secrets.token_bytes(8)
            return issue_token(claims, signing_key=self._rogue, kid=kid)
        if kind == "tampered":
            return tamper(token)
        if kind == "expired":
            old = replace(claims, issued_at=now - 600, expires_at=now - 300)
            return issue_token(old, signing_key=key.private_key, kid=key.kid)
        if kind == "compromised":
            assert self.compromised is not None
            return issue_token(
                replace(claims, issued_at=now, expires_at=now + 120),
                signing_key=self.compromised.private_key,
                kid=self.compromised.kid,
            )
        raise ValueError(f"unknown injected kind {kind!r}")


def tamper(token: str) -> str:
    """Flip one bit near the end of the COSE structure (inside the signature)."""
    raw = bytearray(zlib.decompress(b45decode(token.removeprefix(PREFIX))))
    raw[-10] ^= 0x01
    # Re-compressed the one way codes are (another level is refused as NON_CANONICAL before
    # the signature is even looked at): the bit flip is the only change.
    return PREFIX + b45encode(zlib.compress(bytes(raw), ISSUE_ZLIB_LEVEL))
