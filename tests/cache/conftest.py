"""Fixtures of the cache tests: a real Redis server, every backend, small rasters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

import terrapipe.cache  # noqa: F401  (registers cache_point and cache)
from terrapipe.cache import CacheStore, MemoryLRU, RedisStore, ZarrStore
from terrapipe.core.sample import Sample, geo_meta
from tests.servers.redis_server import RedisServer, redis_server_or_skip

BACKENDS = ("memory", "zarr", "zarr-url", "redis")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on a loopback port for the whole session (stopped by pid)."""
    server = redis_server_or_skip()
    yield server
    server.stop()


@pytest.fixture
def redis_store(redis_server: RedisServer) -> Iterator[RedisStore]:
    """A RedisStore with a key prefix no other test uses (its keys are removed afterwards)."""
    # LZ4, the default to a server on another machine (on 127.0.0.1 the default is plain, which
    # test_cache_compressed's layouts cover)
    store = RedisStore(redis_server.url, prefix=f"test-{uuid.uuid4().hex[:12]}:", compress="lz4")
    yield store
    store.clear()


def make_store(kind: str, tmp_path: Path, redis_url: str | None) -> CacheStore:
    """A fresh backend of one kind."""
    if kind == "memory":
        return MemoryLRU(max_bytes=64 * 2**20)
    if kind == "zarr":
        return ZarrStore(tmp_path / "cache.zarr")
    if kind == "zarr-url":
        return ZarrStore(f"file://{tmp_path / 'cache-url.zarr'}")
    if kind == "zarr-memory":
        return ZarrStore(f"memory://terrapipe-test-{uuid.uuid4().hex}")
    assert kind == "redis"
    assert redis_url is not None
    return RedisStore(redis_url, prefix=f"test-{uuid.uuid4().hex[:12]}:", compress="lz4")  # as redis_store


@pytest.fixture(params=BACKENDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CacheStore]:
    """Each backend in turn (Redis on the session server)."""
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    store = make_store(request.param, tmp_path, url)
    yield store
    if isinstance(store, RedisStore):
        store.clear()


# -- rasters ------------------------------------------------------------------
def write_raster(path: Path, *, bands: int = 2, size: int = 64, seed: int = 0) -> Path:
    """A small tiled uint16 GeoTIFF in EPSG:32631."""
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 10_000, size=(bands, size, size), dtype=np.uint16)
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": bands, "dtype": "uint16", "crs": "EPSG:32631",
        "transform": from_origin(600_000, 5_000_000, 10, 10), "nodata": 0, "tiled": True, "blockxsize": 16, "blockysize": 16,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture
def rasters(tmp_path: Path) -> list[Path]:
    """Three small rasters with different contents."""
    folder = tmp_path / "rasters"
    folder.mkdir()
    return [write_raster(folder / f"scene-{i}.tif", seed=i) for i in range(3)]


def windows_of(paths: list[Path], size: int = 32, raster_size: int = 64) -> list[dict[str, Any]]:
    """Window descriptions (the cache-point elements of the raster pipelines)."""
    return [
        {"path": str(p), "row": r, "col": c, "size": size}
        for p in paths
        for r in range(0, raster_size, size)
        for c in range(0, raster_size, size)
    ]


def read_window(spec: dict[str, Any]) -> Sample:
    """Read one window with rasterio into a Sample."""
    with rasterio.open(spec["path"]) as src:
        window = Window(spec["col"], spec["row"], spec["size"], spec["size"])
        data = src.read(window=window)
        transform = src.window_transform(window)
        crs = src.crs.to_string()
    import torch

    meta = geo_meta(crs, transform, (spec["size"], spec["size"]), source_ids=[spec["path"]])
    return Sample(image=torch.from_numpy(data.astype(np.float32)), meta=meta)


def slow_read(spec: dict[str, Any]) -> Sample:
    """read_window, slowly (so that a kill lands mid-pass)."""
    time.sleep(0.02)
    return read_window(spec)


def samples_equal(a: Any, b: Any) -> bool:
    """Deep equality of samples (tensors by value)."""
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(samples_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(samples_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)
