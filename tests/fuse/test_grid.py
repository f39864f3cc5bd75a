"""Grids of chips: transform from coordinates (exact for windows of a file), CRS text, comparisons."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.fuse import crs_text, grid_bounds, grid_mismatch, grid_of
from terrapipe.fuse.carrier import add_raster, as_dataset
from terrapipe.fuse.grid import transform_of
from tests.fuse.conftest import make_chip, smooth_dem, write_raster


def test_window_of_a_file_has_the_files_exact_transform(tmp_path) -> None:  # type: ignore[no-untyped-def]
    transform = Affine(1 / 3600, 0, 5.86, 0, -1 / 3600, 45.81)
    path = write_raster(tmp_path / "a.tif", smooth_dem(300, 300), crs="EPSG:4326", transform=transform)
    da = tp.open_raster(path)
    window = rasterio.windows.Window(37, 101, 64, 32)
    with rasterio.open(path) as src:
        expected = src.window_transform(window)
    chip = da.isel(y=slice(101, 133), x=slice(37, 101))
    assert transform_of(chip) == expected
    assert grid_of(chip).shape.yx == (32, 64)


def test_chip_with_one_pixel_and_without_geotransform() -> None:
    chip = make_chip(shape=(1, 5))
    with pytest.raises(InvalidArgumentError, match="GeoTransform"):
        transform_of(chip)
    chip = chip.rio.write_transform(Affine(10, 0, 600000, 0, -10, 5000000))
    assert transform_of(chip) == Affine(10, 0, 600000, 0, -10, 5000000)
    with pytest.raises(InvalidArgumentError, match="needs y and x dimensions"):
        grid_of(xr.DataArray(np.zeros(3), dims=("t",)))
    with pytest.raises(InvalidArgumentError, match="expected an xarray chip"):
        grid_of(np.zeros((2, 2)))  # type: ignore[arg-type]


def test_crs_text() -> None:
    assert crs_text(32631) == "EPSG:32631"
    assert crs_text(rasterio.crs.CRS.from_epsg(4326)) == "EPSG:4326"
    local = crs_text("+proj=tmerc +lat_0=0 +lon_0=7.3 +k=1 +x_0=0 +y_0=0 +ellps=GRS80 +units=m +no_defs")
    assert local.startswith("PROJCRS")
    with pytest.raises(InvalidArgumentError):
        crs_text(None)
    with pytest.raises(InvalidArgumentError, match="not a usable CRS"):
        crs_text("EPSG:0")


def test_grid_bounds_and_mismatch() -> None:
    assert grid_bounds(Affine(10, 0, 0, 0, -10, 100), (10, 20)) == (0.0, 0.0, 200.0, 100.0)
    a = GeoBox((10, 10), Affine(10, 0, 0, 0, -10, 100), "EPSG:32631")
    assert grid_mismatch(a, a) is None
    assert "crs differs" in str(grid_mismatch(a, GeoBox((10, 10), a.affine, "EPSG:32632")))
    # a pixel size off by 1e-4 m moves the far corner by 1e-3 m: 1e-4 of a pixel
    b = GeoBox((10, 10), Affine(10.0001, 0, 0, 0, -10, 100), "EPSG:32631")
    assert grid_mismatch(a, b, tolerance=2e-4) is None
    assert grid_mismatch(a, b, tolerance=5e-5) is not None


def test_carrier_helpers() -> None:
    chip = make_chip(shape=(4, 4))
    ds = as_dataset(chip)
    assert list(ds.data_vars) == ["image"]
    with pytest.raises(InvalidArgumentError, match="shape"):
        add_raster(ds, "bad", np.zeros((3, 3)))
    with pytest.raises(InvalidArgumentError, match=r"\(y, x\) or \(band, y, x\)"):
        add_raster(ds, "bad", np.zeros((1, 1, 4, 4)))
    out = add_raster(ds, "two", np.zeros((2, 4, 4)))
    assert out["two"].dims == ("two_band", "y", "x")
    assert "two" not in ds  # the input is left alone
