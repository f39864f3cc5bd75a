"""netCDF files through ``open_xarray`` where netCDF4 is installed (as on most climate users' machines).

Locally, netCDF4's engine (libnetcdf) opens a truncated netCDF-3 file without an error and reads the values
past the cut as zeros; scipy refuses it, so a netCDF-3 file is read with scipy where it is installed (HDF5
refuses a truncated netCDF-4 file itself).

Remotely:

``open_xarray(url)`` guesses the engine ``"netcdf"`` from the extension, and locally that is the first of
netCDF4 / h5netcdf / scipy installed. netCDF4's engine takes only a path, and reads an ``https://`` one as an
OPeNDAP endpoint (a plain file server is not one): a remote file must be read by an engine that takes a file
object (terrapipe's ranged HTTP file), chosen by the file's first bytes: scipy for netCDF-3 (``CDF``),
h5netcdf for netCDF-4/HDF5 (ERA5 from the CDS, CMIP6). Before, the URL went to netCDF4 as is.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import MissingDependencyError, TerrapipeError

pytest.importorskip("netCDF4")


def _cube() -> xr.Dataset:
    times = xr.DataArray(
        [0, 1, 2], dims="time", attrs={"units": "days since 2000-02-28", "calendar": "noleap"}
    )
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), np.arange(3 * 4 * 5, dtype="float32").reshape(3, 4, 5))},
        coords={"time": times, "lat": [1.5, 0.5, -0.5, -1.5], "lon": np.arange(5) + 0.5},
        attrs={"title": "cf"},
    )


@pytest.fixture
def served(range_server_session: Any) -> Any:
    with range_server_session.cleared() as server:
        yield server


@pytest.mark.parametrize(
    ("engine", "fmt"), [("netcdf4", "NETCDF4"), ("netcdf4", "NETCDF3_64BIT"), ("scipy", "NETCDF3_CLASSIC")]
)
def test_a_netcdf_file_over_http_is_what_xarray_reads_locally(served: Any, engine: str, fmt: str) -> None:
    assert "netcdf4" in xr.backends.list_engines()  # the local first choice, which cannot read a URL
    path: Path = served.root / f"cf-{uuid.uuid4().hex[:8]}.nc"
    _cube().to_netcdf(path, engine=engine, format=fmt)
    local = xr.open_dataset(path).load()
    remote = tp.open_xarray(served.url_for(path))
    xr.testing.assert_identical(remote.load(), local)
    assert remote.time.values[1].calendar == "noleap"
    assert served.stats()["total_requests"] > 0  # read through terrapipe's HTTP file, not by OPeNDAP


def test_a_netcdf_4_file_over_http_without_h5netcdf_is_a_named_error(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path: Path = served.root / f"cf-{uuid.uuid4().hex[:8]}.nc"
    _cube().to_netcdf(path, engine="netcdf4", format="NETCDF4")
    engines = {k: v for k, v in xr.backends.list_engines().items() if k != "h5netcdf"}
    monkeypatch.setattr(xr.backends, "list_engines", lambda: engines)
    with pytest.raises(MissingDependencyError, match="h5netcdf"):
        tp.open_xarray(served.url_for(path) + "?sig=secret")


def _without_h5py(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make h5py look uninstalled, as h5netcdf >= 1.8 allows (xarray still lists the engine)."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "h5py" else find_spec(name, *a)
    )


def test_h5netcdf_without_h5py_is_a_named_error_never_a_bare_import_error(
    served: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """h5netcdf 1.8 installs without h5py; every open then raised a bare ImportError from inside it."""
    path: Path = served.root / f"cf-{uuid.uuid4().hex[:8]}.nc"
    _cube().to_netcdf(path, engine="netcdf4", format="NETCDF4")
    _without_h5py(monkeypatch)
    with pytest.raises(MissingDependencyError, match="h5py"):
        tp.open_xarray(served.url_for(path))
    with pytest.raises(MissingDependencyError, match="h5py"):
        tp.open_xarray(str(path), engine="h5netcdf")
    # netCDF-3 over HTTP (scipy) and local netCDF-4 (netCDF4's engine) need no h5py
    path3 = served.root / f"cf-{uuid.uuid4().hex[:8]}.nc"
    _cube().to_netcdf(path3, engine="scipy", format="NETCDF3_CLASSIC")
    xr.testing.assert_identical(tp.open_xarray(served.url_for(path3)).load(), xr.open_dataset(path3).load())
    xr.testing.assert_identical(tp.open_xarray(str(path)).load(), xr.open_dataset(path).load())


def test_a_file_that_is_not_netcdf_over_http_is_a_named_error(served: Any) -> None:
    path: Path = served.root / f"cf-{uuid.uuid4().hex[:8]}.nc"
    path.write_bytes(b"<html>not found</html>" * 10)
    with pytest.raises(TerrapipeError) as info:
        tp.open_xarray(served.url_for(path))
    assert path.name in str(info.value)


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT", "NETCDF4"])
@pytest.mark.parametrize("where", ["local", "http"])
def test_a_truncated_netcdf_file_is_a_read_error_never_zeros(
    served: Any, tmp_path: Path, fmt: str, where: str
) -> None:
    folder = served.root if where == "http" else tmp_path
    whole = folder / f"whole-{uuid.uuid4().hex[:8]}.nc"
    values = np.arange(1, 10_001, dtype="float32").reshape(100, 100)
    xr.Dataset({"v": (("y", "x"), values)}).to_netcdf(whole, engine="netcdf4", format=fmt)
    data = whole.read_bytes()
    for cut in (len(data) // 2, len(data) - 100):
        path = folder / f"cut-{uuid.uuid4().hex[:8]}.nc"
        path.write_bytes(data[:cut])
        href = served.url_for(path) if where == "http" else str(path)
        with pytest.raises(TerrapipeError) as info:
            tp.open_xarray(href).v.values  # noqa: B018  (the read is the test)
        assert path.name in str(info.value)
    np.testing.assert_array_equal(
        tp.open_xarray(served.url_for(whole) if where == "http" else whole).v, values
    )


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT", "NETCDF3_64BIT_DATA"])
@pytest.mark.parametrize("records", [1, 2], ids=["one_record_variable", "two_record_variables"])
def test_a_netcdf_3_file_with_a_record_dimension_is_checked_by_its_header(
    tmp_path: Path, fmt: str, records: int
) -> None:
    """Model output written with an unlimited time (CMOR, CDO): cut anywhere, even with netCDF4's engine."""
    values = np.arange(1, 7 * 20 * 30 + 1, dtype="float64").reshape(7, 20, 30)
    names = ["tas", "pr"][:records]
    ds = xr.Dataset({name: (("time", "y", "x"), values * (k + 1)) for k, name in enumerate(names)})
    ds["orog"] = (("y", "x"), values[0].astype("float32"))
    whole = tmp_path / "whole.nc"
    ds.to_netcdf(whole, engine="netcdf4", format=fmt, unlimited_dims=["time"])
    for engine in ("netcdf4", None):
        opened = tp.open_xarray(whole, engine=engine) if engine else tp.open_xarray(whole)
        np.testing.assert_array_equal(opened[names[-1]].values, values * records)
    data = whole.read_bytes()
    for cut in (len(data) - 8, len(data) // 2, 2000):
        path = tmp_path / f"cut{cut}.nc"
        path.write_bytes(data[:cut])
        with pytest.raises(TerrapipeError, match=r"truncated|cannot open"):
            tp.open_xarray(path, engine="netcdf4")[names[-1]].values  # noqa: B018


@pytest.mark.parametrize("dtype", ["i1", "S1", "i2"])
@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT"])
def test_a_single_unpadded_record_variable_reads_on_disk_as_at_a_url(
    served: Any, dtype: str, fmt: str
) -> None:
    """netCDF-C stores one record variable of records not a multiple of 4 bytes unpadded; scipy cannot read it.

    On disk open_xarray chose scipy for every netCDF-3 file ('cannot reshape': a ReadError for a good
    file) while the same file at a URL read right; now both read what netCDF4's engine reads.
    """
    import netCDF4

    path: Path = served.root / f"rec-{uuid.uuid4().hex[:8]}.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.createDimension("t", None)
        var = nc.createVariable("v", dtype, ("t",))
        var[:3] = np.array([b"a", b"b", b"c"]) if dtype == "S1" else np.arange(3, dtype=dtype)
        nc.createVariable("fixed", "i1", ())
    expected = xr.open_dataset(path, engine="netcdf4").load()
    xr.testing.assert_identical(tp.open_xarray(str(path)).load(), expected)
    xr.testing.assert_identical(tp.open_xarray(served.url_for(path)).load(), expected)
    cut = served.root / f"cut-{uuid.uuid4().hex[:8]}.nc"
    cut.write_bytes(path.read_bytes()[:-4])  # netCDF-C may pad the end: 4 bytes hold a value here
    with pytest.raises(tp.ReadError, match=cut.name):
        tp.open_xarray(str(cut))
