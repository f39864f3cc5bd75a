"""A netCDF-4/HDF5 file at a URL reads with the types netCDF4's engine gives the same file on disk.

open_xarray reads a local file with netCDF4's engine and the same file at a URL
with h5netcdf's (netCDF4's takes paths only). Before: an HDF5 boolean (h5py's
enum) was ``bool`` at the URL and ``int8`` on disk; a compound was packed at the
URL and aligned on disk; a compound netCDF4 wrote with trailing padding failed
at every read at the URL (a bare ``ValueError`` from h5netcdf); a file with one
variable-length integer variable did not open at all at the URL; a complex
(h5py's compound ``{r, i}``) was ``complex64`` at the URL, the compound on
disk. Promise: at
the URL, every variable has the dtype, values and stored dtype (encoding) that
xarray + netCDF4 read from the file on disk (the reference), and that
open_xarray reads locally.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from tests.servers.http_range import RangeServer

h5py = pytest.importorskip("h5py")
netcdf4 = pytest.importorskip("netCDF4")

PACKED = np.dtype([("a", "i1"), ("b", "f8")])
ALIGNED = np.dtype([("a", "i1"), ("b", "f8")], align=True)
NESTED = np.dtype([("id", "i2"), ("pos", [("x", "f4"), ("n", "i1")]), ("v", "f8", (2,))])


def _h5py_file(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["flag"] = np.array([True, False, True])
        f["flag2d"] = np.array([[True, False], [False, False]])
        f["packed"] = np.array([(1, 2.5), (3, 4.5)], dtype=PACKED)
        f["aligned"] = np.array([(1, 2.5), (3, 4.5)], dtype=ALIGNED)
        f["nested"] = np.array([(1, (2.0, 3), (4.0, 5.0)), (6, (7.0, 8), (9.0, 10.0))], dtype=NESTED)
        ragged = f.create_dataset("ragged", (3,), dtype=h5py.vlen_dtype(np.dtype("int32")))
        ragged[0], ragged[1], ragged[2] = [1, 2], [3], []
        f["plain"] = np.arange(4.0)
        f["complex"] = np.array([1 + 2j, 3 - 4j], dtype="c8")  # HDF5 compound {r, i}: h5py's complex


def _netcdf4_file(path: Path) -> None:
    with netcdf4.Dataset(path, "w") as nc:
        nc.createDimension("n", 3)
        cloud = nc.createEnumType(np.uint8, "cloud_t", {"clear": 0, "cloudy": 1, "missing": 255})
        v = nc.createVariable("cloud", cloud, ("n",), fill_value=255)
        v[:] = np.array([0, 1, 255], "u1")
        vl = nc.createVLType(np.int16, "vl_t")
        v = nc.createVariable("vl", vl, ("n",))
        v[0], v[1], v[2] = np.array([1, 2], "i2"), np.array([3], "i2"), np.array([], "i2")
        padded = np.dtype([("a", "i1"), ("b", "f8"), ("c", "i2")])  # 24 bytes aligned: trailing padding
        cmp = nc.createCompoundType(padded, "cmp_t")
        v = nc.createVariable("cmp", cmp, ("n",))
        v[:] = np.array([(1, 2.5, 3), (4, 5.5, 6), (7, 8.5, 9)], dtype=np.dtype(padded, align=True))
        nc.createVariable("x", "f4", ("n",))[:] = [1.0, 2.0, 3.0]


@pytest.fixture(scope="module")
def files(http_root: Path, range_server_session: RangeServer) -> dict[str, tuple[Path, str]]:
    root = http_root / "z_hdf5_types"
    root.mkdir(exist_ok=True)
    _h5py_file(root / "h5py_types.h5")
    _netcdf4_file(root / "netcdf4_types.nc")
    return {
        name: (root / name, range_server_session.url_for(root / name))
        for name in ("h5py_types.h5", "netcdf4_types.nc")
    }


def _values(var: xr.DataArray) -> list[object]:
    values = var.values
    if values.dtype == object:
        return [np.asarray(v).tolist() for v in values.ravel()]
    return values.tolist()  # type: ignore[no-any-return]


def _check_same(got: xr.Dataset, reference: xr.Dataset) -> None:
    """Every variable netCDF4 reads reads the same (h5netcdf reads some netCDF-C skips: a nested compound)."""
    assert set(reference.data_vars) <= set(got.data_vars)
    for name, ref in reference.data_vars.items():
        var = got[name]
        assert var.dtype == ref.dtype, name  # before the values: a loaded vlen variable's dtype is object
        assert var.values.dtype == ref.values.dtype, name
        assert var.dtype.itemsize == ref.dtype.itemsize, name
        assert _values(var) == _values(ref) or np.array_equal(var.values, ref.values, equal_nan=True), name
        assert np.dtype(var.encoding["dtype"]) == np.dtype(ref.encoding["dtype"]), name


@pytest.mark.parametrize("name", ["h5py_types.h5", "netcdf4_types.nc"])
def test_the_url_reads_what_netcdf4_reads_on_disk(files: dict[str, tuple[Path, str]], name: str) -> None:
    path, url = files[name]
    _check_same(tp.open_xarray(url), xr.open_dataset(path, engine="netcdf4"))
    _check_same(tp.open_xarray(str(path)), xr.open_dataset(path, engine="netcdf4"))


def test_a_boolean_is_int8_both_ways(files: dict[str, tuple[Path, str]]) -> None:
    """What a pipeline does with it is the same: ``~flag`` is not ``[False, True, False]`` one way only."""
    path, url = files["h5py_types.h5"]
    local, remote = tp.open_xarray(str(path)), tp.open_xarray(url)
    assert remote.flag.dtype == np.int8
    np.testing.assert_array_equal((~remote.flag).values, (~local.flag).values)
    np.testing.assert_array_equal(remote.flag2d[::-1, 1].values, local.flag2d[::-1, 1].values)


def test_a_slice_of_a_compound_reads_at_the_url(files: dict[str, tuple[Path, str]]) -> None:
    path, url = files["netcdf4_types.nc"]
    remote, reference = tp.open_xarray(url), xr.open_dataset(path, engine="netcdf4")
    assert remote.cmp[1:].values.tolist() == reference.cmp[1:].values.tolist()
    assert remote.cmp[::-2].values.tolist() == reference.cmp[::-2].values.tolist()
    assert remote.vl[1].values.tolist() == [3]


def test_h5netcdf_asked_by_name_opens_a_file_with_a_ragged_variable(
    files: dict[str, tuple[Path, str]],
) -> None:
    """engine='h5netcdf' keeps h5netcdf's own types, but the file opens and reads (it failed at the open)."""
    _, url = files["h5py_types.h5"]
    ds = tp.open_xarray(url, engine="h5netcdf", phony_dims="sort")
    assert [v.tolist() for v in ds.ragged.values] == [[1, 2], [3], []]
    assert ds.flag.dtype == np.bool_  # as h5netcdf reads it: the caller chose that engine
    np.testing.assert_array_equal(ds.plain.values, np.arange(4.0))


def test_a_dask_read_at_the_url_gives_the_same_values(files: dict[str, tuple[Path, str]]) -> None:
    pytest.importorskip("dask")
    path, url = files["h5py_types.h5"]
    remote = tp.open_xarray(url, chunks={})
    reference = xr.open_dataset(path, engine="netcdf4")
    for name in ("flag", "packed", "aligned", "plain"):
        assert remote[name].dtype == reference[name].dtype
        assert remote[name].values.tolist() == reference[name].values.tolist()
