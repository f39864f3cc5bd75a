"""Bounded memory: every buffer terrapipe keeps has a byte or count bound, and a test checks it.

:data:`BUFFERS` lists every buffer in ``src/terrapipe`` (each queue, deque,
ordered dict used as a cache, ``lru_cache``): where it is, its bound, and the
test that checks the bound. :func:`test_every_buffer_in_the_source_is_listed`
scans the source, so a buffer added later without a bound fails here until it
is listed. Bounds already checked by a layer's own tests are referenced, not
repeated; the others are checked in this file.

Memory over a long run (RSS over several epochs of a large cube) is measured
by ``benchmarks/bench_soak.py``, not asserted here.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.stats import StageStats
from terrapipe.io import gdal_log, http_reads
from terrapipe.io.http_client import fetch
from terrapipe.io.raster_array import MAX_HANDLES_PER_THREAD, close_thread_handles, open_handle_count
from terrapipe.io.storage import Storage
from tests.chip.chip_helpers import counting_dataarray
from tests.reliability.data import write_cog
from tests.servers.http_range import RangeServer

SRC = Path(tp.__file__).resolve().parent

#: (file, construct) -> (bound, the test that checks it).
BUFFERS: dict[tuple[str, str], tuple[str, str]] = {
    ("io/remote_sources.py", "OrderedDict("): (
        "VRTs whose HTTP(S) sources were all found (the source check's memory): CHECKED_VRTS (256), "
        "the least recently checked dropped first; each key a path and a 32-byte digest",
        "tests/io/test_remote_sources_mosaic.py::test_the_vrts_remembered_stay_within_checked_vrts",
    ),
    ("io/gdal_opener.py", "OrderedDict("): (
        "a remote raster's plain-read blocks: MAX_CACHED_BLOCKS (128) of BLOCK_BYTES (16 KiB) per file, "
        "least recently used dropped; files kept: MAX_SHARED_FILES (32) per process; side-car answers: 4096 "
        "per process (each a 16 KiB block or None)",
        "tests/gdal_opener/test_opener_threads.py::test_the_block_cache_and_the_side_car_answers_are_bounded",
    ),
    ("io/copc.py", "OrderedDict("): (
        "CopcFile(cache_bytes=64 MiB): decompressed COPC nodes, least recently used dropped first",
        "tests/io/test_point_cloud.py::test_copc_node_cache_stays_within_cache_bytes",
    ),
    ("io/read_pool.py", "deque("): (
        "reader threads: the tasks let through by the open leases (each at most its threads at once) waiting "
        "for a thread, at most their threads together; a lease's tasks beyond its threads, bounded by its "
        "reader's read-ahead (ReadBudget: bytes and reads in flight)",
        "tests/chip/test_reader_pool.py::"
        "test_a_lease_runs_at_most_its_threads_at_once_and_leases_side_by_side_each_get_theirs",
    ),
    ("chip/chipper.py", "deque("): (
        "chip: at most ELEMENTS_AHEAD (16) source elements pulled ahead of the one served (remote data)",
        "tests/chip/test_chipper_read_ahead.py::test_elements_pulled_ahead_are_bounded",
    ),
    ("io/reader_stage.py", "deque("): (
        "read_zarr: the store served and at most one opened ahead (ReaderStage._opens_ahead = 1)",
        "tests/chip/test_scenes_opened_ahead.py::test_the_next_store_opens_while_the_current_one_is_used",
    ),
    ("run/prefetch.py", "Queue("): (
        "prefetch(size): at most size + 1 elements read ahead",
        "tests/run/test_run_prefetch.py::test_prefetch_reads_ahead_within_its_bound",
    ),
    ("run/pmap.py", "deque("): (
        "pmap(max_in_flight=2 * workers) elements submitted and not yielded",
        "tests/run/test_run_pmap.py (max_in_flight=3 bound)",
    ),
    ("run/workers.py", "Queue("): (
        "loader(buffer=2) results per worker; commands: one per pass",
        "tests/run/test_run_loader.py::test_memory_ahead_of_the_consumer_is_bounded",
    ),
    ("cache/memory.py", "OrderedDict("): (
        "MemoryLRU(max_bytes)",
        "tests/cache/test_cache_stores.py (nbytes <= max_bytes)",
    ),
    ("io/raster_array.py", "OrderedDict("): (
        f"{MAX_HANDLES_PER_THREAD} open datasets per thread",
        "test_open_raster_handles_per_thread_are_bounded",
    ),
    ("fuse/grid.py", "lru_cache"): ("256 grids", "test_memoized_grids_are_bounded"),
    ("core/crs.py", "lru_cache"): ("256 CRS comparisons", "test_memoized_grids_are_bounded"),
    ("io/zarr_reader.py", "lru_cache"): (
        "a function of no arguments (read_zarr's backend class): one value",
        "test_memoized_grids_are_bounded",
    ),
    ("io/zarr_local_group.py", "lru_cache"): (
        "_PARSED_DOCUMENTS (256) parsed Zarr metadata documents per function, keyed by their bytes",
        "test_memoized_grids_are_bounded",
    ),
    ("cache/segment.py", "lru_cache"): (
        "a function of no arguments: one value",
        "test_memoized_grids_are_bounded",
    ),
    ("adapters/lightning.py", "deque("): (
        "one loader state per batch fetched ahead of the model (Lightning's prefetch: 1-2), cleared each pass",
        "tests/adapters/test_lightning.py::"
        "test_the_states_kept_ahead_of_the_model_are_bounded_by_the_batches_fetched_ahead",
    ),
    ("_compat.py", "lru_cache"): (
        "functions of no arguments (a module or a flag each): one value",
        "test_memoized_grids_are_bounded",
    ),
    ("cache/codec.py", "lru_cache"): (
        "a function of no arguments: one value",
        "test_memoized_grids_are_bounded",
    ),
    ("io/obstore_runtime.py", "OrderedDict("): (
        "64 object stores (one per Storage and bucket, least recently used dropped)",
        "tests/storage/test_byte_layer_local.py::test_stores_kept_for_reuse_are_bounded",
    ),
    ("gpu/pinned.py", "OrderedDict("): (
        "PinnedPool(max_bytes=256 MiB, max_buffers=32) pinned host buffers",
        "tests/gpu/test_pinned.py::test_byte_bound_evicts_free_buffers_least_recently_released_first",
    ),
}

#: Bounds of buffers that are not one of the constructs scanned for.
OTHER_BOUNDS = {
    "chip(reads=Reads(block_cache_bytes=512 MiB, read_ahead=2 * workers))": "test_chip_read_ahead_is_bounded_by_groups_and_bytes",
    "chip(shuffle=WindowShuffle(buffer=1024))": "test_chip_shuffle_buffer_bounds_the_blocks_held",
    "sample_windows(buffer=256)": "test_sample_windows_buffer_bounds_the_blocks_held",
    "StageStats.last_errors: 20 messages": "tests/core/test_errors.py",
    "HTTP connections: one per host and thread": "test_http_connections_per_thread_are_bounded",
    "GDAL messages kept per read: 50": "test_gdal_messages_kept_per_read_are_bounded",
    "GDAL_CACHEMAX=256 MB, CPL_VSIL_CURL_CACHE_SIZE=64 MiB": "test_gdal_caches_are_bounded",
    "loader: workers * (buffer + 1) + prefetch batches": "tests/run/test_run_loader.py::test_memory_ahead_of_the_consumer_is_bounded",
    "align_to reference: the window under a chip, never the whole raster": "test_align_to_reads_only_the_window_under_each_chip",
}

#: A construct made (``deque(``), or subclassed with type parameters (``class H(OrderedDict[K, V]):``).
_CONSTRUCTS = re.compile(
    r"\b(?:queue\.)?(Queue|SimpleQueue|deque|OrderedDict)(?:\(|\[.*\]\):)|(lru_cache|functools\.cache)\b"
)


def test_every_buffer_in_the_source_is_listed() -> None:
    found = set()
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith("datasets/"):  # the sample world's generator: one-off, not in a pipeline
            continue
        for line in path.read_text().splitlines():
            code = line.split("#", 1)[0]
            if "import" in code:
                continue
            for match in _CONSTRUCTS.finditer(code):
                found.add(
                    (
                        relative,
                        (match.group(1) or match.group(2)).replace("functools.cache", "lru_cache")
                        + ("(" if match.group(1) else ""),
                    )
                )
    unlisted = sorted(found - set(BUFFERS))
    assert not unlisted, f"buffers without a documented, tested bound: {unlisted}; add them to BUFFERS"
    assert not sorted(set(BUFFERS) - found), "BUFFERS lists constructs that are gone; update it"


# -- chip: read-ahead, block budget, shuffle buffer ---------------------------------------------------


def _lazy(size: int = 64, chunk: int = 8) -> tuple[xr.DataArray, Any]:
    data = np.arange(size * size, dtype="float64").reshape(size, size)
    return counting_dataarray(data, ("y", "x"), (chunk, chunk))


@pytest.mark.parametrize(("workers", "read_ahead"), [(0, 1), (0, 3), (2, None)])
def test_chip_read_ahead_is_bounded_by_groups_and_bytes(workers: int, read_ahead: int | None) -> None:
    da, backend = _lazy()
    ahead = max(1, 2 * workers) if read_ahead is None else read_ahead
    chips = tp.from_items([da]).chip(8, workers=workers, reads=tp.chip.Reads(read_ahead=read_ahead))
    for yielded, _ in enumerate(chips, start=1):  # one window per block here: group k is block k
        assert sum(backend.reads.values()) <= yielded + ahead
    assert sum(backend.reads.values()) == 64
    da, backend = _lazy()
    tight = tp.from_items([da]).chip(8, workers=0, reads=tp.chip.Reads(block_cache_bytes=1, read_ahead=10))
    for yielded, _ in enumerate(tight, start=1):  # the byte budget stops read-ahead first
        assert sum(backend.reads.values()) <= yielded + 1


def test_chip_shuffle_buffer_bounds_the_blocks_held() -> None:
    da, backend = _lazy()
    chips = tp.from_items([da]).chip(
        4, shuffle=tp.chip.WindowShuffle(buffer=8, seed=3), workers=0, reads=tp.chip.Reads(read_ahead=0)
    )
    for yielded, _ in enumerate(chips, start=1):
        # blocks of 4 windows: a buffer holds the 2 blocks (8 windows) it shuffles, and the next read ahead
        assert sum(backend.reads.values()) * 4 <= yielded + 8 + 4 + 4
    assert sum(backend.reads.values()) == 64


def test_sample_windows_buffer_bounds_the_blocks_held() -> None:
    da, backend = _lazy()
    windows = tp.from_items([da]).sample_windows(8, n=64, buffer=4, seed=1, workers=0)
    for yielded, _ in enumerate(windows, start=1):
        buffers_started = -(-yielded // 4)
        assert sum(backend.reads.values()) <= 4 * buffers_started * 4  # a window touches at most 4 blocks


# -- io -------------------------------------------------------------------------------------------------


def test_open_raster_handles_per_thread_are_bounded(tmp_path: Path) -> None:
    paths = [tmp_path / f"f{i}.tif" for i in range(MAX_HANDLES_PER_THREAD + 8)]
    for path in paths:
        write_cog(path, size=128, block=128)

    def work() -> None:
        for path in paths:
            tp.open_raster(path).values  # noqa: B018
            assert open_handle_count() <= MAX_HANDLES_PER_THREAD
        assert open_handle_count() == MAX_HANDLES_PER_THREAD
        close_thread_handles()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


def test_http_connections_per_thread_are_bounded(server: RangeServer, http_root: Path) -> None:
    (http_root / "blob.bin").write_bytes(bytes(1000))
    url = server.url_for(http_root / "blob.bin")
    storage = Storage(backoff=0.01, timeout=17.0, concurrency=13)
    for start in range(0, 300, 10):
        each = storage.with_options(deadline=30.0 - start / 100)
        fetch(url, each, range_value=f"bytes={start}-{start + 9}")
        asyncio.run(http_reads.read_async(url, each, byte_range=http_reads.ByteRange(start, start + 10)))
    # one pool manager per process and Storage.concurrency (whatever each read's deadline),
    # keeping at most Storage.concurrency idle connections per host
    managers = [key for key in http_reads._POOLS if key == (os.getpid(), 13, None)]  # no proxy
    assert len(managers) == 1
    assert http_reads._POOLS[managers[0]].connection_from_url(url).pool.maxsize == 13
    # read_async: one pool of Storage.concurrency threads per process, at most _MAX_POOLS pools
    assert http_reads._ASYNC_POOLS[(os.getpid(), 13)]._max_workers == 13
    assert len(http_reads._ASYNC_POOLS) <= http_reads._MAX_POOLS


def test_gdal_messages_kept_per_read_are_bounded() -> None:
    import logging

    logger = logging.getLogger("rasterio._err")
    with gdal_log.collecting_messages() as messages:
        for i in range(gdal_log.MAX_MESSAGES * 3):
            logger.warning("message %d", i)
    assert len(messages) == gdal_log.MAX_MESSAGES
    assert messages[-1] == f"message {gdal_log.MAX_MESSAGES * 3 - 1}"


def test_gdal_caches_are_bounded() -> None:
    options = tp.io.gdal_options()
    assert 0 < int(options["GDAL_CACHEMAX"]) <= 1024  # MB, per process
    assert 0 < int(options["CPL_VSIL_CURL_CACHE_SIZE"]) <= 2**30


def test_stage_stats_keep_a_bounded_number_of_messages() -> None:
    stats = StageStats(name="read_raster")
    for i in range(1000):
        stats.record_skip(f"error {i}")
    assert stats.skipped == 1000
    assert len(stats.last_errors) == 20


def test_memoized_grids_are_bounded() -> None:
    import importlib
    import inspect

    for relative in {path for path, construct in BUFFERS if construct == "lru_cache"}:
        module = importlib.import_module("terrapipe." + relative.removesuffix(".py").replace("/", "."))
        cached = [f for f in vars(module).values() if callable(f) and hasattr(f, "cache_info")]
        assert cached, relative
        for f in cached:
            bounded = f.cache_info().maxsize is not None or not inspect.signature(f).parameters
            assert bounded, f"{relative}: {f.__name__} memoizes without a bound"


# -- fuse -----------------------------------------------------------------------------------------------


def test_align_to_reads_only_the_window_under_each_chip() -> None:
    size = 256
    data = np.arange(size * size, dtype="float32").reshape(size, size)
    coords = {"y": 5_000_000 - 10.0 * (np.arange(size) + 0.5), "x": 500_000 + 10.0 * (np.arange(size) + 0.5)}
    reference, backend = counting_dataarray(data, ("y", "x"), (32, 32), coords=coords, name="dem")
    reference = reference.rio.write_crs("EPSG:32631")
    chip = xr.DataArray(
        np.zeros((1, 16, 16), "float32"),
        dims=("band", "y", "x"),
        coords={"band": [1], "y": coords["y"][100:116], "x": coords["x"][40:56]},
    ).rio.write_crs("EPSG:32631")
    aligned = next(iter(tp.from_items([chip]).align_to(reference, resampling="nearest")))
    np.testing.assert_array_equal(aligned["dem"].values, data[100:116, 40:56])
    assert sum(backend.reads.values()) <= 4  # the 32 x 32 blocks under the chip, not the 64 of the raster
