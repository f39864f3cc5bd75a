"""Remote rasters through the byte layer under GDAL: threads, fork, reopening, credentials, bounds.

rasterio allows one opener per name at a time and keeps its registry in context variables (one
dict per thread); terrapipe's handles are per thread (``acquire``), stack_stac's native reads use
many threads, DataLoader workers fork. Asserted: many threads reading one URL at once get the
file's pixels; a handle closed on another thread than the one that opened it closes quietly; a
forked child reads; ``forget_remote`` makes every handle read the new file; a thread that read
with a credential sends nothing of it on its next plain read of another host; the block cache and
the side-car answers stay within their bounds; stack_stac's native reads refuse other bytes.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io import gdal_opener
from terrapipe.io.raster_array import close_thread_handles, forget_remote
from tests.hostile_wave4.lying_ranges import start_lying_server
from tests.servers.http_range import RangeServer, start_range_server

rasterio = pytest.importorskip("rasterio")

SIDE = 512


def _write(path: Path, data: np.ndarray) -> None:
    profile = {
        "driver": "GTiff", "width": SIDE, "height": SIDE, "count": 1, "dtype": "uint16", "crs": "EPSG:32631",
        "transform": rasterio.transform.from_origin(600000, 5000000, 10, 10), "tiled": True,
        "blockxsize": 64, "blockysize": 64, "compress": "deflate", "nodata": 0,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RangeServer, Path, dict[str, np.ndarray]]]:
    root = tmp_path_factory.mktemp("threads")
    pixels = {
        name: np.random.default_rng(seed).integers(1, 60000, (SIDE, SIDE)).astype("uint16")
        for seed, name in enumerate(("a.tif", "b.tif", "new.tif"))
    }
    for name, data in pixels.items():
        _write(root / name, data)
    server = start_range_server(root)
    try:
        yield server, root, pixels
    finally:
        server.stop()


def test_many_threads_read_one_url_at_once(served) -> None:
    server, _, pixels = served
    da = tp.open_raster(server.url_for("a.tif"), chunks={"x": 64, "y": 64})
    windows = [(y, x) for y in range(0, SIDE, 64) for x in range(0, SIDE, 64)]

    def read(yx: tuple[int, int]) -> bool:
        y, x = yx
        got = da[:, y : y + 64, x : x + 64].values[0]
        return bool(np.array_equal(got, pixels["a.tif"][y : y + 64, x : x + 64]))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(read, windows * 2))
    np.testing.assert_array_equal(da.values[0], pixels["a.tif"])  # dask: its own threads


def test_a_handle_closed_on_another_thread_closes_quietly(served, monkeypatch) -> None:
    server, _, _ = served
    raised: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", raised.append)
    box: dict[str, Any] = {}

    def open_here() -> None:
        box["dataset"] = gdal_opener.open_dataset(server.url_for("b.tif"), None, sidecars=False)
        box["dataset"].read(1, window=((0, 64), (0, 64)))

    thread = threading.Thread(target=open_here)
    thread.start()
    thread.join(30)
    box["dataset"].close()  # here, not on the thread that opened it
    assert box["dataset"].closed
    assert raised == []


def _child_read(url: str, queue: Any) -> None:
    try:
        queue.put(int(tp.open_raster(url).values.sum()))
    except BaseException as err:  # handed to the parent
        queue.put(repr(err))


def test_a_forked_child_reads_what_the_parent_opened(served) -> None:
    server, _, pixels = served
    url = server.url_for("a.tif")
    da = tp.open_raster(url)
    assert int(da[:, :64, :64].values.sum()) == int(pixels["a.tif"][:64, :64].sum())  # a handle held here
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_read, args=(url, queue))
    child.start()
    got = queue.get(timeout=60)
    child.join(60)
    assert got == int(pixels["a.tif"].astype("int64").sum())


def test_forget_remote_reopens_every_handle_on_the_new_file(served) -> None:
    server, root, pixels = served
    shutil.copy(root / "a.tif", root / "moving.tif")
    url = server.url_for("moving.tif")
    da = tp.open_raster(url)
    np.testing.assert_array_equal(da[:, :64, :64].values[0], pixels["a.tif"][:64, :64])
    shutil.copy(root / "new.tif", root / "moving.tif")  # the same size; another ETag
    forget_remote(url)
    np.testing.assert_array_equal(tp.open_raster(url).values[0], pixels["new.tif"])


def test_a_thread_that_read_with_a_credential_sends_none_to_another_host(served) -> None:
    from tests.servers.header_server import start_header_server

    other = start_header_server(served[1], "Authorization=Bearer s3cret")
    try:
        storage = tp.Storage(headers={"Authorization": "Bearer s3cret", "X-Api-Key": "s3cret"})

        def both() -> None:
            tp.open_raster(f"{other.url}/auth/a.tif", storage=storage).values  # noqa: B018
            host = other.url.replace("127.0.0.1", "localhost")
            tp.open_raster(f"{host}/a.tif").values  # noqa: B018  (a plain read, another origin)
            close_thread_handles()

        with ThreadPoolExecutor(1) as pool:
            pool.submit(both).result(60)
        to_localhost = [r for r in other.requests() if r["headers"].get("Host", "").startswith("localhost")]
        assert to_localhost
        assert not any("s3cret" in str(r["headers"]) for r in to_localhost)
    finally:
        other.stop()


def test_the_block_cache_and_the_side_car_answers_are_bounded(served, monkeypatch) -> None:
    server, root, _ = served
    big = root / "big.bin"
    big.write_bytes(
        np.random.default_rng(5).bytes((gdal_opener.MAX_CACHED_BLOCKS + 20) * gdal_opener.BLOCK_BYTES)
    )
    data = gdal_opener.RemoteBytes(server.url_for("big.bin"), tp.Storage())
    for i in range(gdal_opener.MAX_CACHED_BLOCKS + 20):
        data.read_at(i * gdal_opener.BLOCK_BYTES + 7, 10)
    assert len(data._blocks) == gdal_opener.MAX_CACHED_BLOCKS
    assert data.read_at(5, 10) == big.read_bytes()[5:15]  # dropped, read again
    monkeypatch.setattr(gdal_opener, "_MAX_PROBES", 3)
    for i in range(6):
        gdal_opener.probe(server.url_for(f"none-{i}.aux.xml"), None)
    assert len(gdal_opener._KEPT.get().probes) <= 3


def _native_item(href: str, height: int, width: int) -> Any:
    import pystac

    return pystac.Item.from_dict(
        {
            "type": "Feature", "stac_version": "1.1.0", "id": "native",
            "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
            "geometry": {"type": "Point", "coordinates": [4.0, 45.0]}, "bbox": [4.0, 45.0, 4.0, 45.0],
            "properties": {
                "datetime": "2024-06-01T10:30:00Z", "proj:code": "EPSG:32631", "proj:shape": [height, width],
                "proj:transform": [10.0, 0.0, 600000.0, 0.0, -10.0, 5000000.0],
            },
            "links": [], "assets": {"data": {"href": href, "type": "image/tiff; application=geotiff"}},
        }
    )  # fmt: skip


def test_stack_stac_native_reads_refuse_other_bytes(served) -> None:
    from terrapipe.stac import stack_items

    _, root, _ = served
    side = 1024
    data = np.random.default_rng(9).integers(1, 250, (side, side)).astype("uint8")
    profile = {
        "driver": "GTiff", "width": side, "height": side, "count": 1, "dtype": "uint8", "crs": "EPSG:32631",
        "transform": rasterio.transform.from_origin(600000, 5000000, 10, 10), "tiled": True,
        "blockxsize": 16, "blockysize": 16, "nodata": 0,
    }  # fmt: skip
    with rasterio.open(
        root / "native.tif", "w", **profile
    ) as dst:  # tiles start past the lying server's shift
        dst.write(data, 1)
    lying = start_lying_server(root)
    try:
        got = stack_items([_native_item(f"{lying.url}/native.tif", side, side)], bands=["data"]).values[0, 0]
        np.testing.assert_array_equal(got, data)
        item = _native_item(f"{lying.url}/shifted/native.tif?sig=x", side, side)
        with pytest.raises(ReadError, match=r"native\.tif"):
            stack_items([item], bands=["data"]).values  # noqa: B018
    finally:
        lying.stop()


def test_a_reader_thread_that_ends_closes_its_handles_in_their_environment(served, monkeypatch) -> None:
    """Closed by terrapipe inside the source's environment, not by rasterio's deallocation outside any."""
    import gc

    from terrapipe.io import raster_array

    server, _, _ = served
    closed: list[str] = []
    real_close = raster_array._close

    def spying_close(source: Any, dataset: Any) -> None:
        closed.append(source.path)
        real_close(source, dataset)

    monkeypatch.setattr(raster_array, "_close", spying_close)
    url = server.url_for("b.tif")
    thread = threading.Thread(target=lambda: tp.open_raster(url).values)
    thread.start()
    thread.join(60)
    gc.collect()
    assert url in closed


def test_a_child_forked_while_the_kept_bytes_were_locked_reads(served) -> None:
    """The process's kept bytes and their lock are per process: a lock held at the fork is not the child's."""
    server, _, pixels = served
    url = server.url_for("b.tif")
    tp.open_raster(url).values  # noqa: B018  (kept here)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    with gdal_opener._KEPT.get().lock:  # as a reader thread inside a read while the parent forks
        child = context.Process(target=_child_read, args=(url, queue))
        child.start()
    got = queue.get(timeout=60)
    child.join(60)
    assert got == int(pixels["b.tif"].astype("int64").sum())
