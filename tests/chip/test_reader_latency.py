"""Latency hiding in the block reader: remote sources get more reads in flight, bounded in bytes.

Every remote read goes through the latency server of ``tests/servers/latency_http.py``
(a real subprocess on 127.0.0.1: 20 ms per request here). Nothing here asserts a
duration: concurrency is shown with a barrier that only enough threads can pass,
and the bytes in flight by instrumenting ``read_block``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.transform import from_origin
from rasterio.windows import Window

import terrapipe as tp
import terrapipe.chip.chipper as chipper_module
import terrapipe.chip.reader as reader_module
from terrapipe.chip.layout import describe_arrays
from terrapipe.chip.reader import DEFAULT_WORKERS, BlockReader, reader_threads, remote_concurrency
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.io.raster import open_raster
from tests.servers.latency_http import LatencyServer, start_latency_server

H, W, TILE = 384, 512, 128  # 3 x 4 tiles per band


def _write_cog(path: Path, bands: int, seed: int) -> np.ndarray:
    data = np.random.default_rng(seed).integers(1, 60000, size=(bands, H, W), dtype="uint16")
    profile = {
        "driver": "GTiff", "width": W, "height": H, "count": bands, "dtype": "uint16", "crs": "EPSG:32631",
        "transform": from_origin(600000, 5000000, 10, 10), "nodata": 0, "tiled": True,
        "blockxsize": TILE, "blockysize": TILE, "compress": "deflate", "interleave": "band",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return data


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LatencyServer, dict[str, np.ndarray]]]:
    root = tmp_path_factory.mktemp("latency")
    data = {
        "one.tif": _write_cog(root / "one.tif", 1, 0),
        "two.tif": _write_cog(root / "two.tif", 2, 1),
        "b1.tif": _write_cog(root / "b1.tif", 1, 2),
        "b2.tif": _write_cog(root / "b2.tif", 1, 3),
    }
    ds = xr.Dataset(
        {"v": (("y", "x"), data["one.tif"][0])},
        coords={"y": 5000000 - 5 - 10 * np.arange(H), "x": 600005 + 10 * np.arange(W)},
    )
    ds.to_zarr(root / "cube.zarr", zarr_format=2, consolidated=True, encoding={"v": {"chunks": (TILE, TILE)}})
    data["cube.zarr"] = data["one.tif"]
    server = start_latency_server(root, latency=0.02, rate=50e6)
    try:
        yield server, data
    finally:
        server.stop()


class _Spy:
    """Wraps ``read_block``: counts calls per thread, the blocks started, and can hold reads at a barrier."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.real = reader_module.read_block
        self.lock = threading.Lock()
        self.threads: set[str] = set()
        self.calls = 0
        self.barrier = barrier
        self.started: list[tuple[tuple[slice, ...], int]] = []
        self.running = 0
        self.most_at_once = 0  # reads running at the same time, at most

    def __call__(self, spec: Any, key: tuple[slice, ...], out: np.ndarray | None = None) -> np.ndarray:
        with self.lock:
            self.calls += 1
            first = self.calls
            self.threads.add(threading.current_thread().name)
            nbytes = spec.itemsize * int(np.prod(reader_module._shape(spec, key)))
            self.started.append((key, nbytes))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.barrier is not None and first <= self.barrier.parties:
                self.barrier.wait()  # only as many threads as parties reading at once get through
            return self.real(spec, key, out)  # type: ignore[no-any-return]
        finally:
            with self.lock:
                self.running -= 1


def meta_bounds(chip: xr.DataArray) -> tuple[float, ...]:
    return tuple(float(v) for v in (chip.x[0], chip.y[0], chip.x[-1], chip.y[-1]))


def _window(url: str, chip: xr.DataArray, bands: list[int]) -> np.ndarray:
    """The chip's pixels read with rasterio over the latency server (the same window)."""
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(f"/vsicurl/{url}") as src:
        row, col = src.index(float(chip.x[0]), float(chip.y[0]))
        window = Window(col, row, chip.sizes["x"], chip.sizes["y"])
        return src.read(bands, window=window, boundless=True, fill_value=0)


# -- where the reads come from ------------------------------------------------------------------------


def test_remote_sources_get_the_storage_concurrency_and_local_ones_stay_as_today(served, tmp_path):
    server, _ = served
    remote = open_raster(server.url_for("one.tif"))
    local_path = tmp_path / "local.tif"
    _write_cog(local_path, 1, 5)
    local = open_raster(local_path)
    window = {"y": 64, "x": 64}
    (r_spec,), _ = describe_arrays(remote, ("y", "x"), window=window, stride=window, block_bytes=2**20)
    (l_spec,), _ = describe_arrays(local, ("y", "x"), window=window, stride=window, block_bytes=2**20)
    assert remote_concurrency(r_spec) == 16
    assert remote_concurrency(l_spec) is None
    assert reader_threads([l_spec]) == (DEFAULT_WORKERS, False)
    assert reader_threads([l_spec, r_spec]) == (16, True)
    assert reader_threads([r_spec], workers=3) == (3, True)
    local_reader = BlockReader([l_spec])
    assert (local_reader.workers, local_reader.read_ahead, local_reader.remote) == (4, 8, False)
    remote_reader = BlockReader([r_spec])
    assert (remote_reader.workers, remote_reader.read_ahead, remote_reader.remote) == (16, None, True)
    # a storage's concurrency is the one used
    custom = open_raster(server.url_for("one.tif"), storage=tp.Storage(concurrency=7))
    (c_spec,), _ = describe_arrays(custom, ("y", "x"), window=window, stride=window, block_bytes=2**20)
    assert BlockReader([c_spec]).workers == 7


