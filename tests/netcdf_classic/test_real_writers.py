"""Files real writers make, read at a URL as on disk: the same values, dtypes, attributes, dims, coordinates.

xarray's ``to_netcdf`` through scipy, netCDF4 (NETCDF3_CLASSIC, NETCDF3_64BIT_OFFSET,
NETCDF3_64BIT_DATA, NETCDF4_CLASSIC, NETCDF4) and h5netcdf, with CF encodings (packed int16 with
scale_factor/add_offset/_FillValue, a float _FillValue with NaNs, valid_range, flag values, times in
hours with an int32 dtype, a noleap calendar, char arrays and variable-length strings, a scalar grid
mapping), fixed or with an unlimited time, opened decoded, undecoded and with each decoding off.
One exception, by design: scipy's writer puts the scalar ``crs`` on the second record of an unlimited
time (scipy/scipy#10937; the file netCDF-C refuses): a ReadError naming the file both ways.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import terrapipe as tp

pytestmark = pytest.mark.filterwarnings("ignore:Cannot close a netcdf_file opened with mmap:RuntimeWarning")

WRITERS = [
    ("scipy", "NETCDF3_CLASSIC"),
    ("scipy", "NETCDF3_64BIT"),
    ("netcdf4", "NETCDF3_CLASSIC"),
    ("netcdf4", "NETCDF3_64BIT_OFFSET"),
    ("netcdf4", "NETCDF3_64BIT_DATA"),
    ("netcdf4", "NETCDF4_CLASSIC"),
    ("netcdf4", "NETCDF4"),
    ("h5netcdf", "NETCDF4"),
]
DECODINGS = [{}, {"decode_times": False}, {"mask_and_scale": False}, {"decode_cf": False}]


@pytest.fixture
def server(range_server_session: Any) -> Iterator[Any]:
    with range_server_session.cleared() as cleared:
        yield cleared


def _dataset(strings: bool) -> xr.Dataset:
    rng = np.random.default_rng(2)
    shape = (4, 3, 5)
    stations = ["alpha", "b", "", "délta"]
    return xr.Dataset(
        {
            "tas": (
                ("time", "y", "x"),
                rng.normal(280, 5, shape).astype("f4"),
                {"units": "K", "valid_range": np.array([200, 350], "f4")},
            ),
            "pr": (("time", "y", "x"), np.where(rng.random(shape) < 0.2, np.nan, rng.random(shape))),
            "mask": (
                ("y", "x"),
                rng.integers(0, 2, (3, 5)).astype("i1"),
                {"flag_values": np.array([0, 1], "i1"), "flag_meanings": "land sea"},
            ),
            "station": (
                ("s",),
                np.array(stations, dtype=object)
                if strings
                else np.array([s.encode() for s in stations], "S6"),
            ),
            "code": (("s",), np.array([b"ab", b"c", b"", b"zz"], dtype="S2")),
            "crs": ((), np.int32(0), {"grid_mapping_name": "latitude_longitude"}),
            "day": (
                ("time",),
                np.arange(1, 5, dtype="i4"),
                {"units": "days since 1850-01-01", "calendar": "noleap"},
            ),
        },
        coords={
            "time": pd.date_range("2001-01-01", periods=4, freq="6h"),
            "y": [10.0, 20.0, 30.0],
            "x": np.arange(5.0),
        },
        attrs={"title": "t", "history": "made for a test", "vec": np.array([1.5, 2.5]), "n": np.int16(3)},
    )


ENCODING = {
    "tas": {"dtype": "i2", "scale_factor": 0.01, "add_offset": 280.0, "_FillValue": -32768},
    "pr": {"_FillValue": -999.0, "dtype": "f4"},
    "time": {"units": "hours since 2001-01-01", "calendar": "proleptic_gregorian", "dtype": "i4"},
}


@pytest.mark.parametrize("unlimited", [False, True], ids=["fixed", "unlimited"])
@pytest.mark.parametrize(("engine", "fmt"), WRITERS, ids=[f"{e}-{f}" for e, f in WRITERS])
def test_a_real_writer_s_file_reads_at_a_url_as_on_disk(
    server: Any, http_root: Path, engine: str, fmt: str, unlimited: bool
) -> None:
    path = http_root / f"writer-{engine}-{fmt}-{unlimited}-{uuid.uuid4().hex[:8]}.nc"
    _dataset(strings=fmt == "NETCDF4").to_netcdf(
        path, engine=engine, format=fmt, encoding=ENCODING, unlimited_dims=["time"] if unlimited else []
    )
    if engine == "scipy" and unlimited:  # the scalar crs written over the second record (module doc)
        for href in (str(path), server.url_for(path)):
            with pytest.raises(tp.ReadError, match=rf"{path.name}.*'crs'.*inside the records"):
                tp.open_xarray(href)
        return
    for decoding in DECODINGS:
        local = tp.open_xarray(str(path), **decoding)
        remote = tp.open_xarray(server.url_for(path), **decoding)
        assert isinstance(local, xr.Dataset)
        assert isinstance(remote, xr.Dataset)
        xr.testing.assert_identical(local.load(), remote.load())
        for name, variable in local.variables.items():
            assert remote[name].dtype == variable.dtype, (name, decoding)
            for key in ("_FillValue", "scale_factor", "add_offset", "units", "calendar"):
                assert repr(remote[name].encoding.get(key)) == repr(variable.encoding.get(key)), (name, key)
            assert remote[name].encoding.get("dtype") == variable.encoding.get("dtype"), name
    decoded = tp.open_xarray(server.url_for(path)).load()
    assert decoded["tas"].dtype == np.float64  # int16 unpacked by a float64 scale_factor
    assert np.isnan(decoded["pr"].values).any()
    assert decoded["station"].values.tolist()[3] in ("délta", "délta".encode())
