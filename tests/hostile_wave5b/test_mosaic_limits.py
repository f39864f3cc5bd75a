"""mosaic (5459531) beyond its own tests: a nodata at the dtype's limit, 1-12 steps, lazy cubes, float nodata.

Integer cubes: every method against exact Python integers, nodata equal to the dtype's min or max (as an int
and as a float: ``float(2**64 - 1)`` is ``2**64``, no uint64 value, so it matches nothing), time axes of
1-12 steps (median of even counts), numpy- and dask-backed (all hold). A float32 cube whose nodata is a
``np.float64`` (what C's tests call "as files give it") that float32 cannot hold exactly (``-9999.1``,
``-3.4e38`` written as text in a GeoTIFF tag): GDAL compares in the band's type, so those pixels are
nodata; mosaic compares in float64 and takes them as data.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from terrapipe.stac import mosaic_array

METHODS = ("first", "last", "max", "min", "mean", "median")
DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")


def _expected(column: list[int], method: str, nodata: int | None) -> int | None:
    valid = [v for v in column if v != nodata]
    if not valid:
        return nodata
    ordered, n = sorted(valid), len(valid)
    return {
        "first": valid[0], "last": valid[-1], "max": ordered[-1], "min": ordered[0],
        "mean": round(Fraction(sum(valid), n)), "median": round(Fraction(ordered[(n - 1) // 2] + ordered[n // 2], 2)),
    }[method]  # fmt: skip


def _as_int(nodata: Any, dtype: str) -> int | None:
    info = np.iinfo(dtype)
    whole = int(nodata) if isinstance(nodata, int) else int(float(nodata))
    return whole if info.min <= whole <= info.max and float(whole) == float(nodata) else None


LIMITS = ("min", "max", "min_float", "max_float")
CASES = [(d, lim, False) for d in DTYPES for lim in LIMITS] + [
    (d, lim, True) for d in ("uint8", "int32", "int64", "uint64") for lim in LIMITS
]  # dask: fewer dtypes (each is slow on a shared machine)


@pytest.mark.parametrize(("dtype", "limit", "lazy"), CASES)
def test_integer_cubes_with_nodata_at_a_limit_are_exact(dtype: str, limit: str, lazy: bool) -> None:
    info = np.iinfo(dtype)
    bound = int(info.min if limit.startswith("min") else info.max)
    nodata: Any = float(bound) if limit.endswith("float") else bound
    matches = _as_int(nodata, dtype)
    pool = [
        info.min,
        info.min + 1,
        info.max,
        info.max - 1,
        0,
        1,
        info.max // 2,
        max(int(info.min), info.min // 2 - 1),
    ]
    rng = np.random.default_rng(DTYPES.index(dtype))
    for steps in (1, 4) if lazy else (1, 2, 5, 12):
        columns = [[int(pool[int(rng.integers(len(pool)))]) for _ in range(steps)] for _ in range(48)]
        columns[0] = [bound] * steps  # never valid where the limit is nodata
        data = np.array(columns, dtype=dtype).T.copy()
        cube = xr.DataArray(da.from_array(data, chunks=(1, 16)) if lazy else data, dims=("time", "x"))
        cube.attrs["nodata"] = nodata
        for method in METHODS:
            out = mosaic_array(cube, method=method)
            assert out.dtype == np.dtype(dtype)
            got = [int(v) for v in np.asarray(out.values)]
            want = [_expected(c, method, matches) for c in columns]
            assert got == want, (
                steps,
                method,
                [(g, w) for g, w in zip(got, want, strict=True) if g != w][:3],
            )


@pytest.mark.parametrize("nodata", [-9999.1, 3.4e38, 0.1], ids=["m9999_1", "3_4e38", "0_1"])
def test_a_float64_nodata_matches_its_float32_pixels(nodata: float) -> None:
    hole = np.float32(nodata)
    data = np.array([[hole, 5, hole], [2, hole, hole], [4, hole, hole], [hole, 7, hole]], dtype="float32")
    cube = xr.DataArray(data, dims=("time", "x"), attrs={"nodata": np.float64(nodata)})
    expected = {
        "first": [2, 5],
        "last": [4, 7],
        "max": [4, 7],
        "min": [2, 5],
        "mean": [3, 6],
        "median": [3, 6],
    }
    wrong = {}
    for method in METHODS:
        out = np.asarray(mosaic_array(cube, method=method).values)
        # all nodata: nodata (as float32) or NaN, never a value made of holes
        if out[:2].tolist() != expected[method] or not (out[2] == hole or np.isnan(out[2])):
            wrong[method] = out.tolist()
    assert not wrong, wrong


@pytest.mark.parametrize(
    "nodata", [-9999.1, np.float32(-9999.1), -3.4e38], ids=["py_float", "np_float32", "big"]
)
def test_a_nodata_given_as_python_float_or_float32_matches(nodata: Any) -> None:
    """A Python float (rasterio's nodatavals) or a float32 (rioxarray's _FillValue) matches (holds)."""
    hole = np.float32(nodata)
    cube = xr.DataArray(
        np.array([[hole, 5], [2, hole]], "float32"), dims=("time", "x"), attrs={"nodata": nodata}
    )
    for method in METHODS:
        np.testing.assert_array_equal(np.asarray(mosaic_array(cube, method=method).values), [2, 5])
