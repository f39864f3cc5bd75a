"""stitch(dtype=) of an integer or bool result (chip/stitch.py).

``overlap="mean"`` with ``dtype="uint8"`` (class ids, a mask) was numpy's bare UFuncTypeError from the
running mean's in-place add; ``overlap="center"`` with ``dtype="uint8"`` stored a prediction of 300.0 as
44 and NaN as 0, silently (numpy's casting on assignment).
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from terrapipe.chip.stitch import stitch
from terrapipe.core.errors import InvalidArgumentError

IMAGE = xr.DataArray(np.zeros((2, 5)), dims=("y", "x"), coords={"y": [0.0, 1.0], "x": np.arange(5.0)})
LEFT, RIGHT = IMAGE.isel(x=slice(0, 3)), IMAGE.isel(x=slice(2, 5))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int64", "bool"])
def test_a_mean_into_an_integer_result_is_rounded_half_to_even(dtype: str) -> None:
    left = np.array([[0, 1, 2], [3, 4, 1]], "uint8")
    right = np.array([[3, 5, 6], [2, 7, 8]], "uint8")
    if dtype == "bool":
        left, right = left % 2, right % 2
    out = stitch([(left, LEFT), (right, RIGHT)], template=IMAGE, dtype=dtype)
    assert out.dtype == np.dtype(dtype)
    middle = np.rint((left[:, 2].astype(float) + right[:, 0]) / 2)  # (2 + 3) / 2 = 2.5 -> 2; (1 + 2) / 2 -> 2
    expected = np.concatenate([left[:, :2], middle[:, None], right[:, 1:]], axis=1).astype(dtype)
    np.testing.assert_array_equal(out.values, expected)


@pytest.mark.parametrize("overlap", ["center", "mean"])
@pytest.mark.parametrize("bad", [300.0, -1.0, np.nan], ids=["above", "below", "nan"])
def test_values_an_integer_result_cannot_hold_are_refused(overlap: str, bad: float) -> None:
    pred = np.array([[0.0, 1.0, bad], [3.0, 4.0, 5.0]])
    with pytest.raises(InvalidArgumentError, match="uint8 result cannot hold"):
        stitch([(pred, LEFT)], template=IMAGE, dtype="uint8", overlap=overlap)  # type: ignore[arg-type]


def test_values_that_fit_are_stored_as_they_are() -> None:
    """Float predictions holding 0..255 into uint8, and int16 into int64 (holds)."""
    pred = np.array([[0.0, 128.0, 255.0], [1.0, 2.0, 3.0]])
    out = stitch([(pred, LEFT)], template=IMAGE, dtype="uint8", overlap="center")
    np.testing.assert_array_equal(out.values[:, :3], pred.astype("uint8"))
    out = stitch([(pred.astype("int16"), LEFT)], template=IMAGE, dtype="int64")
    np.testing.assert_array_equal(out.values[:, :3], pred)
