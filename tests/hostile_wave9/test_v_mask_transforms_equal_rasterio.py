"""``rasterize`` on chips of any transform equals ``rasterio.features.rasterize`` of the layer on that grid.

Checked (no bug found in wave 9; kept as the class's guard): north-up,
south-up, mirrored, non-square, rotated and half-pixel-offset grids;
``all_touched`` both ways; ``merge`` replace and add; burn 1 or a column;
polygons with holes, touching and overlapping polygons, a self-intersecting
(bowtie) polygon, points, a line, a polygon on the chip's corner; and the
layer given in another CRS than the chip (reprojected once, then burnt).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from rasterio.enums import MergeAlg
from rasterio.features import rasterize as rio_rasterize
from shapely.geometry import LineString, Point, Polygon, box

import terrapipe as tp
import terrapipe.fuse

GEOMS = [
    box(600000, 4999700, 600100, 4999800),
    Polygon(
        [(600005, 4999995), (600155, 4999995), (600155, 4999845), (600005, 4999845)],
        [[(600050, 4999950), (600100, 4999950), (600100, 4999900), (600050, 4999900)]],
    ),
    box(600100, 4999800, 600200, 4999900),
    box(600200, 4999800, 600300, 4999900),  # touches the one before
    Polygon([(600000, 5000000), (600300, 4999700), (600300, 5000000), (600000, 4999700)]),  # a bowtie
    Point(600153, 4999853),
    Point(600157.5, 4999857.5),
    LineString([(600000, 4999990), (600320, 4999700)]),
    box(600000.0, 4999990.0, 600010.0, 5000000.0),
]
LAYER = gpd.GeoDataFrame({"v": np.arange(1, len(GEOMS) + 1)}, geometry=GEOMS, crs="EPSG:32631")
GRIDS = {
    "north-up": (Affine(10, 0, 600000, 0, -10, 5000000), (32, 32)),
    "south-up": (Affine(10, 0, 600000, 0, 10, 4999680), (32, 32)),
    "mirrored": (Affine(-10, 0, 600320, 0, -10, 5000000), (32, 32)),
    "non-square": (Affine(10, 0, 600000, 0, -5, 5000000), (64, 32)),
    "rotated": (Affine.translation(600000, 5000000) * Affine.rotation(30) * Affine.scale(10, -10), (40, 40)),
    "half-offset": (Affine(10, 0, 600005, 0, -10, 5000005), (32, 32)),
}


def _chip(transform: Affine, shape: tuple[int, int]) -> xr.DataArray:
    height, width = shape
    if transform.is_rectilinear and transform.b == 0:
        ys = transform.f + (np.arange(height) + 0.5) * transform.e
        xs = transform.c + (np.arange(width) + 0.5) * transform.a
        chip = xr.DataArray(np.zeros(shape), dims=("y", "x"), coords={"y": ys, "x": xs})
    else:
        chip = xr.DataArray(np.zeros(shape), dims=("y", "x"))
    return chip.rio.write_crs("EPSG:32631").rio.write_transform(transform)


def _reference(
    layer: gpd.GeoDataFrame, transform: Affine, shape: tuple[int, int], **options: object
) -> np.ndarray:
    frame = layer.to_crs("EPSG:32631")
    values = frame["v"].tolist() if options["column"] else [1] * len(frame)
    return rio_rasterize(
        zip(frame.geometry, values, strict=True),
        out_shape=shape,
        transform=transform,
        all_touched=bool(options["all_touched"]),
        merge_alg=MergeAlg.add if options["merge"] == "add" else MergeAlg.replace,
        dtype="int32" if options["column"] else "uint8",
    )


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("all_touched", [False, True])
@pytest.mark.parametrize("merge", ["replace", "add"])
@pytest.mark.parametrize("column", [None, "v"])
def test_each_transform_equals_rasterio(grid: str, all_touched: bool, merge: str, column: str | None) -> None:
    transform, shape = GRIDS[grid]
    options = {"all_touched": all_touched, "merge": merge, "column": column}
    ds = next(iter(tp.from_items([_chip(transform, shape)]).rasterize(LAYER, **options)))
    np.testing.assert_array_equal(ds["mask"].values, _reference(LAYER, transform, shape, **options))


def test_a_layer_in_another_crs_equals_rasterio_of_it_reprojected() -> None:
    transform, shape = GRIDS["north-up"]
    layer = LAYER.to_crs("EPSG:4326")
    options = {"all_touched": False, "merge": "replace", "column": "v"}
    ds = next(iter(tp.from_items([_chip(transform, shape)]).rasterize(layer, **options)))
    np.testing.assert_array_equal(ds["mask"].values, _reference(layer, transform, shape, **options))
