"""A Dataset whose variables have their own grid mappings is placed by one grid only where they agree.

``open_zarr`` gives each array the CRS it declares, each with its own grid-mapping coordinate
(``spatial_ref_<name>``). Every stage that places a Dataset by one grid (``grid_of``: rasterize,
clip_vector, rasterize_points, align_to, zip_grids, to_tensor's metadata) took the first variable's CRS,
silently. Variables that disagree on the CRS or the transform are a ``GridMismatchError`` naming them;
variables whose grid mappings agree, and the usual Dataset of one grid mapping, are placed as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine
from shapely.geometry import box

import terrapipe as tp
import terrapipe.fuse
from terrapipe.core.errors import GridMismatchError
from terrapipe.fuse.grid import grid_of

VALUES = np.arange(48, dtype="float32").reshape(6, 8)
Y = 3999995.0 - 10 * np.arange(6)
X = 500005.0 + 10 * np.arange(8)


def _array(crs: str, mapping: str, *, coords: bool = True, transform: Affine | None = None) -> xr.DataArray:
    da = xr.DataArray(VALUES, dims=("y", "x"), coords={"y": Y, "x": X} if coords else None)
    if transform is not None:
        da = da.rio.write_transform(transform, grid_mapping_name=mapping)
    return da.rio.write_crs(crs, grid_mapping_name=mapping)


def _dataset(**arrays: xr.DataArray) -> xr.Dataset:
    ds = xr.Dataset(arrays)
    for name, da in arrays.items():
        ds[name].encoding["grid_mapping"] = da.encoding["grid_mapping"]
    return ds


def two_crss() -> xr.Dataset:
    return _dataset(a=_array("EPSG:32631", "spatial_ref_a"), b=_array("EPSG:32632", "spatial_ref_b"))


def two_transforms() -> xr.Dataset:
    """No coordinates: each array is placed by its own GeoTransform (a coordinate-less store)."""
    return _dataset(
        a=_array(
            "EPSG:32631", "spatial_ref_a", coords=False, transform=Affine(10, 0, 500000, 0, -10, 4000000)
        ),
        b=_array(
            "EPSG:32631", "spatial_ref_b", coords=False, transform=Affine(10, 0, 600000, 0, -10, 4000000)
        ),
    )


FIELDS = gpd.GeoDataFrame({"class": [3]}, geometry=[box(500000, 3999940, 500040, 4000000)], crs="EPSG:32631")


def _reference() -> xr.DataArray:
    return _array("EPSG:32631", "spatial_ref")


STAGES: dict[str, Callable[[Any], Any]] = {
    "grid_of": grid_of,
    "rasterize": lambda ds: next(iter(tp.from_items([ds]).rasterize(FIELDS, column="class"))),
    "clip_vector": lambda ds: next(iter(tp.from_items([ds]).clip_vector(FIELDS, name="fields"))),
    "align_to": lambda ds: next(
        iter(tp.from_items([ds]).align_to(_reference(), name="ref", resampling="nearest"))
    ),
    "zip_grids": lambda ds: next(iter(tp.from_items([ds]).zip_grids(tp.from_items([ds]), names=["p", "q"]))),
    "to_tensor": lambda ds: next(iter(tp.from_items([ds]).to_tensor())),
}


@pytest.mark.parametrize("make", [two_crss, two_transforms])
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_variables_on_different_grids_are_a_named_error_in_every_stage(
    stage: str, make: Callable[[], xr.Dataset]
) -> None:
    with pytest.raises(GridMismatchError) as info:
        STAGES[stage](make())
    message = str(info.value)
    assert "'a'" in message
    assert "'b'" in message
    assert "select one variable" in message


@pytest.mark.parametrize("make", [two_crss, two_transforms])
def test_a_chip_of_such_a_dataset_is_refused_and_each_variable_is_placed_alone(
    make: Callable[[], xr.Dataset],
) -> None:
    ds = make()
    chip = next(iter(tp.from_items([ds]).chip({"y": 4, "x": 4})))
    with pytest.raises(GridMismatchError):
        grid_of(chip)
    assert grid_of(ds["a"]).crs != grid_of(ds["b"]).crs or grid_of(ds["a"]).affine != grid_of(ds["b"]).affine
    for name in ("a", "b"):
        alone = grid_of(ds[[name]])
        assert alone == grid_of(ds[name])


def test_each_variable_of_a_coordinate_less_chip_keeps_its_own_transform_moved_to_the_window() -> None:
    ds = two_transforms()
    chips = list(tp.from_items([ds]).chip({"y": 3, "x": 4}))
    assert len(chips) == 4
    for chip in chips:
        for name, x0 in (("a", 500000), ("b", 600000)):
            grid = grid_of(chip[[name]])
            column = round((grid.affine.c - x0) / 10)
            row = round((4000000 - grid.affine.f) / 10)
            assert (row, column) in {(0, 0), (0, 4), (3, 0), (3, 4)}
            assert tuple(grid.affine)[:6] == (10, 0, x0 + 10 * column, 0, -10, 4000000 - 10 * row)
            np.testing.assert_array_equal(
                chip[name].values, ds[name].values[row : row + 3, column : column + 4]
            )


@pytest.mark.parametrize("make", [two_crss, two_transforms])
def test_a_numpy_chip_of_such_a_dataset_is_refused(make: Callable[[], xr.Dataset]) -> None:
    with pytest.raises(GridMismatchError, match=r"spatial_ref_a.*spatial_ref_b"):
        next(iter(tp.from_items([make()]).chip({"y": 3, "x": 4}, output="numpy")))


def test_variables_whose_grid_mappings_agree_are_placed_as_before() -> None:
    ds = _dataset(a=_array("EPSG:32631", "spatial_ref_a"), b=_array("EPSG:32631", "spatial_ref_b"))
    grid = grid_of(ds)
    assert grid.crs.epsg == 32631
    assert tuple(grid.affine)[:6] == (10, 0, 500000, 0, -10, 4000000)
    out = STAGES["rasterize"](ds)
    assert int(out["mask"].sum()) == 3 * 24


def test_one_grid_mapping_and_a_variable_without_crs_are_placed_as_before() -> None:
    ds = _array("EPSG:32632", "spatial_ref").to_dataset(name="a")
    ds["a"].encoding["grid_mapping"] = "spatial_ref"
    ds["counts"] = (("y", "x"), np.ones((6, 8)))  # no grid mapping of its own: takes the Dataset's
    assert grid_of(ds).crs.epsg == 32632
    assert grid_of(ds.assign(other=two_crss()["a"].drop_vars("spatial_ref_a"))).crs.epsg == 32632
