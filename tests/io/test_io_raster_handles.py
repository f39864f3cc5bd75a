"""The per-thread handles of ``read_raster`` arrays: the last one used is taken again without a lookup.

:func:`terrapipe.io.raster_array.acquire` hands a thread's window reads the dataset it returned
last when the same source asks again (no hashing of the source, no reordering of the cache).
That shortcut must never hand out a dataset the cache no longer holds: one closed by
:func:`close_thread_handles`, by :func:`forget` (a failed read), by eviction (more files than
:data:`MAX_HANDLES_PER_THREAD`), or the parent's after a fork; and two arrays read in turn must
each read their own file.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrapipe.io import open_raster, raster_array
from terrapipe.io.raster_array import acquire, close_thread_handles, forget, open_handle_count


def _write(path: Path, offset: int, size: int = 64) -> np.ndarray:
    data = (np.arange(2 * size * size, dtype="uint16").reshape(2, size, size) + offset).astype("uint16")
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 2,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(500_000, 5_000_000, 10, 10),
        "tiled": True,
        "blockxsize": 16,
        "blockysize": 16,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return data


def _source(da: Any) -> raster_array.RasterSource:
    """The RasterSource under a read_raster array (its backend's)."""
    data = da.variable._data
    while not isinstance(data, raster_array.RasterArray):
        data = data.array
    return data.source


def _window(da: Any, r: int, c: int) -> np.ndarray:
    return np.asarray(da.isel(y=slice(r, r + 8), x=slice(c, c + 8)).values)


@pytest.fixture(autouse=True)
def _no_handles() -> Any:
    close_thread_handles()
    yield
    close_thread_handles()


def test_repeated_window_reads_use_one_handle(tmp_path: Path) -> None:
    data = _write(tmp_path / "a.tif", 0)
    da = open_raster(tmp_path / "a.tif")
    first = acquire(_source(da))
    for r, c in [(0, 0), (8, 16), (40, 3), (56, 56)]:
        np.testing.assert_array_equal(_window(da, r, c), data[:, r : r + 8, c : c + 8])
        assert acquire(_source(da)) is first
    assert open_handle_count() == 1


def test_two_arrays_read_in_turn_each_read_their_own_file(tmp_path: Path) -> None:
    a_data, b_data = _write(tmp_path / "a.tif", 0), _write(tmp_path / "b.tif", 1000)
    a, b = open_raster(tmp_path / "a.tif"), open_raster(tmp_path / "b.tif")
    for r in range(0, 56, 8):
        np.testing.assert_array_equal(_window(a, r, r), a_data[:, r : r + 8, r : r + 8])
        np.testing.assert_array_equal(_window(b, r, r), b_data[:, r : r + 8, r : r + 8])
    assert acquire(_source(a)) is not acquire(_source(b))
    assert open_handle_count() == 2


def test_an_equal_source_of_another_array_shares_the_handle(tmp_path: Path) -> None:
    data = _write(tmp_path / "a.tif", 7)
    one, two = open_raster(tmp_path / "a.tif"), open_raster(tmp_path / "a.tif")
    assert _source(one) == _source(two)
    assert _source(one) is not _source(two)
    np.testing.assert_array_equal(_window(one, 0, 0), data[:, :8, :8])
    np.testing.assert_array_equal(_window(two, 8, 8), data[:, 8:16, 8:16])
    assert acquire(_source(one)) is acquire(_source(two))
    assert open_handle_count() == 1


@pytest.mark.parametrize("how", ["close_thread_handles", "forget"])
def test_a_handle_closed_or_forgotten_is_never_handed_out_again(tmp_path: Path, how: str) -> None:
    data = _write(tmp_path / "a.tif", 3)
    da = open_raster(tmp_path / "a.tif")
    np.testing.assert_array_equal(_window(da, 0, 0), data[:, :8, :8])
    before = acquire(_source(da))
    if how == "forget":
        forget(_source(da))
    else:
        close_thread_handles()
    assert before.closed
    assert open_handle_count() == 0
    np.testing.assert_array_equal(_window(da, 16, 24), data[:, 16:24, 24:32])
    after = acquire(_source(da))
    assert after is not before
    assert not after.closed
    assert open_handle_count() == 1


def test_an_evicted_handle_is_opened_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raster_array, "MAX_HANDLES_PER_THREAD", 2)
    datas = [_write(tmp_path / f"f{i}.tif", 100 * i) for i in range(3)]
    arrays = [open_raster(tmp_path / f"f{i}.tif") for i in range(3)]
    close_thread_handles()
    first = acquire(_source(arrays[0]))
    for da, data in zip(arrays, datas, strict=True):  # the third open evicts the first file's handle
        np.testing.assert_array_equal(_window(da, 8, 8), data[:, 8:16, 8:16])
    assert first.closed
    assert open_handle_count() == 2
    np.testing.assert_array_equal(_window(arrays[0], 0, 8), datas[0][:, :8, 8:16])
    assert acquire(_source(arrays[0])) is not first
    assert open_handle_count() == 2


def test_each_thread_reads_with_its_own_handle(tmp_path: Path) -> None:
    data = _write(tmp_path / "a.tif", 5)
    da = open_raster(tmp_path / "a.tif")
    mine = acquire(_source(da))
    theirs: list[Any] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for r in range(0, 56, 8):
                np.testing.assert_array_equal(_window(da, r, 0), data[:, r : r + 8, :8])
            theirs.append(acquire(_source(da)))
        except BaseException as err:  # reported below
            errors.append(err)
        finally:
            close_thread_handles()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(timeout=60)
    assert not errors, errors
    assert theirs
    assert theirs[0] is not mine
    assert not mine.closed


def _child(da: Any, parent: Any, queue: Any) -> None:
    try:
        window = _window(da, 8, 8)
        queue.put((acquire(_source(da)) is parent, open_handle_count(), window))
    except BaseException as err:  # pragma: no cover - reported to the parent
        queue.put(repr(err))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_a_forked_child_opens_its_own_handle(tmp_path: Path) -> None:
    data = _write(tmp_path / "a.tif", 9)
    da = open_raster(tmp_path / "a.tif")
    np.testing.assert_array_equal(_window(da, 0, 0), data[:, :8, :8])
    parent = acquire(_source(da))  # the last handle this thread used
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(da, parent, queue))
    child.start()
    try:
        answer = queue.get(timeout=60)
    finally:
        child.join(timeout=60)
    assert not isinstance(answer, str), answer
    inherited, count, window = answer
    assert inherited is False
    assert count == 1
    np.testing.assert_array_equal(window, data[:, 8:16, 8:16])
    assert not parent.closed
    assert acquire(_source(da)) is parent
