"""Georeferencing is finite: GeoMeta and transforms refuse or ignore NaN/inf rather than carry them on."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from affine import Affine

from terrapipe.core.coords import cached_transform, transform_from_coords
from terrapipe.core.errors import InvalidArgumentError, TerrapipeError
from terrapipe.core.sample import geo_meta

UTM = "EPSG:32631"
GOOD = (10.0, 0.0, 600000.0, 0.0, -10.0, 5100000.0)


@pytest.mark.parametrize("where", range(6))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_geo_meta_refuses_any_coefficient_that_is_not_finite(where: int, bad: float) -> None:
    coeffs = list(GOOD)
    coeffs[where] = bad
    for transform in (tuple(coeffs), Affine(*coeffs), np.array(coeffs)):
        with pytest.raises(InvalidArgumentError, match="not 6 finite numbers"):
            geo_meta(UTM, transform, (4, 4))  # type: ignore[arg-type]


def test_geo_meta_refuses_bounds_beyond_the_float_range() -> None:
    with pytest.raises(InvalidArgumentError, match="beyond the float range"):
        geo_meta(UTM, (1e308, 0, 1e308, 0, -10, 0), (4, 4))  # finite numbers, infinite bounds


def test_geo_meta_still_builds_finite_grids() -> None:
    meta = geo_meta(UTM, GOOD, (2, 3))
    assert meta["bounds"] == (600000.0, 5099980.0, 600030.0, 5100000.0)
    assert geo_meta(UTM, GOOD, (0, 0))["bounds"] == (600000.0, 5100000.0, 600000.0, 5100000.0)


def _chip(geotransform: str, xs: list[float] | None = None) -> xr.DataArray:
    xs = [5.0, 15.0] if xs is None else xs
    da = xr.DataArray(np.zeros((2, len(xs))), dims=("y", "x"), coords={"y": [15.0, 5.0], "x": xs})
    return da.assign_coords(spatial_ref=xr.DataArray(0, attrs={"GeoTransform": geotransform}))


@pytest.mark.parametrize(
    "geotransform",
    ["0 10 nan 20 0 -10", "nan nan nan nan nan nan", "0 inf 0 20 0 -10", "0 0 0 20 0 0", "0 10 0 20 0 0"],
)
def test_a_geotransform_that_places_nothing_is_ignored_and_the_coordinates_decide(geotransform: str) -> None:
    chip = _chip(geotransform)
    assert cached_transform(chip) is None
    for strict in (False, True):  # a NaN transform came back before, a degenerate one raised affine's error
        transform = transform_from_coords(chip, "x", "y", strict=strict)
        assert transform is not None
        assert tuple(transform)[:6] == (10.0, 0.0, 0.0, 0.0, -10.0, 20.0)


def test_one_pixel_wide_with_a_broken_geotransform_is_refused_by_name() -> None:
    chip = _chip("0 nan 0 20 0 -10", xs=[5.0])
    assert transform_from_coords(chip, "x", "y") is None
    with pytest.raises(InvalidArgumentError, match="one pixel wide") as caught:
        transform_from_coords(chip, "x", "y", strict=True)
    assert isinstance(caught.value, TerrapipeError)


def test_a_good_geotransform_is_still_read() -> None:
    assert tuple(cached_transform(_chip("100 10 0 200 0 -10")) or ())[:6] == (
        10.0,
        0.0,
        100.0,
        0.0,
        -10.0,
        200.0,
    )
    rotated = cached_transform(_chip("100 10 1 200 1 -10"))
    assert rotated is not None
    assert not rotated.is_rectilinear
