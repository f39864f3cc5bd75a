"""A selection that is empty with a negative step reads as an empty array, as numpy gives it, from every reader.

``v[0:0:-1]``, ``isel(x=slice(0, 10, -1))`` and ``isel(o=slice(None, 0, -1))`` on a
one-value dimension select nothing. xarray's indexing adapter asks the backend
for the last element of that empty range: a bare ``IndexError`` from inside
xarray for a netCDF-4/HDF5 file at a URL (h5netcdf), and, through
``read_zarr``'s chunk check, a ``ReadError`` saying the Zarr store could not be
read ("check the file") for a store that is fine. Promise: every reader gives
what numpy gives on the same values, local or at a URL, Zarr, netCDF-3,
netCDF-4 and plain HDF5 alike; the non-empty negative steps beside them keep
reading right.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from tests.servers.http_range import RangeServer

h5py = pytest.importorskip("h5py")

V = np.arange(12.0).reshape(3, 4)
ONE = np.array([5.0])

#: Selections of ``v`` (dims y, x) and of ``one`` (dim o); the empty ones failed.
V_KEYS = [
    {"x": slice(0, 0, -1)},
    {"x": slice(0, 10, -1)},
    {"x": slice(None, 0, -1), "y": slice(0, 2, -1)},
    {"x": slice(None, None, -1)},
    {"x": slice(-1, -5, -2)},
    {"x": slice(10, None, -1), "y": slice(2, 0, -1)},
]
ONE_KEYS = [{"o": slice(None, 0, -1)}, {"o": slice(0, None, -1)}, {"o": slice(None, None, -1)}]


@pytest.fixture(scope="module")
def files(http_root: Path, range_server_session: RangeServer) -> dict[str, str]:
    root = http_root / "z_empty_negative_slices"
    root.mkdir(exist_ok=True)
    ds = xr.Dataset({"v": (("y", "x"), V), "one": (("o",), ONE)})
    ds.to_netcdf(root / "a4.nc", engine="netcdf4")
    ds.to_netcdf(root / "a3.nc", engine="scipy")
    ds.to_zarr(root / "a.zarr", encoding={"v": {"chunks": (2, 3)}}, zarr_format=3)
    ds.to_zarr(root / "a2.zarr", encoding={"v": {"chunks": (2, 3)}}, zarr_format=2)
    with h5py.File(root / "plain.h5", "w") as f:  # no dimension scales: phony dimensions
        f["v"] = V
    found: dict[str, str] = {}
    for name in ("a4.nc", "a3.nc", "a.zarr", "a2.zarr", "plain.h5"):
        found[f"{name} local"] = str(root / name)
        found[f"{name} url"] = range_server_session.url_for(root / name)
    return found


def _cases() -> list[tuple[str, str, dict[str, slice]]]:
    sources = [f"{n} {w}" for n in ("a4.nc", "a3.nc", "a.zarr", "a2.zarr") for w in ("local", "url")]
    return [(s, "v", k) for s in sources for k in V_KEYS] + [(s, "one", k) for s in sources for k in ONE_KEYS]


@pytest.mark.parametrize(("source", "name", "key"), _cases(), ids=repr)
def test_a_selection_reads_as_numpy_gives_it(
    files: dict[str, str], source: str, name: str, key: dict[str, slice]
) -> None:
    ds = tp.open_xarray(files[source])
    expected = xr.Dataset({"v": (("y", "x"), V), "one": (("o",), ONE)})[name].isel(key).values
    got = ds[name].isel(key)
    np.testing.assert_array_equal(got.values, expected)
    assert got.shape == expected.shape
    # the Variable itself (no index alignment in between)
    variable = ds[name].variable[tuple(key.get(d, slice(None)) for d in ds[name].dims)]
    np.testing.assert_array_equal(variable.values, expected)


@pytest.mark.parametrize("where", ["local", "url"])
def test_a_plain_hdf5_dataset_reads_empty_negative_slices(files: dict[str, str], where: str) -> None:
    ds = tp.open_xarray(files[f"plain.h5 {where}"])
    (var,) = ds.data_vars.values()
    for key in ((slice(None), slice(0, 0, -1)), (slice(0, 2, -1), slice(None, None, -1))):
        np.testing.assert_array_equal(var.variable[key].values, V[key])


def test_read_zarr_reads_an_empty_negative_selection(files: dict[str, str]) -> None:
    """Through the stage (what a pipeline uses), local and at a URL."""
    for where in ("local", "url"):
        (ds,) = list(tp.from_items([files[f"a.zarr {where}"]]).read_zarr())
        assert ds.v.isel(x=slice(0, 0, -1)).values.shape == (3, 0)
