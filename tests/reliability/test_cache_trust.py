"""The cache can be trusted: keys follow the bytes, entries are validated, failed writes leave nothing.

- a key changes whenever the bytes it stands for change: one chunk of a Zarr
  folder rewritten by ``to_zarr(region=...)`` (also the same size within the
  same second), a COG replaced in place (also with its old mtime), a numpy
  array changed in place, a file changed on an HTTP server (checked by
  default); lazily opened and dask-backed Zarr variables are keyed by their
  store's files, not by reading their values;
- a stored entry whose metadata was edited (a huge shape, another dtype,
  another size) is a miss counted in ``stats.corrupt``, found in bounded
  time, recomputed and overwritten;
- a write that fails (disk full) leaves no temporary entry behind and is a
  ``CacheError`` naming the store and saying the disk is full.
"""

from __future__ import annotations

import errno
import functools
import importlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.cache import MemoryLRU, ZarrStore
from terrapipe.cache.keys import element_identity
from terrapipe.core.errors import CacheError
from tests.reliability.data import write_cog

zarr = pytest.importorskip("zarr")


def write_cube(path: Path, *, compressed: bool = True) -> xr.Dataset:
    data = np.arange(2 * 64 * 64, dtype="float32").reshape(2, 64, 64)
    ds = xr.Dataset({"v": (("band", "y", "x"), data)})
    encoding = {"v": {"chunks": (1, 32, 32)}}
    if not compressed:
        encoding["v"]["compressors"] = None
    ds.to_zarr(path, zarr_format=3, encoding=encoding, consolidated=False, mode="w")
    return ds


def rewrite_one_chunk(path: Path, value: float) -> None:
    """Overwrite chunk (band 1, y 0, x 1) only, as a user updating a store would."""
    patch = xr.Dataset({"v": (("band", "y", "x"), np.full((1, 32, 32), value, dtype="float32"))})
    patch.to_zarr(path, region={"band": slice(1, 2), "y": slice(0, 32), "x": slice(32, 64)})


def chip_sums(path: Path, store: object) -> tuple[list[float], object]:
    pipe = (
        tp.from_items([str(path)])
        .cache_point()
        .read_zarr(variables="v")
        .chip({"y": 32, "x": 32})
        .map(lambda chip: float(chip.sum()))
        .cache(store)
    )
    return list(pipe), pipe.stats


@pytest.mark.parametrize("compressed", [True, False])
def test_a_rewritten_zarr_chunk_changes_the_key(tmp_path, compressed):
    path = tmp_path / "cube.zarr"
    write_cube(path, compressed=compressed)
    store = MemoryLRU(2**24)
    first, stats = chip_sums(path, store)
    assert stats.misses == 1
    again, stats = chip_sums(path, store)
    assert again == first
    assert stats.hits == 1
    chunk = path / "v" / "c" / "1" / "0" / "1"
    before = os.stat(chunk)
    rewrite_one_chunk(path, -1.0)
    after = os.stat(chunk)
    if not compressed:
        assert after.st_size == before.st_size  # the same size: only the time and content tell
    fresh, stats = chip_sums(path, store)
    assert stats.misses == 1, "the cache served an entry made before the chunk was rewritten"
    assert fresh != first
    uncached = tp.from_items([str(path)]).read_zarr(variables="v").chip({"y": 32, "x": 32})
    assert fresh == [float(chip.sum()) for chip in uncached]


def test_same_size_rewrites_within_one_second_each_change_the_key(tmp_path):
    path = tmp_path / "cube.zarr"
    write_cube(path, compressed=False)
    keys = {json.dumps(element_identity(str(path)))}
    started = time.time()
    for value in (5.0, 6.0, 7.0):
        rewrite_one_chunk(path, value)
        keys.add(json.dumps(element_identity(str(path))))
    assert len(keys) == 4
    assert time.time() - started < 5  # not a matter of seconds


