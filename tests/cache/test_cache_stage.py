"""The cache stage: hits and misses, invalidation, corruption, policies, resume, workers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.datapipes.iter import IterableWrapper

import terrapipe as tp
from terrapipe.cache import Cache, CacheStore, MemoryLRU, RedisStore, ZarrStore
from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.core.state import check_resume
from tests.cache.conftest import make_store, read_window, samples_equal, windows_of, write_raster
from tests.servers.redis_server import RedisServer

CALLS: list[Any] = []
LOG_ENV = "TERRAPIPE_TEST_CACHE_LOG"


def counted_read(spec: dict[str, Any]) -> Any:
    """read_window, recording each call (in this process, and in the log file when one is set)."""
    CALLS.append(spec)
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {spec['path']} {spec['row']} {spec['col']}\n")
    return read_window(spec)


def halved_read(spec: dict[str, Any]) -> Any:
    sample = read_window(spec)
    sample["image"] = sample["image"] / 2
    return sample


def repeat(x: int) -> list[int]:
    return [x] * (x % 4)  # 0 to 3 outputs per input


def windows_pipe(
    paths: list[Path], store: CacheStore, fn: Callable[..., Any] = counted_read, **kwargs: Any
) -> Cache[Any]:
    return tp.from_items(windows_of(paths)).cache_point().map(fn).cache(store, **kwargs)


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


def test_hit_miss_and_the_second_epoch_equals_the_first(any_store: CacheStore, rasters: list[Path]) -> None:
    pipe = windows_pipe(rasters, any_store)
    first = list(pipe)
    n = len(windows_of(rasters))
    assert len(first) == n
    assert len(CALLS) == n
    assert (pipe.stats.misses, pipe.stats.hits, pipe.stats.writes, pipe.stats.corrupt) == (n, 0, n, 0)
    second = list(pipe)
    assert len(CALLS) == n  # nothing recomputed
    assert (pipe.stats.hits, pipe.stats.elements) == (n, 2 * n)
    assert samples_equal(second, first)
    assert samples_equal(first, [read_window(w) for w in windows_of(rasters)])  # and equal to no cache at all
    assert pipe.stats.bytes_read > 0
    assert pipe.stats.bytes_written == pipe.stats.bytes_read


def test_a_new_pipe_with_the_same_configuration_hits(tmp_path: Path, rasters: list[Path]) -> None:
    store = tmp_path / "cache.zarr"
    first = list(windows_pipe(rasters, ZarrStore(store)))
    again = windows_pipe(rasters, ZarrStore(store))
    assert samples_equal(list(again), first)
    assert again.stats.hits == len(first)
    assert again.stats.misses == 0


def test_changing_a_parameter_or_a_file_upstream_invalidates(tmp_path: Path, rasters: list[Path]) -> None:
    store = ZarrStore(tmp_path / "cache.zarr")
    plain = list(windows_pipe(rasters, store))
    halved = windows_pipe(rasters, store, fn=halved_read)
    out = list(halved)
    assert halved.stats.hits == 0
    assert samples_equal([s["image"] for s in out], [s["image"] / 2 for s in plain])
    bigger = tp.from_items(windows_of(rasters, size=64)).cache_point().map(counted_read).cache(store)
    assert len(list(bigger)) == 3
    assert bigger.stats.hits == 0
    versioned = windows_pipe(rasters, store, version="v2")
    list(versioned)
    assert versioned.stats.hits == 0

    write_raster(rasters[0], seed=42)  # new contents, new size/mtime
    after = windows_pipe(rasters, store)
    out = list(after)
    assert after.stats.misses == 4
    assert after.stats.hits == len(plain) - 4
    assert samples_equal(out, [read_window(w) for w in windows_of(rasters)])
    assert not samples_equal(out[:4], plain[:4])


def test_one_input_to_many_outputs_and_to_none() -> None:
    pipe = (
        tp.from_items(range(9)).cache_point().flatmap(repeat).filter(lambda x: x != 5).cache(MemoryLRU(2**20))
    )
    expected = [x for i in range(9) for x in repeat(i) if x != 5]
    assert list(pipe) == expected
    assert pipe.stats.misses == 9
    assert pipe.stats.writes == 9
    assert list(pipe) == expected
    assert pipe.stats.hits == 9


def test_a_pass_stopped_early_writes_no_partial_entry() -> None:
    store = MemoryLRU(2**20)
    stopped = tp.from_items([3, 7]).cache_point().flatmap(repeat).cache(store).header(2)
    assert list(stopped) == [3, 3]
    full = tp.from_items([3, 7]).cache_point().flatmap(repeat).cache(store)
    assert list(full) == [3, 3, 3, 7, 7, 7]
    assert full.stats.hits == 0
    assert full.stats.misses == 2


def test_inputs_with_skipped_elements_are_not_cached(rasters: list[Path]) -> None:
    pytest.importorskip("terrapipe.io")
    paths = [str(rasters[0]), "missing.tif", str(rasters[1])]
    reader = tp.from_items(paths).cache_point().read_raster(on_error="skip")
    pipe = reader.map(lambda da: da.values).cache(MemoryLRU(2**22))
    assert len(list(pipe)) == 2
    assert pipe.stats.writes == 2
    assert pipe.stats.not_written == 1
    assert len(list(pipe)) == 2
    assert pipe.stats.hits == 2
    assert pipe.stats.misses == 4


def test_errors_in_covered_stages_propagate_and_write_nothing(rasters: list[Path]) -> None:
    pytest.importorskip("terrapipe.io")
    store = MemoryLRU(2**22)
    pipe = (
        tp.from_items([str(rasters[0]), "missing.tif"])
        .cache_point()
        .read_raster()
        .map(np.asarray)
        .cache(store)
    )
    with pytest.raises(ReadError, match=r"missing\.tif"):
        list(pipe)
    assert pipe.stats.writes == 1
    assert len(store) == 1


def flip_every_entry(store: CacheStore) -> None:
    """Damage each stored entry in the store itself (a byte in the middle of its data)."""
    if isinstance(store, ZarrStore):
        root = store.path if store.path is not None else Path(str(store.url).removeprefix("file://"))
        for key in list(store.keys()):
            (chunk,) = (root / key).glob("data*/c/0")
            raw = bytearray(chunk.read_bytes())
            raw[len(raw) // 2] ^= 0x10
            chunk.write_bytes(bytes(raw))
    elif isinstance(store, RedisStore):
        for key in list(store.keys()):
            name = store.prefix + key
            size = store.client.strlen(name)
            byte = store.client.getrange(name, size // 2, size // 2)
            store.client.setrange(name, size // 2, bytes([byte[0] ^ 0x10]))
    else:
        for key in list(store.keys()):
            raw = bytearray(store.get(key) or b"")
            raw[len(raw) // 2] ^= 0x10
            store.put(key, bytes(raw))


def test_corrupt_entries_are_recomputed_never_returned(any_store: CacheStore, rasters: list[Path]) -> None:
    pipe = windows_pipe(rasters, any_store)
    first = list(pipe)
    n = len(first)
    flip_every_entry(any_store)
    CALLS.clear()
    second = list(pipe)
    assert pipe.stats.corrupt == n
    assert len(CALLS) == n
    assert pipe.stats.misses == 2 * n
    assert samples_equal(second, first)
    third = list(pipe)
    assert pipe.stats.hits == n
    assert pipe.stats.corrupt == n
    assert samples_equal(third, first)


def test_changes_downstream_do_not_reach_the_cache() -> None:
    def scale_in_place(t: torch.Tensor) -> torch.Tensor:
        return t.mul_(10)

    pipe = (
        tp.from_items([1, 2]).cache_point().map(lambda x: torch.full((3,), float(x))).cache(MemoryLRU(2**20))
    )
    changed = pipe.map(scale_in_place)
    for _ in range(3):
        assert [t.tolist() for t in changed] == [[10.0] * 3, [20.0] * 3]
    assert pipe.stats.hits == 4


def test_policies(rasters: list[Path]) -> None:
    store = MemoryLRU(2**24)
    reader = windows_pipe(rasters, store, policy="read-only")
    list(reader)
    assert len(store) == 0
    assert reader.stats.not_written == reader.stats.misses > 0
    list(windows_pipe(rasters, store))
    n = len(store)
    readonly = windows_pipe(rasters, store, policy="read-only")
    list(readonly)
    assert readonly.stats.hits == n
    refresh = windows_pipe(rasters, store, policy="refresh")
    CALLS.clear()
    list(refresh)
    assert refresh.stats.hits == 0
    assert refresh.stats.writes == n
    assert len(CALLS) == n
    with pytest.raises(InvalidArgumentError, match="policy"):
        windows_pipe(rasters, store, policy="write-back")  # type: ignore[arg-type]


def test_options_are_checked() -> None:
    point = tp.from_items([1]).cache_point().map(abs)
    for kwargs in ({"key": "not callable"}, {"version": 2}, {"shard": "yes"}):
        with pytest.raises(InvalidArgumentError):
            point.cache(MemoryLRU(2**20), **kwargs)
    with pytest.raises(InvalidArgumentError):
        point.cache(42)  # type: ignore[arg-type]


def test_key_callable_overrides_the_identity() -> None:
    store = MemoryLRU(2**20)
    by_id = (
        tp.from_items([{"id": "a", "noise": 1}])
        .cache_point()
        .map(lambda d: d["noise"])
        .cache(store, key=lambda d: d["id"])
    )
    assert list(by_id) == [1]
    again = (
        tp.from_items([{"id": "a", "noise": 2}])
        .cache_point()
        .map(lambda d: d["noise"])
        .cache(store, key=lambda d: d["id"])
    )
    assert list(again) == [1]
    assert again.stats.hits == 1


def test_eviction_by_bytes_during_a_pass(rasters: list[Path]) -> None:
    store = MemoryLRU(max_bytes=5 * 10_000)  # room for about five 8 KiB samples
    pipe = windows_pipe(rasters, store)
    first = list(pipe)
    assert pipe.stats.evicted == len(first) - len(store) > 0
    assert store.nbytes <= store.max_bytes
    second = list(pipe)
    assert samples_equal(second, first)
    assert pipe.stats.hits + pipe.stats.misses == 2 * len(first)


def test_resume_mid_entry_and_across_epochs(rasters: list[Path]) -> None:
    def make() -> Cache[Any]:
        return tp.from_items(range(7)).cache_point().flatmap(repeat).cache(MemoryLRU(2**20))

    total = sum(len(repeat(i)) for i in range(7))
    for stop in (0, 1, 4, total - 1, total + 3):
        check_resume(make, stop_after=stop, epochs=2)

    shared = MemoryLRU(2**20)  # resumed from a warm store: the hits resume the same way
    check_resume(
        lambda: tp.from_items(range(7)).cache_point().flatmap(repeat).cache(shared), stop_after=5, epochs=2
    )

    def unstateful() -> Cache[Any]:
        return IterableWrapper(list(range(7))).cache_point().flatmap(repeat).cache(MemoryLRU(2**20))

    check_resume(unstateful, stop_after=5)


def test_state_is_strict() -> None:
    pipe = tp.from_items([1]).cache_point().map(abs).cache(MemoryLRU(2**20))
    with pytest.raises(tp.PipelineStateError):
        pipe.load_state_dict({"epoch": 0, "offset": 0})
    assert pipe.state_dict() == {"epoch": 0, "index": 0, "anchor": {"epoch": 0, "offset": 0}, "skip": 0}


def test_len_and_pass_through_point() -> None:
    pipe = tp.from_items(range(5)).cache_point().map(abs).cache(MemoryLRU(2**20))
    assert len(pipe) == 5
    assert list(pipe.source) == [0, 1, 2, 3, 4]  # the covered stages still work on their own


def order(sample: Any) -> tuple[Any, ...]:
    return (sample["meta"]["source_ids"], sample["meta"]["bounds"])


def as_is(element: Any) -> Any:
    """The DataLoader's conversion, minus its turning tuples into lists."""
    return element


