"""A Zarr store at a URL whose server answers missing files with an HTML page is refused as such.

Static hosts set up for web sites (a single-page app's fallback, a bucket
website's error document) answer a missing file with ``200`` and an HTML page
(a "soft 404"). zarr asks for keys that do not exist (a v2 store's
``zarr.json``, v3's ``.zgroup``, missing chunks): read_zarr said the store's
"metadata is not valid JSON ... the file is corrupt or truncated;
re-download it", or that a chunk "does not match the store's metadata, which
was edited". Promise: a ``ReadError`` naming the key, the soft 404 and what
to do; the same store on a server that answers 404 reads as zarr-python
and xarray read it (missing chunks at the fill value); a chunk fetched by the direct reader
is refused the same way. A netCDF/HDF5 URL answered with a page says so too
(it said the bytes were "not the signature of a valid netCDF4 file").
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io.http_store import HTTPStore
from terrapipe.io.zarr_read_ahead import store_fetcher
from tests.servers.http_range import RangeServer

zarr = pytest.importorskip("zarr")

PAGE = b"<!DOCTYPE html>\n<html><body><h1>Welcome</h1></body></html>"


class _SoftNotFound(SimpleHTTPRequestHandler):
    """Files of a folder; a missing one is ``200`` with an HTML page."""

    def log_message(self, *args: Any) -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if code != 404:
            super().send_error(code, message, explain)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(PAGE)


def _store(path: Path, zarr_format: int) -> None:
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    names = {"dimension_names": ["y", "x"]} if zarr_format == 3 else {}
    array = group.create_array("v", shape=(4, 4), chunks=(2, 2), dtype="f4", fill_value=-1.0, **names)
    array[0:2, 0:2] = 5.0  # the other chunks are missing: the fill value
    if zarr_format == 2:
        array.attrs["_ARRAY_DIMENSIONS"] = ["y", "x"]
    zarr.consolidate_metadata(str(path))


@pytest.fixture(scope="module")
def root(http_root: Path) -> Path:
    folder = http_root / "z_soft_404"
    folder.mkdir(exist_ok=True)
    for zarr_format in (2, 3):
        _store(folder / f"v{zarr_format}.zarr", zarr_format)
    return folder


@pytest.fixture(scope="module")
def soft_server(root: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_SoftNotFound, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_soft_404_server_is_named(soft_server: str, zarr_format: int) -> None:
    url = f"{soft_server}/v{zarr_format}.zarr"
    with pytest.raises(ReadError) as caught:
        tp.open_zarr(url).v.values  # noqa: B018
    text = str(caught.value)
    assert "soft 404" in text
    assert url in text
    assert "404" in text.split(";")[-1]  # what to do
    assert "corrupt" not in text
    assert "edited" not in text


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_the_same_store_on_a_404_server_reads_as_zarr(
    root: Path, range_server_session: RangeServer, zarr_format: int
) -> None:
    path = root / f"v{zarr_format}.zarr"
    expected = xr.open_zarr(path, chunks=None).v.values  # v2: xarray masks the fill value (NaN)
    got = tp.open_zarr(range_server_session.url_for(path), variables="v").values
    np.testing.assert_array_equal(got, expected)
    assert np.count_nonzero(got == 5.0) == 4


def test_the_direct_reader_refuses_a_page_for_a_missing_chunk(soft_server: str) -> None:
    fetch = store_fetcher(HTTPStore(f"{soft_server}/v3.zarr"), "v/")
    assert fetch is not None
    assert fetch("c/0/0") is not None  # a real chunk
    with pytest.raises(ReadError, match="soft 404"):
        fetch("c/1/1")


@pytest.mark.parametrize("name", ["missing.nc", "missing.h5"])
def test_a_page_for_a_netcdf_url_is_named(soft_server: str, name: str) -> None:
    """The same server for a netCDF/HDF5 file: 'not the signature of a valid netCDF4 file; check the file' before."""
    with pytest.raises(ReadError, match="HTML page") as caught:
        tp.open_xarray(f"{soft_server}/{name}")
    assert "signature" not in str(caught.value)
