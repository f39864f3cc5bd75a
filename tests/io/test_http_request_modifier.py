"""``Storage.request_modifier`` signs every HTTP(S) request of the readers, once per try, and shows nothing.

Against real servers on 127.0.0.1 (the hostile server records each request's
path, query and headers; the range server fails requests on demand):

- the byte layer's reads (whole, ranged, HEAD; sync and async), ``HTTPFile``,
  ``object_store.get``/``get_ranges`` (point clouds, vector files by ranges),
  ``HTTPStore`` and ``read_zarr`` over HTTP send what the hook added (a
  header, a presign-like query), exactly once per request;
- a retried request is signed anew (an expiring signature is made again);
- what the hook adds never reaches another host after a redirect, and never
  appears in an error or a repr;
- a hook that fails is a named ``ReadError`` (its type, not its text);
- a GDAL read of an ``http(s)://`` URL with the hook is an ``InvalidArgumentError``
  (GDAL cannot call it), not an unsigned read;
- sibling: over urllib3 (the transport of signed reads), an answer no retry
  mends (416) is raised at once, not retried as a network fault.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.io import http_reads, object_store
from terrapipe.io.http_reads import ByteRange, PastEndError
from terrapipe.io.http_store import HTTPStore
from terrapipe.io.object_file import HTTPFile
from terrapipe.io.storage import Storage
from terrapipe.io.zarr_object_store import zarr_object_store
from terrapipe.io.zarr_reader import open_zarr
from tests.servers.hostile_http import HostileServer, start_hostile_server
from tests.servers.http_range import RangeServer

pytestmark = pytest.mark.timeout(60)

BLOB = bytes(range(256)) * 400  # 102400 bytes
SECRET = "s3cr3t-signature-value"


class Signer:
    """A request modifier: a numbered signature header and a presign-like query, each call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.count = itertools.count(1)

    def __call__(self, request: Any) -> None:
        with self.lock:
            n = next(self.count)
            self.calls.append((request.method, request.url))
        request.headers["X-Signature"] = f"{SECRET}-{n}"
        sep = "&" if "?" in request.url else "?"
        request.url = f"{request.url}{sep}X-Amz-Signature={SECRET}-{n}&X-Amz-Expires=60"


RASTER = (np.arange(128 * 128) % 251).astype("uint8").reshape(128, 128)


def _write_tif(path: Path) -> None:
    import rasterio

    profile = {
        "driver": "GTiff", "width": 128, "height": 128, "count": 1, "dtype": "uint8", "crs": "EPSG:32631",
        "transform": rasterio.transform.from_origin(0, 1280, 10, 10), "tiled": True,
        "blockxsize": 64, "blockysize": 64,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(RASTER, 1)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("signed")
    (root / "blob.bin").write_bytes(BLOB)
    _write_tif(root / "a.tif")
    xr.Dataset({"v": (("y", "x"), np.arange(64.0).reshape(8, 8))}).chunk({"y": 4, "x": 4}).to_zarr(
        root / "cube.zarr", zarr_format=2, consolidated=True
    )
    server = start_hostile_server(root, lifetime=120)
    try:
        yield server
    finally:
        server.stop()


def _signed_requests(server: HostileServer) -> list[dict[str, Any]]:
    return [r for r in server.requests() if r["method"] in ("GET", "HEAD")]


def _check_signed(requests: list[dict[str, Any]], signer: Signer) -> None:
    """Every request the server saw carries the signature of exactly one call of the hook."""
    assert requests
    assert len(requests) == len(signer.calls)
    seen = []
    for r in requests:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(r["path"]).query)
        assert query["X-Amz-Signature"] == [r["headers"]["X-Signature"]]  # one call made both
        seen.append(r["headers"]["X-Signature"])
    assert sorted(seen) == sorted(f"{SECRET}-{n}" for n in range(1, len(signer.calls) + 1))


