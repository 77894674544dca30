"""Status store backends behind one contract; ``open_status_store`` picks one from a URL."""

from __future__ import annotations

from pathlib import Path

from nodes.provincial.stores.base import (
    BulkRow,
    CodeRecord,
    ColourChange,
    NewCode,
    StatusStore,
    create_or_get,
)
from nodes.provincial.stores.sqlite import SqliteStatusStore
from trust.errors import InvalidRequest

__all__ = [
    "BulkRow",
    "CodeRecord",
    "ColourChange",
    "NewCode",
    "SqliteStatusStore",
    "StatusStore",
    "create_or_get",
    "open_status_store",
]


def open_status_store(url: str) -> StatusStore:
    """``sqlite:///abs/path/status.db``, a bare file path, or ``postgresql://user@host/db``."""
    if url.startswith(("postgresql://", "postgres://")):
        from nodes.provincial.stores.postgres import PostgresStatusStore

        return PostgresStatusStore(url)
    if url.startswith("sqlite:///"):
        # As the registry URL: everything after "sqlite://" is the path (so absolute).
        return SqliteStatusStore(Path("/" + url.removeprefix("sqlite://").lstrip("/")))
    if "://" in url:
        raise InvalidRequest(f"unsupported status store URL scheme in {url!r}")
    return SqliteStatusStore(Path(url))
