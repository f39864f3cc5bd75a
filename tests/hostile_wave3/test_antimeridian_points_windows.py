"""sample_windows(points=...) on lon/lat rasters past +-180: a point is the same place one turn away.

A raster written 0..360 (ERA5-style) got no window for a station written -180..180 west of
Greenwich (lon -75 is column 285 of it), and a raster across the antimeridian (170..190) none for
points written -180..-170: the points were dropped without a word.
"""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import terrapipe as tp


def _raster(west: float, width: int, crs: str = "EPSG:4326") -> xr.DataArray:
    x = west + np.arange(width) + 0.5
    y = 10 - (np.arange(20) + 0.5)
    values = np.tile(x.astype("float64"), (20, 1))  # each pixel holds its own x as written
    return xr.DataArray(values, dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs(crs)


def _centres(raster: xr.DataArray, points: list[tuple[float, float]]) -> list[float]:
    windows = list(tp.from_items([raster]).sample_windows({"y": 2, "x": 2}, points=points, shuffle=False))
    return [float(w.x.values[1]) for w in windows]  # the column of the point (window 2 wide: its second)


@pytest.mark.parametrize(
    ("west", "width", "point", "column_x"),
    [
        (0.0, 360, (-75.5, 0.5), 284.5),  # 0..360 raster, a station west of Greenwich
        (170.0, 20, (-175.5, 0.5), 184.5),  # a raster across the antimeridian, written past 180
        (-190.0, 20, (175.5, 0.5), -184.5),  # the same written past -180
        (-180.0, 360, (200.5, 0.5), -159.5),  # a point written past 180 on a -180..180 raster
    ],
)
def test_a_point_on_the_far_side_gets_its_window(
    west: float, width: int, point: tuple[float, float], column_x: float
) -> None:
    assert _centres(_raster(west, width), [point]) == [column_x]


def test_points_in_range_and_projected_rasters_are_unchanged() -> None:
    assert _centres(_raster(0.0, 360), [(10.5, 0.5)]) == [10.5]
    utm = _raster(500_000.0, 20, crs="EPSG:32631")
    assert _centres(utm, [(500_010.5, 0.5)]) == [500_010.5]
    assert _centres(utm, [(500_010.5 - 360, 0.5)]) == []  # metres do not wrap
