"""stitch (0bba4ad checks a chip's coordinates) against predictions whose shape is not their chip's.

A model's output is often not its input's size: a super-resolution head (2x), a U-Net with valid
convolutions (a centre crop), an off-by-one decoder, a Keras model's channels-last ``(h, w, c)``. The chip
(an xarray chip, or the numpy output's GeoMeta, which holds ``shape``) says how many pixels it covers;
stitch places the prediction at the chip's first pixel with the prediction's own shape: a 2x output is
written as 10 m pixels over twice the chip's extent, a centre crop lands in the chip's top-left corner,
``(4, 5, 1)`` becomes 4 bands of 5x1 pixels, silently. The docstring promises a GridMismatchError "when a
prediction is in another CRS or resolution, or not aligned with the template's pixels". A prediction that
is an xarray DataArray with dims ``(x, y)`` is written as if it were ``(y, x)``. The chip's own size, in
either order of its own dims' names, is placed right (holds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr

import terrapipe as tp
from terrapipe.chip import stitch
from terrapipe.core.errors import TerrapipeError

Y = 4_000_075.0 - 10 * np.arange(8)
X = 500_005.0 + 10 * np.arange(8)
TEMPLATE = xr.DataArray(np.zeros((8, 8), "float32"), dims=("y", "x"), coords={"y": Y, "x": X}).rio.write_crs(
    "EPSG:32631"
)
CHIP = xr.DataArray(
    np.arange(1, 21, dtype="float32").reshape(4, 5), dims=("y", "x"), coords={"y": Y[2:6], "x": X[1:6]}
).rio.write_crs("EPSG:32631")

WRONG_SHAPE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "upsampled_2x": lambda v: np.kron(v, np.ones((2, 2), v.dtype)),
    "centre_crop": lambda v: v[1:3, 1:4].copy(),
    "one_row_short": lambda v: v[:3].copy(),
    "channels_last": lambda v: v[..., None].copy(),
}


def _geometa_chip() -> tuple[np.ndarray, Any]:
    """The numpy output's first chip of a 4x4 chipping (rows and columns 0-3), and its GeoMeta."""
    template = TEMPLATE.copy(data=np.arange(64, dtype="float32").reshape(8, 8))
    for values, meta in tp.from_items([template]).chip({"y": 4, "x": 4}, output="numpy"):
        if meta["bounds"][0] == X[0] - 5:
            return np.asarray(values), meta
    raise AssertionError("no chip at the template's first column")


@pytest.mark.parametrize("meta_kind", ["xarray_chip", "geometa"])
@pytest.mark.parametrize("case", list(WRONG_SHAPE))
def test_a_prediction_of_another_shape_than_its_chip_is_refused(case: str, meta_kind: str) -> None:
    if meta_kind == "xarray_chip":
        values, meta = CHIP.values, CHIP
    else:
        values, meta = _geometa_chip()
    with pytest.raises(TerrapipeError):
        stitch([(WRONG_SHAPE[case](values), meta)], TEMPLATE)


def test_an_xarray_prediction_in_another_dim_order_is_placed_by_its_names() -> None:
    try:
        out = stitch([(CHIP.transpose("x", "y"), CHIP)], TEMPLATE)
    except TerrapipeError:
        return
    np.testing.assert_array_equal(out.values, CHIP.reindex_like(TEMPLATE).values)


def test_a_chip_with_its_own_prediction_is_placed_right() -> None:
    """The chip's own values, as numpy or as the xarray chip itself, land on its pixels (holds)."""
    for prediction in (CHIP.values, CHIP):
        out = stitch([(prediction, CHIP)], TEMPLATE)
        np.testing.assert_array_equal(out.values, CHIP.reindex_like(TEMPLATE).values)
