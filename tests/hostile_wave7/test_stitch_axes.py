"""chip then stitch gives the image back, whatever its coordinate axes hold (chip/stitch.py).

Coordinates other sessions did not try: float32 lon/lat of a 0.1-degree global grid (IMERG, GPM:
3600 columns, where ``ref[1] - ref[0]`` in float32 is off the step by 1e-4 of it), unsigned
integer axes counting down, and a template one pixel high or wide (no step at all).
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.chip
from terrapipe.chip.stitch import stitch
from terrapipe.core.errors import GridMismatchError


def _image(y: np.ndarray, x: np.ndarray, ydim: str = "y", xdim: str = "x") -> xr.DataArray:
    values = np.random.default_rng(7).random((y.size, x.size)).astype("float32")
    return xr.DataArray(values, dims=(ydim, xdim), coords={ydim: y, xdim: x})


def _round_trip(image: xr.DataArray, size: dict[str, int], **kwargs: object) -> None:
    chips = list(tp.from_items([image]).chip(size, **kwargs))
    out = stitch(((chip.values, chip) for chip in chips), template=image)
    np.testing.assert_array_equal(out.values, image.values)


IMERG_LON = (np.arange(3600) * 0.1 - 179.95).astype("float32")
IMERG_LAT = (89.95 - np.arange(6) * 0.1).astype("float32")


@pytest.mark.parametrize("reverse", [False, True], ids=["east", "west"])
def test_a_float32_global_tenth_degree_grid_comes_back_whole(reverse: bool) -> None:
    """IMERG's float32 lon/lat: every chip lies on the template (was refused: 'not the template's')."""
    lon = IMERG_LON[::-1].copy() if reverse else IMERG_LON
    image = _image(IMERG_LAT, lon, "lat", "lon").rio.write_crs("EPSG:4326")
    _round_trip(image, {"lat": 6, "lon": 400})


def test_a_float32_grid_with_padded_chips_comes_back_whole() -> None:
    """Chips padded past the east end continue the template's line (their coordinates too)."""
    image = _image(IMERG_LAT, IMERG_LON[:3550], "lat", "lon")
    _round_trip(image, {"lat": 6, "lon": 400}, boundary="pad")


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "uint64", "int16"])
def test_integer_axes_counting_down_come_back_whole(dtype: str) -> None:
    """y as unsigned integers counting down (row numbers, a northing in metres): ref[1] - ref[0] wrapped."""
    y = np.arange(600, 0, -100).astype(dtype)
    x = np.arange(0, 1000, 100).astype(dtype)
    _round_trip(_image(y, x), {"y": 3, "x": 5})


def test_a_chip_missing_a_one_row_template_is_refused() -> None:
    """A template one pixel high has no step: a chip from another row was put on it, silently."""
    template = xr.DataArray(np.zeros((1, 10)), dims=("y", "x"), coords={"y": [5.0], "x": np.arange(10.0)})
    other = xr.DataArray(np.ones((1, 4)), dims=("y", "x"), coords={"y": [15.0], "x": np.arange(4.0)})
    with pytest.raises(GridMismatchError, match=r"'y' coordinate 5\.0"):
        stitch([(other.values, other)], template=template)


def test_a_chip_missing_a_one_column_template_is_refused() -> None:
    template = xr.DataArray(np.zeros((4, 1)), dims=("y", "x"), coords={"y": np.arange(4.0), "x": [5.0]})
    other = xr.DataArray(np.ones((2, 1)), dims=("y", "x"), coords={"y": [1.0, 2.0], "x": [7.0]})
    with pytest.raises(GridMismatchError, match=r"'x' coordinate 5\.0"):
        stitch([(other.values, other)], template=template)


def test_chips_of_a_one_row_template_come_back_whole() -> None:
    """The same one-row image's own chips (and a float32 copy of its coordinate) are placed (holds)."""
    image = _image(np.array([5.0]), np.arange(10.0))
    _round_trip(image, {"y": 1, "x": 4}, boundary="shift")
    chip = image.isel(x=slice(2, 6)).assign_coords(y=np.array([5.0], "float32"))
    out = stitch([(chip.values, chip)], template=image)
    np.testing.assert_array_equal(out.values[0, 2:6], image.values[0, 2:6])


def test_a_chip_with_a_nan_coordinate_is_a_grid_mismatch() -> None:
    """A NaN first coordinate (a decoded _FillValue) was round(nan): a bare ValueError."""
    image = _image(np.arange(4.0), np.arange(10.0))
    chip = image.isel(x=slice(0, 4)).assign_coords(x=[np.nan, 1.0, 2.0, 3.0])
    with pytest.raises(GridMismatchError):
        stitch([(chip.values, chip)], template=image)
