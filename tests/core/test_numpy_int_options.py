"""Integer options given as numpy integers are taken (as ``core.checks.check_int`` takes them) and stored as int.

``np.int64(2)`` (a value read from an array, a config loaded with numpy) was refused by hand-written
checks (``isinstance(value, int)``) in materialize, read_samples, StoreHeader, iter_partition,
PinnedPool, DeviceMover, enumerate and keras_dataset, and in pmap, prefetch, profile, shuffled_items,
loader seed, MemoryLRU, RedisStore and ZarrStore, where chip and read_raster took it. A bool or float
is still refused, with the same messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
import terrapipe.dist
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.dist.layout import StoreHeader
from terrapipe.dist.partition import iter_partition
from terrapipe.gpu.pinned import PinnedPool
from terrapipe.gpu.transfer import DeviceMover
from terrapipe.run import shuffled_items


def _square(x: int) -> dict[str, int]:
    return {"value": x * x}


def test_materialize_and_read_samples(tmp_path: Path) -> None:
    pipe = tp.from_items(range(6)).map(_square)
    store = str(tmp_path / "s.zarr")
    report = tp.dist.materialize(
        pipe,
        store,
        partitions=np.int64(2),
        chunk_samples=np.int32(2),
        max_in_flight=np.int64(1),
        retries=np.uint8(0),
    )
    assert (report.samples, report.partitions, type(report.partitions)) == (6, 2, int)
    reader = tp.dist.read_samples(store, seed=np.int64(3), workers=np.int64(1), read_ahead=np.int16(2))
    assert (reader.seed, reader.workers, reader.read_ahead) == (3, 1, 2)
    assert {type(reader.seed), type(reader.workers), type(reader.read_ahead)} == {int}
    assert sorted(s["value"] for s in reader) == [0, 1, 4, 9, 16, 25]
    with pytest.raises(InvalidArgumentError, match=r"^materialize partitions must be an int >= 1, got 2\.0$"):
        tp.dist.materialize(pipe, store, partitions=2.0)
    with pytest.raises(InvalidArgumentError, match=r"^read_samples workers must be an int >= 0, got True$"):
        tp.dist.read_samples(store, workers=True)


def test_store_header_and_iter_partition() -> None:
    header = StoreHeader(np.int64(3), "f")
    assert header.partitions == 3
    assert type(header.to_json()["partitions"]) is int  # JSON-serialisable
    with pytest.raises(InvalidArgumentError, match=r"^partitions must be an int >= 1, got np\.True_$"):
        StoreHeader(np.True_, "f")
    pipe = tp.from_items(range(6))
    assert list(iter_partition(pipe, np.int64(1), np.int64(2))) == list(iter_partition(pipe, 1, 2))
    with pytest.raises(InvalidArgumentError, match=r"^partition must be an int, got 1\.0$"):
        list(iter_partition(pipe, 1.0, 2))


@pytest.mark.parametrize("value", [np.int64(1 << 20), np.uint32(1 << 20)])
def test_pinned_pool_and_device_mover(value: Any) -> None:
    pool = PinnedPool(max_bytes=value, max_buffers=np.int8(2))
    assert (pool.max_bytes, pool.max_buffers) == (1 << 20, 2)
    mover = DeviceMover("cpu", max_pinned_bytes=value)
    assert mover.max_pinned_bytes == 1 << 20
    assert type(mover.max_pinned_bytes) is int
    with pytest.raises(InvalidArgumentError, match=r"^max_pinned_bytes must be an int >= 1, got 0$"):
        DeviceMover("cpu", max_pinned_bytes=0)


def test_enumerate_start() -> None:
    pairs = list(tp.from_items(["a", "b"]).enumerate(start=np.int64(5)))
    assert pairs == [(5, "a"), (6, "b")]
    assert type(pairs[0][0]) is int
    with pytest.raises(InvalidArgumentError, match=r"^enumerate start must be an int, got 5\.0$"):
        tp.from_items(["a"]).enumerate(start=5.0)


def test_keras_steps() -> None:
    pytest.importorskip("keras")
    from terrapipe.adapters.keras import keras_dataset

    dataset = keras_dataset(tp.from_items(range(8)), batch_size=2, steps=np.int64(2))
    try:
        assert len(dataset) == 2
    finally:
        dataset.close()
    with pytest.raises(InvalidArgumentError, match="steps must be an int >= 1"):
        keras_dataset(tp.from_items(range(8)), batch_size=2, steps=0)


def _double(x: int) -> int:
    return 2 * x


def test_run_stages() -> None:
    pipe = tp.from_items(range(6)).pmap(_double, workers=np.int64(2), max_in_flight=np.uint8(3))
    assert (pipe.workers, pipe.max_in_flight, type(pipe.workers), type(pipe.max_in_flight)) == (
        2,
        3,
        int,
        int,
    )
    assert list(pipe) == [0, 2, 4, 6, 8, 10]
    ahead = tp.from_items(range(4)).prefetch(np.int32(2))
    assert (ahead.size, type(ahead.size), list(ahead)) == (2, int, [0, 1, 2, 3])
    report = tp.profile(tp.from_items(range(4)), n=np.int64(2), show=False)
    assert report is not None
    shuffled = shuffled_items(range(8), seed=np.int64(4))
    assert (shuffled.seed, type(shuffled.seed)) == (4, int)
    first = list(shuffled)
    assert sorted(first) == list(range(8))
    assert first == list(shuffled_items(range(8), seed=4))  # the same permutation as the python int's
    loader = tp.loader(tp.from_items(range(4)), seed=np.int64(7))
    assert (loader.seed, type(loader.seed)) == (7, int)
    for make, message in [
        (
            lambda: tp.from_items([1]).pmap(_double, workers=2.0),
            r"^pmap workers must be a positive int, got 2\.0$",
        ),
        (
            lambda: tp.from_items([1]).prefetch(np.True_),
            r"^prefetch size must be a positive int, got np\.True_$",
        ),
        (lambda: tp.profile(tp.from_items([1]), n=0), r"^profile n must be a positive int, got 0$"),
        (lambda: shuffled_items([1], seed=1.0), r"^shuffled_items seed must be an int, got 1\.0$"),
        (lambda: tp.loader(tp.from_items([1]), seed=True), r"^loader seed must be an int or None, got True$"),
    ]:
        with pytest.raises(InvalidArgumentError, match=message):
            make()


def test_cache_stores(tmp_path: Path) -> None:
    memory = tp.cache.MemoryLRU(np.int64(1 << 20))
    assert (memory.max_bytes, type(memory.max_bytes)) == (1 << 20, int)
    redis = tp.cache.RedisStore("redis://127.0.0.1:1/0", max_entry_bytes=np.int64(1 << 20))
    assert (redis.max_entry_bytes, type(redis.max_entry_bytes)) == (1 << 20, int)
    zarr = tp.cache.ZarrStore(tmp_path / "c.zarr", chunk_bytes=np.uint32(1 << 16))
    assert (zarr.chunk_bytes, type(zarr.chunk_bytes)) == (1 << 16, int)
    for make, message in [
        (lambda: tp.cache.MemoryLRU(0), r"^max_bytes must be a positive int \(bytes\), got 0$"),
        (lambda: tp.cache.MemoryLRU(1.5), r"^max_bytes must be a positive int \(bytes\), got 1\.5$"),
        (
            lambda: tp.cache.RedisStore("redis://127.0.0.1:1/0", max_entry_bytes=True),
            r"^max_entry_bytes must be a positive int, got True$",
        ),
        (
            lambda: tp.cache.ZarrStore(tmp_path / "d.zarr", chunk_bytes=np.int64(0)),
            r"^chunk_bytes must be a positive int, got np\.int64\(0\)$",
        ),
    ]:
        with pytest.raises(InvalidArgumentError, match=message):
            make()
