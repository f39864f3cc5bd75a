"""Pure selections of a native ``stack_stac`` cube are read from its array, and give dask's values.

``cube.isel(time=0)``, ``cube.sel(band=[...])``, ``cube.isel(x=slice(a, b, step))``, reversed slices,
integer rows and lists of columns inside one chunk only select: dask builds ``getitem`` and ``take``
tasks over the getter's chunks. ``dask_blocks`` follows them (``native_picks``) and reads each chunk
as ``array[pick]`` (``SourceBlocks``) instead of going through dask's scheduler; any graph that
computes (arithmetic, casts, ``where``, a merging ``rechunk``, a concatenation) stays ``DaskBlocks``.
Every case compares with ``.compute()`` (``.values``) of the same object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.chip.dask_source import DaskBlocks, SourceBlocks, dask_blocks, native_picks, read_pick
from tests.reliability.data import write_scene_item

pytest.importorskip("rasterio")
pytest.importorskip("odc.stac")
da = pytest.importorskip("dask.array")

SIZE = 256


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> xr.DataArray:
    folder = tmp_path_factory.mktemp("scenes")
    first = write_scene_item(folder, bands=3, size=SIZE, block=64)
    second = {
        **first,
        "id": "later",
        "properties": {**first["properties"], "datetime": "2024-07-01T10:30:00Z"},
    }
    cube = tp.stac.stack_items([first, second], chunks={"x": 64, "y": 64})
    assert cube.sizes == {"time": 2, "band": 3, "y": SIZE, "x": SIZE}
    return cube


SELECTIONS: dict[str, Callable[[xr.DataArray], xr.DataArray]] = {
    "isel(time=0)": lambda c: c.isel(time=0),
    "isel(time=-1)": lambda c: c.isel(time=-1),
    "sel(band=[b2, b0])": lambda c: c.sel(band=["b2", "b0"]),
    "isel(band=[1, 1, 0])": lambda c: c.isel(band=[1, 1, 0]),
    "isel(band=1)": lambda c: c.isel(band=1),
    "isel(time=[1, 0])": lambda c: c.isel(time=[1, 0]),
    "isel(time=[1, 0], band=[2, 0])": lambda c: c.isel(time=[1, 0], band=[2, 0]),
    "isel(x=slice(10, 200))": lambda c: c.isel(x=slice(10, 200)),
    "isel(x=slice(1, None, 3))": lambda c: c.isel(x=slice(1, None, 3)),
    "isel(y=slice(None, None, -1))": lambda c: c.isel(y=slice(None, None, -1)),
    "isel(y=slice(200, 10, -7))": lambda c: c.isel(y=slice(200, 10, -7)),
    "isel(y=5)": lambda c: c.isel(y=5),
    "isel(x=[3, 60, 7]) (one chunk)": lambda c: c.isel(x=[3, 60, 7]),
    "isel(x=[]) (empty)": lambda c: c.isel(x=slice(5, 5)),
    "a split rechunk": lambda c: c.chunk({"x": 32}),
    "a chain": lambda c: c.isel(time=1).sel(band=["b1", "b2"]).isel(x=slice(7, 250, 2), y=slice(3, 190)),
}

COMPUTING: dict[str, Callable[[xr.DataArray], xr.DataArray]] = {
    "+ 1": lambda c: c + 1,
    "* 1 (same values)": lambda c: c * 1,
    "astype(float32)": lambda c: c.astype("float32"),
    "astype(int32)": lambda c: c.astype("int32"),
    "where": lambda c: c.where(c > 3, 0),
    "a merging rechunk": lambda c: c.chunk({"x": 128}),
    "columns across chunks": lambda c: c.isel(x=[1, 100, 200]),
    "a selection after arithmetic": lambda c: (c + 1).isel(time=0).sel(band=["b1"]),
    "map_blocks identity": lambda c: c.copy(data=c.data.map_blocks(lambda b: b, dtype=c.dtype)),
    "a concatenation": lambda c: xr.concat([c.isel(time=[0]), c.isel(time=[1])], dim="time"),
}


def _whole(reader: Any, obj: xr.DataArray) -> np.ndarray:
    return np.asarray(reader.read(tuple(slice(0, n) for n in obj.shape)))


@pytest.mark.parametrize("name", sorted(SELECTIONS))
def test_a_pure_selection_is_read_from_the_array_with_daskss_values(cube: xr.DataArray, name: str) -> None:
    obj = SELECTIONS[name](cube)
    reader = dask_blocks(obj.variable)
    assert type(reader) is SourceBlocks, name
    want = obj.values
    got = _whole(reader, obj)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    # and box by box, off the chunk grid
    key = tuple(slice(n // 3, max(n // 3, n - 5)) for n in obj.shape)
    np.testing.assert_array_equal(reader.read(key), want[key])


@pytest.mark.parametrize("name", sorted(COMPUTING))
def test_a_graph_that_computes_stays_dasks(cube: xr.DataArray, name: str) -> None:
    obj = COMPUTING[name](cube)
    reader = dask_blocks(obj.variable)
    assert type(reader) is DaskBlocks, name
    np.testing.assert_array_equal(_whole(reader, obj), obj.values)


def _chips(obj: xr.DataArray, **options: Any) -> list[xr.DataArray]:
    chips = list(tp.from_items([obj]).chip({"y": 48, "x": 48}, **options))
    return sorted(chips, key=lambda c: (-float(c.y[0]), float(c.x[0])))


@pytest.mark.parametrize(
    "name",
    ["isel(time=0)", "sel(band=[b2, b0])", "isel(x=slice(1, None, 3))", "a chain", "isel(time=[1, 0])"],
)
def test_chips_of_a_selection_equal_those_of_the_computed_selection(
    cube: xr.DataArray, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    obj = SELECTIONS[name](cube)
    obj.encoding = {}
    want = _chips(obj.copy(data=obj.values), overlap=8)
    import dask.local

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the synchronous scheduler was called")

    monkeypatch.setattr(dask.local, "get_sync", refuse)
    got = _chips(obj, overlap=8, workers=2)
    assert len(got) == len(want) > 0
    for a, b in zip(got, want, strict=True):
        xr.testing.assert_identical(a, b)


def test_a_locked_getter_is_not_followed(cube: xr.DataArray) -> None:
    found = native_picks(cube.variable, type(_native_array(cube)))
    assert found is not None
    array = found[0]
    locked = da.from_array(array, chunks=cube.data.chunks, lock=True, asarray=False)[0]
    assert native_picks(xr.Variable(("band", "y", "x"), locked), type(array)) is None


def _native_array(cube: xr.DataArray) -> Any:
    from terrapipe.stac.native_read import NativeArray

    found = native_picks(cube.variable, NativeArray)
    assert found is not None
    return found[0]


def test_read_pick_is_numpys_indexing() -> None:
    data = np.arange(2 * 3 * 5 * 7).reshape(2, 3, 5, 7)
    picks = [
        (1, (2, 0, 2), range(4, -1, -2), (6, 0, 3)),
        (range(2), 1, range(1, 5, 3), range(6, 7)),
        ((1, 0), (0,), 3, range(7, 7)),
    ]
    for pick in picks:
        want = data
        for axis in reversed(range(4)):
            part = pick[axis]
            want = np.take(want, part if isinstance(part, int) else list(part), axis=axis)
        np.testing.assert_array_equal(read_pick(data, pick), want)
