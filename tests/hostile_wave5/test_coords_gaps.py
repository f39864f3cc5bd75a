"""A grid missing a row, repeating one or swapping two is not regular, whatever the coordinates' dtype.

300b635 made an axis whose coordinates are not evenly spaced have no transform, with a tolerance of
1/1000 pixel "or the coordinates' own float32 rounding": ``2 * eps(float32) * max|value|``. That
term is taken for float32 coordinates and for any coordinates whose values float32 holds exactly,
integers included. Far from the origin (a UTM northing south of the equator is 5e6..1e7) it is a
metre or two: an integer 1 m grid (lidar, a DEM) missing a row, or with two rows swapped, or a float32
4 m grid missing one, passes as regular, and the fitted line misplaces the pixels by up to half a
pixel (a swap: the two rows exchanged), silently. Integer coordinates have no rounding at all, and
float32 rounding is at most half a unit in the last place: neither can make a whole pixel's error.

The invariant asserted: where a transform is given, every coordinate lies on it to 1/1000 pixel, or
to one unit in the last place of float32 where the coordinates are float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr
from affine import Affine

from terrapipe.core.coords import evenly_spaced, transform_from_coords
from terrapipe.core.errors import InvalidArgumentError, TerrapipeError
from terrapipe.fuse.grid import grid_of

N = 200


def _broken(kind: str, base: float, step: float) -> np.ndarray:
    index = np.arange(N, dtype=np.float64)
    if kind == "missing":  # one row dropped in the middle
        index[N // 2 :] += 1
    elif kind == "repeated":  # one row written twice (a mosaic's seam)
        index[N // 2 + 1 :] -= 1
    elif kind == "swapped":  # two neighbouring rows exchanged
        index[[N // 2, N // 2 + 1]] = index[[N // 2 + 1, N // 2]]
    return base + step * index


# (dtype, first value, step): an integer 1 m grid at a southern UTM northing, float64 holding it,
# a float32 4 m and 2 m grid there (float32 holds these integers exactly: its unit in the last place is 1).
CASES = {
    "int64_1m": ("int64", 9_000_000.0, -1.0),
    "int32_1m": ("int32", 5_000_000.0, 1.0),
    "float64_whole_metres": ("float64", 9_000_000.0, -1.0),
    "float32_4m": ("float32", 9_000_000.0, -4.0),
    "float32_2m": ("float32", 8_500_000.0, 2.0),
}


def _array(ys: np.ndarray) -> xr.DataArray:
    xs = 500_000.5 + np.arange(4, dtype=np.float64)
    da = xr.DataArray(np.zeros((ys.size, xs.size), "u1"), dims=("y", "x"), coords={"y": ys, "x": xs})
    return da.rio.write_crs("EPSG:32733")


def _on_the_line(values: np.ndarray, start: float, step: float, dtype: Any) -> float:
    """How far (map units) the coordinates lie from the centres ``start + step * i`` at most."""
    centres = start + step * np.arange(values.size)
    return float(np.abs(values.astype(np.float64) - centres).max())


def _allowed(values: np.ndarray, step: float, dtype: Any) -> float:
    allowed = 1e-3 * abs(step)
    if np.dtype(dtype) == np.float32:
        allowed = max(allowed, float(np.spacing(np.float32(np.abs(values).max()))))
    return allowed


# C (fixed by H8): a float32 2 m grid at 8.5e6 m, where float32's unit is 1 m (half a pixel): a missing or
# repeated row lies 0.995 m off the line through the ends, within the one-unit float32 term, but one step of
# it is off by a whole step, which rounding cannot make (core/coords._regular_axis checks the steps there).
BROKEN = [
    pytest.param(case, kind, id=f"{case}-{kind}")
    for case in CASES
    for kind in ("missing", "repeated", "swapped")
]


@pytest.mark.parametrize(("case", "kind"), BROKEN)
def test_a_row_off_the_grid_is_uneven_far_from_the_origin(case: str, kind: str) -> None:
    dtype, base, step = CASES[case]
    ys = _broken(kind, base, step).astype(dtype)
    da = _array(ys)
    got = transform_from_coords(da, "x", "y")
    if got is not None:  # how far off: up to half a pixel (a swap: a whole one)
        off = _on_the_line(ys, got.f + got.e / 2, got.e, dtype)
        assert off <= _allowed(ys, step, dtype), f"a coordinate lies {off / abs(step):.2f} pixel off the grid"
    assert not evenly_spaced(ys)
    with pytest.raises(InvalidArgumentError, match="'y' coordinates are not evenly spaced"):
        transform_from_coords(da, "x", "y", strict=True)
    with pytest.raises(TerrapipeError):
        grid_of(da)


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_grids_unbroken_are_regular_and_exact(case: str) -> None:
    dtype, base, step = CASES[case]
    ys = _broken("none", base, step).astype(dtype)
    got = transform_from_coords(_array(ys), "x", "y", strict=True)
    assert got == Affine(1.0, 0.0, 500_000.0, 0.0, step, base - step / 2)
    assert evenly_spaced(ys)


def test_near_the_origin_a_missing_row_was_and_is_uneven() -> None:
    """Small values: the float32 term is below 1/1000 pixel, so the gap is seen (the control)."""
    ys = _broken("missing", 1000.0, 1.0).astype("int64")
    assert transform_from_coords(_array(ys), "x", "y") is None


def test_a_jittered_10000_column_axis_stays_within_its_tolerance() -> None:
    """10,000 float64 columns each jittered by up to 4e-4 pixel: regular, and no error accumulates."""
    rng = np.random.default_rng(5)
    step = 10.0
    xs = 600_005.0 + step * (np.arange(10_000) + rng.uniform(-4e-4, 4e-4, 10_000))
    da = xr.DataArray(np.zeros((2, xs.size), "u1"), dims=("y", "x"), coords={"y": [15.0, 5.0], "x": xs})
    got = transform_from_coords(da, "x", "y", strict=True)
    assert _on_the_line(xs, got.c + got.a / 2, got.a, "float64") <= 1e-3 * step
    # drifting: the first half's steps a little long, the second's a little short (the ends on the grid)
    drift = np.concatenate([np.full(5_000, 1 + 4e-7), np.full(4_999, 1 - 4e-7 * 5_000 / 4_999)])
    xs = 600_005.0 + step * np.concatenate([[0.0], np.cumsum(drift)])
    da = da.assign_coords(x=xs)
    got = transform_from_coords(da, "x", "y")
    if got is not None:  # the middle is 2e-3 pixel off the line through the ends
        assert _on_the_line(xs, got.c + got.a / 2, got.a, "float64") <= 1e-3 * step