def test_producers_can_mark_a_source_remote_and_urls_in_the_encoding_count():
    da = xr.DataArray(np.zeros((8, 8), "uint8"), dims=("y", "x")).chunk(4)
    window = {"y": 4, "x": 4}
    (spec,), _ = describe_arrays(da, ("y", "x"), window=window, stride=window, block_bytes=64)
    assert remote_concurrency(spec) is None
    for encoding in (
        {"remote": True},
        {"source": "s3://bucket/a.zarr"},
        {"source": "/vsicurl/https://h/a.tif"},
    ):
        spec.variable.encoding = dict(encoding)
        assert remote_concurrency(spec) == 16, encoding
    spec.variable.encoding = {"source": "stac:item-1", "remote": False}
    assert remote_concurrency(spec) is None


def test_bad_workers_and_byte_bounds_are_refused():
    for bad in (-1, 1.5, True, "4"):
        with pytest.raises(InvalidArgumentError, match="workers"):
            BlockReader([], workers=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="workers"):
            tp.from_items([]).chip({"y": 4, "x": 4}, workers=bad)
    for bad in (-1, 2.0, False):
        with pytest.raises(InvalidArgumentError, match="max_inflight_bytes"):
            BlockReader([], max_inflight_bytes=bad)  # type: ignore[arg-type]


# -- the chips are right, in the same order and number ---------------------------------------------------


@pytest.mark.parametrize("name", ["one.tif", "two.tif"])
def test_remote_chips_equal_rasterio_windows_in_order(served, monkeypatch, name):
    server, data = served
    url = server.url_for(name)
    bands = list(range(1, data[name].shape[0] + 1))
    size, overlap = {"y": 100, "x": 90}, {"y": 20, "x": 10}

    def run(**kwargs: Any) -> list[xr.DataArray]:
        return list(tp.from_items([url]).read_raster().chip(size, overlap=overlap, boundary="pad", **kwargs))

    spy = _Spy(threading.Barrier(8, timeout=60))  # the first 8 reads wait for each other: 8 threads at least
    monkeypatch.setattr(reader_module, "read_block", spy)
    auto = run()
    monkeypatch.setattr(reader_module, "read_block", spy.real)
    serial = run(workers=0)
    assert len(auto) == len(serial) == 35  # 5 rows x 7 columns of windows (stride 80), padded at the edges
    assert [meta_bounds(c) for c in auto] == [meta_bounds(c) for c in serial]
    for a, s in zip(auto, serial, strict=True):
        np.testing.assert_array_equal(a.values, s.values)
        np.testing.assert_array_equal(a.values, _window(url, a, bands))
    assert len({t for t in spy.threads if t.startswith("terrapipe-read")}) >= 8
    if len(bands) > 1:  # band-interleaved tiles: one read per band and tile, not one per tile
        assert all(key[0] in (slice(0, 1), slice(1, 2)) for key, _ in spy.started)


