"""align_to between grids of one CRS needs no coordinate operation; lon/lat grids in grads wrap at 400.

PROJ finds no operation from EPSG:4807 (NTF Paris, grads) to itself, and align_array raised rasterio's
bare CPLE_NotSupportedError for a reference and chips both in that CRS; the wrap of lon/lat
references assumed degrees (360) for a CRS whose turn of the globe is 400 grads.
"""

from __future__ import annotations

import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

import terrapipe as tp
from terrapipe.fuse.align import align_array

GRADS = "EPSG:4807"  # NTF (Paris): lon/lat in grads from the Paris meridian


def _reference(width: int, crs: str = GRADS) -> xr.DataArray:
    values = np.tile(np.arange(width, dtype="float32"), (10, 1))
    coords = {"y": 5 - (np.arange(10) + 0.5), "x": np.arange(width) + 0.5}
    return xr.DataArray(values, dims=("y", "x"), coords=coords, name="ref").rio.write_crs(crs)


def test_a_reference_and_chips_in_a_crs_proj_cannot_convert_to_itself_align() -> None:
    chip = GeoBox((2, 4), Affine(1, 0, 10, 0, -1, 5), GRADS)
    out = align_array(_reference(40), chip, resampling="nearest")
    np.testing.assert_array_equal(out.values[0], [[10, 11, 12, 13]] * 2)
    as_chip = xr.DataArray(
        np.zeros((2, 4)), dims=("y", "x"), coords={"y": [4.5, 3.5], "x": [10.5, 11.5, 12.5, 13.5]}
    )
    aligned = next(
        iter(tp.from_items([as_chip.rio.write_crs(GRADS)]).align_to(_reference(40), resampling="nearest"))
    )
    np.testing.assert_array_equal(aligned["ref"].values, [[10, 11, 12, 13]] * 2)


def test_a_lon_lat_reference_in_grads_wraps_at_400() -> None:
    chip = GeoBox((2, 8), Affine(1, 0, -4, 0, -1, 5), GRADS)  # 4 grads west of the reference's 0..400
    out = align_array(_reference(400), chip, resampling="nearest")
    np.testing.assert_array_equal(out.values[0], [[396, 397, 398, 399, 0, 1, 2, 3]] * 2)
