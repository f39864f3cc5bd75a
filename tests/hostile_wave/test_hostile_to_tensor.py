"""Hostile chips for to_tensor: dtype= conversions that would change values, fills a dtype cannot hold."""

from __future__ import annotations

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import torch
import xarray as xr

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.tensor.convert import to_sample


def _chip(values: list[object], dtype: str, **attrs: object) -> xr.DataArray:
    row = np.asarray(values, dtype=dtype)
    data = np.stack([row, row])[None]
    coords = {"y": [1.5, 0.5], "x": np.arange(row.size) + 0.5}
    return xr.DataArray(data, dims=("band", "y", "x"), coords=coords, attrs=attrs).rio.write_crs("EPSG:32631")


@pytest.mark.parametrize(
    ("values", "dtype", "target", "says"),
    [
        ([1.0, 300.0], "float32", torch.uint8, "outside 0..255"),  # was 44
        ([0.2, 0.9], "float32", torch.uint8, "fractions"),  # reflectances: were all 0
        ([np.nan, 3.0], "float32", torch.int16, "NaN"),  # was a RuntimeWarning and garbage
        ([-1, 3], "int16", torch.uint8, "outside"),  # was 255
        ([65535, 3], "uint16", torch.int16, "outside"),  # was -1
        ([0, 2], "uint16", torch.bool, "other than 0 and 1"),  # was True
        ([1e300, 3], "float64", torch.float32, "beyond"),  # was inf
        ([1e5, 3], "float32", torch.float16, "beyond"),  # was inf
        ([1 + 2j, 3], "complex64", torch.float32, "imaginary"),  # was a ComplexWarning
    ],
)
def test_a_dtype_that_would_change_values_is_refused(
    values: list[object], dtype: str, target: torch.dtype, says: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=says):
        to_sample(_chip(values, dtype), dtype=target)


@pytest.mark.parametrize(
    ("values", "dtype", "target"),
    [
        ([1.0, 255.0], "float32", torch.uint8),  # whole numbers in range
        ([np.nan, 3.5], "float64", torch.float32),  # NaN stays NaN; float rounding is a float cast
        ([0, 1], "uint16", torch.bool),
        ([65535, 3], "uint16", torch.int32),  # safe: not looked at
        ([-5, 3], "int16", torch.float16),
        ([1 + 0j, 3], "complex64", torch.float32),
    ],
)
def test_a_dtype_that_keeps_the_values_converts(
    values: list[object], dtype: str, target: torch.dtype
) -> None:
    image = to_sample(_chip(values, dtype), dtype=target)["image"]
    assert image.dtype == target
    expected = torch.tensor(np.real(np.asarray(values, dtype=dtype)).astype("float64"))
    assert torch.equal(torch.isnan(image[0, 0].double()), torch.isnan(expected))
    ok = ~torch.isnan(expected)
    assert torch.equal(image[0, 0].double()[ok], expected[ok])


@pytest.mark.parametrize("fill", [-1, 1.5, float("nan"), 70000])
def test_a_fill_value_the_dtype_cannot_hold_is_refused(fill: float) -> None:
    chip = _chip([0, 7], "uint16", _FillValue=0)
    with pytest.raises(InvalidArgumentError, match="fill_value"):  # -1 was 65535, 1.5 was 1
        to_sample(chip, nodata="fill", fill_value=fill)


def test_fills_that_fit_and_odd_byte_orders() -> None:
    filled = to_sample(_chip([0, 7], ">u2", _FillValue=0), nodata="fill", fill_value=5)
    assert filled["image"].tolist() == [[[5, 7], [5, 7]]]
    assert filled["variables"]["valid"].tolist() == [[False, True], [False, True]]
    floats = to_sample(_chip([np.nan, 7.0], ">f4"), nodata="fill", fill_value=-1)
    assert floats["image"].tolist() == [[[-1.0, 7.0], [-1.0, 7.0]]]
    assert to_sample(_chip([True, False], "bool"))["image"].tolist() == [[[True, False], [True, False]]]


def test_an_integer_mask_that_mask_dtype_cannot_hold_is_refused() -> None:
    image = _chip([1, 2], "uint16")
    ds = xr.Dataset({"image": image, "mask": image.isel(band=0, drop=True).astype("int16") * 300})
    with pytest.raises(InvalidArgumentError, match="mask"):
        to_sample(ds, mask_dtype=torch.uint8)
    assert to_sample(ds)["mask"].tolist() == [[300, 600], [300, 600]]  # int64 by default
