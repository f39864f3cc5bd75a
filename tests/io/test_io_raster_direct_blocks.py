"""``chip`` and ``sample_windows`` read the blocks of a ``read_raster`` array straight from its backend.

:func:`terrapipe.io.raster_array.direct_blocks` takes over only where the variable is a window
of an unmasked ``RasterArray`` (every band, steps of 1, no memory cache; local or remote, with
or without a storage or a lock: a plain local file by the plain read, the others by the
checked, retried read); the pixels are the file's whatever path reads them, and every other
variable keeps xarray's path.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp
from terrapipe.chip.layout import describe_arrays
from terrapipe.io import open_raster
from terrapipe.io.raster_array import DirectBlocks, direct_blocks


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("direct") / "scene.tif"
    rng = np.random.default_rng(4)
    data = rng.integers(1, 60_000, size=(3, 96, 80), dtype="uint16")
    profile = {
        "driver": "GTiff",
        "width": 80,
        "height": 96,
        "count": 3,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(500_000, 5_000_000, 10, 10),
        "nodata": 0,
        "tiled": True,
        "blockxsize": 16,
        "blockysize": 16,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path, data


def _spec(da: object, dims: tuple[str, ...] = ("y", "x")) -> object:
    size = dict.fromkeys(dims, 8)
    (spec,), _ = describe_arrays(da, dims, window=size, stride=size, block_bytes=2**16)
    return spec


@pytest.mark.parametrize(
    "select",
    [{}, {"y": slice(5, 90), "x": slice(3, 77)}, {"y": slice(16, 48)}, {"x": slice(1, None)}],
    ids=["whole", "window", "rows", "columns"],
)
@pytest.mark.parametrize("workers", [0, 3])
def test_chips_of_a_plain_array_or_window_are_the_files_pixels(
    scene: tuple[Path, np.ndarray], select: dict, workers: int
) -> None:
    path, data = scene
    da = open_raster(path).isel(select)
    assert isinstance(_spec(da).direct, DirectBlocks)
    chips = list(tp.from_items([da]).chip({"y": 24, "x": 24}, overlap={"y": 5, "x": 3}, workers=workers))
    assert chips
    expected = data[(slice(None), select.get("y", slice(None)), select.get("x", slice(None)))]
    y, x = da.y.values.tolist(), da.x.values.tolist()
    for chip in chips:
        r, c = y.index(float(chip.y[0])), x.index(float(chip.x[0]))
        np.testing.assert_array_equal(chip.values, expected[:, r : r + 24, c : c + 24])
        assert chip.dtype == np.uint16


def test_windows_on_points_are_the_files_pixels(scene: tuple[Path, np.ndarray]) -> None:
    path, data = scene
    da = open_raster(path)
    picks = [(3, 7), (40, 50), (80, 60), (0, 0), (72, 56)]
    points = [(500_000 + (c + 8 + 0.5) * 10, 5_000_000 - (r + 8 + 0.5) * 10) for r, c in picks]
    for output in ("numpy", "xarray"):
        got = list(tp.from_items([da]).sample_windows({"y": 16, "x": 16}, points=points, output=output))
        arrays = [g[0] if output == "numpy" else g.values for g in got]
        assert len(arrays) == len(picks)
        for (r, c), array in zip(picks, arrays, strict=True):
            np.testing.assert_array_equal(array, data[:, r : r + 16, c : c + 16])


def test_a_block_of_some_bands_reads_through_the_general_path(scene: tuple[Path, np.ndarray]) -> None:
    path, data = scene
    da = open_raster(path)
    chips = list(tp.from_items([da]).chip({"band": 1, "y": 32, "x": 40}))
    assert len(chips) == 3 * 3 * 2
    for chip in chips:
        b = int(chip.band[0]) - 1
        r = round((5_000_000 - float(chip.y[0])) / 10 - 0.5)
        c = round((float(chip.x[0]) - 500_000) / 10 - 0.5)
        np.testing.assert_array_equal(chip.values, data[b : b + 1, r : r + 32, c : c + 40])
    blocks = direct_blocks(da.variable)
    assert blocks is not None
    key = (slice(1, 3), slice(8, 24), slice(0, 16))
    out = np.empty(blocks.shape_of(key), dtype=blocks.dtype)
    assert blocks.read(key, out) is out
    np.testing.assert_array_equal(out, data[1:3, 8:24, 0:16])


@pytest.mark.parametrize(
    "how",
    ["masked", "cache", "one band by index", "reversed rows", "every other column", "chunks"],
)
def test_other_arrays_keep_xarrays_path_and_read_the_same(scene: tuple[Path, np.ndarray], how: str) -> None:
    path, data = scene
    if how == "masked":
        da = open_raster(path, masked=True)
    elif how == "cache":
        da = open_raster(path, cache=True)
    elif how == "chunks":
        da = open_raster(path, chunks=True)
    else:
        da = open_raster(path)
    select = {
        "one band by index": {"band": 1},
        "reversed rows": {"y": slice(None, None, -1)},
        "every other column": {"x": slice(None, None, 2)},
    }.get(how, {})
    da = da.isel(select)
    assert direct_blocks(da.variable) is None
    expected = data.astype(da.dtype)[
        (select.get("band", slice(None)), select.get("y", slice(None)), select.get("x", slice(None)))
    ]
    chips = list(tp.from_items([da]).chip({"y": 16, "x": 16}))
    assert chips
    y, x = da.y.values.tolist(), da.x.values.tolist()
    for chip in chips:
        r, c = y.index(float(chip.y[0])), x.index(float(chip.x[0]))
        np.testing.assert_array_equal(chip.values, expected[..., r : r + 16, c : c + 16])


@pytest.mark.parametrize("how", ["lock", "storage", "remote", "remote, a failed read retried"])
def test_a_remote_file_a_storage_or_a_lock_reads_directly_through_the_checked_read(
    scene: tuple[Path, np.ndarray], how: str, range_server_session: Any
) -> None:
    """Not the plain read (one try, no environment): the checked one, retried, into the reader's own buffer."""
    path, data = scene
    if how == "lock":
        da = open_raster(path, lock=threading.Lock())
    elif how == "storage":
        da = open_raster(path, storage=tp.Storage())
    else:
        name = f"direct-{how.replace(' ', '-').replace(',', '')}.tif"
        shutil.copy(path, range_server_session.root / name)
        da = open_raster(f"{range_server_session.url}/{name}", storage=tp.Storage(retries=2))
        if how.endswith("retried"):
            range_server_session.fault(f"/{name}", status=503, count=2)
    try:
        blocks = _spec(da).direct
        assert isinstance(blocks, DirectBlocks)
        assert not da.variable._data.array.array._plain  # the checked read, not the plain one
        chips = list(tp.from_items([da]).chip({"y": 16, "x": 16}, workers=3, output="numpy"))
    finally:
        range_server_session.clear_faults()
    assert len(chips) == 6 * 5
    with rasterio.open(path) as src:
        for array, meta in chips:
            transform = meta["transform"]
            r, c = round((5_000_000 - transform[5]) / 10), round((transform[2] - 500_000) / 10)
            np.testing.assert_array_equal(array, src.read(window=((r, r + 16), (c, c + 16))))
            np.testing.assert_array_equal(array, data[:, r : r + 16, c : c + 16])
            assert not array.flags.writeable
