"""A chip's ``meta["time"]`` is ISO 8601 time or nothing, never a raw number.

dd216bd takes a chip's time from the coordinate CF's attributes call time (``standard_name="time"``,
``axis="T"``: ERA5's ``valid_time``) when none is named ``time``. A file opened with
``decode_times=False`` (or a store whose units xarray could not decode) keeps such a coordinate as
its raw numbers (``hours since 1900-01-01``), and the chip's GeoMeta then says ``time: ('1090000',
'1090001')``, text that reads as no date at all where ``meta["time"]`` promises ISO 8601 (what
``stitch`` and ``zip_grids`` compare, and what a sample's consumer parses). Asserted: ISO dates
(decoded from the units) or ``None``; a decoded coordinate gives its dates (a control).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr

import terrapipe as tp

Y = 3999995.0 - 10 * np.arange(4)
X = 500005.0 + 10 * np.arange(4)
RAW = np.array([1_090_000, 1_090_001])  # hours since 1900-01-01: 2024-05-06T16:00 and 17:00
CASES = {
    "valid_time_standard_name": ("valid_time", {"standard_name": "time", "units": "hours since 1900-01-01"}),
    "axis_T": ("t", {"axis": "T", "units": "hours since 1900-01-01"}),
}


def _meta_time(name: str, values: Any, attrs: dict[str, Any]) -> Any:
    da = xr.DataArray(
        np.zeros((2, 4, 4), "f4"),
        dims=(name, "y", "x"),
        coords={name: (name, values, attrs), "y": Y, "x": X},
    ).rio.write_crs("EPSG:32631")
    _, meta = next(iter(tp.from_items([da]).chip({"y": 2, "x": 2}, output="numpy")))
    return meta["time"]


def _iso(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("case", list(CASES))
def test_an_undecoded_time_coordinate_is_no_raw_number_in_meta(case: str) -> None:
    name, attrs = CASES[case]
    time = _meta_time(name, RAW, attrs)
    assert time is None or all(_iso(t) for t in (time if isinstance(time, tuple) else (time,))), time


@pytest.mark.parametrize("case", list(CASES))
def test_a_decoded_time_coordinate_gives_its_dates(case: str) -> None:
    name, attrs = CASES[case]
    decoded = np.array(["2024-05-06T16:00", "2024-05-06T17:00"], dtype="datetime64[ns]")
    time = _meta_time(name, decoded, {k: v for k, v in attrs.items() if k != "units"})
    assert time == ("2024-05-06T16:00:00", "2024-05-06T17:00:00")
