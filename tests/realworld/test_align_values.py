"""``align_array``/``align_to`` keep a reference's values that equal the fill value when the reference has no nodata.

rasterio's ``world.byte.tif`` (uint8, no nodata, the oceans are 0) and a DEM written as many are (int16, sea
level 0, no nodata tag): the fill value of uncovered chip pixels defaults to 0 for integers, the same as real
pixels. rasterio's ``reproject`` of the same pixels keeps the zeros; GDAL's warper, given a destination dataset
whose nodata is 0, moves valid pixels off that value (0 -> 1 for uint8, 0 -> -1 for int16) with every
resampling but nearest: oceans become land class 1, sea level becomes -1 m, silently.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from odc.geo.geobox import GeoBox

import terrapipe as tp
from terrapipe.fuse import align_array
from tests.conformance.files.corpus import DATA

WORLD = DATA / "rasterio/world.byte.tif"
RESAMPLINGS = ["nearest", "bilinear", "cubic", "average"]


def _reproject(path: Path, grid: GeoBox, resampling: str) -> np.ndarray:
    with rasterio.open(path) as src:
        pixels = src.read()
        want = np.zeros((src.count, *grid.shape), src.dtypes[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rasterio.warp.reproject(
                pixels, want, src_transform=src.transform, src_crs=src.crs, dst_transform=grid.transform,
                dst_crs=grid.crs, resampling=rasterio.enums.Resampling[resampling], dst_nodata=0,
            )  # fmt: skip
    return want


@pytest.fixture(scope="module")
def dem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dem") / "dem.tif"
    heights = np.zeros((1, 40, 40), "int16")
    heights[0, :, 20:] = 50
    with rasterio.open(
        path, "w", driver="GTiff", width=40, height=40, count=1, dtype="int16", crs="EPSG:32631",
        transform=Affine(10, 0, 500000, 0, -10, 4000400),
    ) as dst:  # fmt: skip
        dst.write(heights)
    return path


CASES = {
    "world-pacific": (WORLD, GeoBox((30, 30), Affine(0.5, 0, 170, 0, -0.5, 10), "EPSG:4326")),
    "world-mercator": (
        WORLD,
        GeoBox((30, 30), Affine(200_000, 0, -20_037_508, 0, -200_000, 9_000_000), "EPSG:3857"),
    ),
}


def _case(name: str, dem: Path) -> tuple[Path, GeoBox]:
    if name == "dem-sea-level":
        return dem, GeoBox((10, 10), Affine(10, 0, 500003, 0, -10, 4000397), "EPSG:32631")
    return CASES[name]


@pytest.mark.parametrize("resampling", RESAMPLINGS)
@pytest.mark.parametrize("name", [*CASES, "dem-sea-level"])
def test_values_equal_to_the_default_fill_are_kept(dem: Path, name: str, resampling: str) -> None:
    path, grid = _case(name, dem)
    want = _reproject(path, grid, resampling)
    assert (want == 0).any()  # the case holds real zeros
    got = align_array(path, grid, resampling=resampling)
    np.testing.assert_array_equal(got.values, want)
    if name == "dem-sea-level":
        chip = tp.open_raster(path).isel(y=slice(0, 10), x=slice(0, 10))
        out = next(iter(tp.from_items([chip]).align_to(str(path), resampling=resampling, name="dem")))
        np.testing.assert_array_equal(out["dem"].values, chip.isel(band=0).values)  # same grid: same heights
