"""Registry store adapters behind the trust.kv.KvStore contract."""

from __future__ import annotations

from pathlib import Path

from trust.errors import InvalidRequest
from trust.kv import KvStore


def open_registry_store(url: str) -> KvStore:
    """The registry store named by ``url``.

    ``sqlite:///path`` is the embedded store; ``etcd://h1:2379,h2:2379[/prefix/]`` an etcd
    cluster, every key under ``prefix/`` (default ``hcx/``).
    """
    if url.startswith("sqlite:///"):
        from trust.stores.embedded import EmbeddedStore

        path = Path(url.removeprefix("sqlite://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return EmbeddedStore(path)
    if url.startswith("etcd://"):
        from trust.stores.etcd import DEFAULT_PREFIX, EtcdStore, parse_endpoints

        hosts, _, prefix = url.removeprefix("etcd://").partition("/")
        prefix = prefix if prefix else DEFAULT_PREFIX
        if not prefix.endswith("/"):
            prefix += "/"
        return EtcdStore(parse_endpoints(hosts), prefix=prefix)
    raise InvalidRequest(
        f"unsupported registry URL {url!r} (expected sqlite:///PATH or etcd://HOST:PORT,...)"
    )
