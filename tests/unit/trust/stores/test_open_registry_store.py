"""A registry URL names its store: sqlite:///PATH the embedded one, etcd://HOSTS[/prefix/] a
cluster under a key prefix; anything else is refused with the forms it accepts.

The etcd rows replace the adapter class with a recorder, so no client and no socket is made.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import trust.stores.etcd
from trust.errors import InvalidRequest
from trust.stores import open_registry_store
from trust.stores.embedded import EmbeddedStore


async def test_a_sqlite_url_opens_the_embedded_store_making_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "var" / "national" / "registry.db"
    store = open_registry_store(f"sqlite://{path}")
    assert isinstance(store, EmbeddedStore)
    await store.put("k", b"v")
    await store.close()
    assert path.is_file()
    again = open_registry_store(f"sqlite://{path}")  # the directory exists now: opened again
    assert (await again.get("k")) is not None
    await again.close()


class RecordedEtcd:
    def __init__(self, endpoints: list[tuple[str, int]], *, prefix: str) -> None:
        self.endpoints = endpoints
        self.prefix = prefix


@pytest.mark.parametrize(
    ("url", "endpoints", "prefix"),
    [
        pytest.param("etcd://h1:2379", [("h1", 2379)], "hcx/", id="one host, default prefix"),
        pytest.param("etcd://h1:2379,h2:2380", [("h1", 2379), ("h2", 2380)], "hcx/",
                     id="two hosts"),
        pytest.param("etcd://h1:2379/", [("h1", 2379)], "hcx/", id="an empty prefix"),
        pytest.param("etcd://h1:2379/test/a/", [("h1", 2379)], "test/a/", id="a prefix"),
        pytest.param("etcd://h1:2379/test", [("h1", 2379)], "test/", id="a prefix without /"),
    ],
)  # fmt: skip
def test_an_etcd_url_names_the_cluster_and_the_key_prefix(
    monkeypatch: pytest.MonkeyPatch, url: str, endpoints: list[tuple[str, int]], prefix: str
) -> None:
    monkeypatch.setattr(trust.stores.etcd, "EtcdStore", RecordedEtcd)
    store = open_registry_store(url)
    assert isinstance(store, RecordedEtcd)
    assert (store.endpoints, store.prefix) == (endpoints, prefix)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("sqlite://relative.db", id="sqlite without an absolute path"),
        pytest.param("postgres://db/registry", id="another scheme"),
        pytest.param("/var/national/registry.db", id="a bare path"),
        pytest.param("ETCD://h1:2379", id="an upper-case scheme"),
    ],
)
def test_other_urls_are_refused_with_the_forms_accepted(url: str) -> None:
    with pytest.raises(InvalidRequest, match=r"unsupported registry URL .*expected sqlite:///PATH"):
        open_registry_store(url)
