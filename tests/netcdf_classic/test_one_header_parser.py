"""One netCDF-3 header parser (io/netcdf_classic.parse_classic) for local files and files at URLs.

A local open parsed the header twice with two parsers (the engine's choice, then the truncation check
with io/netcdf_header.classic_extent); now it is read and parsed once. The parser learnt CDF-5 (64-bit
counts, unsigned and 64-bit types) and netCDF's streamed record count, so:

- a CDF-5 file at a URL reads as the same file on disk (it was refused at the URL);
- a file whose record count is "streaming" (all bits set) is a ReadError on disk and at a URL: scipy
  read it as 0 records (the data silently gone) and netCDF4 as four billion (a MemoryError);
- a slice with a negative step that selects nothing is an empty array, not a bare IndexError from inside
  xarray, on disk and at a URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.io import netcdf_classic, xarray_open


@pytest.fixture
def server(range_server_session: Any) -> Iterator[Any]:
    with range_server_session.cleared() as cleared:
        yield cleared


def _cdf5(path: Path, *, records: int = 4) -> None:
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_DATA") as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 3)
        nc.title = "CDF-5"
        nc.big = np.uint64(2**63 + 5)
        nc.pair = np.array([1, 65535], dtype="u2")
        count = nc.createVariable("count", "u8", ("time", "x"), fill_value=np.uint64(2**64 - 1))
        count[:] = (np.arange(records * 3, dtype="u8") + 2**40).reshape(records, 3)
        count[1, 1] = 2**64 - 1
        flag = nc.createVariable("flag", "u1", ("x",))
        flag[:] = [0, 128, 255]
        flag.valid_range = np.array([0, 200], dtype="u1")
        offset = nc.createVariable("offset", "i8", ("x",))
        offset[:] = [-(2**62), 0, 2**62]
        time = nc.createVariable("time", "u4", ("time",))
        time[:] = np.arange(records, dtype="u4")
        time.units = "hours since 2001-01-01"
        level = nc.createVariable("level", "i2", ("time",))
        level[:] = np.arange(records, dtype="i2")
        level.scale_factor, level.add_offset = np.float32(0.5), np.float32(10)


def test_a_cdf5_file_at_a_url_reads_as_on_disk(server: Any, http_root: Path) -> None:
    path = http_root / f"cdf5-{uuid.uuid4().hex[:8]}.nc"
    _cdf5(path)
    local = tp.open_xarray(str(path)).load()
    remote = tp.open_xarray(server.url_for(path))
    assert isinstance(remote, xr.Dataset)
    xr.testing.assert_identical(local, remote.load())
    for name, variable in local.variables.items():
        assert remote[name].dtype == variable.dtype, name
    assert local["count"].dtype == np.float64
    assert np.isnan(local["count"].values[1, 1])
    assert remote["flag"].values.tolist() == [0, 128, 255]
    assert remote.attrs["big"] == 2**63 + 5
    assert remote.attrs["pair"].dtype == np.dtype("u2")
    window = tp.open_xarray(server.url_for(path))["offset"][::-1].values
    assert window.tolist() == [2**62, 0, -(2**62)]


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"])
def test_a_streamed_record_count_is_a_read_error_on_disk_and_at_a_url(
    server: Any, http_root: Path, fmt: str
) -> None:
    path = http_root / f"streamed-{fmt}-{uuid.uuid4().hex[:8]}.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.createDimension("t", None)
        nc.createDimension("x", 3)
        nc.createVariable("v", "f4", ("t", "x"))[:] = np.arange(12.0).reshape(4, 3)
        nc.createVariable("w", "i2", ("t",))[:] = np.arange(4)
    data = bytearray(path.read_bytes())
    width = 8 if fmt == "NETCDF3_64BIT_DATA" else 4
    data[4 : 4 + width] = b"\xff" * width  # netCDF's STREAMING
    path.write_bytes(bytes(data))
    for href in (str(path), server.url_for(path)):
        for engine in ({}, {"engine": "netcdf4"}) if href == str(path) else ({},):
            with pytest.raises(tp.ReadError, match=rf"{path.name}.*streaming"):
                tp.open_xarray(href, **engine)


def test_a_streamed_record_count_without_record_variables_reads(tmp_path: Path) -> None:
    path = tmp_path / "streamed-fixed.nc"
    xr.Dataset({"v": ("x", np.arange(3.0))}).to_netcdf(path, engine="scipy", format="NETCDF3_CLASSIC")
    data = bytearray(path.read_bytes())
    data[4:8] = b"\xff" * 4
    path.write_bytes(bytes(data))
    header = netcdf_classic.parse_classic(bytes(data))
    assert header.streaming
    assert header.records == 0
    assert tp.open_xarray(str(path))["v"].values.tolist() == [0.0, 1.0, 2.0]


def test_a_local_open_reads_and_parses_the_header_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "once.nc"
    xr.Dataset({"v": (("t", "x"), np.zeros((2, 3), "i1"))}).to_netcdf(
        path, engine="netcdf4", format="NETCDF3_CLASSIC", unlimited_dims=["t"]
    )
    parsed: list[int] = []
    parse = netcdf_classic.parse_classic

    def counted(data: bytes) -> Any:
        parsed.append(len(data))
        return parse(data)

    monkeypatch.setattr(netcdf_classic, "parse_classic", counted)
    assert not hasattr(xarray_open, "local_extent")  # the second parser's way in is gone
    for engine in ({}, {"engine": "netcdf4"}, {"engine": "scipy"}):
        parsed.clear()
        tp.open_xarray(str(path), **engine)
        assert len(parsed) == 1, engine


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_DATA"])
def test_a_local_header_longer_than_the_first_read_is_checked(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"long-{fmt}.nc"
    history = "".join(f"{i}: ncks -O in.nc out.nc\n" for i in range(20_000))  # ~500 KB, past 256 KiB
    ds = xr.Dataset({"v": (("t", "x"), np.arange(300.0).reshape(100, 3))}, attrs={"history": history})
    ds.to_netcdf(path, engine="netcdf4", format=fmt, unlimited_dims=["t"])
    assert tp.open_xarray(str(path)).attrs["history"] == history
    cut = tmp_path / f"long-cut-{fmt}.nc"
    data = path.read_bytes()
    cut.write_bytes(data[: netcdf_classic.parse_classic(data).extent() - 100])  # netCDF-C may add bytes
    with pytest.raises(tp.ReadError, match=r"long-cut.*truncated"):
        tp.open_xarray(str(cut), engine="netcdf4")


def test_a_local_file_ending_inside_its_header_is_a_read_error_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "head-cut.nc"
    xr.Dataset({"v": ("x", np.arange(3.0))}, attrs={"title": "x" * 500}).to_netcdf(path, engine="scipy")
    path.write_bytes(path.read_bytes()[:300])
    for engine in ({}, {"engine": "netcdf4"}):
        with pytest.raises(tp.ReadError, match=r"head-cut\.nc.*truncated.*inside its netCDF-3 header"):
            tp.open_xarray(str(path), **engine)


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT_DATA", "NETCDF4"])
def test_an_empty_slice_with_a_negative_step_is_empty_on_disk_and_at_a_url(
    server: Any, http_root: Path, fmt: str
) -> None:
    path = http_root / f"empty-step-{fmt}-{uuid.uuid4().hex[:8]}.nc"
    xr.Dataset({"v": (("t", "x"), np.arange(6.0).reshape(2, 3))}).to_netcdf(
        path, engine="netcdf4", format=fmt
    )
    # netCDF-4 at a URL is h5netcdf's lazy array, xarray's adapter unwrapped: still its IndexError there
    for href in (str(path), server.url_for(path)) if fmt != "NETCDF4" else (str(path),):
        ds = tp.open_xarray(href)
        assert ds["v"][0:-1:-1].shape == (0, 3)
        assert ds["v"].isel(x=slice(None, 0, -1), t=1).values.tolist() == [5.0, 4.0]
        assert ds["v"].isel(x=slice(0, None, -1)).load().shape == (2, 1)
        assert ds.isel(t=slice(None, 0, -1), x=slice(1, 1, -2)).load()["v"].shape == (1, 0)


def test_a_file_changed_between_its_header_check_and_its_open_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The truncation check read one file, the engine would open another: netCDF4 reads the cut as zeros."""
    path = tmp_path / "swapped.nc"
    values = np.arange(1.0, 30_001.0)
    xr.Dataset({"v": ("x", values)}).to_netcdf(path, engine="netcdf4", format="NETCDF3_CLASSIC")
    whole = path.read_bytes()
    read_header = xarray_open.local_header

    def then_cut(name: Any) -> Any:
        found = read_header(name)
        path.write_bytes(whole[: len(whole) // 2])  # cut right after the check (a download restarted)
        return found

    monkeypatch.setattr(xarray_open, "local_header", then_cut)
    with pytest.raises(tp.ReadError, match=r"swapped\.nc.*changed"):
        tp.open_xarray(str(path), engine="netcdf4")["v"].values  # noqa: B018  (was half zeros)
