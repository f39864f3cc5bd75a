"""core/coords.py: the one definition of the x/y names and of the transform from coordinates (chip and fuse use it)."""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

from terrapipe.chip.build import crs_and_transform
from terrapipe.core.coords import X_NAMES, Y_NAMES, cached_transform, transform_from_coords, xy_dims
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.fuse.grid import spatial_dims, transform_of


def _grid(ny: int, nx: int, dims: tuple[str, str] = ("y", "x"), step: float = 10.0) -> xr.DataArray:
    return xr.DataArray(
        np.zeros((ny, nx), "f4"),
        dims=dims,
        coords={dims[0]: 5_000_005.0 - step * np.arange(ny), dims[1]: 500_005.0 + step * np.arange(nx)},
    )


def test_x_and_y_names_are_known():
    assert X_NAMES == ("x", "lon", "longitude", "X", "rlon")
    assert Y_NAMES == ("y", "lat", "latitude", "Y", "rlat")
    assert xy_dims(("band", "latitude", "longitude")) == ("longitude", "latitude")
    assert xy_dims(("band", "Y", "X")) == ("X", "Y")  # GDAL's Zarr driver
    assert xy_dims(("rlat", "rlon")) == ("rlon", "rlat")  # CF rotated pole (CORDEX)
    assert xy_dims(("time", "band")) == (None, None)
    assert xy_dims(iter(("y", "x"))) == ("x", "y")


@pytest.mark.parametrize("dims", [("y", "x"), ("lat", "lon"), ("latitude", "longitude")])
def test_chip_and_fuse_find_the_same_dims_and_transform(dims):
    da = _grid(3, 4, dims).rio.write_crs("EPSG:4326")
    _, transform, x_dim, y_dim = crs_and_transform(da)
    assert (y_dim, x_dim) == spatial_dims(da) == dims
    assert transform == transform_of(da) == Affine(10, 0, 500_000, 0, -10, 5_000_010)


def test_one_pixel_wide_needs_the_cached_transform():
    one = _grid(3, 1)
    assert transform_from_coords(one, "x", "y") is None
    with pytest.raises(InvalidArgumentError, match="one pixel wide or high"):
        transform_from_coords(one, "x", "y", strict=True)
    cached = one.rio.write_transform(Affine(20, 0, 499_995, 0, -10, 5_000_010))
    assert transform_from_coords(cached, "x", "y") == Affine(20, 0, 499_995, 0, -10, 5_000_010)


def test_rotated_or_coordinate_free_grids_use_the_cached_transform():
    rotated = Affine(10, 0.5, 500_000, 0.3, -10, 5_000_010)
    da = _grid(3, 4).rio.write_transform(rotated)
    assert cached_transform(da) == rotated
    assert transform_from_coords(da, "x", "y") == transform_from_coords(da, "x", "y", strict=True) == rotated
    bare = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"))
    assert transform_from_coords(bare, "x", "y") is None
    with pytest.raises(InvalidArgumentError, match="has no transform"):
        transform_from_coords(bare, "x", "y", strict=True)
    assert transform_from_coords(bare.rio.write_transform(rotated), "x", "y", strict=True) == rotated


def test_a_dataset_names_its_grid_mapping_in_its_variables_encoding():
    ds = _grid(4, 5).rio.write_transform(Affine(10, 0, 500_000, 0, -10, 5_000_010)).to_dataset(name="v")
    ds = ds.rename({"spatial_ref": "crs_var"})
    ds["v"].encoding["grid_mapping"] = "crs_var"
    assert cached_transform(ds) == Affine(10, 0, 500_000, 0, -10, 5_000_010)
    assert cached_transform(ds.drop_vars("crs_var")) is None


def test_strict_refuses_coordinates_that_are_not_finite_and_keeps_the_files_numbers():
    da = _grid(3, 4).assign_coords(x=[np.nan, 1.0, 2.0, 3.0])
    assert transform_from_coords(da, "x", "y") is None  # no grid (a NaN transform was given before)
    with pytest.raises(InvalidArgumentError, match="not all finite"):
        transform_from_coords(da, "x", "y", strict=True)
    step = 1 / 3
    exact = Affine(step, 0, 1_234.5, 0, -step, 4_321.5)
    full = _grid(40, 50, step=step).assign_coords(
        y=exact.f - step / 2 - step * np.arange(40), x=exact.c + step / 2 + step * np.arange(50)
    )
    window = full.rio.write_transform(exact).isel(y=slice(7, 14), x=slice(9, 18))
    assert transform_from_coords(window, "x", "y", strict=True) == exact * Affine.translation(9, 7)
    derived = transform_from_coords(window, "x", "y")
    assert derived is not None
    assert derived.almost_equals(exact * Affine.translation(9, 7), precision=1e-6)


def test_an_empty_grid_has_no_transform():
    empty = _grid(0, 4)
    assert transform_from_coords(empty, "x", "y") is None
    with pytest.raises(InvalidArgumentError, match="is empty"):
        transform_from_coords(empty, "x", "y", strict=True)