def test_the_byte_layer_signs_each_request_once(hostile: HostileServer) -> None:
    url = hostile.url_for("plain", "blob.bin")
    signer = Signer()
    storage = Storage(request_modifier=signer)
    hostile.reset()
    assert http_reads.read(url, storage).body == BLOB
    assert http_reads.read(url, storage, byte_range=ByteRange(100, 200)).body == BLOB[100:200]
    assert http_reads.read(url, storage, byte_range=ByteRange(None, 10)).body == BLOB[-10:]
    assert http_reads.read(url, storage, method="HEAD").total == len(BLOB)
    reply = asyncio.run(http_reads.read_async(url, storage, byte_range=ByteRange(5, 9)))
    assert reply.body == BLOB[5:9]
    requests = _signed_requests(hostile)
    _check_signed(requests, signer)
    assert [r["method"] for r in requests] == ["GET", "GET", "GET", "HEAD", "GET"]
    assert [m for m, _ in signer.calls] == ["GET", "GET", "GET", "HEAD", "GET"]


def test_every_reader_over_http_signs_its_requests(hostile: HostileServer) -> None:
    url = hostile.url_for("plain", "blob.bin")
    signer = Signer()
    storage = Storage(request_modifier=signer)
    hostile.reset()
    handle = HTTPFile(url, storage)  # netCDF, GeoParquet, FlatGeobuf by ranges
    handle.seek(50_000)
    assert handle.read(100) == BLOB[50_000:50_100]
    assert object_store.get(url, storage, range=(10, 20)) == BLOB[10:20]  # point clouds, COPC
    assert object_store.get_ranges(url, [(0, 4), (1000, 1010)], storage) == [BLOB[:4], BLOB[1000:1010]]
    assert object_store.size(url, storage) == len(BLOB)
    _check_signed(_signed_requests(hostile), signer)


def test_zarr_over_http_signs_every_request(hostile: HostileServer) -> None:
    url = hostile.url_for("plain", "cube.zarr")
    expected = np.arange(64.0).reshape(8, 8)
    for opened in ("store", "url"):
        signer = Signer()
        storage = Storage(request_modifier=signer)
        hostile.reset()
        if opened == "store":
            da = open_zarr(HTTPStore(url, storage=storage), variables="v")
        else:  # read_zarr(url, storage=...): the checked HTTPStore, not obstore (which signs nothing)
            assert type(zarr_object_store(url, storage)) is HTTPStore
            da = open_zarr(url, variables="v", storage=storage)
        np.testing.assert_array_equal(da.values, expected)
        requests = _signed_requests(hostile)
        assert any(r["path"].split("?")[0].endswith("/v/0.0") for r in requests)  # chunks, not only metadata
        _check_signed(requests, signer)


def test_a_retry_is_signed_anew(server: RangeServer, http_root: Path) -> None:
    path = http_root / "signed-retry.bin"
    path.write_bytes(BLOB)
    signer = Signer()
    storage = Storage(request_modifier=signer, retries=3, backoff=0.01)
    server.fault(f"/{path.name}", status=503, count=2)
    assert http_reads.read(server.url_for(path), storage, byte_range=ByteRange(0, 10)).body == BLOB[:10]
    assert len(signer.calls) == 3  # the first try and two retries, each signed by its own call
    log = [e for e in server.stats()["log"] if e["path"] == f"/{path.name}"]
    assert [e["status"] for e in log] == [503, 503, 206]


def test_an_expiring_signature_is_made_again_on_each_try(server: RangeServer, http_root: Path) -> None:
    """The hook sees a new request per try: a signature dated at the first try is never resent."""
    path = http_root / "signed-expiry.bin"
    path.write_bytes(BLOB)
    stamps: list[float] = []

    def sign(request: Any) -> Any:
        stamps.append(time.monotonic())
        request.headers["X-Signed-At"] = f"{stamps[-1]:.6f}"
        return request  # returning the request works as well as changing it in place

    server.fault(f"/{path.name}", status=500, count=1)
    storage = Storage(request_modifier=sign, retries=2, backoff=0.05)
    assert http_reads.read(server.url_for(path), storage).body == BLOB
    assert len(stamps) == 2
    assert stamps[1] > stamps[0]


