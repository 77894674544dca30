"""Registry store adapters behind the trust.kv.KvStore contract."""

from __future__ import annotations

from pathlib import Path

from trust.errors import InvalidRequest
from trust.kv import KvStore


def open_store(url: str) -> KvStore:
    """The registry store named by ``url`` (``sqlite:///path``)."""
    if url.startswith("sqlite:///"):
        from trust.stores.embedded import EmbeddedStore

        path = Path(url.removeprefix("sqlite://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return EmbeddedStore(path)
    raise InvalidRequest(f"unsupported registry URL {url!r} (expected sqlite:///PATH)")
