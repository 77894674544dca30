"""Issuing codes: holder pseudonymisation, claims, signing. Pure logic over a status store."""

from __future__ import annotations

import hmac
import operator
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from nodes.provincial.stores import CodeRecord, NewCode, StatusStore
from trust.codeformat import CodeClaims, id_tail, issue_token, mask_name
from trust.errors import InvalidRequest, NotFound
from trust.model import Colour
from trust.verify import DEFAULT_MAX_LIFETIME_S, DEFAULT_TOKEN_LIFETIME_S

COMMIT_CHUNK = 500  # codes per durable commit in issue_batch
_ID_RE = re.compile(r"^[0-9]{17}[0-9X]$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ZEROS = ord("0") * sum(_ID_WEIGHTS)


def validate_id_number(id_number: str) -> str:
    """Normalise and check a GB 11643 resident ID number (18 characters, ISO 7064 check)."""
    value = id_number.strip().upper()
    if not _ID_RE.match(value):
        raise InvalidRequest("ID number must be 17 digits and a check character")
    if _check_character(value[:17]) != value[17]:
        raise InvalidRequest("ID number check character does not match")
    return value


def with_check_character(first17: str) -> str:
    """Complete 17 digits with their check character (for tests and simulations)."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError(f"expected 17 digits, got {first17!r}")
    return first17 + _check_character(first17)


def _check_character(first17: str) -> str:
    # sum(digit * weight) over the ASCII codes, minus the "0"s: one C-level pass (bulk issuance).
    total = sum(map(operator.mul, first17.encode("ascii"), _ID_WEIGHTS)) - _ZEROS
    return _ID_CHECK[total % 11]


class CurrentKey(Protocol):
    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey: ...

    @property
    def kid(self) -> bytes: ...


class KeySource(Protocol):
    """Where the issuer gets the key to sign with (nodes.provincial.signing)."""

    def current(self) -> CurrentKey: ...


@dataclass(frozen=True)
class Holder:
    """A resident asking for a code: ID number (hashed, never stored) and full name."""

    id_number: str
    full_name: str
    colour: Colour = Colour.GREEN


class CheckedHolder(NamedTuple):
    """A holder whose ID number is valid (normalised) and whose name could be masked."""

    id_number: str
    masked_name: str
    colour: Colour


def check_holder(holder: Holder) -> CheckedHolder:
    """Validate a holder before anything is written; InvalidRequest names the bad field."""
    id_number = validate_id_number(holder.id_number)
    full_name = holder.full_name.strip()
    if not full_name or len(full_name) > 64:
        raise InvalidRequest("full name must be 1 to 64 characters")
    return CheckedHolder(id_number, mask_name(full_name), holder.colour)


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
        signing_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | None = None,
        kid: bytes = b"",
        key_source: KeySource | None = None,
        holder_key: bytes,
        store: StatusStore,
        clock: Callable[[], float] = time.time,
        token_lifetime: int = DEFAULT_TOKEN_LIFETIME_S,
        max_lifetime: int = DEFAULT_MAX_LIFETIME_S,
    ) -> None:
        if len(holder_key) < 32:
            raise ValueError("the holder key must be at least 32 bytes")
        # Verifiers refuse a code living longer than their maximum (LIFETIME_TOO_LONG): an
        # issuer configured above it would only make codes that nobody accepts.
        if not 0 < token_lifetime <= max_lifetime:
            raise ValueError(
                f"token lifetime must be 1 to {max_lifetime} s (the verifiers' maximum), "
                f"not {token_lifetime}"
            )
        self.province = province
        if key_source is None and signing_key is None:
            raise ValueError("an issuer needs a signing key or a key source")
        self._signing_key = signing_key
        self._kid = kid
        self._keys = key_source  # the province's current key, picked up without a restart
        self._holder_key = holder_key
        self._store = store
        self._clock = clock
        self._lifetime = token_lifetime
        self._write_pool: ThreadPoolExecutor | None = None

    def holder_ref(self, id_number: str) -> bytes:
        """The keyed hash stored instead of the ID number (HMAC-SHA256, province's key)."""
        return hmac.digest(self._holder_key, id_number.encode(), "sha256")

    def issue(self, *, id_number: str, full_name: str, colour: Colour = Colour.GREEN) -> IssuedCode:
        """A code for the holder: a new code id the first time, then the same one."""
        return self.issue_batch([Holder(id_number, full_name, colour)])[0]

    def issue_batch(self, holders: list[Holder]) -> list[IssuedCode]:
        """Codes for many holders (bulk enrolment), committed durably in chunks.

        Every holder is checked before anything is written. The chunks are queued on one
        store thread, which writes them one after the other (SQLite and psycopg release the
        GIL) while this thread signs the chunks already committed, so two cores share the
        work. A token is only made for a committed code; if a chunk fails, the call raises,
        the chunks not yet started are dropped, and issuing again is safe (a holder keeps
        their code id).
        """
        return self.issue_checked([check_holder(holder) for holder in holders])

    def issue_checked(self, checked: list[CheckedHolder]) -> list[IssuedCode]:
        """``issue_batch`` for holders already checked (``check_holder``)."""
        if len(checked) <= COMMIT_CHUNK:
            codes = [self._new_code(holder) for holder in checked]
            return [self.sign(record) for record in self._store.create_or_get_many(codes)]
        writes: list[Future[list[CodeRecord]]] = []
        try:
            for start in range(0, len(checked), COMMIT_CHUNK):
                codes = [self._new_code(holder) for holder in checked[start : start + COMMIT_CHUNK]]
                writes.append(self._writer().submit(self._store.create_or_get_many, codes))
            return [self.sign(record) for write in writes for record in write.result()]
        finally:
            for write in writes:
                write.cancel()  # only chunks still queued, after a failure

    def _writer(self) -> ThreadPoolExecutor:
        if self._write_pool is None:
            self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="issuer-store")
        return self._write_pool

    def _new_code(self, holder: CheckedHolder) -> NewCode:
        return NewCode(
            code_id=secrets.token_bytes(16),
            holder_ref=self.holder_ref(holder.id_number),
            colour=holder.colour,
            now=self._clock(),
            masked_name=holder.masked_name,
            id_tail=id_tail(holder.id_number),
        )

    def refresh(self, code_id: bytes) -> IssuedCode:
        """A fresh short-lived token for an existing code id."""
        if len(code_id) != 16:
            raise InvalidRequest("code_id must be 16 bytes")
        record = self._store.get(code_id)
        if record is None:
            raise NotFound(f"unknown code id {code_id.hex()}")
        return self.sign(record)

    def sign(self, record: CodeRecord) -> IssuedCode:
        """A fresh token for a stored code (its colour and status version as stored)."""
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
        if self._keys is not None:
            current = self._keys.current()
            signing_key, kid = current.private_key, current.kid
        else:
            assert self._signing_key is not None
            signing_key, kid = self._signing_key, self._kid
        token = issue_token(claims, signing_key=signing_key, kid=kid)
        return IssuedCode(record=record, token=token, expires_at=claims.expires_at)
