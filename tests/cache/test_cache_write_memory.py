"""Writing a large entry holds one part at a time, not the whole entry again (#20: memory stays flat).

A cache stage keeps the encoded elements of the input it computes (it must:
a stage downstream may change them in place), then writes the entry as
parts (``terrapipe.cache.parts``). What the write allocates on top of those
elements, measured with ``tracemalloc`` (numpy and Python buffers, hiredis
included), must not grow with the entry: an entry 4x larger may not cost
4x more. Before, the write packed every part first (the entry again), and a
Redis write compressed every part and queued every command in one pipeline
before sending (the entry twice more), and at a URL a reference cycle made
by zarr kept every part written until the garbage collector ran (measured
here with the collector off, so what a cycle holds counts).
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
import terrapipe.cache.parts as parts_module
from terrapipe.cache import CacheStore, RedisStore, ZarrStore

PART = 512 * 2**10  # bytes per part here
ELEMENT = 128 * 2**10  # bytes per element: four per part
STORES = ("redis", "redis-plain", "zarr", "zarr-url")


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts_module, "PART_BYTES", PART)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CacheStore]:
    out: Any
    if request.param.startswith("redis"):
        url = request.getfixturevalue("redis_server").url
        compress = "lz4" if request.param == "redis" else False
        out = RedisStore(url, prefix=f"test-{request.node.name[-40:]}:", compress=compress)
    elif request.param == "zarr":
        out = ZarrStore(tmp_path / "cache.zarr")
    else:
        out = ZarrStore(f"file://{tmp_path / 'cache-url.zarr'}")
    yield out
    if isinstance(out, RedisStore):
        out.clear()


def chunks(n: int) -> Iterator[np.ndarray[Any, Any]]:
    """``n`` arrays of ELEMENT random bytes (incompressible: LZ4 keeps their size), made one at a time."""
    rng = np.random.default_rng(n)
    for _ in range(n):
        yield rng.integers(0, 256, ELEMENT, dtype=np.uint8)


def write_overhead(store: CacheStore, count: int) -> int:
    """Bytes the write of an entry of ``count`` elements allocates beyond what the pass held before it."""
    pipe = tp.from_items([count]).cache_point().flatmap(chunks).cache(store)
    seen = 0
    gc.collect()
    gc.disable()  # what a reference cycle holds counts too (it stays until a collection, whenever that runs)
    tracemalloc.start()
    try:
        held = 0
        for element in pipe:
            seen += 1
            del element
            held = tracemalloc.get_traced_memory()[0]  # the encoded elements, kept for the write
            tracemalloc.reset_peak()
        peak = tracemalloc.get_traced_memory()[1]  # since the last element: the write
    finally:
        tracemalloc.stop()
        gc.enable()
    assert seen == count
    assert pipe.stats.writes == 1
    assert len(list(pipe)) == count  # written whole, read back
    assert pipe.stats.hits == 1
    return peak - held


def test_a_write_holds_one_part_at_a_time_whatever_the_entry_size(store: CacheStore) -> None:
    small = write_overhead(store, 64)  # 8 MiB: 16 parts
    large = write_overhead(store, 256)  # 32 MiB: 64 parts
    # One part packed, compressed and sent (zarr: staged and copied), never the entry (64 parts): measured
    # 1-5 parts (0.5-2.3 MiB) on each store at both sizes; 32-96 MiB before, 66 MiB at a URL before the cycle fix.
    assert large <= 8 * PART, f"writing a 32 MiB entry allocated {large / 2**20:.1f} MiB"
    assert large <= small + 4 * PART, f"8 MiB entry: {small / 2**20:.1f} MiB, 32 MiB: {large / 2**20:.1f} MiB"
