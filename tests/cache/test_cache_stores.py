"""Backends: the protocol on every store, LRU byte budget, Redis TTL and limits, Zarr layout."""

from __future__ import annotations

import os
import pickle
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import zarr

from terrapipe.cache import CacheStore, CorruptEntryError, MemoryLRU, RedisStore, ZarrStore, open_store
from terrapipe.core.errors import CacheError, InvalidArgumentError
from tests.servers.redis_server import RedisServer, free_port


def test_protocol(any_store: CacheStore) -> None:
    assert isinstance(any_store, CacheStore)
    assert any_store.get("k1") is None
    assert "k1" not in any_store
    assert any_store.put("k1", b"first") is True
    assert any_store.get("k1") == b"first"
    assert "k1" in any_store
    assert any_store.put("k1", b"second, longer") is True  # replace
    assert any_store.get("k1") == b"second, longer"
    any_store.put("k2", b"")
    assert any_store.get("k2") == b""
    big = os.urandom(3 * 2**20 + 17)
    any_store.put("k3", big)
    assert any_store.get("k3") == big
    assert sorted(any_store.keys()) == ["k1", "k2", "k3"]
    any_store.delete("k1")
    any_store.delete("never-written")
    assert any_store.get("k1") is None
    assert sorted(any_store.keys()) == ["k2", "k3"]


def test_stores_pickle_for_spawned_workers(any_store: CacheStore) -> None:
    any_store.put("k", b"value")
    copy = pickle.loads(pickle.dumps(any_store))
    if isinstance(any_store, MemoryLRU):
        assert copy.get("k") is None
        assert copy.max_bytes == any_store.max_bytes
    else:
        assert copy.get("k") == b"value"


def test_open_store_accepts_objects_paths_and_urls(tmp_path: Path) -> None:
    lru = MemoryLRU(1024)
    assert open_store(lru) is lru
    assert isinstance(open_store(tmp_path / "c.zarr"), ZarrStore)
    assert open_store(str(tmp_path / "c.zarr")).path == tmp_path / "c.zarr"  # type: ignore[attr-defined]
    assert open_store("s3://bucket/cache").url == "s3://bucket/cache"  # type: ignore[attr-defined]
    assert isinstance(open_store("rediss://host:6380/1"), RedisStore)
    for bad in ("", 42, None):
        with pytest.raises(InvalidArgumentError):
            open_store(bad)  # type: ignore[arg-type]


# -- memory LRU -------------------------------------------------------------------
def test_lru_evicts_least_recently_used_by_bytes() -> None:
    entry = 10_000
    cost = MemoryLRU.cost("k0", bytes(entry))
    lru = MemoryLRU(max_bytes=3 * cost)
    for i in range(3):
        assert lru.put(f"k{i}", bytes(entry))
    lru.get("k0")  # k1 is now the least recently used
    lru.put("k3", bytes(entry))
    assert sorted(lru.keys()) == ["k0", "k2", "k3"]
    assert lru.evicted == 1
    lru.put("big", bytes(2 * entry))  # needs two slots: evicts k2 and k0
    assert sorted(lru.keys()) == ["big", "k3"]
    assert lru.evicted == 3
    assert lru.nbytes <= lru.max_bytes
    assert lru.put("huge", bytes(4 * cost)) is False
    assert lru.refused == 1
    assert "huge" not in lru
    small = MemoryLRU(max_bytes=100)
    assert small.put("k", b"x" * 10) is False  # the bookkeeping alone exceeds a tiny budget


def test_lru_replacing_an_entry_counts_it_once() -> None:
    lru = MemoryLRU(max_bytes=10**6)
    lru.put("k", bytes(1000))
    lru.put("k", bytes(2000))
    assert lru.nbytes == MemoryLRU.cost("k", bytes(2000))
    assert len(lru) == 1
    lru.delete("k")
    assert lru.nbytes == 0


@pytest.mark.parametrize(("entry_size", "budget"), [(64, 2**19), (4096, 4 * 2**20), (300_000, 16 * 2**20)])
def test_lru_memory_stays_within_its_budget(entry_size: int, budget: int) -> None:
    payloads = [os.urandom(entry_size) for _ in range(4)]
    tracemalloc.start()
    try:
        lru = MemoryLRU(max_bytes=budget)
        baseline = tracemalloc.get_traced_memory()[0]
        for i in range(3 * budget // entry_size):
            lru.put(f"{i:064x}", payloads[i % 4][:-1] + bytes([i % 251]))  # a new bytes object each time
        used = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert lru.evicted > 0
    assert lru.nbytes <= budget
    # measured memory: within the budget plus the dict's spare slots (< 10 %)
    assert used <= budget * 1.10, (used, budget)
    assert used >= budget * 0.85, (used, budget)  # and the accounting does not overstate much


# -- Redis ------------------------------------------------------------------------
def test_redis_ttl_expires_entries(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, ttl=0.3, prefix="ttl-test:")
    store.put("k", b"soon gone")
    left = store.ttl_of("k")
    assert left is not None
    assert 0 < left <= 0.3
    assert store.get("k") == b"soon gone"
    time.sleep(0.45)
    assert store.get("k") is None
    assert RedisStore(redis_server.url, prefix="ttl-test:").ttl_of("missing") is None


def test_redis_refuses_entries_above_the_limit(redis_store: RedisStore) -> None:
    limited = RedisStore(redis_store.url, max_entry_bytes=1000, prefix=redis_store.prefix)
    assert limited.put("small", bytes(1000)) is True
    assert limited.put("large", bytes(1001)) is False
    assert limited.refused == 1
    assert "large" not in limited
    assert "small" in limited


def test_redis_prefixes_keep_caches_apart(redis_server: RedisServer) -> None:
    one = RedisStore(redis_server.url, prefix="one[*]:")
    two = RedisStore(redis_server.url, prefix="one[x]:")
    one.put("k", b"1")
    two.put("k", b"2")
    try:
        assert one.get("k") == b"1"
        assert list(one.keys()) == ["k"]
        assert list(two.keys()) == ["k"]
    finally:
        one.clear()
        two.clear()
    assert list(one.keys()) == []
    assert two.get("k") is None


def test_redis_down_fails_fast_with_cache_error() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=2)
    started = time.monotonic()
    with pytest.raises(CacheError, match=r"redis://127\.0\.0\.1:\d+/0.*Redis server runs"):
        store.get("k")
    assert time.monotonic() - started < 5


