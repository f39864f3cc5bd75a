"""Point features on the edges between chips burn once across the chips, as on the whole grid.

``rasterize`` promises a chip's mask equals rasterizing the whole layer on
that grid (``rasterio.features.rasterize``, the reference). Points on pixel
corners (a lattice of labels at round coordinates, as annotation tools
export) burnt twice or not at all where chips meet: GDAL places a point on a
chip's edge by that chip's own transform, which rounds its own way (at 0.7 m
40 of 1600 points burnt twice, 40 pixels none). Promised: stitched chips equal
the whole grid's mask, for points and multipoints, with ``merge="add"`` and
``"replace"``, ``all_touched`` both ways, at pixel sizes exact and not exact
in binary.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from rasterio.enums import MergeAlg
from rasterio.features import rasterize as rio_rasterize
from shapely.geometry import MultiPoint, Point

import terrapipe as tp
import terrapipe.fuse

SIZE, CHIP = 40, 8


def _chip(transform: Affine) -> xr.DataArray:
    ys = transform.f + (np.arange(CHIP) + 0.5) * transform.e
    xs = transform.c + (np.arange(CHIP) + 0.5) * transform.a
    chip = xr.DataArray(np.zeros((CHIP, CHIP)), dims=("y", "x"), coords={"y": ys, "x": xs})
    return chip.rio.write_crs("EPSG:32631").rio.write_transform(transform)


def _stitched(layer: gpd.GeoDataFrame, grid: Affine, **options: object) -> np.ndarray:
    offsets = [(r, c) for r in range(0, SIZE, CHIP) for c in range(0, SIZE, CHIP)]
    chips = [_chip(grid * Affine.translation(c, r)) for r, c in offsets]
    out = np.zeros((SIZE, SIZE), dtype=np.int64)
    for (r, c), ds in zip(offsets, tp.from_items(chips).rasterize(layer, column="v", **options), strict=True):
        out[r : r + CHIP, c : c + CHIP] = ds["mask"].values
    return out


@pytest.mark.parametrize("all_touched", [False, True])
@pytest.mark.parametrize("merge", ["add", "replace"])
@pytest.mark.parametrize(
    ("pixel", "x0", "y0"),
    [(10.0, 600000.0, 5000000.0), (0.7, 500001.1, 4000003.3), (0.1, 500000.3, 4000000.9)],
)
def test_lattice_points_burn_once_across_chips(
    pixel: float, x0: float, y0: float, merge: str, all_touched: bool
) -> None:
    grid = Affine(pixel, 0, x0, 0, -pixel, y0)
    points = [Point(x0 + i * pixel, y0 - j * pixel) for j in range(SIZE + 1) for i in range(SIZE + 1)]
    layer = gpd.GeoDataFrame({"v": np.ones(len(points), dtype=np.int64)}, geometry=points, crs="EPSG:32631")
    whole = rio_rasterize(
        ((g, 1) for g in points),
        out_shape=(SIZE, SIZE),
        transform=grid,
        merge_alg=MergeAlg.add if merge == "add" else MergeAlg.replace,
        all_touched=all_touched,
        dtype="int32",
    )
    stitched = _stitched(layer, grid, merge=merge, all_touched=all_touched)
    assert (whole == 1).all()  # the reference on the whole grid: one point per pixel
    np.testing.assert_array_equal(stitched, whole)


def test_multipoints_burn_once_across_chips() -> None:
    pixel, x0, y0 = 0.7, 500001.1, 4000003.3
    grid = Affine(pixel, 0, x0, 0, -pixel, y0)
    rows = [MultiPoint([(x0 + i * pixel, y0 - j * pixel) for i in range(SIZE + 1)]) for j in range(SIZE + 1)]
    layer = gpd.GeoDataFrame({"v": np.ones(len(rows), dtype=np.int64)}, geometry=rows, crs="EPSG:32631")
    assert (_stitched(layer, grid, merge="add") == 1).all()


def test_points_inside_pixels_burn_as_rasterio_does() -> None:
    grid = Affine(0.7, 0, 500001.1, 0, -0.7, 4000003.3)
    rng = np.random.default_rng(9)
    xy = rng.uniform(0, SIZE * 0.7, (300, 2))
    points = [Point(500001.1 + x, 4000003.3 - y) for x, y in xy]
    values = rng.integers(1, 50, len(points))
    layer = gpd.GeoDataFrame({"v": values}, geometry=points, crs="EPSG:32631")
    whole = rio_rasterize(
        zip(points, values.tolist(), strict=True), out_shape=(SIZE, SIZE), transform=grid, dtype="int32"
    )
    np.testing.assert_array_equal(_stitched(layer, grid), whole)
