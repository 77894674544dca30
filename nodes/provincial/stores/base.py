"""The status store contract shared by every backend (docs/status-store.md).

One row per code: code id, keyed hash of the holder, colour, status version, updated-at and
reason, plus the masked name and ID tail printed on refreshed tokens. Backends differ only in
where the rows live (one SQLite file, or a PostgreSQL database shared by hosts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from trust.errors import InvalidRequest
from trust.model import Colour

if TYPE_CHECKING:
    from nodes.provincial.stores.health import HealthTables

MAX_REQUEST_ID_CHARS = 128
MAX_REASON_CHARS = 200
ISSUED_REASON = "issued"

# Column order of ``bulk_load`` rows and of the ``codes`` table.
CODE_COLUMNS = (
    "code_id",
    "holder_ref",
    "colour",
    "status_version",
    "updated_at",
    "reason",
    "masked_name",
    "id_tail",
)
BulkRow = tuple[bytes, bytes, int, int, float, str, str, str]


class CodeRecord(NamedTuple):
    """A code's live state as the province knows it (a tuple: look-ups make millions)."""

    code_id: bytes
    colour: Colour
    status_version: int
    updated_at: float
    reason: str
    masked_name: str
    id_tail: str


class NewCode(NamedTuple):
    """What issuance asks the store to create (or find, when the holder already has a code)."""

    code_id: bytes
    holder_ref: bytes
    colour: Colour
    now: float
    masked_name: str
    id_tail: str


class ColourChange(NamedTuple):
    """What ``set_colour`` did: the code's record after it, and whether this call changed it
    (False for a request id already applied: nothing changed, the current record is returned)."""

    record: CodeRecord
    applied: bool


class StatusStore(Protocol):
    """What issuance, the servicer and the benchmark need from a province's status store."""

    #: True when calls wait on the network (PostgreSQL): the servicer runs them in a thread.
    blocking: bool
    #: Quarantines, declarations, histories and risk areas (stores/health.py).
    health: HealthTables

    def create_or_get_many(self, codes: list[NewCode]) -> list[CodeRecord]:
        """Create the codes in one durable transaction; a holder who has a code keeps it."""
        ...

    def get(self, code_id: bytes) -> CodeRecord | None:
        """The record of ``code_id``, or None."""
        ...

    def get_many(self, code_ids: list[bytes]) -> dict[bytes, CodeRecord]:
        """Records of the known ids among ``code_ids`` (one query)."""
        ...

    def set_colour(
        self, *, code_id: bytes, colour: Colour, reason: str, request_id: str, now: float
    ) -> ColourChange:
        """Change the colour (version + 1), durably; a repeated request_id changes nothing."""
        ...

    def bulk_load(self, rows: Iterable[BulkRow]) -> int:
        """Fast path for filling a store (migration, benchmark); returns rows written."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers now (a replica cut from its
        database must leave routing rather than time out every call sent to it)."""
        ...

    def count(self) -> int:
        """Number of codes."""
        ...

    def size_bytes(self) -> int:
        """Bytes the store occupies on disk."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def create_or_get(store: StatusStore, code: NewCode) -> CodeRecord:
    """One code (see ``StatusStore.create_or_get_many``)."""
    return store.create_or_get_many([code])[0]


def check_set_colour(*, code_id: bytes, reason: str, request_id: str) -> None:
    """Validation shared by the backends, so both refuse the same requests the same way."""
    if len(code_id) != 16:
        raise InvalidRequest("code_id must be 16 bytes")
    if not request_id:
        raise InvalidRequest("request_id is required (it makes SetStatus idempotent)")
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidRequest(f"request_id is longer than {MAX_REQUEST_ID_CHARS} characters")
    if not reason or len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(f"reason must be 1 to {MAX_REASON_CHARS} characters")


_COLOURS = {int(c): c for c in Colour}


def record_from_row(row: Sequence[Any]) -> CodeRecord:
    """A record from (code_id, colour, version, updated_at, reason, masked_name, id_tail)."""
    code_id, colour, version, updated_at, reason, masked_name, id_tail = row
    return CodeRecord(
        bytes(code_id), _COLOURS[colour], version, float(updated_at), reason, masked_name, id_tail
    )


RECORD_COLUMNS = "code_id, colour, status_version, updated_at, reason, masked_name, id_tail"