def test_what_the_hook_adds_stays_with_its_origin_and_out_of_messages(hostile: HostileServer) -> None:
    signer = Signer()
    storage = Storage(request_modifier=signer, retries=0)
    # a redirect from 127.0.0.1 to localhost (another origin): the hook's header is not sent there
    hop = f"redirect-localhost-{hostile.port}"
    hostile.reset()
    assert http_reads.read(hostile.url_for(hop, "plain/blob.bin"), storage).body == BLOB
    first, second = _signed_requests(hostile)
    assert first["headers"]["X-Signature"] == f"{SECRET}-1"
    assert SECRET in first["path"]
    assert "X-Signature" not in second["headers"]
    assert SECRET not in second["path"]
    assert len(signer.calls) == 1
    # errors and reprs: neither the header nor the query
    failures = []
    for mode, name in (("plain", "missing.bin"), ("shift", "blob.bin"), ("redirect-file", "x")):
        with pytest.raises(ReadError) as info:
            object_store.get(hostile.url_for(mode, name), storage, range=(4096, 8192))
        failures.append(info.value)
    with pytest.raises(ReadError) as info:
        HTTPFile(hostile.url_for("plain", "missing.bin"), storage)
    failures.append(info.value)
    shown = [str(e) for e in failures] + [
        repr(storage),
        str(storage),
        repr(HTTPStore("http://h/c", storage=storage)),
    ]
    for text in shown:
        assert SECRET not in text, text
        assert "X-Amz" not in text, text
        assert "X-Signature" not in text, text
    assert "request_modifier='set'" in repr(storage)


def test_a_failing_hook_is_a_named_read_error_without_its_text(hostile: HostileServer) -> None:
    def broken(request: Any) -> None:
        raise RuntimeError(f"cannot sign with {SECRET}")

    url = hostile.url_for("plain", "blob.bin")
    with pytest.raises(ReadError, match=r"request_modifier failed on it \(RuntimeError\)") as info:
        http_reads.read(url, Storage(request_modifier=broken))
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None
    with pytest.raises(ReadError, match="something other than an http"):
        http_reads.read(url, Storage(request_modifier=lambda r: setattr(r, "url", "file:///etc/passwd")))


def test_a_raster_read_is_signed_and_what_gdal_fetches_itself_is_refused(hostile: HostileServer) -> None:
    # a raster at a URL is read by GDAL through the byte layer (io/gdal_opener.py): each request signed once
    url = hostile.url_for("plain", "a.tif")
    signer = Signer()
    storage = Storage(request_modifier=signer)
    hostile.reset()
    chips = list(tp.from_items([url]).read_raster(storage=storage).chip({"x": 64, "y": 64}, output="numpy"))
    assert len(chips) == 4
    np.testing.assert_array_equal(tp.open_raster(url, storage=storage).values[0], RASTER)
    _check_signed(_signed_requests(hostile), signer)
    # what GDAL still fetches itself (a VRT's sources, a GeoPackage at a URL) cannot be signed: refused
    hostile.reset()
    with pytest.raises(InvalidArgumentError, match="GDAL") as info:
        tp.open_raster(hostile.url_for("plain", "a.vrt"), storage=storage)
    assert "request_modifier" in str(info.value)
    assert SECRET not in str(info.value)
    assert hostile.requests() == []  # nothing went out unsigned
    with pytest.raises(InvalidArgumentError, match="cannot call a Python hook"):
        storage.gdal_options(url)
    assert storage.gdal_options("s3://bucket/a.tif")  # buckets: signed with the Storage's keys


def test_a_past_end_range_over_urllib3_is_raised_at_once(server: RangeServer, http_root: Path) -> None:
    """416 is an answer, not a network fault: no retries, and PastEndError (an empty file opens)."""
    path = http_root / "past-end.bin"
    path.write_bytes(b"x" * 100)
    for storage in (Storage(headers={"X-A": "1"}), Storage(request_modifier=Signer())):
        server.reset()
        start = time.monotonic()
        with pytest.raises(PastEndError):
            http_reads.read(server.url_for(path), storage, byte_range=ByteRange(200, 300))
        assert time.monotonic() - start < 1.5
        assert server.stats()["total_requests"] == 1
    empty = http_root / "empty-signed.bin"
    empty.write_bytes(b"")
    assert HTTPFile(server.url_for(empty), Storage(request_modifier=Signer())).size == 0
