"""Truncated netCDF files of every on-disk format through ``open_xarray``: a named error, never values.

f1d33e2 reads a local netCDF-3 file (``CDF\\x01``, ``CDF\\x02``) with scipy, which refuses one cut
short, where netCDF4's engine read the missing values as zeros. The third netCDF-3 format,
CDF-5 (``CDF\\x05``, "64-bit data": PnetCDF, CDO's ``-f nc5``, ``format="NETCDF3_64BIT_DATA"``),
still goes to netCDF4's engine, which reads a CDF-5 file cut at half without an error: half of its
values are other bytes of the file, silently. At a URL every ``CDF`` file goes to scipy, which
cannot read CDF-5: its bare ``IndexError`` reaches the user. netCDF-4 (HDF5) files cut short are
refused by HDF5 itself, and CDF-1/CDF-2 by scipy (controls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from terrapipe.core.errors import TerrapipeError
from terrapipe.io import open_xarray

pytest.importorskip("netCDF4")

VALUES = np.arange(1, 1 + 20 * 30 * 40, dtype="float32").reshape(20, 30, 40)
FORMATS = {
    "cdf5": ("netcdf4", "NETCDF3_64BIT_DATA"),
    "cdf2": ("scipy", "NETCDF3_64BIT"),
    "cdf1": ("scipy", "NETCDF3_CLASSIC"),
    "netcdf4": ("netcdf4", "NETCDF4"),
}


def _dataset() -> xr.Dataset:
    return xr.Dataset(
        {"v": (("time", "y", "x"), VALUES)},
        coords={"time": np.arange(20), "y": np.arange(30.0), "x": np.arange(40.0)},
    )


def _written(folder: Path, name: str) -> Path:
    engine, fmt = FORMATS[name]
    path = folder / f"{name}.nc"
    _dataset().to_netcdf(path, engine=engine, format=fmt)
    return path


def _cut(path: Path) -> Path:
    data = path.read_bytes()
    cut = path.with_name(f"cut_{path.name}")
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _read_or_refused(path: Any) -> np.ndarray | None:
    try:
        return np.asarray(open_xarray(str(path))["v"].values)
    except TerrapipeError:
        return None


@pytest.mark.parametrize(
    "name",
    [
        "cdf5",
        "cdf2",
        "cdf1",
        "netcdf4",
    ],
)
def test_a_truncated_file_is_refused_never_read(tmp_path: Path, name: str) -> None:
    cut = _cut(_written(tmp_path, name))
    got = _read_or_refused(cut)
    assert got is None, f"read {int((got != VALUES).sum())} wrong values of {VALUES.size} without an error"


@pytest.mark.parametrize("name", list(FORMATS))
def test_the_whole_file_reads_right(tmp_path: Path, name: str) -> None:
    got = _read_or_refused(_written(tmp_path, name))
    assert got is not None
    np.testing.assert_array_equal(got, VALUES)


@pytest.mark.parametrize(
    "name",
    [
        "cdf5",
        "cdf2",
        "cdf1",
        "netcdf4",
    ],
)
def test_a_whole_file_at_a_url_reads_right_or_is_refused(range_server_session: Any, name: str) -> None:
    folder = range_server_session.root / "netcdf_formats"
    folder.mkdir(exist_ok=True)
    path = _written(folder, name)
    got = _read_or_refused(range_server_session.url_for(path))
    if got is not None:
        np.testing.assert_array_equal(got, VALUES)


def test_a_truncated_file_with_a_large_header_is_refused(tmp_path: Path) -> None:
    """NCO and CDO append a line to 'history' per command: headers of hundreds of KB exist."""
    ds = _dataset()
    ds.attrs["history"] = "ncks -O -d time,0,19 in.nc out.nc\n" * 9000  # ~300 KB
    path = tmp_path / "big_header.nc"
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF3_64BIT_DATA")
    data = path.read_bytes()
    cut = tmp_path / "cut_big_header.nc"
    cut.write_bytes(data[: len(data) - VALUES.nbytes // 2])  # half of the variable's data gone
    got = _read_or_refused(cut)
    assert got is None, f"read {int((got != VALUES).sum())} wrong values of {VALUES.size} without an error"
