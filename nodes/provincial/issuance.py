"""Issuing codes: holder pseudonymisation, claims, signing. Pure logic over a status store."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from nodes.provincial.stores import CodeRecord, NewCode, StatusStore
from trust.codeformat import CodeClaims, id_tail, issue_token, mask_name
from trust.errors import InvalidRequest, NotFound
from trust.model import Colour

DEFAULT_TOKEN_LIFETIME_S = 300
COMMIT_CHUNK = 500  # codes per durable commit in issue_batch
_ID_RE = re.compile(r"^[0-9]{17}[0-9X]$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def validate_id_number(id_number: str) -> str:
    """Normalise and check a GB 11643 resident ID number (18 characters, ISO 7064 check)."""
    value = id_number.strip().upper()
    if not _ID_RE.match(value):
        raise InvalidRequest("ID number must be 17 digits and a check character")
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != value[17]:
        raise InvalidRequest("ID number check character does not match")
    return value


def with_check_character(first17: str) -> str:
    """Complete 17 digits with their check character (for tests and simulations)."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return first17 + _ID_CHECK[total % 11]


@dataclass(frozen=True)
class Holder:
    """A resident asking for a code: ID number (hashed, never stored) and full name."""

    id_number: str
    full_name: str
    colour: Colour = Colour.GREEN


@dataclass(frozen=True)
class IssuedCode:
    """A code id with a freshly signed token for it."""

    record: CodeRecord
    token: str
    expires_at: int


class Issuer:
    """Issues and refreshes the province's codes with its current signing key."""

    def __init__(
        self,
        *,
        province: str,
        signing_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
        kid: bytes,
        holder_key: bytes,
        store: StatusStore,
        clock: Callable[[], float] = time.time,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME_S,
    ) -> None:
        if len(holder_key) < 32:
            raise ValueError("the holder key must be at least 32 bytes")
        self.province = province
        self._signing_key = signing_key
        self._kid = kid
        self._holder_key = holder_key
        self._store = store
        self._clock = clock
        self._lifetime = token_lifetime
        self._write_pool: ThreadPoolExecutor | None = None

    def holder_ref(self, id_number: str) -> bytes:
        """The keyed hash stored instead of the ID number (HMAC-SHA256, province's key)."""
        return hmac.new(self._holder_key, id_number.encode(), hashlib.sha256).digest()

    def issue(self, *, id_number: str, full_name: str, colour: Colour = Colour.GREEN) -> IssuedCode:
        """A code for the holder: a new code id the first time, then the same one."""
        return self.issue_batch([Holder(id_number, full_name, colour)])[0]

    def issue_batch(self, holders: list[Holder]) -> list[IssuedCode]:
        """Codes for many holders (bulk enrolment), committed durably in chunks.

        The store writes chunk k+1 on a worker thread (SQLite and psycopg release the GIL)
        while this thread signs chunk k, so two cores share the work. A token is only made
        for a committed code; if a chunk fails, the call raises and issuing again is safe
        (a holder keeps their code id).
        """
        codes = [self._new_code(holder) for holder in holders]
        chunks = [codes[i : i + COMMIT_CHUNK] for i in range(0, len(codes), COMMIT_CHUNK)]
        if len(chunks) <= 1:
            return [self._sign(record) for record in self._store.create_or_get_many(codes)]
        issued: list[IssuedCode] = []
        pending = self._writer().submit(self._store.create_or_get_many, chunks[0])
        for following in chunks[1:]:
            records = pending.result()
            pending = self._writer().submit(self._store.create_or_get_many, following)
            issued += [self._sign(record) for record in records]
        issued += [self._sign(record) for record in pending.result()]
        return issued

    def _writer(self) -> ThreadPoolExecutor:
        if self._write_pool is None:
            self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="issuer-store")
        return self._write_pool

    def _new_code(self, holder: Holder) -> NewCode:
        id_number = validate_id_number(holder.id_number)
        full_name = holder.full_name.strip()
        if not full_name or len(full_name) > 64:
            raise InvalidRequest("full name must be 1 to 64 characters")
        return NewCode(
            code_id=secrets.token_bytes(16),
            holder_ref=self.holder_ref(id_number),
            colour=holder.colour,
            now=self._clock(),
            masked_name=mask_name(full_name),
            id_tail=id_tail(id_number),
        )

    def refresh(self, code_id: bytes) -> IssuedCode:
        """A fresh short-lived token for an existing code id."""
        if len(code_id) != 16:
            raise InvalidRequest("code_id must be 16 bytes")
        record = self._store.get(code_id)
        if record is None:
            raise NotFound(f"unknown code id {code_id.hex()}")
        return self._sign(record)

    def _sign(self, record: CodeRecord) -> IssuedCode:
        now = int(self._clock())
        claims = CodeClaims(
            issuer=self.province,
            code_id=record.code_id,
            issued_at=now,
            expires_at=now + self._lifetime,
            colour=record.colour,
            status_version=record.status_version,
            masked_name=record.masked_name,
            id_tail=record.id_tail,
        )
        token = issue_token(claims, signing_key=self._signing_key, kid=self._kid)
        return IssuedCode(record=record, token=token, expires_at=claims.expires_at)
