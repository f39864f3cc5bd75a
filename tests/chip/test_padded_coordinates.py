"""Coordinates of a padded chip continue the element's grid, in whatever dtype the coordinates have.

chip/build._extend stepped past the end by ``values[-1] - values[-2]`` in the
coordinates' own dtype: for float32 longitudes of a 0.1-degree grid that
difference is off the step by 1e-4 of it, and over a pad of hundreds of
pixels the padded coordinates left the grid (stitch then refused the chip).
Now a float axis steps along the line through its ends, in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError


def _padded(x: np.ndarray, window: int) -> list[np.ndarray]:
    da = xr.DataArray(np.zeros((2, x.size), "float32"), dims=("y", "x"), coords={"y": [0.0, 1.0], "x": x})
    chips = tp.from_items([da]).chip({"y": 2, "x": window}, boundary="pad", pad_value=0)
    return [np.asarray(chip.x.values) for chip in chips]


@pytest.mark.parametrize(
    ("first", "step", "dtype"),
    [
        (-179.95, 0.1, "float32"),  # IMERG's longitudes, east
        (179.95, -0.1, "float32"),  # and west
        (89.95, -0.1, "float32"),
        (500_000.0, 10.0, "float32"),  # UTM metres in float32: ulp 0.03 m
        (0.0, 1 / 3, "float64"),
    ],
)
def test_padded_float_coordinates_stay_on_the_grid(first: float, step: float, dtype: str) -> None:
    n, window = 355, 40  # the last chip reaches 5 pixels past the end
    x = (first + step * np.arange(n)).astype(dtype)
    last = _padded(x, window)[-1]
    assert last.dtype == np.dtype(dtype)
    expected = (first + step * np.arange(n - n % window, n - n % window + window)).astype(dtype)
    np.testing.assert_array_equal(last[: n % window], x[n - n % window :])  # the known part, as it is
    tolerance = np.finfo(dtype).eps * max(abs(first), abs(first + step * n)) * 4
    np.testing.assert_allclose(last.astype("float64"), expected.astype("float64"), rtol=0, atol=tolerance)


def test_a_long_float32_pad_stays_on_the_grid() -> None:
    x = (np.arange(3550) * 0.1 - 179.95).astype("float32")
    last = _padded(x, 400)[-1]  # 250 pixels past the end
    grid = (np.arange(3200, 3600) * 0.1 - 179.95).astype("float32")
    np.testing.assert_array_equal(last[:350], grid[:350])
    # within one float32 step of 180 degrees (1.5e-5) of the grid; stepping by lon[-1] - lon[-2] was 4.6e-4 off
    np.testing.assert_allclose(last, grid, rtol=0, atol=1.6e-5)


def test_an_uneven_axis_keeps_its_last_step() -> None:
    x = np.array([0.0, 1.0, 2.0, 4.0, 7.0])
    assert _padded(x, 4)[-1].tolist() == [7.0, 10.0, 13.0, 16.0]


@pytest.mark.parametrize("dtype", ["int64", "uint16", "datetime64[D]"])
def test_integer_and_time_axes_step_exactly(dtype: str) -> None:
    x = np.arange(0, 50, 5).astype(dtype)
    last = _padded(x, 4)[-1]
    assert last.dtype.kind == x.dtype.kind  # xarray keeps datetimes in seconds
    assert (last[1:] - last[:-1] == x[1] - x[0]).all()


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([20, 10, 0], "uint8"),  # counting down to 0: -10 is not a uint8
        ([20, 10, 0], "uint64"),
        ([100, 110, 120], "int8"),  # 130 is not an int8
        ([2**62, 2**62 + 2**61, 2**63 - 1 - 2**10], "int64"),
    ],
)
def test_integer_coordinates_that_would_wrap_are_refused(values: list[int], dtype: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"boundary='pad' cannot extend .*use boundary='shift'"):
        _padded(np.array(values).astype(dtype), 2)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint64"])
def test_integer_coordinates_that_fit_are_padded(dtype: str) -> None:
    last = _padded(np.array([0, 10, 20]).astype(dtype), 2)[-1]
    assert last.dtype == np.dtype(dtype)
    assert last.tolist() == [20, 30]
