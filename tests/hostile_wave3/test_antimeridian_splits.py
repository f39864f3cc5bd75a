"""Spatial splits on lon/lat rasters: one place, one subset, however its raster writes longitudes.

SpatialSplit labels cells of map coordinates; a raster written 0..360 (ERA5-style) and one written
-180..180 put the same place in different cells (x and x - 360), so a place could be 'train' in one
and 'val' in the other: windows of one place leaked across subsets, silently. Window bounds are now
moved by whole turns of the globe to a left edge in [-180, 180) before the cells are looked up.
"""

from __future__ import annotations

import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

import terrapipe as tp

SPLIT = tp.chip.SpatialSplit({"train": 0.5, "val": 0.5}, cell_size=30.0, seed=3)


def _world(west: float) -> xr.DataArray:
    """A 360 x 20 one-degree lon/lat raster whose pixels hold their place's longitude in -180..180."""
    x = west + np.arange(360) + 0.5
    place = (x + 180) % 360 - 180
    y = 10 - (np.arange(20) + 0.5)
    return xr.DataArray(np.tile(place, (20, 1)), dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs(
        "EPSG:4326"
    )


def _places(pipe: object) -> set[float]:
    return {float(np.asarray(w)[0, 0]) for w in pipe}  # type: ignore[attr-defined]


def test_chip_puts_one_place_in_one_subset_for_0_360_and_minus_180_180_rasters() -> None:
    for subset in ("train", "val"):
        chips = [
            _places(tp.from_items([_world(west)]).chip({"y": 10, "x": 10}, split=SPLIT.select(subset)))
            for west in (0.0, -180.0)
        ]
        assert chips[0]
        assert chips[0] == chips[1]


def test_sample_windows_agrees_with_chip_on_a_0_360_raster() -> None:
    raster = _world(0.0)
    points = [(x, 5.0) for x in np.arange(5.0, 360.0, 10.0)]  # a window centred in each 10-degree column
    for subset in ("train", "val"):
        sampled = _places(
            tp.from_items([raster]).sample_windows(
                {"y": 10, "x": 10}, points=points, split=SPLIT.select(subset), shuffle=False
            )
        )
        chipped = _places(
            tp.from_items([_world(-180.0)]).chip({"y": 10, "x": 10}, split=SPLIT.select(subset))
        )
        assert sampled
        assert sampled <= chipped
