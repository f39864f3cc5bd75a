"""A netCDF-3 file at a URL is opened by its header and read by the ranges a window needs (io/netcdf_classic).

scipy's engine read every variable's values at the open from terrapipe's ranged file objects: a lazy
open_xarray of a remote netCDF-3 file downloaded (and held) the whole file. Now the header is read by
ranges (a long ``history`` included, capped), a window reads its ranges (a record variable's records one
range each, close ones coalesced), and the values, attributes and encodings are scipy's. A file shorter
than its header says, a malformed header and a file changed since the open are ReadErrors naming it.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.io import netcdf_classic
from terrapipe.io.netcdf_classic import ClassicBackend, parse_classic

pytestmark = pytest.mark.filterwarnings("ignore:Cannot close a netcdf_file opened with mmap:RuntimeWarning")


@pytest.fixture
def server(range_server_session: Any) -> Iterator[Any]:
    with range_server_session.cleared() as cleared:
        yield cleared


def _served(server: Any, path: Path) -> tuple[int, int]:
    entry = server.stats()["paths"].get("/" + path.name, {})
    return int(entry.get("requests", 0)), int(entry.get("bytes", 0))


def _big(path: Path) -> xr.Dataset:
    """Two record variables, 2 MiB a record (records farther apart than the coalescing gap)."""
    t, y, x = 5, 512, 1024
    ds = xr.Dataset(
        {
            "v": (("t", "y", "x"), np.arange(t * y * x, dtype="f4").reshape(t, y, x), {"units": "K"}),
            "flag": (("t",), np.arange(t, dtype="i1")),
            "lat": (("y",), np.linspace(-60, 60, y)),
        },
        attrs={"history": "made for a test"},
    )
    ds.to_netcdf(path, engine="scipy", format="NETCDF3_64BIT", unlimited_dims=["t"])
    return ds


def _local(path: Path) -> xr.Dataset:
    return xr.open_dataset(path, engine="scipy", mmap=False).load()


@pytest.mark.parametrize("storage", [None, "storage"], ids=["open_http", "byte layer"])
def test_a_window_of_a_big_file_at_a_url_reads_its_ranges_only(
    server: Any, http_root: Path, storage: str | None
) -> None:
    path = http_root / f"classic-big-{storage}.nc"
    _big(path)
    size = path.stat().st_size
    options = {"storage": tp.Storage(timeout=10, retries=0)} if storage else {}
    ds = tp.open_xarray(server.url_for(path), **options)
    requests, sent = _served(server, path)
    # the first 256 KiB (open_xarray's look at the first bytes), or the tail and the header (the byte layer)
    assert sent < 300_000 < size
    window = ds["v"].isel(t=[0, 2, 4], y=100, x=slice(10, 20)).values
    np.testing.assert_array_equal(window, _local(path)["v"].isel(t=[0, 2, 4], y=100, x=slice(10, 20)).values)
    more_requests, more_sent = _served(server, path)
    assert more_requests - requests == 3  # one range a record: 2 MiB apart
    assert more_sent - sent == 3 * 10 * 4


def test_ranges_are_coalesced_and_the_first_bytes_kept(server: Any, http_root: Path) -> None:
    path = http_root / "classic-flags.nc"
    _big(path)
    ds = tp.open_xarray(server.url_for(path))
    requests, _ = _served(server, path)
    # lat (fixed) is in the first bytes, read with the header: no request
    np.testing.assert_array_equal(ds["lat"][100:110].values, _local(path)["lat"][100:110].values)
    assert _served(server, path)[0] == requests
    # flag's one-byte records are 2 MiB apart: one range each
    np.testing.assert_array_equal(ds["flag"][::2].values, [0, 2, 4])
    assert _served(server, path)[0] - requests == 3
    np.testing.assert_array_equal(ds["v"][1:3, 300:302, :].values, _local(path)["v"][1:3, 300:302, :].values)
    assert _served(server, path)[0] - requests == 5  # two records, each one range of two rows
    small = http_root / "classic-small-records.nc"
    xr.Dataset(
        {"a": (("t", "x"), np.arange(300.0).reshape(100, 3)), "b": ("t", np.arange(100, dtype="i2"))}
    ).to_netcdf(small, engine="scipy", unlimited_dims=["t"])
    ds = tp.open_xarray(server.url_for(small))
    requests, _ = _served(server, small)
    np.testing.assert_array_equal(ds["b"][::3].values, np.arange(100, dtype="i2")[::3])
    assert _served(server, small)[0] == requests  # a small file: read whole with its header


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT"])
@pytest.mark.parametrize("engine", [None, "scipy"])
def test_a_file_at_a_url_is_identical_to_scipy_s_local_read(
    server: Any, http_root: Path, fmt: str, engine: str | None
) -> None:
    path = http_root / f"classic-cf-{fmt}-{engine}.nc"
    ds = xr.Dataset(
        {
            "sst": (("time", "y"), np.array([[1.5, 2.0, np.nan], [4.25, np.nan, 6.0]]), {"units": "degC"}),
            "name": (("time",), np.array(["ab", "c"], dtype="S2")),
            "flag": ((), np.int8(3), {"valid_range": np.array([0, 9], "i1"), "empty": np.array([], "f8")}),
        },
        coords={"time": ("time", np.array(["2001-01-01", "2001-01-03"], dtype="datetime64[ns]"))},
        attrs={"title": "t", "numbers": np.array([1.5, 2.5]), "one": np.int32(7), "blank": ""},
    )
    encoding = {"sst": {"_FillValue": -9, "scale_factor": 0.25, "add_offset": 10.0, "dtype": "i2"}}
    # netCDF4's writer: scipy's puts the scalar 'flag' on the second record (netcdf_classic._check_layout)
    ds.to_netcdf(path, engine="netcdf4", format=fmt, encoding=encoding, unlimited_dims=["time"])
    expected = _local(path)
    got = tp.open_xarray(server.url_for(path), **({"engine": engine} if engine else {}))
    assert isinstance(got, xr.Dataset)
    xr.testing.assert_identical(expected, got.load())
    for name, variable in expected.variables.items():
        assert got[name].dtype == variable.dtype
        for key in ("_FillValue", "scale_factor", "add_offset", "units", "calendar", "dtype"):
            assert repr(got[name].encoding.get(key)) == repr(variable.encoding.get(key)), (name, key)
    assert got.encoding["unlimited_dims"] == {"time"}
    chunked = tp.open_xarray(server.url_for(path), chunks={"time": 1})
    assert isinstance(chunked, xr.Dataset)
    xr.testing.assert_identical(expected, chunked.load())


def test_a_long_header_is_read_by_ranges(server: Any, http_root: Path) -> None:
    path = http_root / "classic-history.nc"
    history = "".join(f"{i}: ncks -O in.nc out.nc\n" for i in range(20_000))  # ~500 KB
    xr.Dataset({"v": ("x", np.arange(4.0))}, attrs={"history": history}).to_netcdf(path, engine="scipy")
    ds = tp.open_xarray(server.url_for(path))
    assert ds.attrs["history"] == history
    np.testing.assert_array_equal(ds["v"].values, np.arange(4.0))
    assert _served(server, path)[0] <= 6  # the first byte, then 64 KiB, x4, x4, ... and the values


def test_a_header_longer_than_the_cap_is_a_read_error(
    server: Any, http_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = http_root / "classic-capped.nc"
    xr.Dataset({"v": ("x", np.arange(4.0))}, attrs={"history": "h" * 300_000}).to_netcdf(path, engine="scipy")
    monkeypatch.setattr(netcdf_classic, "MAX_WHOLE_HEADER", 1 << 17)
    with pytest.raises(tp.ReadError, match=r"classic-capped\.nc.*header is longer than 131072"):
        tp.open_xarray(server.url_for(path))
    assert _served(server, path)[1] < 300_000


@pytest.mark.parametrize("cut", ["values", "last record", "header", "magic"])
def test_a_file_shorter_than_its_header_says_is_a_read_error(server: Any, http_root: Path, cut: str) -> None:
    whole = http_root / "classic-whole.nc"
    _big(whole)
    data = whole.read_bytes()
    header = parse_classic(data)
    keep = {
        "values": header.variables["lat"].begin + 100,
        "last record": header.extent() - 1,
        "header": 40,
        "magic": 3,
    }[cut]
    path = http_root / f"classic-cut-{cut.replace(' ', '-')}.nc"
    path.write_bytes(data[:keep])
    with pytest.raises(tp.ReadError, match=rf"classic-cut-{cut.replace(' ', '-')}\.nc"):
        tp.open_xarray(server.url_for(path), engine="netcdf")


def test_a_file_changed_since_the_open_is_a_read_error_at_the_read(server: Any, http_root: Path) -> None:
    path = http_root / "classic-changed.nc"
    _big(path)
    ds = tp.open_xarray(server.url_for(path))
    path.write_bytes(path.read_bytes()[:-4096])
    with pytest.raises(tp.ReadError, match=r"classic-changed\.nc"):
        ds["v"][4, -1, :].values  # noqa: B018


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("version 3", "not a netCDF-3 file"),
        ("cdf5", "malformed"),
        ("tag", "malformed"),
        ("dim id", "dimension the header does not have"),
        ("nc_type", "nc_type 12"),
        ("nc_type 7", "nc_type 7, not one of CDF-1's"),
    ],
)
def test_a_malformed_header_is_a_value_error_naming_what(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / "m.nc"
    xr.Dataset({"v": (("x",), np.arange(3, dtype="i4"))}).to_netcdf(
        path, engine="scipy", format="NETCDF3_CLASSIC"
    )
    data = bytearray(path.read_bytes())
    # CDF-1, no records: magic(4) numrecs(4) NC_DIMENSION(4) 1(4) name "x"(4+4) len(4) ABSENT(8)
    # NC_VARIABLE(4) 1(4) name "v"(4+4) ndims(4) dimid(4) ABSENT(8) nc_type(4)
    if name == "version 3":
        data[3] = 3
    elif name == "cdf5":  # CDF-1's 32-bit counts read as CDF-5's 64-bit ones
        data[3] = 5
    elif name == "tag":
        data[8:12] = (0x0B).to_bytes(4, "big")
    elif name == "dim id":
        data[56:60] = (3).to_bytes(4, "big")
    elif name == "nc_type":
        data[68:72] = (12).to_bytes(4, "big")
    else:  # CDF-5's unsigned byte in a CDF-1 header
        data[68:72] = (7).to_bytes(4, "big")
    with pytest.raises(ValueError, match=message):
        parse_classic(bytes(data))
    with pytest.raises(ValueError, match=message):
        xr.open_dataset(io.BytesIO(bytes(data)), engine=ClassicBackend)


def test_a_record_dimension_without_records_reads_empty(server: Any, http_root: Path) -> None:
    path = http_root / "classic-no-records.nc"
    xr.Dataset({"v": (("t", "x"), np.zeros((0, 3), "f4")), "c": ("x", np.arange(3.0))}).to_netcdf(
        path, engine="scipy", unlimited_dims=["t"]
    )
    got = tp.open_xarray(server.url_for(path))
    assert isinstance(got, xr.Dataset)
    xr.testing.assert_identical(_local(path), got.load())
    assert got["v"].shape == (0, 3)


def test_a_plain_file_object_reads_by_seek_and_read(tmp_path: Path) -> None:
    path = tmp_path / "plain.nc"
    _big(path)
    with open(path, "rb") as file:
        got = xr.open_dataset(file, engine=ClassicBackend)
        window = got.isel(t=slice(None, None, -2), y=[5, 1, 5], x=-1).load()
    xr.testing.assert_identical(_local(path).isel(t=slice(None, None, -2), y=[5, 1, 5], x=-1), window)


@pytest.mark.parametrize("storage", [None, "storage"], ids=["open_http", "byte layer"])
def test_a_lazy_dataset_at_a_url_pickles_and_reads_in_another_process_s_copy(
    server: Any, http_root: Path, storage: str | None
) -> None:
    path = http_root / f"classic-pickled-{storage}.nc"
    _big(path)
    options = {"storage": tp.Storage(timeout=10, retries=0)} if storage else {}
    ds = tp.open_xarray(server.url_for(path), **options)
    copy = pickle.loads(pickle.dumps(ds))
    expected = _local(path)["v"][2, 200:203, 7:9].values
    np.testing.assert_array_equal(copy["v"][2, 200:203, 7:9].values, expected)


@pytest.mark.parametrize("kind", ["slow", "503", "drop"])
def test_a_failing_read_after_the_open_is_a_read_error_naming_the_file(
    server: Any, http_root: Path, kind: str
) -> None:
    path = http_root / f"classic-failing-{kind}.nc"
    _big(path)
    ds = tp.open_xarray(server.url_for(path), storage=tp.Storage(timeout=1, retries=0))
    if kind == "slow":
        server.fault(f"/{path.name}", status=None, delay=3)
    elif kind == "503":
        server.fault(f"/{path.name}", status=503)
    else:
        server.fault(f"/{path.name}", kind="drop")
    with pytest.raises(tp.ReadError, match=rf"classic-failing-{kind}\.nc"):
        ds["v"][1:3, 200, :].values  # noqa: B018
