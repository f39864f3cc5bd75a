"""Large entries stored as parts (``terrapipe.cache.parts``): never a wrong, missing or repeated element.

A cube's chips are cut into parts of ``PART_BYTES`` (made small here) plus a
manifest under the entry's key. Cases: hits equal misses on every store; a
write cut short before the manifest (a crash) is a miss; a damaged part, a
missing (evicted) part, a part of another write, a damaged manifest; parts
evicted by a memory budget while the manifest stays; an entry too large for
the budget or ``max_entry_bytes`` as a whole; concurrent writers; a consumer
that stops mid-entry (no thread left behind, the pipelined Redis connection
dropped and the next read right); resuming mid-entry. In each, the pass yields every element exactly
once, in order, equal to the miss.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.cache.parts as parts_module
from terrapipe.cache import CacheStore, MemoryLRU, RedisStore, ZarrStore
from terrapipe.cache.codec import encode_value
from terrapipe.cache.parts import is_manifest, pack_parts, unpack_manifest
from tests.cache.conftest import make_store

zarr = pytest.importorskip("zarr")
STORES = ("memory", "zarr", "zarr-url", "redis")
COUNT = 10  # elements per input
SIZE = 1000  # bytes per element


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three elements per part (parts of 3000 bytes)."""
    monkeypatch.setattr(parts_module, "PART_BYTES", 3 * SIZE)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    out = make_store(request.param, tmp_path, url)
    yield out
    if isinstance(out, RedisStore):
        out.clear()


def arrays(n: int) -> list[np.ndarray[Any, Any]]:
    """COUNT arrays of SIZE bytes for input ``n``, each distinct."""
    return [np.full(SIZE, 10 * n + i, dtype=np.uint8) for i in range(COUNT)]


#: The inputs computed (a module global: the function's description, part of the key, stays the same).
CALLS: list[int] = []


def make(n: int) -> list[np.ndarray[Any, Any]]:
    CALLS.append(n)
    return arrays(n)


def pipe_of(store: CacheStore, inputs: list[int], calls: list[int] | None = None) -> Any:
    """The pipe under test; ``calls`` (emptied) receives the inputs computed from now on."""
    if calls is not None:
        CALLS.clear()
    return tp.from_items(inputs).cache_point().flatmap(make).cache(store)


def expected(inputs: list[int]) -> list[int]:
    return [10 * n + i for n in inputs for i in range(COUNT)]


def part_names(store: CacheStore, key: str) -> list[str]:
    """The store keys of an entry's parts, as its manifest names them."""
    return [info.key for info in unpack_manifest(store.get(key) or b"", key)]


def firsts(elements: list[Any]) -> list[int]:
    assert all(len(a) == SIZE and (a == a[0]).all() for a in elements)
    return [int(a[0]) for a in elements]


def test_an_entry_larger_than_a_part_is_stored_as_parts_and_hits_equal_misses(store: CacheStore) -> None:
    calls = CALLS
    pipe = pipe_of(store, [1, 2], calls)
    assert firsts(list(pipe)) == expected([1, 2])
    assert (pipe.stats.misses, pipe.stats.writes, calls) == (2, 2, [1, 2])
    keys = sorted(store.keys())
    assert len(keys) == 2 * (1 + 4)  # per input: a manifest and 4 parts (3 + 3 + 3 + 1 elements)
    key = pipe.key_of(1)
    manifest = store.get(key)
    assert manifest is not None
    assert is_manifest(manifest)
    assert [p.elements for p in unpack_manifest(manifest, key)] == [3, 3, 3, 1]
    assert firsts(list(pipe)) == expected([1, 2])
    assert (pipe.stats.hits, pipe.stats.misses, pipe.stats.corrupt, calls) == (2, 2, 0, [1, 2])
    assert pipe.stats.elements == 4 * COUNT


