"""The direct Zarr chunk decoder on remote stores (HTTP, and HTTP through obstore) against zarr's own reads.

Stores are served by the range server of ``tests/servers/http_range.py``, the
latency server of ``tests/servers/latency_http.py`` and a real S3 server
(``rclone serve s3``, ``tests/servers/object_stores.py``), all subprocesses on
127.0.0.1. A missing chunk (404) reads as the fill value, as in zarr; any
other failure of one chunk is a ReadError naming the chunk's URL.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io.http_store import HTTPStore
from terrapipe.io.zarr_direct import DirectZarrArray, direct_zarr, remote_fetcher
from terrapipe.io.zarr_object_store import zarr_object_store
from tests.chip.test_zarr_direct import write
from tests.servers.http_range import RangeServer, start_range_server
from tests.servers.latency_http import LatencyServer, start_latency_server
from tests.servers.object_stores import (
    ALLOW_SKIP_ENV,
    S3_KEY_ID,
    S3_SECRET,
    Server,
    ServerMissingError,
    start_s3_server,
)

zarr = pytest.importorskip("zarr")
pytest.importorskip("obstore")

LAYOUTS = {  # name: (format, compressor, dtype, endian)
    "v3-zstd-u16": (3, "zstd", "uint16", "little"),
    "v3-blosc-f32": (3, "blosc", "float32", "little"),
    "v3-gzip-i8": (3, "gzip", "int8", "little"),
    "v3-none-f64-big": (3, "none", "float64", "big"),
    "v2-zstd-i32": (2, "zstd", "int32", "little"),
    "v2-blosc-u16": (2, "blosc", "uint16", "little"),
    "v2-none-f32": (2, "none", "float32", "little"),
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("remote-zarr")
    expected = {}
    for name, (fmt, compressor, dtype, endian) in LAYOUTS.items():
        expected[name] = write(root / f"{name}.zarr", fmt, compressor, dtype, endian=endian)
        zarr.consolidate_metadata(str(root / f"{name}.zarr"))
    return root, expected


@pytest.fixture(scope="module")
def server(stores: tuple[Path, dict[str, np.ndarray]]) -> Iterator[RangeServer]:
    running = start_range_server(stores[0])
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def slow(stores: tuple[Path, dict[str, np.ndarray]]) -> Iterator[LatencyServer]:
    running = start_latency_server(stores[0], latency=0.005)
    try:
        yield running
    finally:
        running.stop()


def _store(how: str, url: str) -> object:
    if how == "http":
        return HTTPStore(url, retries=0)
    return zarr_object_store(url, tp.Storage(retries=0))  # http(s) with storage=: obstore


def _open(store: object) -> xr.Dataset:
    return xr.open_zarr(store, chunks=None, consolidated=True, mask_and_scale=False)


def _boxes(shape: tuple[int, ...], n: int = 6) -> Iterator[tuple[slice, ...]]:
    rng = np.random.default_rng(1)
    for _ in range(n):
        lo = [int(rng.integers(0, s)) for s in shape]
        hi = [int(rng.integers(a + 1, s + 1)) for a, s in zip(lo, shape, strict=True)]
        yield tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


CASES = [("http", name) for name in LAYOUTS] + [
    ("obstore", name) for name in ("v3-blosc-f32", "v3-none-f64-big", "v2-zstd-i32")
]


@pytest.mark.parametrize(("how", "name"), CASES)
def test_remote_direct_reads_match_zarr(stores, server, how, name):
    expected = stores[1][name]
    ds = _open(_store(how, f"{server.url}/{name}.zarr"))
    direct = direct_zarr(ds.v.variable)
    by_zarr = ds.v.values  # zarr-python's own read
    np.testing.assert_array_equal(by_zarr, expected)
    assert isinstance(direct, DirectZarrArray)
    assert direct.fetch is not None  # the remote path, not a local folder
    whole = tuple(slice(0, n) for n in expected.shape)  # missing chunks (rows 8..) included
    buffer = np.full(direct.shape_of(whole), 99, dtype=direct.dtype)  # as the reader allocates it
    assert direct.read(whole, buffer) is buffer
    assert buffer.dtype == ds.v.dtype
    np.testing.assert_array_equal(buffer, by_zarr)
    for key in _boxes(expected.shape):
        np.testing.assert_array_equal(direct.read(key), by_zarr[key])
    assert direct.chunks_read > 0


@pytest.mark.parametrize("how", ["http", "obstore"])
@pytest.mark.parametrize("status", [403, 500])
def test_a_failing_chunk_is_a_named_error_never_the_fill_value(stores, server, how, status):
    name = "v3-zstd-u16"
    ds = _open(_store(how, f"{server.url}/{name}.zarr"))
    direct = direct_zarr(ds.v.variable)
    assert direct is not None
    chunk = f"/{name}.zarr/v/c/0/1/1"
    with server.cleared():
        server.fault(chunk, status=status)
        with pytest.raises(ReadError) as caught:
            direct.read((slice(0, 2), slice(4, 8), slice(5, 10)))
        assert f"{server.url}{chunk}" in str(caught.value)
        with pytest.raises(ReadError):  # zarr's own read refuses it too
            _ = ds.v.variable[0:2, 4:8, 5:10].values
        # the chunk next to it still reads
        np.testing.assert_array_equal(
            direct.read((slice(0, 2), slice(0, 4), slice(0, 5))), stores[1][name][:2, :4, :5]
        )


def test_other_stores_are_left_to_zarr(stores):
    assert remote_fetcher(zarr.storage.MemoryStore(), "v") is None
    assert remote_fetcher({}, "v") is None
    local = zarr_object_store(str(stores[0] / "v3-zstd-u16.zarr"))
    assert remote_fetcher(local, "v") is not None  # the byte layer's store: read on the reader threads


@pytest.mark.parametrize("name", ["v3-zstd-u16", "v2-none-f32", "v3-none-f64-big", "v2-zstd-i32"])
@pytest.mark.parametrize("storage", [None, tp.Storage(retries=0)])
def test_chips_over_the_latency_server_equal_zarrs_reads(stores, slow, name, storage):
    url = f"{slow.url}/{name}.zarr"
    opened = tp.open_zarr(url, storage=storage, variables="v")
    kept = opened.variable
    by_zarr = np.asarray(kept.values)  # zarr-python's own read of the whole array
    direct = direct_zarr(opened.variable)
    # xarray masks a v2 array's fill value (CF _FillValue): such variables keep xarray's path
    assert (direct is not None) == (LAYOUTS[name][0] == 3)
    pipe = tp.from_items([url]).read_zarr(variables="v", storage=storage).chip({"y": 3, "x": 5})
    chips = list(pipe)
    assert len(chips) == 3 * 2  # rows 0-9 (row 8 is a missing chunk: the fill value) x cols 0-10
    windows = sorted(
        by_zarr[:, 3 * y : 3 * y + 3, 5 * x : 5 * x + 5].tobytes() for y in range(3) for x in range(2)
    )
    assert sorted(chip.values.tobytes() for chip in chips) == windows


@pytest.mark.parametrize("storage", [None, tp.Storage(retries=0)])
def test_a_chunk_refused_in_the_chipper_stops_it_with_the_chunks_url(stores, server, storage):
    name = "v3-gzip-i8"
    chunk = f"/{name}.zarr/v/c/1/0/1"
    with server.cleared():
        server.fault(chunk, status=403)
        pipe = tp.from_items([f"{server.url}/{name}.zarr"]).read_zarr(variables="v", storage=storage)
        with pytest.raises(ReadError) as caught:
            list(pipe.chip({"y": 4, "x": 5}))
        assert f"{server.url}{chunk}" in str(caught.value)


@pytest.fixture(scope="module")
def s3(stores: tuple[Path, dict[str, np.ndarray]]) -> Iterator[tuple[Server, tp.Storage]]:
    try:
        server = start_s3_server(("private",))
    except ServerMissingError as err:  # CI has rclone (the test extra); a bare machine may skip
        if os.environ.get(ALLOW_SKIP_ENV) == "1":
            pytest.skip(str(err))
        raise
    try:
        assert server.endpoint.startswith("http://127.0.0.1:")  # never a real cloud
        bucket = Path(server.extra["root"]) / "private"
        for name in ("v3-zstd-u16", "v2-blosc-u16", "v3-none-f64-big"):
            shutil.copytree(stores[0] / f"{name}.zarr", bucket / f"{name}.zarr")
        storage = tp.Storage(
            s3_endpoint=server.endpoint, key_id=S3_KEY_ID, secret=S3_SECRET, region="us-east-1"
        )
        yield server, storage
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["v3-zstd-u16", "v2-blosc-u16", "v3-none-f64-big"])
def test_s3_direct_reads_and_chips_equal_zarrs(stores, s3, name):
    _, storage = s3
    url = f"s3://private/{name}.zarr"
    ds = _open(zarr_object_store(url, storage))
    direct = direct_zarr(ds.v.variable)
    assert isinstance(direct, DirectZarrArray)
    assert direct.fetch is not None
    by_zarr = ds.v.values  # zarr-python's own read: missing chunks (rows 8..) are the fill value
    np.testing.assert_array_equal(by_zarr, stores[1][name])
    whole = tuple(slice(0, n) for n in by_zarr.shape)
    np.testing.assert_array_equal(direct.read(whole), by_zarr)
    opened = tp.open_zarr(url, storage=storage, variables="v")
    # a v2 fill value is masked by xarray (CF _FillValue): such variables are read through zarr
    assert (direct_zarr(opened.variable) is not None) == name.startswith("v3")
    reference = opened.values  # zarr-python's read, decoded as the chip stage decodes it
    chips = list(tp.from_items([url]).read_zarr(variables="v", storage=storage).chip({"y": 3, "x": 5}))
    windows = sorted(
        reference[:, 3 * y : 3 * y + 3, 5 * x : 5 * x + 5].tobytes() for y in range(3) for x in range(2)
    )
    assert sorted(chip.values.tobytes() for chip in chips) == windows