def test_redis_options_are_checked() -> None:
    for kwargs in ({"ttl": 0}, {"ttl": "1"}, {"max_entry_bytes": 0}, {"timeout": -1}):
        with pytest.raises(InvalidArgumentError):
            RedisStore("redis://127.0.0.1:1/0", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="invalid Redis URL"):
        _ = RedisStore("redis://127.0.0.1:notaport/0").client


# -- Zarr -------------------------------------------------------------------------
def test_zarr_entries_are_consolidated_groups(tmp_path: Path) -> None:
    store = ZarrStore(tmp_path / "c.zarr", chunk_bytes=1000)
    data = os.urandom(2500)
    store.put("abc", data)
    group = zarr.open_group(tmp_path / "c.zarr" / "abc", mode="r", use_consolidated=True)
    assert group.attrs["nbytes"] == 2500
    assert group.attrs["key"] == "abc"
    assert group.metadata.consolidated_metadata is not None
    assert group["data"].chunks == (1000,)
    assert group["data"][:].tobytes() == data
    root = zarr.open_group(tmp_path / "c.zarr", mode="r")
    assert root.attrs["terrapipe_cache"] == 1
    assert "abc" in list(root.group_keys())
    assert os.listdir(tmp_path / "c.zarr" / ".tmp") == ["zarr.json"]  # nothing left behind


def test_zarr_compression_and_memory_urls(tmp_path: Path) -> None:
    data = bytes(100_000)
    compressed = ZarrStore(tmp_path / "z.zarr", compress=True)
    compressed.put("k", data)
    sizes = sum(f.stat().st_size for f in (tmp_path / "z.zarr" / "k").rglob("*") if f.is_file())
    assert compressed.get("k") == data
    assert sizes < 10_000
    remote = ZarrStore("memory://terrapipe-test-memory-url")
    remote.put("k", b"in memory")
    assert remote.get("k") == b"in memory"
    remote.clear()
    assert remote.get("k") is None


@pytest.mark.parametrize("location", ["local", "url"])
def test_zarr_damaged_entries_raise_corrupt(tmp_path: Path, location: str) -> None:
    root = tmp_path / "c.zarr"
    store = ZarrStore(root if location == "local" else f"file://{root}", compress=True)
    store.put("k", os.urandom(5000))
    (chunk,) = (root / "k").glob("data*/c/0")
    raw = bytearray(chunk.read_bytes())
    raw[0] ^= 0xFF  # the Zstandard frame no longer decodes (a flip inside it is the entry checksum's job)
    chunk.write_bytes(bytes(raw))
    with pytest.raises(CorruptEntryError, match="corrupt"):
        store.get("k")
    store.put("k", b"repaired")
    assert store.get("k") == b"repaired"
    (root / "k" / "zarr.json").write_text("{not json")
    with pytest.raises(CorruptEntryError):
        store.get("k")


def test_zarr_uncommitted_url_entry_reads_as_missing(tmp_path: Path) -> None:
    root = tmp_path / "c.zarr"
    store = ZarrStore(f"file://{root}")
    store.put("k", b"committed")
    (root / "k" / "zarr.json").unlink()  # what a writer killed before its commit leaves
    assert store.get("k") is None
    assert "k" not in store
    assert list(store.keys()) == []
    store.put("k", b"again")
    assert store.get("k") == b"again"


def test_zarr_clean_removes_old_temporary_folders(tmp_path: Path) -> None:
    store = ZarrStore(tmp_path / "c.zarr")
    store.put("k", b"x")
    stale = tmp_path / "c.zarr" / ".tmp" / "k.deadbeef"
    (stale / "data").mkdir(parents=True)
    assert store.clean(older_than=3600) == 0
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert store.clean(older_than=3600) == 1
    assert not stale.exists()
    assert store.get("k") == b"x"


def test_zarr_rejects_unsafe_keys(tmp_path: Path) -> None:
    store = ZarrStore(tmp_path / "c.zarr")
    for bad in ("../escape", ".tmp", "a/b", ""):
        with pytest.raises(InvalidArgumentError):
            store.put(bad, b"x")
        assert bad not in store
    with pytest.raises(InvalidArgumentError):
        ZarrStore(tmp_path, chunk_bytes=0)


def test_zarr_store_on_an_unwritable_place_raises_cache_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises((CacheError, OSError)):
        ZarrStore(blocker / "c.zarr").put("k", np.zeros(3).tobytes())


def test_zarr_store_objects_are_used_as_is() -> None:
    memory = zarr.storage.MemoryStore()
    store = ZarrStore(memory)  # e.g. zarr.storage.ObjectStore for obstore
    store.put("k", b"held by the zarr store")
    assert store.get("k") == b"held by the zarr store"
    assert list(store.keys()) == ["k"]
    group = zarr.open_group(memory, path="k", mode="r", use_consolidated=True)
    assert group.attrs["array"].startswith("data-")
    with pytest.raises(InvalidArgumentError, match="zarr store object"):
        ZarrStore(42)