def test_xarray_chips_in_parts_are_identical_to_the_miss(tmp_path: Path, redis_server: Any) -> None:
    rng = np.random.default_rng(0)
    da = xr.DataArray(
        rng.integers(0, 5000, (2, 64, 64), dtype=np.uint16),
        dims=("band", "y", "x"),
        coords={"band": [1, 2], "y": 1000.0 - np.arange(64.0), "x": np.arange(64.0)},
        name="image",
    ).rio.write_crs("EPSG:32631")
    path = tmp_path / "cube.zarr"
    da.to_dataset().to_zarr(path, zarr_format=3, encoding={"image": {"chunks": (1, 32, 32)}})
    reference = list(tp.from_items([str(path)]).read_zarr(variables="image").chip({"y": 16, "x": 16}))
    for kind in STORES:
        store = make_store(kind, tmp_path / kind, redis_server.url)
        pipe = tp.from_items([str(path)]).cache_point().read_zarr(variables="image").chip({"y": 16, "x": 16})
        pipe = pipe.cache(store)
        miss, hit = list(pipe), list(pipe)
        assert (pipe.stats.hits, pipe.stats.misses) == (1, 1), kind
        assert len(list(store.keys())) > 2  # 16 chips of 1 KiB in parts of 3000 bytes
        for a, b, c in zip(reference, miss, hit, strict=True):
            xr.testing.assert_identical(a, b)
            xr.testing.assert_identical(a, c)
            assert not c.values.flags.writeable
        if isinstance(store, RedisStore):
            store.clear()


def test_a_write_cut_short_before_the_manifest_is_a_miss(store: CacheStore) -> None:
    pipe = pipe_of(store, [3])
    list(pipe)
    store.delete(pipe.key_of(3))  # the parts are there, the commit marker is not
    calls: list[int] = CALLS
    again = pipe_of(store, [3], calls)
    assert firsts(list(again)) == expected([3])
    assert (again.stats.hits, again.stats.misses, again.stats.corrupt, calls) == (0, 1, 0, [3])
    assert firsts(list(again)) == expected([3])
    assert again.stats.hits == 1


