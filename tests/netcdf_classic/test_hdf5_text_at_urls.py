"""HDF5 text at a URL (h5netcdf) read as netCDF-C reads it on disk (netCDF4): io/netcdf_c_strings.

Before: a variable-length ASCII string dataset holding a byte that is not ASCII opened at the URL and
was a bare UnicodeDecodeError at the read (a ReadError at the open on disk); a text attribute with a NUL
read 'ab\\x00c' at the URL and 'abc' on disk, one with latin-1 bytes kept them as lone surrogates
('caf\\udce9', which cannot be written out again) where netCDF4 gives 'caf\\ufffd'; a boolean attribute,
which netCDF-C does not read, was there only at the URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp

h5py = pytest.importorskip("h5py")


@pytest.fixture
def server(range_server_session: Any) -> Iterator[Any]:
    with range_server_session.cleared() as cleared:
        yield cleared


def _h5(root: Path, stem: str) -> Path:
    return root / f"{stem}-{uuid.uuid4().hex[:8]}.h5"


def test_a_variable_length_string_not_utf8_is_a_read_error_at_the_open_both_ways(
    server: Any, http_root: Path
) -> None:
    path = _h5(http_root, "vlen-ascii")
    with h5py.File(path, "w") as f:
        f.create_dataset("s", data=np.array([b"a", b"b\xff"], dtype=object), dtype=h5py.string_dtype("ascii"))
        f.create_dataset("v", data=np.arange(2.0))
    for href in (str(path), server.url_for(path)):
        with pytest.raises(tp.ReadError, match=path.name):
            tp.open_xarray(href)


def test_good_variable_length_strings_read_the_same_both_ways(server: Any, http_root: Path) -> None:
    path = _h5(http_root, "vlen-good")
    with h5py.File(path, "w") as f:
        f.create_dataset("u", data=np.array(["a", "été", ""], dtype=object), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("s", data=np.array([b"ab", b""], dtype=object), dtype=h5py.string_dtype("ascii"))
    local = tp.open_xarray(str(path)).load()
    remote = tp.open_xarray(server.url_for(path)).load()
    xr.testing.assert_identical(local, remote)
    assert remote["u"].values.tolist() == ["a", "été", ""]


def test_text_attributes_read_as_netcdf4_reads_them(server: Any, http_root: Path) -> None:
    path = _h5(http_root, "attrs")
    with h5py.File(path, "w") as f:
        f.attrs["title"] = np.bytes_(b"t\x00itle")
        f.attrs["flag"] = np.bool_(True)
        d = f.create_dataset("v", data=np.arange(3.0))
        d.attrs["fixed"] = np.bytes_(b"ab\x00c")
        d.attrs["latin1"] = np.bytes_(b"caf\xe9")
        d.attrs["vlen"] = "été"
        d.attrs["texts"] = np.array([b"x", b"yy"], dtype="S2")
        d.attrs["bool"] = np.bool_(False)
        d.attrs["u64"] = np.uint64(2**64 - 1)
    local = tp.open_xarray(str(path))
    remote = tp.open_xarray(server.url_for(path))
    assert remote.attrs == local.attrs == {"title": "title"}
    assert dict(remote["v"].attrs) == dict(local["v"].attrs)
    assert remote["v"].attrs["fixed"] == "abc"
    assert remote["v"].attrs["latin1"] == "caf\ufffd"
    assert "bool" not in remote["v"].attrs
    remote.to_netcdf(http_root / f"written-{uuid.uuid4().hex[:8]}.nc")  # lone surrogates could not be
