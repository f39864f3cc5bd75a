"""``clip_vector`` gives a point feature on the edge between chips to exactly one chip.

A chip's footprint was clipped as a closed box, so a point label on the edge
between two chips came with both, one on a corner with all four: a sample
given two or four times (``to_tensor(boxes=)`` made a box of it in each).
Points now follow the half-open cells of ``rasterize`` and
``rasterize_points``: across chips cut from one grid every point of the
grid's area comes once, a multipoint's parts each once; lines and polygons
across an edge still come clipped with every chip they cross.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from affine import Affine
from shapely.geometry import LineString, MultiPoint, Point

import terrapipe as tp
from terrapipe.fuse import chip_vectors

SIZE, CHIP = 16, 8


def _chip(transform: Affine) -> xr.DataArray:
    ys = transform.f + (np.arange(CHIP) + 0.5) * transform.e
    xs = transform.c + (np.arange(CHIP) + 0.5) * transform.a
    chip = xr.DataArray(np.zeros((CHIP, CHIP)), dims=("y", "x"), coords={"y": ys, "x": xs})
    return chip.rio.write_crs("EPSG:32631").rio.write_transform(transform)


def _seen(layer: gpd.GeoDataFrame, grid: Affine) -> dict[int, list[object]]:
    offsets = [(r, c) for r in range(0, SIZE, CHIP) for c in range(0, SIZE, CHIP)]
    chips = [_chip(grid * Affine.translation(c, r)) for r, c in offsets]
    seen: dict[int, list[object]] = {}
    for ds in tp.from_items(chips).clip_vector(layer, name="labels"):
        got = chip_vectors(ds, "labels")
        for kind, geom in zip(got["id"], got.geometry, strict=True):
            seen.setdefault(int(kind), []).append(geom)
    return seen


@pytest.mark.parametrize(("pixel", "x0", "y0"), [(10.0, 600000.0, 5000000.0), (0.7, 500001.1, 4000003.3)])
def test_every_lattice_point_comes_with_one_chip(pixel: float, x0: float, y0: float) -> None:
    grid = Affine(pixel, 0, x0, 0, -pixel, y0)
    points = [Point(x0 + i * pixel, y0 - j * pixel) for j in range(SIZE) for i in range(SIZE)]
    layer = gpd.GeoDataFrame({"id": range(len(points))}, geometry=points, crs="EPSG:32631")
    seen = _seen(layer, grid)
    assert sorted(seen) == list(range(len(points)))  # none lost
    assert all(len(copies) == 1 for copies in seen.values())  # none twice (corners were in four chips)


def test_multipoint_parts_come_once() -> None:
    grid = Affine(10, 0, 600000, 0, -10, 5000000)
    corner, inside = (600080.0, 4999920.0), (600015.0, 4999985.0)
    layer = gpd.GeoDataFrame({"id": [1]}, geometry=[MultiPoint([corner, inside])], crs="EPSG:32631")
    parts = [p for geom in _seen(layer, grid)[1] for p in getattr(geom, "geoms", [geom])]
    assert sorted((p.x, p.y) for p in parts) == sorted([corner, inside])


def test_lines_across_an_edge_still_come_with_each_chip() -> None:
    grid = Affine(10, 0, 600000, 0, -10, 5000000)
    line = LineString([(600010, 4999950), (600150, 4999950)])
    layer = gpd.GeoDataFrame({"id": [1]}, geometry=[line], crs="EPSG:32631")
    assert len(_seen(layer, grid)[1]) == 2