@pytest.mark.parametrize("damage", ["flip", "missing", "other-write", "truncated"])
@pytest.mark.parametrize("index", [0, 2, 3])
def test_a_damaged_or_missing_part_is_recomputed_and_every_element_comes_once(
    store: CacheStore, damage: str, index: int
) -> None:
    pipe = pipe_of(store, [4, 5])
    list(pipe)
    key = pipe.key_of(4)
    name = part_names(store, key)[index]
    blob = store.get(name)
    assert blob is not None
    if damage == "flip":
        broken = bytearray(blob)
        broken[len(broken) // 2] ^= 0x40
        store.put(name, bytes(broken))
    elif damage == "missing":
        store.delete(name)
    elif damage == "truncated":
        store.put(name, bytes(blob[:-100]))
    else:  # a part of another write of the same key (a stage that was not deterministic)
        other = [encode_value(np.full(SIZE, 99, dtype=np.uint8)) for _ in range(COUNT)]
        store.put(name, pack_parts(key, other)[1][index][1])  # its part `index`, under this write's name
    calls: list[int] = CALLS
    again = pipe_of(store, [4, 5], calls)
    assert firsts(list(again)) == expected([4, 5])
    assert (again.stats.corrupt, again.stats.misses, again.stats.hits, calls) == (1, 1, 1, [4])
    assert again.stats.writes == 1  # rewritten
    assert firsts(list(again)) == expected([4, 5])
    assert (again.stats.corrupt, again.stats.hits) == (1, 3)


def test_a_damaged_manifest_is_a_corrupt_miss(store: CacheStore) -> None:
    pipe = pipe_of(store, [6])
    list(pipe)
    key = pipe.key_of(6)
    manifest = bytearray(store.get(key) or b"")
    manifest[20] ^= 1
    store.put(key, bytes(manifest))
    assert firsts(list(pipe)) == expected([6])
    assert (pipe.stats.corrupt, pipe.stats.misses) == (1, 2)
    assert firsts(list(pipe)) == expected([6])
    assert pipe.stats.hits == 1


def test_parts_evicted_by_a_memory_budget_are_recomputed() -> None:
    cost = sum(MemoryLRU.cost(f"{'0' * 64}.{i}", bytes(3 * SIZE + 1200)) for i in range(4))
    store = MemoryLRU(max_bytes=cost + 2000)  # one entry fits; the next evicts the first's oldest parts
    first = pipe_of(store, [7])
    list(first)
    key = first.key_of(7)
    names = part_names(store, key)
    list(pipe_of(store, [8]))
    assert key in store  # the manifest stayed
    assert names[0] not in store  # a part went
    calls: list[int] = CALLS
    again = pipe_of(store, [7], calls)
    assert firsts(list(again)) == expected([7])
    assert (again.stats.corrupt, calls) == (1, [7])


def test_an_entry_too_large_for_the_store_as_a_whole_is_refused(redis_server: Any) -> None:
    memory = MemoryLRU(max_bytes=5 * SIZE)  # every part fits, the entry does not
    pipe = pipe_of(memory, [1])
    assert firsts(list(pipe)) == expected([1])
    assert (pipe.stats.writes, pipe.stats.not_written, memory.refused, len(memory)) == (0, 1, 1, 0)
    redis = RedisStore(redis_server.url, prefix="test-parts-refused:", max_entry_bytes=5 * SIZE)
    try:
        pipe = pipe_of(redis, [1])
        assert firsts(list(pipe)) == expected([1])
        assert (pipe.stats.writes, pipe.stats.not_written, redis.refused, list(redis.keys())) == (0, 1, 1, [])
    finally:
        redis.clear()


def test_concurrent_writers_of_one_entry_leave_a_valid_entry(tmp_path: Path) -> None:
    store = ZarrStore(tmp_path / "cache.zarr")
    errors: list[BaseException] = []
    results: list[list[int]] = []

    def run() -> None:
        try:
            results.append(firsts(list(pipe_of(store, [9, 1]))))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == [expected([9, 1])] * 4
    calls: list[int] = CALLS
    pipe = pipe_of(store, [9, 1], calls)
    assert firsts(list(pipe)) == expected([9, 1])
    assert (pipe.stats.hits, pipe.stats.corrupt, calls) == (2, 0, [])


def test_stopping_mid_entry_leaves_no_reader_behind(store: CacheStore) -> None:
    pipe = pipe_of(store, [2, 3])
    list(pipe)
    before = threading.active_count()
    for stop in (1, 4, 12):
        assert firsts(list(pipe.header(stop))) == expected([2, 3])[:stop]
    assert threading.active_count() <= before
    assert firsts(list(pipe)) == expected([2, 3])  # the store's connection still reads right
    assert pipe.stats.corrupt == 0


def test_a_pass_resumed_mid_entry_serves_the_rest_of_it(store: CacheStore) -> None:
    pipe = pipe_of(store, [4, 5])
    list(pipe)
    it = iter(pipe)
    taken = [next(it) for _ in range(COUNT + 5)]  # into input 5's second part
    state = pipe.state_dict()
    it.close()
    fresh = pipe_of(store, [4, 5])
    fresh.load_state_dict(state)
    rest = list(fresh)
    assert firsts(taken) + firsts(rest) == expected([4, 5])
    assert fresh.stats.misses == 0


def test_a_redis_pipeline_stopped_early_drops_its_connection(redis_store: RedisStore) -> None:
    entry = bytes(range(256)) * 100
    for i in range(3):
        redis_store.put(f"k{i}", entry)
    values = redis_store.get_buffers(["k0", "k1", "k2"])
    assert bytes(next(values)) == entry
    values.close()  # k1's reply is on its way: the connection is dropped, not left mid-reply
    assert [bytes(v or b"") for v in redis_store.get_buffers(["k2", "missing", "k0"])] == [entry, b"", entry]
    assert bytes(redis_store.get_buffer("k1") or b"") == entry


@pytest.mark.parametrize(("count", "part_bytes"), [(1, 4000), (3, 4000), (9, 4000), (9, 2500), (9, 10**6)])
def test_pack_parts_is_split_parts_iterated_byte_for_byte(count: int, part_bytes: int) -> None:
    from terrapipe.cache.entry import pack_entry
    from terrapipe.cache.parts import split_parts

    elements = [encode_value(np.full(SIZE + 7 * i, i, dtype=np.uint8)) for i in range(count)]
    write = "0000000a0123456789ab"
    manifest, blobs = pack_parts("k", elements, part_bytes=part_bytes, write=write)
    parts = split_parts("k", elements, part_bytes=part_bytes, write=write)
    if parts is None:  # fits in one part: one value, as pack_entry makes it
        assert manifest is None
        assert blobs == [("k", pack_entry("k", elements))]
        return
    assert blobs == list(parts)
    assert manifest == parts.manifest
    assert [len(blob) for _, blob in blobs] == parts.sizes()
    assert parts.manifest_size() == len(manifest)
    assert sum(info.elements for info in unpack_manifest(manifest, "k")) == count
