"""mosaic of integer cubes near their dtype's limits, against exact integer arithmetic in Python.

Climate and land-cover products store counts, flags and packed values as int32/int64/uint32/uint64 (netCDF4
and zarr allow all of them), and a nodata read from a file is often a float (``0.0``, ``np.float64``). Every
method on every integer dtype must give the exact integer: float64 holds integers up to 2**53 only, float32 up
to 2**24, so a reduction or a fill through floats changes large values silently. ``mean`` and ``median`` are
rounded half to even (as ``np.round`` does for small values); a pixel with no valid value gets nodata.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import xarray as xr

from terrapipe.stac import mosaic_array

METHODS = ("first", "last", "max", "min", "median", "mean")
DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")


def _pool(dtype: str) -> list[int]:
    """Values at and near the dtype's limits, and around 2**24 and 2**53 where the dtype holds them."""
    info = np.iinfo(dtype)
    values = {info.max, info.max - 1, info.max - 2, info.min, info.min + 1, info.min + 2, 1, 2, 3}
    for power in (24, 53):
        if 2**power + 1 <= info.max:
            values |= {2**power + 1, 2**power + 3, 2**power - 1}
            if info.min < 0:
                values |= {-(2**power) - 1, -(2**power) - 3}
    return sorted(v for v in values if v != 0)


def _cube(dtype: str, nodata: Any, seed: int) -> tuple[xr.DataArray, list[list[int]]]:
    """A (time=5, x=40) cube of extreme values with holes (0) where nodata is given; its columns as ints."""
    rng = np.random.default_rng(seed)
    pool = _pool(dtype)
    columns = [[pool[int(rng.integers(len(pool)))] for _ in range(5)] for _ in range(40)]
    if nodata is not None:
        for index, column in enumerate(columns):
            holes = 5 if index == 0 else int(rng.integers(0, 4))  # column 0: never valid
            for row in rng.choice(5, size=holes, replace=False):
                column[int(row)] = 0
    data = np.array(columns, dtype=dtype).T.copy()
    attrs = {} if nodata is None else {"nodata": nodata}
    return xr.DataArray(data, dims=("time", "x"), attrs=attrs), columns


def _half_even(value: Fraction) -> int:
    return round(value)  # Fraction rounds half to even, exactly


def _expected(column: list[int], method: str, nodata: int | None) -> int:
    valid = [v for v in column if nodata is None or v != nodata]
    if not valid:
        assert nodata is not None
        return nodata
    if method == "first":
        return valid[0]
    if method == "last":
        return valid[-1]
    if method == "max":
        return max(valid)
    if method == "min":
        return min(valid)
    if method == "mean":
        return _half_even(Fraction(sum(valid), len(valid)))
    ordered, n = sorted(valid), len(valid)
    return _half_even(Fraction(ordered[(n - 1) // 2] + ordered[n // 2], 2))


@pytest.mark.parametrize("nodata", [None, 0, 0.0, "numpy_float"], ids=["none", "int", "float", "np_float64"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_every_integer_dtype_is_exact(method: str, dtype: str, nodata: Any) -> None:
    given = np.float64(0.0) if nodata == "numpy_float" else nodata
    cube, columns = _cube(dtype, given, seed=DTYPES.index(dtype))
    result = mosaic_array(cube, method=method)  # type: ignore[arg-type]
    assert result.dtype == np.dtype(dtype)
    expected = [_expected(column, method, None if given is None else 0) for column in columns]
    assert [int(v) for v in result.values] == expected


@pytest.mark.parametrize("dtype", ["int32", "uint32", "int64", "uint64"])
@pytest.mark.parametrize("method", METHODS)
def test_a_lazy_integer_cube_is_exact_and_stays_lazy(method: str, dtype: str) -> None:
    cube, columns = _cube(dtype, 0.0, seed=7)
    result = mosaic_array(cube.chunk({"time": 2, "x": 16}), method=method)  # type: ignore[arg-type]
    assert result.chunks is not None
    assert result.dtype == np.dtype(dtype)
    assert [int(v) for v in result.values] == [_expected(column, method, 0) for column in columns]


@pytest.mark.parametrize("method", METHODS)
def test_a_nodata_the_dtype_cannot_hold_matches_nothing_and_changes_nothing(method: str) -> None:
    """``-9999.0`` on a uint64 cube, ``0.5`` on an int64 one: no pixel is nodata, every value stays exact."""
    for dtype, nodata in (("uint64", -9999.0), ("int64", 0.5), ("int64", float("nan"))):
        cube, columns = _cube(dtype, None, seed=3)
        cube.attrs["nodata"] = nodata
        result = mosaic_array(cube, method=method)  # type: ignore[arg-type]
        assert result.dtype == np.dtype(dtype)
        assert [int(v) for v in result.values] == [_expected(column, method, None) for column in columns]


def test_a_float_nodata_equal_to_a_large_int64_as_a_float_is_not_its_neighbour() -> None:
    """nodata 2**53 (as a float) is that integer only: 2**53 + 1, which float64 cannot tell from it, is valid."""
    cube = xr.DataArray(np.array([[2**53 + 1], [2**53]], dtype="int64"), dims=("time", "x"))
    cube.attrs["nodata"] = float(2**53)
    assert mosaic_array(cube, method="last").values.tolist() == [2**53 + 1]
    assert mosaic_array(cube, method="mean").values.tolist() == [2**53 + 1]


def test_small_integer_means_round_as_before() -> None:
    """Half to even, as the float path's ``np.round`` did: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2."""
    cube = xr.DataArray(np.array([[2, 3, -2, 1], [3, 4, -3, 1]], dtype="int16"), dims=("time", "x"))
    assert mosaic_array(cube, method="mean").values.tolist() == [2, 4, -2, 1]
    assert mosaic_array(cube, method="median").values.tolist() == [2, 4, -2, 1]
