"""mosaic: nodata-aware reductions along time, against numpy references."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.stac
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.datasets import SampleWorld
from terrapipe.stac import mosaic_array, search_stac, stack_items


def _cube(dtype: str = "uint16", nodata: Any = 0, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 1000, size=(4, 2, 5, 6)).astype(dtype)
    holes = rng.random(data.shape) < 0.4
    data[holes] = nodata if nodata is not None else np.nan
    data[:, :, 0, 0] = nodata if nodata is not None else np.nan  # never valid
    attrs = (
        {"nodata": nodata}
        if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata))
        else {}
    )
    return xr.DataArray(data, dims=("time", "band", "y", "x"), attrs=attrs)


def _reference(data: np.ndarray, valid: np.ndarray, method: str, fill: Any) -> np.ndarray:
    out = np.full(data.shape[1:], fill, dtype=np.float64)
    for index in np.ndindex(*data.shape[1:]):
        values = data[(slice(None), *index)][valid[(slice(None), *index)]].astype(np.float64)
        if values.size == 0:
            continue
        out[index] = {
            "first": lambda v: v[0],
            "last": lambda v: v[-1],
            "max": np.max,
            "min": np.min,
            "median": lambda v: np.round(np.median(v)),
            "mean": lambda v: np.round(np.mean(v)),
        }[method](values)
    return out


@pytest.mark.parametrize("method", ["first", "last", "max", "min", "median", "mean"])
@pytest.mark.parametrize("lazy", [False, True])
def test_integer_mosaic_matches_reference(method: str, lazy: bool) -> None:
    cube = _cube()
    source = cube.chunk({"time": 1, "y": 3}) if lazy else cube
    result = mosaic_array(source, method=method)  # type: ignore[arg-type]
    assert (result.chunks is not None) is lazy
    assert result.dims == ("band", "y", "x")
    assert result.dtype == np.uint16
    assert result.attrs["nodata"] == 0
    expected = _reference(cube.values, cube.values != 0, method, 0)
    np.testing.assert_array_equal(result.values, expected.astype(np.uint16))


@pytest.mark.parametrize("method", ["first", "max", "median"])
def test_float_mosaic_with_nan(method: str) -> None:
    cube = _cube("float32", nodata=None)
    result = mosaic_array(cube, method=method)  # type: ignore[arg-type]
    assert result.dtype == np.float32
    expected = _reference(cube.values, ~np.isnan(cube.values), method, np.nan)
    if method == "median":  # floats are not rounded
        valid = ~np.isnan(cube.values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
            expected = np.where(valid.any(0), np.nanmedian(cube.values, axis=0), np.nan)
    np.testing.assert_allclose(result.values, expected, rtol=1e-6)


def test_mosaic_of_a_stac_cube_fills_gaps_from_later_scenes(world: SampleWorld) -> None:
    items = list(search_stac(world.catalog, collections=["demo-s2"], bbox=[5.93, 45.72, 5.95, 45.74]))
    cube = stack_items(items, bands=["red"])
    values = cube.values
    first = mosaic_array(cube, method="first")
    assert first.rio.crs == cube.rio.crs
    assert first.rio.transform() == cube.rio.transform()
    assert first.encoding["preferred_chunks"] == {
        k: v for k, v in cube.encoding["preferred_chunks"].items() if k != "time"
    }
    expected = values[0].copy()
    for later in values[1:]:
        expected = np.where(expected == 0, later, expected)
    np.testing.assert_array_equal(first.values, expected)
    assert (first.values == 0).sum() <= (values[0] == 0).sum()


def test_mosaic_stage() -> None:
    cubes = [_cube(seed=1), _cube(seed=2)]
    pipe = tp.from_items(cubes).mosaic(method="max")
    assert len(pipe) == 2
    out = list(pipe)
    np.testing.assert_array_equal(out[1].values, mosaic_array(cubes[1], method="max").values)
    with pytest.raises(InvalidArgumentError, match="mosaic method must be one of"):
        tp.from_items(cubes).mosaic(method="mode")
    with pytest.raises(InvalidArgumentError, match="cannot mosaic along 'date'"):
        mosaic_array(cubes[0], dim="date")
    with pytest.raises(InvalidArgumentError, match="DataArray"):
        list(tp.from_items([1]).mosaic())
    assert terrapipe.stac.Mosaic.stateless
