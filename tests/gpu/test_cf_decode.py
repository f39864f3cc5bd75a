"""CFDecode: xarray's mask-and-scale, with the array's own methods (checked against xarray's decoders)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from terrapipe.gpu.cf_decode import CFDecode


def xarray_decoded(values, attrs):
    return xr.conventions.decode_cf_variable("v", xr.Variable(("x",), values, attrs))


@pytest.mark.filterwarnings("ignore:variable 'v' has multiple fill values")
@pytest.mark.parametrize(
    "attrs",
    [
        {"_FillValue": -1, "scale_factor": 0.5},
        {"missing_value": np.array([-9, -8], dtype="int16"), "add_offset": 10.0},
        {"_FillValue": -1, "missing_value": -9, "scale_factor": 0.25, "add_offset": -3.0},
        {"scale_factor": np.float32(2.0)},
        {"_FillValue": np.int16(-1)},
    ],
)
def test_same_as_xarray_mask_and_scale(attrs):
    values = np.array([3, -1, -9, -8, 0, 7], dtype="int16")
    want = xarray_decoded(values, attrs)
    decode = CFDecode.from_attrs(attrs, values.dtype, want.dtype)
    got = decode(values)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want.values)
    assert values.tolist() == [3, -1, -9, -8, 0, 7]  # the read buffer is left alone


def test_nan_fill_on_floats_is_nothing_to_do_and_values_pass_through():
    values = np.array([1.0, np.nan], dtype="float32")
    decode = CFDecode.from_attrs({"_FillValue": np.nan}, values.dtype, values.dtype)
    assert decode.identity
    assert decode(values) is values


def test_zero_dimensional_values():
    decode = CFDecode.from_attrs({"_FillValue": -1, "scale_factor": 2.0}, "int16", "float64")
    assert float(decode(np.asarray(np.int16(4)))) == 8.0
    assert np.isnan(decode(np.asarray(np.int16(-1))))
