"""A feature reaching far past a chip burns the pixels of the chip it covers, or is refused; never nothing.

GDAL burns in pixel coordinates and burns nothing, without an error, for a
geometry whose coordinates overflow them: ``rasterio.features.rasterize`` (the
reference) gives an empty mask for a triangle with a vertex at 1e15 m over a
10 m chip it covers, as for a box of +-1e300. Such coordinates come from
reprojections that blow up (a feature far from a projection's centre).
Promised: features reaching more than a million pixels past the chip are cut
to the chip (plus a margin) and burn what they cover, ``all_touched`` both
ways, polygons and lines; ones GEOS cannot cut either (past ~1e154) are an
``InvalidArgumentError``; features near the chip burn exactly as rasterio
burns them (not cut).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from rasterio.features import rasterize as rio_rasterize
from shapely.geometry import LineString, Polygon, box

import terrapipe as tp
import terrapipe.fuse
from terrapipe.core.errors import InvalidArgumentError

GRID = Affine(10, 0, 600000, 0, -10, 5000000)
SHAPE = (8, 8)


def _chip() -> xr.DataArray:
    ys = GRID.f + (np.arange(SHAPE[0]) + 0.5) * GRID.e
    xs = GRID.c + (np.arange(SHAPE[1]) + 0.5) * GRID.a
    return xr.DataArray(np.zeros(SHAPE), dims=("y", "x"), coords={"y": ys, "x": xs}).rio.write_crs(
        "EPSG:32631"
    )


def _mask(geometry: object, all_touched: bool = False) -> np.ndarray:
    layer = gpd.GeoDataFrame({"v": [1]}, geometry=[geometry], crs="EPSG:32631")
    return next(iter(tp.from_items([_chip()]).rasterize(layer, all_touched=all_touched)))["mask"].values


FAR = {
    "triangle-1e15": Polygon([(-1e15, -1e15), (1e15, 4999960.0), (600040.0, 1e15)]),
    "box-1e100": box(-1e100, -1e100, 1e100, 1e100),
    "half-plane-1e12": box(600035.0, -1e12, 1e12, 1e12),
}


@pytest.mark.parametrize("all_touched", [False, True])
@pytest.mark.parametrize("case", sorted(FAR))
def test_far_reaching_polygons_burn_what_they_cover(case: str, all_touched: bool) -> None:
    geometry = FAR[case]
    assert (
        rio_rasterize([(geometry, 1)], out_shape=SHAPE, transform=GRID, dtype="uint8").sum() == 0
    )  # the reference
    near = geometry.intersection(box(599900, 4999820, 600180, 5000100))  # the same shape near the chip
    expected = rio_rasterize(
        [(near, 1)], out_shape=SHAPE, transform=GRID, all_touched=all_touched, dtype="uint8"
    )
    assert expected.sum() > 0
    np.testing.assert_array_equal(_mask(geometry, all_touched), expected)


def test_a_far_reaching_line_burns_its_row() -> None:
    got = _mask(LineString([(-1e300, 4999975.0), (1e300, 4999975.0)]))
    assert got[2].tolist() == [1] * 8  # y = 4999975 lies in row 2
    assert got.sum() == 8


def test_coordinates_past_what_geos_can_cut_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"too large to burn"):
        _mask(box(-1e300, -1e300, 1e300, 1e300))


def test_near_features_burn_as_rasterio_burns_them() -> None:
    near = Polygon([(599950, 5000050), (600075, 4999985), (600020, 4999900)])
    np.testing.assert_array_equal(
        _mask(near, True),
        rio_rasterize([(near, 1)], out_shape=SHAPE, transform=GRID, all_touched=True, dtype="uint8"),
    )
