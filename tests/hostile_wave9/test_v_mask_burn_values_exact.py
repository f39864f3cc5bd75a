"""``rasterize`` burns every value exactly as given, or refuses it.

GDAL burns doubles, so ``rasterio.features.rasterize`` (the reference for
which pixels a feature covers) changes 64-bit integers past 2**53:
2**53 + 1 burnt 2**53, uint64's largest burnt 0. An id column of 64-bit ids
(OSM ids, hashes) gave wrong ids, silently. Promised:

- int64 and uint64 values of any size burn exactly, the same pixels as
  rasterio covers, later features winning (``merge="replace"``), with
  ``all_touched`` both ways;
- ``merge="add"`` of such values is refused (a sum of doubles is not exact);
- an integer value or ``fill`` that a float dtype cannot hold exactly
  (16777217 in float32) is refused, not rounded.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from rasterio.features import rasterize as rio_rasterize
from shapely.geometry import Polygon, box

import terrapipe as tp
import terrapipe.fuse
from terrapipe.core.errors import InvalidArgumentError

GRID = Affine(10, 0, 600000, 0, -10, 5000000)
SHAPE = (16, 16)
BIG = [2**53 + 1, 2**62 + 3, 2**63 - 1, -(2**63), -(2**53) - 1]


def _chip() -> xr.DataArray:
    height, width = SHAPE
    ys = GRID.f + (np.arange(height) + 0.5) * GRID.e
    xs = GRID.c + (np.arange(width) + 0.5) * GRID.a
    return xr.DataArray(np.zeros(SHAPE), dims=("y", "x"), coords={"y": ys, "x": xs}).rio.write_crs(
        "EPSG:32631"
    )


def _layer(values: np.ndarray) -> gpd.GeoDataFrame:
    geoms = [
        box(600000, 4999900, 600080, 4999980),
        box(600050, 4999870, 600120, 4999950),  # overlaps the first
        Polygon([(600010, 4999850), (600150, 4999990), (600155, 4999840)]),
        box(600100, 4999900, 600140, 4999960),
        box(600003, 4999843, 600047, 4999887),
    ]
    return gpd.GeoDataFrame({"v": values}, geometry=geoms[: len(values)], crs="EPSG:32631")


def _expected(layer: gpd.GeoDataFrame, fill: int, all_touched: bool, dtype: str) -> np.ndarray:
    """rasterio's coverage (features burnt as their position + 1), mapped to the exact values."""
    positions = rio_rasterize(
        zip(layer.geometry, range(1, len(layer) + 1), strict=True),
        out_shape=SHAPE,
        transform=GRID,
        fill=0,
        all_touched=all_touched,
        dtype="int32",
    )
    out = np.full(SHAPE, fill, dtype=dtype)
    values = layer["v"].to_numpy()
    out[positions > 0] = values[positions[positions > 0] - 1]
    return out


def _mask(layer: gpd.GeoDataFrame, **options: object) -> np.ndarray:
    return next(iter(tp.from_items([_chip()]).rasterize(layer, column="v", **options)))["mask"].values


@pytest.mark.parametrize("all_touched", [False, True])
def test_int64_values_past_2_53_burn_exactly(all_touched: bool) -> None:
    layer = _layer(np.array(BIG, dtype=np.int64))
    got = _mask(layer, all_touched=all_touched, fill=2**53 + 7)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, _expected(layer, 2**53 + 7, all_touched, "int64"))
    assert set(np.unique(got)) >= {2**53 + 1, 2**63 - 1}  # was 2**53 and 2**63 (saturated)


def test_uint64_values_burn_exactly() -> None:
    layer = _layer(np.array([2**64 - 1, 2**63 + 5, 1], dtype=np.uint64))
    got = _mask(layer, dtype="uint64")
    np.testing.assert_array_equal(got, _expected(layer, 0, False, "uint64"))
    assert (got == 2**64 - 1).any()  # was 0


def test_small_values_still_burn_through_gdal_unchanged() -> None:
    layer = _layer(np.array([3, 9, 4, 1, 7], dtype=np.int64))
    np.testing.assert_array_equal(_mask(layer, dtype="int64"), _expected(layer, 0, False, "int64"))


def test_adding_values_past_2_53_is_refused() -> None:
    layer = _layer(np.array(BIG[:2], dtype=np.int64))
    with pytest.raises(InvalidArgumentError, match=r"merge='add'.*2\*\*53"):
        _mask(layer, merge="add")


def test_integers_a_float_dtype_cannot_hold_are_refused() -> None:
    layer = _layer(np.array([16777217, 2], dtype=np.int64))
    with pytest.raises(InvalidArgumentError, match=r"16777217.*float32"):
        _mask(layer, dtype="float32")
    assert _mask(layer, dtype="float64").max() == 16777217
    with pytest.raises(InvalidArgumentError, match=r"fill=16777217"):
        _mask(_layer(np.array([1, 2], dtype=np.int64)), dtype="float32", fill=16777217)
