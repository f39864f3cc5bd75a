"""Coordinates a regular grid cannot come from: a NaN or infinite value, a zero step.

300b635: "an axis whose coordinates are not evenly spaced ... has no transform (None)", where the
first two coordinates' step was taken silently. Its siblings: a NaN or an infinity among the
coordinates (a coordinate's ``_FillValue`` decoded as NaN, as CF writers leave a missing value), and
all coordinates equal (a step of 0). Each comparison with NaN is false, so ``[5, 15, NaN, 35]`` passes as
evenly spaced with a step of 10; a NaN first coordinate gives a NaN transform; a zero step a singular
one. Each must be no transform (None), or a named error: never a grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

from terrapipe.core.coords import transform_from_coords
from terrapipe.core.errors import TerrapipeError
from terrapipe.fuse.grid import grid_of

REGULAR_X = [5.0, 15.0, 25.0, 35.0]
REGULAR_Y = [35.0, 25.0, 15.0, 5.0]


def _array(xs: list[float], ys: list[float]) -> xr.DataArray:
    da = xr.DataArray(np.zeros((len(ys), len(xs))), dims=("y", "x"), coords={"y": ys, "x": xs})
    return da.rio.write_crs("EPSG:32631")


def _no_grid(da: xr.DataArray) -> bool:
    """Whether neither transform_from_coords nor grid_of gives a grid (None or a named error)."""
    found: list[Any] = []
    for get in (lambda: transform_from_coords(da, "x", "y"), lambda: grid_of(da)):
        try:
            found.append(get())
        except TerrapipeError:
            found.append(None)
    return all(f is None for f in found)


BAD = {
    "nan_inside_x": ([5.0, 15.0, np.nan, 35.0], REGULAR_Y),
    "nan_last_x": ([5.0, 15.0, 25.0, np.nan], REGULAR_Y),
    "nan_first_x": ([np.nan, 15.0, 25.0, 35.0], REGULAR_Y),
    "inf_last_x": ([5.0, 15.0, 25.0, np.inf], REGULAR_Y),
    "nan_inside_y": (REGULAR_X, [35.0, np.nan, 15.0, 5.0]),
    "zero_step_x": ([5.0, 5.0, 5.0, 5.0], REGULAR_Y),
    "zero_step_y": (REGULAR_X, [5.0, 5.0, 5.0, 5.0]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_coordinates_with_no_regular_grid_give_none(case: str) -> None:
    assert _no_grid(_array(*BAD[case]))


def test_regular_coordinates_still_give_their_grid() -> None:
    da = _array(REGULAR_X, REGULAR_Y)
    assert tuple(transform_from_coords(da, "x", "y"))[:6] == (10.0, 0.0, 0.0, 0.0, -10.0, 40.0)
    assert tuple(grid_of(da).transform)[:6] == (10.0, 0.0, 0.0, 0.0, -10.0, 40.0)