def test_remote_zarr_chips_equal_the_array_in_order(served):
    server, data = served
    url = server.url_for("cube.zarr")
    size = {"y": 96, "x": 96}
    auto = list(tp.from_items([url]).read_zarr(variables="v").chip(size, boundary="drop"))
    serial = list(tp.from_items([url]).read_zarr(variables="v").chip(size, boundary="drop", workers=0))
    assert len(auto) == len(serial) == (H // 96) * (W // 96)
    assert [meta_bounds(c) for c in auto] == [meta_bounds(c) for c in serial]
    for chip in auto:  # each chip where its coordinates say it is
        r, c = round((5000000 - 5 - float(chip.y[0])) / 10), round((float(chip.x[0]) - 600005) / 10)
        np.testing.assert_array_equal(chip.values, data["cube.zarr"][0, r : r + 96, c : c + 96])
    corners = {(float(c.y[0]), float(c.x[0])) for c in auto}
    assert len(corners) == len(auto)  # no window twice


def test_stack_stac_over_remote_hrefs_is_read_as_remote_and_right(served, monkeypatch):
    server, data = served
    item = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "remote-item",
        "geometry": None,
        "bbox": None,
        "properties": {"datetime": "2024-06-01T00:00:00Z", "proj:code": "EPSG:32631"},
        "links": [],
        "assets": {
            band: {
                "href": server.url_for(f"{band}.tif"),
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "proj:shape": [H, W],
                "proj:transform": [10, 0, 600000, 0, -10, 5000000],
            }
            for band in ("b1", "b2")
        },
    }
    (cube,) = list(tp.from_items([[item]]).stack_stac(bands=["b1", "b2"]))
    assert cube.encoding["remote"] is True
    made: list[BlockReader] = []

    class Recording(BlockReader):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(chipper_module, "BlockReader", Recording)
    chips = list(tp.from_items([cube]).chip({"y": 128, "x": 128}))
    assert [(r.remote, r.workers) for r in made] == [(True, 16)]
    assert len(chips) == (H // 128) * (W // 128)
    for chip in chips:
        r = int(np.argmin(np.abs(cube.y.values - float(chip.y[0]))))
        c = int(np.argmin(np.abs(cube.x.values - float(chip.x[0]))))
        for k, band in enumerate(("b1", "b2")):
            np.testing.assert_array_equal(chip.values[0, k], data[f"{band}.tif"][0, r : r + 128, c : c + 128])


# -- explicit workers are honoured ----------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_explicit_workers_are_honoured_for_remote_sources(served, monkeypatch, workers):
    server, _ = served
    made: list[BlockReader] = []

    class Recording(BlockReader):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    spy = _Spy()
    monkeypatch.setattr(reader_module, "read_block", spy)
    monkeypatch.setattr(chipper_module, "BlockReader", Recording)
    chips = list(
        tp.from_items([server.url_for("one.tif")]).read_raster().chip({"y": 64, "x": 64}, workers=workers)
    )
    assert len(chips) == (H // 64) * (W // 64)
    assert [r.workers for r in made] == [workers]
    readers = {t for t in spy.threads if t != threading.main_thread().name}
    if workers == 0:
        assert spy.threads == {threading.main_thread().name}
    else:  # on the process's reader threads (any of them), never more reads at once than asked for
        assert readers
        assert all(name.startswith("terrapipe-read") for name in readers)
        assert 1 <= spy.most_at_once <= workers


# -- bytes in flight are bounded ---------------------------------------------------------------------------


@pytest.mark.parametrize("bound_blocks", [1, 3, 6])
def test_bytes_in_flight_never_exceed_the_bound(served, monkeypatch, bound_blocks):
    server, _ = served
    da = open_raster(server.url_for("two.tif"))
    window = {"y": 64, "x": 64}
    arrays, _ = describe_arrays(da, ("y", "x"), window=window, stride=window, block_bytes=2**20)
    block = 2 * TILE * TILE * 2  # both bands of a 128 x 128 uint16 tile
    bound = bound_blocks * block
    # every 64 x 64 window, row by row: each tile serves 4 regions
    starts = np.array([[r, c] for r in range(0, H, 64) for c in range(0, W, 64)])
    stops = starts + 64

    # Instrument: bytes started by the reader threads, minus those of blocks whose first region was served.
    lock = threading.Lock()
    state = {"inflight": 0, "peak": 0}
    first_use: dict[tuple[int, int], int] = {}
    real = reader_module.read_block

    def counting(spec: Any, key: tuple[slice, ...], out: np.ndarray | None = None) -> np.ndarray:
        nbytes = spec.itemsize * int(np.prod(reader_module._shape(spec, key)))
        with lock:
            state["inflight"] += nbytes
            state["peak"] = max(state["peak"], state["inflight"])
            tile = (key[1].start // TILE, key[2].start // TILE)
            first_use.setdefault(tile, 0)
            first_use[tile] += nbytes
        return real(spec, key, out)  # type: ignore[no-any-return]

    monkeypatch.setattr(reader_module, "read_block", counting)
    reader = BlockReader(arrays, max_inflight_bytes=bound)
    assert reader.workers == 16
    count = 0
    for r, (out, err) in enumerate(reader.regions(starts, stops)):
        assert err is None
        assert out is not None
        row, col = starts[r]
        np.testing.assert_array_equal(out[0], da.values[:, row : row + 64, col : col + 64])
        count += 1
        tile = (int(row) // TILE, int(col) // TILE)
        with lock:  # the first region of a tile has been served: its bytes are no longer in flight
            state["inflight"] -= first_use.pop(tile, 0)
    assert count == len(starts)
    assert state["peak"] <= bound
    assert reader.peak_inflight_bytes <= bound
    if bound_blocks > 1:
        assert reader.peak_inflight_bytes > block  # it did read ahead, up to the bound
    assert reader.blocks_read == (H // TILE) * (W // TILE)
    assert reader.rereads == 0


def test_the_stage_default_bounds_the_bytes_in_flight(served, monkeypatch):
    server, _ = served
    block = TILE * TILE * 2
    monkeypatch.setattr(reader_module, "DEFAULT_INFLIGHT_BYTES", 2 * block)
    made: list[BlockReader] = []

    class Recording(BlockReader):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(chipper_module, "BlockReader", Recording)
    chips = list(tp.from_items([server.url_for("one.tif")]).read_raster().chip({"y": 64, "x": 64}))
    assert len(chips) == (H // 64) * (W // 64)
    (reader,) = made
    assert reader.max_inflight_bytes == 2 * block
    assert block < reader.peak_inflight_bytes <= 2 * block
