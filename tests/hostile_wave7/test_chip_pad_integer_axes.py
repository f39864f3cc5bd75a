"""boundary='pad' past the end of an integer coordinate axis (chip/build._extend, P's file).

2845237 continues float axes on their float64 line; integer axes still step in their own dtype, so an
unsigned axis counting down to 0 (row numbers, a northing in whole metres stored uint) continues past 0
as 65436 (uint16 wraps): the padded chip's coordinates jump, silently (numpy says only 'overflow').
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.chip
from terrapipe.core.errors import TerrapipeError


def _padded_y(dtype: str) -> list[object]:
    y = np.array([200, 100, 0]).astype(dtype)
    da = xr.DataArray(np.zeros((3, 5)), dims=("y", "x"), coords={"y": y, "x": np.arange(5.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        chips = list(tp.from_items([da]).chip({"y": 2, "x": 5}, boundary="pad"))
    return [chip["y"].values.tolist() for chip in chips]


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64"])
def test_an_unsigned_axis_counting_down_is_never_padded_by_wrapping(dtype: str) -> None:
    try:
        padded = _padded_y(dtype)
    except TerrapipeError:
        return  # refused: fine
    assert padded[1][1] == -100


def test_a_signed_axis_counting_down_is_padded_on_its_step() -> None:
    """int16 200, 100, 0 padded: [0, -100] (holds)."""
    assert _padded_y("int16") == [[200, 100], [0, -100]]