def _sums_through_cache(path: Path, store: MemoryLRU) -> tuple[list[float], object]:
    """One pass of ``read_raster`` behind a cache point: the raster's pixel sum, and the pipe's stats."""
    pipe = tp.from_items([str(path)]).cache_point().read_raster().map(lambda da: float(da.sum())).cache(store)
    return list(pipe), pipe.stats


def test_a_cog_replaced_in_place_changes_the_key(tmp_path):
    path = tmp_path / "scene.tif"
    write_cog(path, seed=1)
    store = MemoryLRU(2**24)
    run = functools.partial(_sums_through_cache, path, store)
    run()
    # a new version of the same size moved into place
    replacement = tmp_path / "scene.new.tif"
    expected = float(write_cog(replacement, seed=2).sum())
    assert os.stat(replacement).st_size == os.stat(path).st_size
    os.replace(replacement, path)
    fresh, stats = run()
    assert stats.misses == 1
    assert fresh == [expected]
    # rewritten in place (the same inode), the same size
    expected = float(write_cog(path, seed=3).sum())
    third, stats = run()
    assert stats.misses == 1
    assert third == [expected]


def test_a_file_replaced_with_its_old_mtime_changes_the_key(tmp_path):
    """cp -p / rsync -a of another version: the same size and mtime, another inode."""
    path = tmp_path / "scene.tif"
    write_cog(path, seed=1)
    before = element_identity(str(path))
    old = os.stat(path)
    replacement = tmp_path / "scene.new.tif"
    write_cog(replacement, seed=2)
    os.utime(replacement, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(replacement, path)
    now = os.stat(path)
    assert (now.st_size, now.st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    assert element_identity(str(path)) != before


def test_a_miss_after_a_same_size_same_mtime_replacement_reads_the_new_pixels(tmp_path):
    """read_raster's open-handle cache must not serve the replaced file to the recomputation."""
    path = tmp_path / "scene.tif"
    write_cog(path, seed=1)
    store = MemoryLRU(2**24)
    run = functools.partial(_sums_through_cache, path, store)
    run()
    old = os.stat(path)
    replacement = tmp_path / "scene.new.tif"
    expected = float(write_cog(replacement, seed=2).sum())
    os.utime(replacement, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(replacement, path)
    fresh, stats = run()
    assert stats.misses == 1
    assert fresh == [expected]


def test_a_numpy_array_changed_in_place_changes_the_key():
    array = np.zeros((4, 4), dtype="float32")
    store = MemoryLRU(2**20)

    def run() -> list[float]:
        return list(tp.from_items([array]).cache_point().map(lambda a: float(a.sum())).cache(store))

    assert run() == [0.0]
    array[1, 1] = 5.0
    assert run() == [5.0]


@pytest.mark.parametrize("chunks", [None, {}])
def test_xr_open_zarr_variables_are_keyed_by_their_store_files(tmp_path, chunks, monkeypatch):
    path = tmp_path / "cube.zarr"
    write_cube(path)
    da = xr.open_zarr(path, chunks=chunks, consolidated=False).v
    before = element_identity(da)
    assert "zarr" in json.dumps(before)  # the store's files, not a digest of the values
    rewrite_one_chunk(path, 3.0)
    reopened = xr.open_zarr(path, chunks=chunks, consolidated=False).v
    assert element_identity(reopened) != before
    # a lazy slice is part of the key even without coordinates
    assert element_identity(reopened.isel(y=slice(0, 32))) != element_identity(reopened.isel(y=slice(32, 64)))


def test_keying_a_lazy_zarr_variable_reads_no_chunk(tmp_path, monkeypatch):
    path = tmp_path / "cube.zarr"
    write_cube(path)
    da = tp.open_zarr(str(path), variables="v")

    def refuse(*args, **kwargs):
        raise AssertionError("keying read a chunk")

    monkeypatch.setattr(zarr.Array, "__getitem__", refuse)
    monkeypatch.setattr(zarr.Array, "get_basic_selection", refuse)
    element_identity(da)


def _http_cog_run(url: str, store: MemoryLRU) -> tuple[list[float], object]:
    pipe = tp.from_items([url]).cache_point().read_raster().map(lambda da: float(da.sum())).cache(store)
    return list(pipe), pipe.stats


def test_a_file_changed_on_an_http_server_changes_the_key_by_default(server, http_root):
    path = http_root / "trust-replaced.tif"
    write_cog(path, seed=4)
    url = server.url_for(path)
    store = MemoryLRU(2**24)
    first, _ = _http_cog_run(url, store)
    again, stats = _http_cog_run(url, store)
    assert (again, stats.hits) == (first, 1)
    before = element_identity(url, check_remote=True)
    time.sleep(0.01)
    write_cog(path, seed=5)
    assert element_identity(url, check_remote=True) != before
    _, stats = _http_cog_run(url, store)
    assert stats.misses == 1


def test_a_miss_after_an_http_change_reads_the_new_pixels(server, http_root):
    path = http_root / "trust-replaced-pixels.tif"
    write_cog(path, seed=6)
    url = server.url_for(path)
    store = MemoryLRU(2**24)
    _http_cog_run(url, store)
    time.sleep(0.01)
    expected = float(write_cog(path, seed=7).sum())
    fresh, _ = _http_cog_run(url, store)
    assert fresh == [expected]


def test_a_zarr_store_over_http_is_keyed_by_its_metadata_documents(server, http_root):
    path = http_root / "trust-cube.zarr"
    write_cube(path)
    url = server.url_for(path)
    before = element_identity(url, check_remote=True)
    assert "zarr_documents" in json.dumps(before)
    meta = path / "v" / "zarr.json"
    time.sleep(0.01)
    (path / "zarr.json").write_text((path / "zarr.json").read_text())  # metadata rewritten
    assert element_identity(url, check_remote=True) != before
    assert meta.is_file()
    shutil.rmtree(path)


@pytest.mark.parametrize("mode", ["trickle-headers", "trickle"])
def test_the_change_check_of_a_slow_server_ends_at_its_deadline(tmp_path, monkeypatch, mode):
    """A server that answers a byte a second cannot hold the key's HEAD (nor its fallbacks) longer."""
    from tests.servers.hostile_http import start_hostile_server

    canonical = importlib.import_module(
        "terrapipe.cache.canonical"
    )  # the package exports a function of that name

    (tmp_path / "slow.tif").write_bytes(b"x" * 4096)
    monkeypatch.setattr(canonical, "_HEAD_DEADLINE", 2.0)
    server = start_hostile_server(tmp_path, trickle_interval=1.0, max_seconds=20, lifetime=60)
    try:
        url = f"{server.url}/{mode}/slow.tif"
        start = time.monotonic()
        if mode == "trickle":  # headers come at once: the HEAD answers, no body is read
            assert element_identity(url, check_remote=True)
        else:
            with pytest.raises(tp.ReadError, match="deadline"):
                element_identity(url, check_remote=True)
        assert time.monotonic() - start < 6.0
    finally:
        server.stop()


# -- entries validated before they are read -------------------------------------------------------
def squares(store: object) -> tuple[list[list[float]], object]:
    pipe = tp.from_items([1, 2]).cache_point().map(lambda x: np.full(1000, x, dtype="float64")).cache(store)
    return [a.tolist() for a in pipe], pipe.stats


def edit_entry(root: Path, key: str, change) -> None:
    """Apply ``change(array_metadata, group_attributes)`` to an entry's documents (both copies)."""
    group_doc = root / key / "zarr.json"
    group = json.loads(group_doc.read_text())
    array_doc = root / key / "data" / "zarr.json"
    array = json.loads(array_doc.read_text())
    change(array, group["attributes"])
    change(group["consolidated_metadata"]["metadata"]["data"], {})
    group_doc.write_text(json.dumps(group))
    array_doc.write_text(json.dumps(array))


def huge_shape(array: dict, attrs: dict) -> None:
    array["shape"] = [50_000_000]  # fits in memory; 50 million one-byte chunks
    array["chunk_grid"]["configuration"]["chunk_shape"] = [1]


def huge_shape_and_size(array: dict, attrs: dict) -> None:
    huge_shape(array, attrs)
    if attrs:
        attrs["nbytes"] = 50_000_000


def other_dtype(array: dict, attrs: dict) -> None:
    array["data_type"] = "uint16"


def smaller_size(array: dict, attrs: dict) -> None:
    array["shape"] = [array["shape"][0] - 8]
    if attrs:
        attrs["nbytes"] -= 8


@pytest.mark.parametrize("change", [huge_shape, huge_shape_and_size, other_dtype, smaller_size])
def test_an_entry_with_edited_metadata_is_a_corrupt_miss_in_bounded_time(tmp_path, change):
    root = tmp_path / "cache.zarr"
    expected, _ = squares(ZarrStore(root))
    keys = sorted(ZarrStore(root).keys())
    assert len(keys) == 2
    for key in keys:
        edit_entry(root, key, change)
    started = time.perf_counter()
    again, stats = squares(ZarrStore(root))
    assert time.perf_counter() - started < 10  # walking 50 million missing chunks takes hours
    assert again == expected
    assert (stats.corrupt, stats.misses, stats.writes) == (2, 2, 2)
    third, stats = squares(ZarrStore(root))  # recomputed entries overwrote the edited ones
    assert (third, stats.hits, stats.corrupt) == (expected, 2, 0)


def test_an_entry_missing_a_chunk_or_with_another_checksum_is_corrupt(tmp_path):
    root = tmp_path / "cache.zarr"
    store = ZarrStore(root, chunk_bytes=1024)
    store.put("k1", bytes(range(256)) * 20)
    store.put("k2", bytes(range(256)) * 20)
    (root / "k1" / "data" / "c" / "2").unlink()
    edit_entry(root, "k2", lambda array, attrs: attrs.update(checksum="00000000") if attrs else None)
    for key in ("k1", "k2"):
        with pytest.raises(CacheError, match=f"cache entry {key} in .* is corrupt"):
            store.get(key)


# -- a failed write leaves nothing ----------------------------------------------------------------
def test_a_full_disk_while_writing_an_entry_leaves_nothing_and_says_so(tmp_path, monkeypatch):
    root = tmp_path / "cache.zarr"
    real_write = Path.write_bytes
    calls = []

    def write_until_full(self: Path, data: bytes) -> int:
        calls.append(self)
        if len(calls) >= 2:  # the second object: half of it, then the disk is full
            real_write(self, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_until_full)
    with pytest.raises(CacheError) as info:
        squares(ZarrStore(root))
    text = str(info.value)
    assert "disk is full" in text
    assert str(root) in text
    monkeypatch.setattr(Path, "write_bytes", real_write)
    leftovers = [p for p in (root / ".tmp").iterdir() if p.name != "zarr.json"]
    assert leftovers == []
    assert sorted(ZarrStore(root).keys()) == []
    again, stats = squares(ZarrStore(root))  # with space again, entries are written
    assert stats.writes == 2
    assert again == [[1.0] * 1000, [2.0] * 1000]


def test_a_failed_upload_to_an_object_store_leaves_no_array_behind(tmp_path):
    from zarr.storage import MemoryStore

    backing = MemoryStore()
    store = ZarrStore(backing)
    store.put("k0", b"first version")
    real_set = backing.set

    async def full(key, value):
        if key.endswith("/zarr.json") and key.count("/") == 1:  # the entry's commit: the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        await real_set(key, value)

    backing.set = full
    with pytest.raises(CacheError, match="disk is full"):
        store.put("k0", b"second version")
    backing.set = real_set
    names = sorted({k.split("/")[1] for k in backing._store_dict if k.startswith("k0/") and k.count("/") > 1})
    assert len(names) == 1  # only the committed entry's array
    assert store.get("k0") == b"first version"
