"""Non-finite or degenerate georeferencing is a ReadError naming the file, never chips with NaN coordinates (#18)."""

from __future__ import annotations

import math
import shutil
import warnings

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine

import terrapipe as tp
from terrapipe.io.xarray_open import open_xarray
from tests.conformance.files.corpus import DATA

NAN, INF = math.nan, math.inf

BAD_TRANSFORMS = {
    "nan-origin-x": (Affine(60, 0, NAN, 0, -60, 3751320), "not finite"),
    "nan-origin-y": (Affine(60, 0, 440720, 0, -60, NAN), "not finite"),
    "inf-pixel-width": (Affine(INF, 0, 440720, 0, -60, 3751320), "not finite"),
    "nan-pixel-height": (Affine(60, 0, 440720, 0, NAN, 3751320), "not finite"),
    "minus-inf-origin": (Affine(60, 0, -INF, 0, -60, 3751320), "not finite"),
    "zero-pixel-height": (Affine(60, 0, 440720, 0, 0, 3751320), "pixel size is zero"),
    "overflowing-grid": (Affine(1e308, 0, 1e308, 0, -60, 3751320), "overflows"),
}


def _edit_real_file(tmp_path, name, transform):
    """GDAL's byte.tif with its geotransform (ModelTiepoint / ModelPixelScale tags) rewritten."""
    path = tmp_path / f"{name}.tif"
    shutil.copy(DATA / "gdal/byte.tif", path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "r+") as dst:
            dst.transform = transform
        with rasterio.open(path) as check:  # GDAL keeps what was written
            stored = check.transform
    return path, stored


@pytest.mark.parametrize("name", sorted(BAD_TRANSFORMS))
def test_raster_with_bad_geotransform_is_a_read_error(tmp_path, name):
    transform, message = BAD_TRANSFORMS[name]
    path, stored = _edit_real_file(tmp_path, name, transform)
    # GDAL wrote and reads back the bad numbers (it may derive others from them, e.g. inf * 0 = NaN)
    assert (
        not np.isfinite(stored[:6]).all()
        or stored.determinant == 0
        or not np.isfinite(stored * (20, 20)).all()
    )
    with pytest.raises(tp.ReadError, match=rf"{name}\.tif'.*{message}"):
        tp.open_raster(path)
    with pytest.raises(tp.ReadError, match=rf"{name}\.tif'"):
        open_xarray(path)
    pipe = tp.from_items([str(path), str(DATA / "gdal/byte.tif")]).read_raster(on_error="skip")
    good = list(pipe)
    assert len(good) == 1
    assert pipe.stats.skipped == 1
    assert np.isfinite(good[0].x).all()
    assert np.isfinite(good[0].y).all()


def test_finite_georeferencing_still_reads(tmp_path):
    path, _ = _edit_real_file(tmp_path, "shifted", Affine(30, 0, 1000, 0, -30, 2000))
    da = tp.open_raster(path)
    assert da.x.values[0] == 1015
    assert da.y.values[0] == 1985


def _store(values_x, values_y=(2.5, 1.5, 0.5)):
    return xr.Dataset(
        {"v": (("y", "x"), np.ones((len(values_y), len(values_x)), dtype="float32"))},
        coords={"x": list(values_x), "y": list(values_y)},
    )


@pytest.mark.parametrize("engine", ["zarr", "netcdf"])
@pytest.mark.parametrize(
    ("xs", "ys", "bad"),
    [
        ((0.5, NAN, 2.5), (2.5, 1.5, 0.5), "'x'"),
        ((0.5, 1.5, 2.5), (2.5, INF, 0.5), "'y'"),
        ((-INF, 1.5, 2.5), (NAN, NAN, NAN), "'x'"),
    ],
)
def test_store_with_nan_coordinates_is_a_read_error(tmp_path, engine, xs, ys, bad):
    path = tmp_path / ("cube.zarr" if engine == "zarr" else "cube.nc")
    ds = _store(xs, ys)
    if engine == "zarr":
        ds.to_zarr(path)
    else:
        ds.to_netcdf(path, engine="scipy")
    with pytest.raises(tp.ReadError, match=rf"{path.name}'.*coordinate {bad} holds"):
        open_xarray(path)
    pipe = tp.from_items([str(path)]).open_xarray(on_error="skip")
    assert list(pipe) == []
    assert pipe.stats.skipped == 1


def test_store_with_lon_lat_coordinates_and_a_nan_geotransform(tmp_path):
    ds = _store((0.5, 1.5, 2.5)).rename({"x": "lon", "y": "lat"})
    path = tmp_path / "lonlat.nc"
    ds.assign_coords(lon=[0.5, 1.5, NAN]).to_netcdf(path, engine="scipy")
    with pytest.raises(tp.ReadError, match=r"coordinate 'lon'"):
        open_xarray(path)
    good = _store((0.5, 1.5, 2.5)).assign_coords(spatial_ref=((), 0, {"GeoTransform": "0 1 0 3 0 nan"}))
    path = tmp_path / "gt.zarr"
    good.to_zarr(path)
    with pytest.raises(tp.ReadError, match=r"GeoTransform of its 'spatial_ref'"):
        open_xarray(path)
    assert open_xarray(tmp_path / "lonlat.nc", engine="netcdf", drop_variables=["lon"]) is not None
