"""Fixed-length HDF5 strings at a URL against the same file on disk, after a020a4c (io/xarray_open, the lead's).

a020a4c decodes an HDF5 file's fixed-length strings read at a URL (h5netcdf) as netCDF-C does on disk
(netCDF4): UTF-8, lazily. Strings netCDF-C reads otherwise: an embedded NUL ends a netCDF-C string
(``b"a\\x00b"`` is ``"a"`` on disk, ``"a\\x00b"`` at the URL: ``ds.s == "a"`` differs silently), and bytes
that are not UTF-8 make the disk open a ReadError but the URL's read a bare UnicodeDecodeError.
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
    root = tmp_path_factory.mktemp("hdf5_strings")
    with h5py.File(root / "nul.h5", "w") as f:
        f["s"] = np.array([b"a\x00b", b"cd"], "S3")
        f["u"] = np.array(["é".encode(), b"xy"], "S2")
    with h5py.File(root / "latin.h5", "w") as f:
        f["s"] = np.array([b"caf\xe9", b"ok"], "S4")  # latin-1 bytes in an ASCII-charset dataset
    with files_server(root) as url:
        yield root, url


def test_a_string_with_a_nul_reads_as_on_disk(served: tuple[Path, str]) -> None:
    root, url = served
    local, remote = tp.open_xarray(str(root / "nul.h5")), tp.open_xarray(url + "/nul.h5")
    assert remote["s"].values.tolist() == local["s"].values.tolist()


def test_utf8_strings_read_as_on_disk(served: tuple[Path, str]) -> None:
    """Two-byte UTF-8 strings (é) and plain ones: the same values both ways (holds)."""
    root, url = served
    local, remote = tp.open_xarray(str(root / "nul.h5")), tp.open_xarray(url + "/nul.h5")
    assert remote["u"].values.tolist() == local["u"].values.tolist() == ["é", "xy"]


def test_strings_that_are_not_utf8_are_a_read_error_at_a_url(served: tuple[Path, str]) -> None:
    root, url = served
    with pytest.raises(tp.ReadError):
        tp.open_xarray(str(root / "latin.h5"))
    with pytest.raises(tp.ReadError):
        tp.open_xarray(url + "/latin.h5")["s"].values  # noqa: B018