def read_log(path: Path) -> list[tuple[str, ...]]:
    return [tuple(line.split()) for line in path.read_text().splitlines()] if path.exists() else []


def test_dataloader_workers_split_the_inputs(
    tmp_path: Path, rasters: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    store = ZarrStore(tmp_path / "cache.zarr")
    pipe = windows_pipe(rasters, store)
    loader = DataLoader(
        pipe, batch_size=None, num_workers=2, multiprocessing_context="fork", collate_fn=as_is
    )
    first = list(loader)
    n = len(windows_of(rasters))
    computed = read_log(log)
    assert len(first) == n
    assert len(computed) == n
    assert len({pid for pid, *_ in computed}) == 2
    assert sorted((s["meta"]["source_ids"], s["meta"]["bounds"]) for s in first) == sorted(
        (s["meta"]["source_ids"], s["meta"]["bounds"]) for s in (read_window(w) for w in windows_of(rasters))
    )
    assert len(list(store.keys())) == n
    second = list(loader)
    assert len(read_log(log)) == n  # the second epoch computed nothing
    assert samples_equal(second, first)


@pytest.mark.parametrize("kind", ["zarr", "zarr-url", "redis"])
def test_two_workers_writing_the_same_keys_concurrently(
    kind: str,
    tmp_path: Path,
    rasters: list[Path],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis_url = request.getfixturevalue("redis_server").url if kind == "redis" else None
    store = make_store(kind, tmp_path, redis_url)
    log = tmp_path / "calls.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    items = windows_of(rasters)
    pipe = tp.from_items(items, shard=False).cache_point().map(counted_read).cache(store, shard=False)
    loader = DataLoader(
        pipe, batch_size=None, num_workers=2, multiprocessing_context="fork", collate_fn=as_is
    )
    out = list(loader)
    assert len(out) == 2 * len(items)  # both workers went through every input
    computed = read_log(log)
    # each worker computed what it did not find written by the other one (usually nearly everything)
    assert len(items) <= len(computed) <= 2 * len(items)
    assert len({pid for pid, *_ in computed}) == 2
    assert samples_equal(sorted(out, key=order), sorted([read_window(w) for w in items] * 2, key=order))
    assert sorted(store.keys()) == sorted(pipe.key_of(w) for w in items)
    check = tp.from_items(items).cache_point().map(counted_read).cache(store)
    assert samples_equal(list(check), [read_window(w) for w in items])
    assert check.stats.hits == len(items)
    assert check.stats.corrupt == 0
    if isinstance(store, RedisStore):
        store.clear()


def test_sharding_filter_upstream_takes_precedence(rasters: list[Path]) -> None:
    pipe = IterableWrapper(list(range(6))).sharding_filter().cache_point().map(abs).cache(MemoryLRU(2**20))
    loader = DataLoader(
        pipe, batch_size=None, num_workers=2, multiprocessing_context="fork", collate_fn=as_is
    )
    assert sorted(loader) == list(range(6))


def test_cache_is_registered_and_composes(redis_server: RedisServer, rasters: list[Path]) -> None:
    pipe = tp.from_items(windows_of(rasters[:1])).cache_point().map(read_window).cache(redis_server.url)
    assert isinstance(pipe.store, RedisStore)
    assert pipe.store.url == redis_server.url
    batched = pipe.map(lambda s: s["image"]).batch(2).collate()
    assert [b.shape for b in batched] == [torch.Size([2, 2, 32, 32])] * 2
    pipe.store.clear()


def test_thread_workers_of_tp_loader_share_a_memory_cache(rasters: list[Path]) -> None:
    run = pytest.importorskip("terrapipe.run")
    store = MemoryLRU(2**24)
    pipe = windows_pipe(rasters, store)
    n = len(windows_of(rasters))
    with run.loader(pipe, workers=2, method="thread") as loader:
        first = list(loader)
        assert len(first) == n
        assert len(CALLS) == n
        assert len(store) == n
        second = list(loader)
    assert len(CALLS) == n  # the second epoch came from the one shared cache
    assert samples_equal(sorted(second, key=order), sorted(first, key=order))
