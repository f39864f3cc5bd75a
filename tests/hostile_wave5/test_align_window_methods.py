"""``align_array`` reads a window of the reference: every resampling method, dtype and nodata gives the whole warp.

``align_array`` warps only the reference window under the chip, widened by the resampling kernel's
reach (``kernel_margin``), and (since 7e62ed4) keeps a reference without nodata free of a
destination nodata, so valid zeros stay zeros. Checked against ``rasterio.warp.reproject`` of the
whole reference onto the chip, with the same nodata handling: every method GDAL's warper has,
integer dtypes signed and unsigned, float32, a reference with and without nodata, and three chip
grids (the same pixel size shifted half a pixel, twice coarser, two thirds of a pixel), each
partly outside the reference. A window too narrow for a method's kernel (lanczos reaches 3
pixels, scaled by the zoom when shrinking) changes edge values silently.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import rasterio.warp
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling

from terrapipe.fuse import align_array

REF_TRANSFORM = Affine(10, 0, 500_000, 0, -10, 4_000_400)
SIZE = 40
METHODS = [
    "nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode",
    "max", "min", "med", "q1", "q3", "sum", "rms",
]  # fmt: skip
DTYPES = ["int8", "uint16", "int16", "uint32", "int32", "float32"]
CHIPS = {
    "shifted_half": GeoBox((12, 12), Affine(10, 0, 500_335, 0, -10, 4_000_105), "EPSG:32631"),
    "coarser_2x": GeoBox((10, 10), Affine(20, 0, 500_250, 0, -20, 4_000_130), "EPSG:32631"),
    "finer_2_3": GeoBox((15, 15), Affine(20 / 3, 0, 500_301, 0, -20 / 3, 4_000_061), "EPSG:32631"),
}


def _reference(dtype: str, nodata: bool) -> xr.DataArray:
    rng = np.random.default_rng(7)
    values = rng.integers(0, 6, (SIZE, SIZE)) * (rng.random((SIZE, SIZE)) < 0.6)  # zeros: valid values
    values = values.astype(dtype)
    da = xr.DataArray(values[None], dims=("band", "y", "x"), name="ref")
    da = da.assign_coords(
        y=REF_TRANSFORM.f + REF_TRANSFORM.e * (np.arange(SIZE) + 0.5),
        x=REF_TRANSFORM.c + REF_TRANSFORM.a * (np.arange(SIZE) + 0.5),
    ).rio.write_crs("EPSG:32631")
    if nodata:
        marker = 99
        da.values[0, 5:9, 30:] = marker  # some pixels of no data, near the chips
        da = da.rio.write_nodata(marker)
    return da


def _whole_warp(ref: xr.DataArray, chip: GeoBox, method: str, nodata: bool) -> np.ndarray:
    src_nodata = 99 if nodata else None
    dtype = ref.dtype
    fill = src_nodata if nodata else (np.nan if dtype.kind == "f" else 0)
    out = np.full((1, *chip.shape.yx), fill, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rasterio.warp.reproject(
            ref.values,
            out,
            src_transform=REF_TRANSFORM,
            src_crs="EPSG:32631",
            dst_transform=chip.affine,
            dst_crs="EPSG:32631",
            src_nodata=src_nodata,
            dst_nodata=src_nodata,
            init_dest_nodata=nodata,
            resampling=Resampling[method],
            num_threads=1,
        )
    return out


@pytest.mark.parametrize("chip", list(CHIPS))
@pytest.mark.parametrize("nodata", [False, True], ids=["no_nodata", "nodata"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_method_equals_the_whole_warp(dtype: str, nodata: bool, chip: str) -> None:
    ref = _reference(dtype, nodata)
    grid = CHIPS[chip]
    failed = []
    for method in METHODS:
        want = _whole_warp(ref, grid, method, nodata)
        got = np.asarray(align_array(ref, grid, resampling=method).values)
        if got.shape != want.shape or not np.array_equal(got, want, equal_nan=dtype == "float32"):
            differ = np.argwhere(got != want).tolist() if got.shape == want.shape else [got.shape]
            failed.append(f"{method}: {len(differ)} pixels differ, first at {differ[:1]}")
    assert not failed, failed
    if not nodata:
        assert (want == 0).any()  # valid zeros were there to keep
