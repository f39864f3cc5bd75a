"""One HDF5 file that is not netCDF (h5py-written: no dimension scales), read locally and over HTTP.

open_xarray reads a local HDF5 file with netCDF4's engine (xarray's first choice) and the same file at a
URL with h5netcdf's (f1d33e2: netCDF4's takes paths only). For a netCDF-4 file both agree; for a plain
HDF5 file they do not: other phony dimension names, and a fixed-length string dataset comes back as
``str`` locally and ``bytes`` remotely, so ``ds.s == "x"`` is silently all False at the URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import terrapipe as tp
from tests.hostile_wave7.serving import files_server

h5py = pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("hdf5")
    with h5py.File(root / "plain.h5", "w") as f:
        f["a"] = np.arange(12.0).reshape(3, 4)
        f["b"] = np.arange(4, dtype="i2")
        f["s"] = np.array([b"x", b"yy"])
    with files_server(root) as url:
        yield root, url


def _shown(ds: object) -> dict[str, tuple[int, list[object]]]:
    return {
        str(name): (var.ndim, var.values.ravel().tolist())
        for name, var in ds.data_vars.items()  # type: ignore[attr-defined]
    }


def test_values_and_shapes_agree(served: tuple[Path, str]) -> None:
    """The numbers read the same both ways (holds)."""
    root, url = served
    local, remote = tp.open_xarray(str(root / "plain.h5")), tp.open_xarray(url + "/plain.h5")
    for name in ("a", "b"):
        np.testing.assert_array_equal(local[name].values, remote[name].values)


def test_the_same_hdf5_file_reads_the_same_locally_and_at_a_url(served: tuple[Path, str]) -> None:
    root, url = served
    local, remote = tp.open_xarray(str(root / "plain.h5")), tp.open_xarray(url + "/plain.h5")
    assert _shown(local) == _shown(remote)
    assert {n: v.dims for n, v in local.data_vars.items()} == {n: v.dims for n, v in remote.data_vars.items()}
