"""Cache backends on the sample world: epoch 2 from each cache vs epoch 1 uncached.

The pipeline reads 256 x 256 windows of the four 10 m bands of every sample
world scene with rasterio (one open per band COG, as a plain training script
would) and turns each into a ``Sample`` (float32 tensor + geo metadata)::

    tp.from_items(windows).cache_point().map(read_sample).cache(store)

For each backend it times epoch 1 (compute + write) and epoch 2 (served from
the cache), against epoch 1 without any cache, and prints samples/s and the
speed-up of epoch 2 over the uncached epoch. A second table fills a
``MemoryLRU`` with the same entries at a budget below the data size and
compares the memory it really holds (``tracemalloc``) with the budget.

Redis runs on a ``redis-server`` started on a loopback port (skipped, with a
note, when the binary is missing).

Run: ``python benchmarks/bench_cache.py [--scale 1] [--window 256] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import terrapipe as tp  # noqa: E402
import terrapipe.cache  # noqa: E402
from terrapipe.cache import CacheStore, MemoryLRU, RedisStore, ZarrStore, encode_value, pack_entry  # noqa: E402
from terrapipe.core.sample import Sample, geo_meta  # noqa: E402
from terrapipe.datasets import sample_world  # noqa: E402

BANDS = ("blue", "green", "red", "nir")


def read_sample(spec: dict[str, Any]) -> Sample:
    """Read one window of the four bands into a Sample."""
    size = spec["size"]
    window = Window(spec["col"], spec["row"], size, size)
    planes = []
    for path in spec["paths"]:
        with rasterio.open(path) as src:
            planes.append(src.read(1, window=window))
            transform, crs = src.window_transform(window), src.crs.to_string()
    image = torch.from_numpy(np.stack(planes).astype(np.float32))
    return Sample(image=image, meta=geo_meta(crs, transform, (size, size), source_ids=[spec["item"]]))


def window_specs(world: Any, size: int) -> list[dict[str, Any]]:
    specs = []
    for date in range(len(world.DATES)):
        for tile in (0, 1):
            paths = [str(world.cog(b, date=date, tile=tile)) for b in BANDS]
            with rasterio.open(paths[0]) as src:
                height, width = src.height, src.width
            item = world.item_id(date=date, tile=tile)
            for row in range(0, height - size + 1, size):
                for col in range(0, width - size + 1, size):
                    specs.append({"item": item, "paths": paths, "row": row, "col": col, "size": size})
    return specs


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.node()} | {platform.system()} {platform.release()} | {cpu}, {os.cpu_count()} CPUs | "
        f"Python {platform.python_version()} | torch {torch.__version__} | rasterio {rasterio.__version__}"
    )


def stores(tmp: Path, redis_url: str | None, budget: int) -> list[tuple[str, Callable[[], CacheStore]]]:
    out: list[tuple[str, Callable[[], CacheStore]]] = [
        ("memory LRU", lambda: MemoryLRU(max_bytes=budget)),
        ("zarr folder", lambda: ZarrStore(tmp / "cache.zarr")),
        ("zarr folder, zstd", lambda: ZarrStore(tmp / "cache-zstd.zarr", compress=True)),
        ("zarr file:// URL", lambda: ZarrStore(f"file://{tmp / 'cache-url.zarr'}")),
    ]
    if redis_url is not None:
        out.append(("redis", lambda: RedisStore(redis_url, prefix="bench:")))
    return out


def bench_epochs(specs: list[dict[str, Any]], tmp: Path, redis_url: str | None, repeat: int) -> None:
    n = len(specs)
    uncached = [timed(lambda: list(tp.from_items(specs).map(read_sample)))[0] for _ in range(repeat)]
    floor = statistics.median(uncached)
    data_bytes = sum(s["image"].numel() * 4 for s in tp.from_items(specs[:1]).map(read_sample)) * n
    print(
        f"\n{n} samples of {specs[0]['size']}² x {len(BANDS)} bands ({data_bytes / 2**20:.0f} MiB as float32)"
    )
    print(
        f"{'backend':<20} {'epoch 1 (write)':>16} {'epoch 2 (hits)':>16} {'speed-up':>9} {'entries MiB':>11}"
    )
    print(f"{'no cache':<20} {n / floor:>12.0f} s/s {'':>16} {'1.0x':>9} {'':>11}")
    for name, make in stores(tmp, redis_url, budget=4 * data_bytes):
        store = make()
        pipe = tp.from_items(specs).cache_point().map(read_sample).cache(store)
        first, out = timed(lambda: list(pipe))  # noqa: B023
        if len(out) != n or pipe.stats.writes != n:
            raise RuntimeError(f"{name}: epoch 1 did not write every entry: {pipe.stats}")
        seconds = []
        for _ in range(repeat):
            again = tp.from_items(specs).cache_point().map(read_sample).cache(store)
            elapsed, out2 = timed(lambda: list(again))  # noqa: B023
            if again.stats.hits != n or not torch.equal(out2[-1]["image"], out[-1]["image"]):
                raise RuntimeError(f"{name}: epoch 2 was not served from the cache: {again.stats}")
            seconds.append(elapsed)
        second = statistics.median(seconds)
        stored = pipe.stats.bytes_written / 2**20
        print(
            f"{name:<20} {n / first:>12.0f} s/s {n / second:>12.0f} s/s {floor / second:>8.1f}x {stored:>11.1f}"
        )
        if isinstance(store, RedisStore):
            store.clear()


def bench_lru_memory(specs: list[dict[str, Any]]) -> None:
    blobs = [pack_entry(f"{i:064x}", [encode_value(read_sample(s))]) for i, s in enumerate(specs)]
    total = sum(len(b) for b in blobs)
    print(f"\nMemoryLRU: memory held vs budget ({len(blobs)} entries of {len(blobs[0]) / 2**10:.0f} KiB)")
    print(f"{'budget MiB':>11} {'accounted MiB':>14} {'traced MiB':>11} {'traced/budget':>14} {'evicted':>8}")
    for fraction in (0.1, 0.25, 0.5):
        budget = int(total * fraction)
        tracemalloc.start()
        try:
            lru = MemoryLRU(max_bytes=budget)
            base = tracemalloc.get_traced_memory()[0]
            for i, blob in enumerate(blobs):
                lru.put(f"{i:064x}", blob[:1] + blob[1:])  # a new object, as a cache miss makes
            held = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        print(
            f"{budget / 2**20:>11.1f} {lru.nbytes / 2**20:>14.1f} {held / 2**20:>11.1f} "
            f"{held / budget:>13.3f}x {lru.evicted:>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="sample world scale")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args, _ = parser.parse_known_args()

    print(f"bench_cache | {dt.datetime.now().isoformat(timespec='seconds')} | {machine()}")
    world = sample_world(scale=args.scale)
    specs = window_specs(world, args.window)
    tmp = Path(tempfile.mkdtemp(prefix="terrapipe-bench-cache-"))
    server = None
    try:
        if shutil.which("redis-server"):
            from tests.servers.redis_server import start_redis_server

            server = start_redis_server()
        else:
            print("redis-server not installed: the Redis row is skipped (apt-get install redis-server)")
        bench_epochs(specs, tmp, server.url if server else None, args.repeat)
        bench_lru_memory(specs)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
