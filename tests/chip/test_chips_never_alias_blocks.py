"""A chip never shares memory with a buffer terrapipe reads again.

``torch.as_tensor(chip.values)`` (or ``torch.from_numpy``) of a read-only
chip only warns and shares the memory; an in-place op on the tensor
(``t -= mean``) then writes into whatever the chip is a view of. Were chips
views of the decoded blocks (as they were), a consumer would silently
change every later overlapping chip, the chips of a second pass served from
kept blocks, and a user's own array. Here every chip of two passes over
overlapping windows is written through ``torch.as_tensor`` as soon as it is
handed out, and every chip must still equal a clean run, for each source
kind (Zarr lazy, ``tp.open_zarr``, dask-backed, a COG through ``read_raster``
(direct blocks), a local ``stack_stac`` cube, an in-memory array), with
windows not aligned with blocks, halo and boundary windows, xarray and numpy
outputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

import terrapipe as tp
from tests.reliability.data import write_scene_item

rasterio = pytest.importorskip("rasterio")

SIZE = 128


def _array() -> xr.DataArray:
    data = np.arange(2 * SIZE * SIZE, dtype="float32").reshape(2, SIZE, SIZE)
    return xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={
            "band": [1, 2],
            "y": 5_000_000.0 - 10.0 * np.arange(SIZE),
            "x": 600_000.0 + 10.0 * np.arange(SIZE),
        },
        name="image",
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("alias")
    zarr_path = folder / "scene.zarr"
    _array().to_dataset().to_zarr(zarr_path, mode="w", encoding={"image": {"chunks": (2, 64, 64)}})
    cog = folder / "scene.tif"
    profile = {
        "driver": "GTiff", "width": SIZE, "height": SIZE, "count": 2, "dtype": "float32",
        "crs": "EPSG:32631", "transform": rasterio.transform.from_origin(600_000, 5_000_000, 10, 10),
        "tiled": True, "blockxsize": 64, "blockysize": 64,
    }  # fmt: skip
    with rasterio.open(cog, "w", **profile) as dst:
        dst.write(_array().values)
    (folder / "stac").mkdir()
    item = write_scene_item(folder / "stac", size=SIZE, block=128)
    return {"zarr": zarr_path, "cog": cog, "item": item}


SOURCES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "zarr lazy": lambda f: xr.open_zarr(f["zarr"], chunks=None)["image"],
    "tp.open_zarr": lambda f: tp.open_zarr(f["zarr"])["image"],
    "dask-backed": lambda f: xr.open_zarr(f["zarr"])["image"],
    "cog read_raster": lambda f: tp.io.open_raster(f["cog"]),
    "stack_stac local": lambda f: tp.stac.stack_items([f["item"]], chunks={"x": 64, "y": 64}),
    "in-memory": lambda f: _array(),
}

#: (window, chip options): overlapping windows off the 64-pixel blocks; halo and boundary windows
WINDOWS = {
    "overlap": ({"y": 32, "x": 32}, {"stride": {"y": 16, "x": 16}}),
    "halo pad": ({"y": 24, "x": 24}, {"overlap": {"y": 7, "x": 5}, "boundary": "pad", "pad_value": 0}),
    "shift": ({"y": 40, "x": 40}, {"overlap": {"y": 9, "x": 9}, "boundary": "shift"}),
}


def _data(chip: Any) -> list[np.ndarray]:
    """The arrays a consumer gets from a chip (xarray or numpy output)."""
    if isinstance(chip, tuple):
        chip = chip[0]
    if isinstance(chip, np.ndarray):
        return [chip]
    if isinstance(chip, dict):
        return [np.asarray(v) for v in chip.values()]
    if isinstance(chip, xr.Dataset):
        return [np.asarray(v.values) for v in chip.data_vars.values()]
    return [np.asarray(chip.values)]


def _passes(pipe: Any, *, write: bool) -> list[list[np.ndarray]]:
    """Two passes over ``pipe``: a copy of each chip as handed out, then (``write``) an in-place op through torch."""
    seen = []
    for _ in range(2):
        for chip in pipe:
            arrays = _data(chip)
            seen.append([a.copy() for a in arrays])
            if write:
                for a in arrays:
                    with warnings.catch_warnings():
                        warnings.simplefilter(
                            "ignore", UserWarning
                        )  # torch: "the given NumPy array is not writable"
                        t = torch.as_tensor(a)
                    if t.dtype.is_floating_point:
                        t -= 1000.0
                    else:
                        t.fill_(7)
    return seen


@pytest.mark.parametrize("output", ["xarray", "numpy"])
@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("source", list(SOURCES))
def test_writing_through_a_chip_changes_no_later_chip_nor_the_next_pass(
    files: dict[str, Any], source: str, window: str, output: str
) -> None:
    size, options = WINDOWS[window]
    obj = SOURCES[source](files)
    before = [a.copy() for a in _data(obj.load() if source == "in-memory" else obj.copy(deep=True).load())]
    clean = _passes(tp.from_items([SOURCES[source](files)]).chip(size, output=output, **options), write=False)
    written = _passes(tp.from_items([obj]).chip(size, output=output, **options), write=True)
    assert len(clean) == len(written) > 8
    changed = [i for i, (a, b) in enumerate(zip(clean, written, strict=True)) if not all(
        np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b, strict=True))]  # fmt: skip
    assert not changed, f"{len(changed)} of {len(clean)} chips changed by an earlier consumer's in-place op"
    after = _data(obj)
    for x, y in zip(before, after, strict=True):  # the source (a user's in-memory array too) is untouched
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("output", ["xarray", "numpy"])
def test_chips_are_read_only_and_own_their_memory(files: dict[str, Any], output: str) -> None:
    obj = _array()
    for chip in tp.from_items([obj]).chip({"y": 32, "x": 32}, stride={"y": 16, "x": 16}, output=output):
        (data,) = _data(chip)
        assert not data.flags.writeable
        assert not np.shares_memory(data, obj.values)
