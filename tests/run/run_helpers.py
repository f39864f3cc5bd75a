"""Helpers for the run-layer tests: small COGs, a window-reading stage, picklable functions.

Module-level so that spawned worker processes can import them.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window

from terrapipe.core.pipe import Stage
from terrapipe.core.sample import geo_meta

TILE = 64


def write_cog(path: Path, *, size: int = 256, bands: int = 3, seed: int = 0) -> Path:
    """Write a small tiled, compressed GeoTIFF with overviews (a COG-like file)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 10_000, size=(bands, size, size), dtype=np.uint16)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": bands,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(600_000, 5_100_000, 10, 10),
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "deflate",
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.build_overviews([2, 4])
    return path


def windows_of(path: Path, size: int = TILE) -> list[tuple[str, int, int, int]]:
    """Every ``size`` x ``size`` window of the raster, as ``(path, row, col, size)``."""
    with rasterio.open(path) as src:
        height, width = src.height, src.width
    return [(str(path), r, c, size) for r in range(0, height, size) for c in range(0, width, size)]


def read_reference(item: tuple[str, int, int, int]) -> np.ndarray:
    """Read one window with a fresh rasterio dataset (the reference)."""
    path, row, col, size = item
    with rasterio.open(path) as src:
        return src.read(window=Window(col, row, size, size))


class ReadWindows(Stage[dict]):
    """Read windows ``(path, row, col, size)`` into Samples, keeping the dataset open for the whole pass."""

    def __init__(self, source):
        super().__init__()
        self.source = source

    def __iter__(self):
        handles: dict[str, rasterio.DatasetReader] = {}
        try:
            for path, row, col, size in self.source:
                if path not in handles:
                    handles[path] = rasterio.open(path)
                src = handles[path]
                window = Window(col, row, size, size)
                image = torch.from_numpy(src.read(window=window).astype(np.int32))
                transform = src.window_transform(window)
                self.stats.elements += 1
                self.stats.bytes_read += image.numel() * 2
                yield {
                    "image": image,
                    "meta": geo_meta(src.crs.to_string(), transform, (size, size), source_ids=(path,)),
                }
        finally:
            for handle in handles.values():
                handle.close()


def key_of(sample: dict) -> tuple[float, float]:
    """Identify a window sample by its transform's origin."""
    transform = sample["meta"]["transform"]
    return transform[2], transform[5]


def same_sample(sample: dict) -> dict:
    """Return a shallow copy of a sample (a stand-in for a per-sample transform)."""
    return dict(sample)


def negate(x: int) -> int:
    return -x


def square(x: int) -> int:
    return x * x


def repeat_twice(x: int) -> list[int]:
    return [x, x]


def fail_on_seven(x: int) -> int:
    if x == 7:
        raise ValueError(f"seven is not allowed (got {x})")
    return x


def die_on_three(x: int) -> int:
    if x == 3:
        import os

        os._exit(3)
    return x


def random_tag(x: int) -> tuple[int, float]:
    return x, float(torch.rand(()))


class Counter:
    """A thread-safe counter of calls."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def __call__(self, x):
        with self._lock:
            self.value += 1
        return x

    def __deepcopy__(self, memo):
        return self  # loader copies of the pipe share the counter
