"""read_raster's x/y coordinates: the formula's values bit for bit, under pandas indexes that align as xarray's.

The values every user sees are those of the formula read_raster always used
(``origin + (i + 0.5) * pixel size``), bit for bit, for every window. The
coordinates are indexed by pandas indexes, as any DataArray's: reindexing,
alignment (``xr.align`` with every join), ``where``, ``combine_first``,
arithmetic and ``interp`` with an array on another grid answer what they answer
for an array built from the same values (from 2026-12-06 16:59 to the revert, a
custom index made them raise xarray's ``AlignmentError``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from xarray.indexes import PandasIndex

from terrapipe.core.errors import ReadError
from terrapipe.io import open_raster


def formula(origin: float, pixel: float, size: int) -> np.ndarray:
    """The coordinates as read_raster computed them before AxisIndex (raster.py, to 2026-12-06)."""
    return origin + (np.arange(size) + 0.5) * pixel


def write(path: Path, transform: Affine, height: int, width: int, crs: str = "EPSG:32631") -> np.ndarray:
    data = np.arange(height * width, dtype="uint16").reshape(1, height, width)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint16"}
    with rasterio.open(path, "w", crs=crs, transform=transform, **profile) as dst:
        dst.write(data)
    return data


#: Grids: north-up, south-up (positive y pixel size), fractional degrees, UTM and big offsets, odd sizes.
GRIDS = [
    (Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0), 7, 9),
    (Affine(0.000269494585236, 0, -180.0, 0, -0.000269494585236, 90.0), 33, 17),
    (Affine(0.000269494585236, 0, 12.345678901, 0, 0.000269494585236, -45.6789), 5, 31),  # south-up
    (Affine(30.0, 0, 1e7, 0, -30.0, 1e7), 1, 13),
    (Affine(0.1, 0, -1e7 + 0.05, 0, 0.3, 1e7 - 0.7), 19, 1),
    (Affine(-2.5, 0, 300.0, 0, -2.5, 10.0), 4, 6),  # east-to-west
]


@pytest.mark.parametrize(("transform", "height", "width"), GRIDS)
def test_read_raster_coordinates_are_the_formulas_bit_for_bit_in_every_window(
    tmp_path, transform, height, width
):
    path = tmp_path / "grid.tif"
    data = write(path, transform, height, width)
    da = open_raster(path)
    ys, xs = formula(transform.f, transform.e, height), formula(transform.c, transform.a, width)
    assert da.y.values.tobytes() == ys.tobytes()
    assert da.x.values.tobytes() == xs.tobytes()
    rng = np.random.default_rng(0)
    for _ in range(40):
        y0, y1 = sorted(rng.integers(0, height + 1, size=2))
        x0, x1 = sorted(rng.integers(0, width + 1, size=2))
        step = int(rng.choice([1, 1, 2, 3, -1, -2]))
        sy = slice(y0, y1, step) if step > 0 else slice(y1, y0 or None, step)
        sx = slice(x0, x1, step) if step > 0 else slice(x1, x0 or None, step)
        window = da.isel(y=sy, x=sx)
        assert window.y.values.tobytes() == ys[sy].tobytes()
        assert window.x.values.tobytes() == xs[sx].tobytes()
        np.testing.assert_array_equal(window.values, data[:, sy, sx])
        inner = window.isel(y=slice(1, None), x=slice(None, -1))  # a window of a window
        assert inner.x.values.tobytes() == xs[sx][:-1].tobytes()
        assert inner.y.values.tobytes() == ys[sy][1:].tobytes()
    assert da.rio.transform() == transform


def _rebuilt(da: xr.DataArray) -> xr.DataArray:
    """``da`` built again from its values and coordinates' values: an ordinary DataArray, pandas indexes."""
    coords = {name: (c.dims, np.array(c.values), c.attrs) for name, c in da.coords.items()}
    return xr.DataArray(np.array(da.values), dims=da.dims, coords=coords, attrs=da.attrs)


@pytest.fixture
def raster(tmp_path) -> xr.DataArray:
    path = tmp_path / "r.tif"
    write(path, Affine(10.0, 0, 500000.0, 0, -10.0, 5000000.0), 40, 50)
    return open_raster(path).isel(band=0)


def test_x_and_y_are_indexed_by_pandas_indexes(raster):
    for name in ("x", "y"):
        assert type(raster.xindexes[name]) is PandasIndex
        assert type(raster.isel(x=slice(3, 9), y=slice(2, 5)).xindexes[name]) is PandasIndex


#: One-array operations and operations with an ordinary array on another (overlapping) grid.
OTHER = {"x": slice(7, 31), "y": slice(5, 22)}
CASES = {
    "reindex to reversed labels": lambda a, b: a.reindex(x=a.x.values[::-1]),
    "reindex nearest": lambda a, b: a.reindex(x=a.x.values + 3.0, method="nearest"),
    "one-pixel window reindexed": lambda a, b: a.isel(x=slice(2, 3)).reindex(x=a.x.values[1:4]),
    "reindex_like": lambda a, b: a.reindex_like(b),
    "align outer": lambda a, b: xr.align(a, b, join="outer")[0],
    "align inner": lambda a, b: xr.align(a, b, join="inner")[0],
    "align left": lambda a, b: xr.align(a, b, join="left")[1],
    "align right": lambda a, b: xr.align(a, b, join="right")[0],
    "where": lambda a, b: a.where(b > 500),
    "combine_first": lambda a, b: b.combine_first(a),
    "arithmetic": lambda a, b: a + b,
    "merge": lambda a, b: xr.merge([a.rename("a"), b.rename("b")], join="outer", compat="override"),
    "broadcast_like of a window": lambda a, b: a.isel(x=slice(0, 3)).broadcast_like(b),
    "interp": lambda a, b: a.interp(x=b.x.values[:5] + 1.0, y=b.y.values[:4]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_aligns_as_an_ordinary_dataarray(raster, case):
    ordinary = _rebuilt(raster.load())
    other = _rebuilt(raster.isel(OTHER)) * 2
    got = CASES[case](raster, other)
    want = CASES[case](ordinary, other)
    xr.testing.assert_identical(got, want)
    for name in ("x", "y"):
        assert np.asarray(got[name].values).tobytes() == np.asarray(want[name].values).tobytes()


def test_a_rotated_grid_is_still_refused(tmp_path):
    path = tmp_path / "rotated.tif"
    write(path, Affine(10.0, 2.0, 500000.0, 1.0, -10.0, 5000000.0), 4, 4)
    with pytest.raises(ReadError, match="rotated or sheared"):
        open_raster(path)
