"""rasterize_points on lon/lat chips past +-180 and on chips across the antimeridian.

Reference: the cloud's points moved into the chip's CRS by pyproj, their longitudes wrapped into
the chip's turn of the globe, binned by hand into half-open pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from pyproj import CRS, Transformer

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.fuse.grid import grid_bounds, grid_of
from terrapipe.io.point_cloud import DEFAULT_FIELDS, PointCloud


def _cloud(x: np.ndarray, y: np.ndarray, crs: str) -> PointCloud:
    xyz = np.column_stack([x, y, np.arange(len(x), dtype=np.float64)])
    bounds = (float(x.min()), float(y.min()), float(x.max()), float(y.max()))
    fields = {name: np.zeros(len(x), "uint16") for name in DEFAULT_FIELDS}
    return PointCloud(xyz, fields, CRS.from_user_input(crs), "", (0.01,) * 3, (0.0,) * 3, bounds, "mem.las")


def _chip(west: float, north: float, step: float, n: int, crs: str) -> xr.DataArray:
    coords = {"y": north - step * (np.arange(n) + 0.5), "x": west + step * (np.arange(n) + 0.5)}
    return xr.DataArray(np.zeros((n, n), "float32"), dims=("y", "x"), coords=coords).rio.write_crs(crs)


def _by_hand(cloud: PointCloud, chip: xr.DataArray) -> np.ndarray:
    grid = grid_of(chip)
    x, y = Transformer.from_crs(cloud.crs, grid.crs.to_wkt(), always_xy=True).transform(
        cloud.xyz[:, 0], cloud.xyz[:, 1]
    )
    west = grid_bounds(grid.affine, grid.shape.yx)[0]
    if grid.crs.geographic:
        x = west + np.mod(np.asarray(x) - west, 360.0)
    cols, rows = ~grid.affine * (np.asarray(x), np.asarray(y))
    cols, rows = np.floor(cols).astype(int), np.floor(rows).astype(int)
    ny, nx = grid.shape.yx
    inside = (cols >= 0) & (cols < nx) & (rows >= 0) & (rows < ny)
    count = np.zeros((ny, nx), int)
    np.add.at(count, (rows[inside], cols[inside]), 1)
    return count


rng = np.random.default_rng(7)
LON = np.concatenate([rng.uniform(177, 180, 200), rng.uniform(-180, -177, 200)])
LAT = rng.uniform(-19, -16, 400)
LONLAT_CLOUD = _cloud(LON, LAT, "EPSG:4326")
UTM_X, UTM_Y = Transformer.from_crs("EPSG:4326", "EPSG:32760", always_xy=True).transform(LON, LAT)
UTM_CLOUD = _cloud(np.asarray(UTM_X), np.asarray(UTM_Y), "EPSG:32760")
CASES = {
    "lon/lat cloud, lon/lat chip past 180": (LONLAT_CLOUD, _chip(178, -16, 0.5, 8, "EPSG:4326")),
    "lon/lat cloud, lon/lat chip past -180": (LONLAT_CLOUD, _chip(-182, -16, 0.5, 8, "EPSG:4326")),
    "UTM cloud, lon/lat chip past 180": (UTM_CLOUD, _chip(178, -16, 0.5, 8, "EPSG:4326")),
    "lon/lat cloud, UTM chip across the antimeridian": (
        LONLAT_CLOUD,
        _chip(720_000.0, float(np.max(UTM_Y)), 25_000, 8, "EPSG:32760"),  # 180 E is near x = 815 km
    ),
    "UTM cloud, UTM chip (unchanged)": (
        UTM_CLOUD,
        _chip(float(np.min(UTM_X)), float(np.max(UTM_Y)), 50_000, 8, "EPSG:32760"),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_points_on_the_far_side_of_the_antimeridian_count(name: str) -> None:
    cloud, chip = CASES[name]
    want = _by_hand(cloud, chip)
    assert want.sum() > 50
    out = next(iter(tp.from_items([chip]).rasterize_points(cloud, statistics=("count",), max_points=400)))
    np.testing.assert_array_equal(out["lidar_count"].values, want)
    assert int(out["lidar_points_total"]) == want.sum()
    assert int(out["lidar_points_mask"].values.sum()) == want.sum()


def test_an_in_memory_cloud_without_the_fields_asked_for_is_named_not_a_key_error() -> None:
    bare = PointCloud(
        LONLAT_CLOUD.xyz, {}, LONLAT_CLOUD.crs, "", (0.01,) * 3, (0.0,) * 3, LONLAT_CLOUD.bounds, "mem.las"
    )
    chip = _chip(178, -16, 0.5, 8, "EPSG:4326")
    out = next(iter(tp.from_items([chip]).rasterize_points(bare, statistics=("count",), max_points=10)))
    assert out["lidar_points"].shape == (10, 3)  # x, y, z: the default fields it does not carry are left out
    with pytest.raises(InvalidArgumentError, match=r"has no field \['intensity'\]"):
        tp.from_items([chip]).rasterize_points(bare, fields=["intensity"], max_points=10)
    with pytest.raises(InvalidArgumentError, match="has no field"):
        tp.from_items([chip]).rasterize_points(bare, statistics=("mean_intensity",))
