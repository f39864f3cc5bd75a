"""``chip`` reads a native ``stack_stac`` cube's chunks from its array, without dask's scheduler, and gets dask's values.

A native cube is ``dask.array.from_array`` over ``stac/native_read.NativeArray`` (no lock): a plain
read that ``plain_source`` cannot make a lazily indexed variable. ``dask_blocks`` now returns a
``SourceBlocks`` reader for it (the chunk boxes of ``DaskBlocks``, each read as the getter task would
read it), instead of optimising the graph once per element and calling the synchronous scheduler
per block. Every other graph still goes through ``DaskBlocks``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.chip.dask_source import DaskBlocks, SourceBlocks, dask_blocks
from terrapipe.core.errors import ReadError
from tests.reliability.data import write_scene_item

rasterio = pytest.importorskip("rasterio")
pytest.importorskip("odc.stac")

SIZE = 256


def _item(tmp_path: Path) -> dict[str, Any]:
    return write_scene_item(tmp_path, size=SIZE, block=64)


@pytest.fixture
def cube(tmp_path: Path) -> xr.DataArray:
    cube = tp.stac.stack_items([_item(tmp_path)], chunks={"x": 64, "y": 64})
    assert cube.chunks is not None
    assert len(cube.chunks[2]) == 4  # 4 x 4 chunks of every band
    return cube


def _chips(obj: xr.DataArray, **options: Any) -> list[xr.DataArray]:
    return list(tp.from_items([obj]).chip({"y": 48, "x": 48}, **options))


def _by_place(chips: list[xr.DataArray]) -> list[xr.DataArray]:
    """The chips in map order (the order of a pass follows the storage blocks, which differ in memory)."""
    return sorted(chips, key=lambda c: (-float(c.y[0]), float(c.x[0])))


def _without_chunk_encoding(obj: xr.DataArray) -> xr.DataArray:
    obj = obj.copy()
    obj.encoding = {k: v for k, v in obj.encoding.items() if k != "preferred_chunks"}
    return obj


VIEWS = {
    "whole cube": lambda c: c,
    "a window off the chunk grid": lambda c: _without_chunk_encoding(
        c.isel(y=slice(10, 250), x=slice(3, 200))
    ),
    "the second band": lambda c: c.isel(band=slice(1, 2)),
    "the time slot as a slice": lambda c: c.isel(time=slice(0, 1)),
}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("overlap", [0, 16])
def test_chips_of_a_native_cube_equal_those_of_the_computed_cube(
    cube: xr.DataArray, view: str, overlap: int
) -> None:
    obj = VIEWS[view](cube)
    reader = dask_blocks(obj.variable)
    assert type(reader) is SourceBlocks
    got = _by_place(_chips(obj, overlap=overlap, workers=2))
    want = _by_place(_chips(obj.copy(data=obj.values), overlap=overlap))
    assert len(got) == len(want) > 0
    for a, b in zip(got, want, strict=True):
        xr.testing.assert_identical(a, b)


def test_the_values_are_the_files_pixels(cube: xr.DataArray, tmp_path: Path) -> None:
    with rasterio.open(tmp_path / "b1.tif") as src:
        band = src.read(1)
    for chip in _chips(cube.isel(time=0)):
        rows = slice(int(np.searchsorted(-cube.y.values, -chip.y.values[0])), None)
        cols = slice(int(np.searchsorted(cube.x.values, chip.x.values[0])), None)
        expected = band[rows, cols][:48, :48]
        np.testing.assert_array_equal(chip.sel(band="b1").values, expected)


def test_no_scheduler_call_per_block(cube: xr.DataArray, monkeypatch: pytest.MonkeyPatch) -> None:
    import dask.local

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the synchronous scheduler was called")

    monkeypatch.setattr(dask.local, "get_sync", refuse)
    chips = _chips(cube, workers=2)
    assert len(chips) == 25


def test_a_graph_that_computes_is_still_dasks(cube: xr.DataArray) -> None:
    # arithmetic, a cast, a where, a merging rechunk, a list of columns across chunks (concatenated);
    # pure selections (integer and list indexes) are SourceBlocks': tests/chip/test_dask_source_selections.py
    views = (
        cube + 1,
        cube.astype("float32"),
        cube.where(cube > 3),
        cube.chunk({"x": 128}),
        cube.isel(x=[*range(60), *range(70, 130)]),
    )
    for obj in views:
        reader = dask_blocks(obj.variable)
        assert type(reader) is DaskBlocks
        got = _by_place(_chips(obj))
        want = _by_place(_chips(obj.copy(data=obj.values)))
        assert len(got) == len(want) > 0
        for a, b in zip(got, want, strict=True):
            xr.testing.assert_identical(a, b)


def test_a_file_gone_after_the_cube_was_built_is_a_read_error_naming_it(
    cube: xr.DataArray, tmp_path: Path
) -> None:
    (tmp_path / "b1.tif").unlink()
    with pytest.raises(ReadError, match=r"asset 'b1' of STAC item 'scene'"):
        _chips(cube)


def test_a_window_of_a_cube_keeps_its_encoding_and_still_chips(tmp_path: Path) -> None:
    cube = tp.stac.stack_items([_item(tmp_path)])  # default chunks: on the files' tiles (preferred_chunks)
    assert "preferred_chunks" in cube.encoding
    window = cube.isel(y=slice(10, 250), x=slice(3, 200))
    got = _by_place(_chips(window))
    want = _by_place(_chips(_without_chunk_encoding(window)))
    assert len(got) == len(want) > 0
