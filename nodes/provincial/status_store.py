"""The province's status store (kept for existing imports): see ``nodes.provincial.stores``."""

from __future__ import annotations

from nodes.provincial.stores import (
    CodeRecord,
    NewCode,
    SqliteStatusStore,
    StatusStore,
    create_or_get,
    open_store,
)

__all__ = [
    "CodeRecord",
    "NewCode",
    "SqliteStatusStore",
    "StatusStore",
    "create_or_get",
    "open_store",
]
