"""Soak: memory over several epochs of a large cube, with every buffer at its bound.

A ``(time, y, x)`` float32 Zarr cube larger than the memory the pipeline may
use (default 8 x 4096 x 4096, 512 MiB) is chipped (256 px windows, 32 px
overlap, shuffled), turned into Samples and batched by ``tp.loader`` with
worker threads, for several epochs. A thread samples the process's resident
memory (RSS) every 0.1 s. The table shows, per epoch, the throughput and the
RSS at its start, peak and end. What to look for: RSS does not grow from
epoch to epoch (no leak), and the peak above the pre-run baseline is of the
order of the sum of the configured bounds (block budget and shuffle buffer
per worker, loader queue, one batch), not of the cube: decoders and the
allocator add some working memory of their own.

Run: ``python benchmarks/bench_soak.py [--times 8] [--size 4096] [--epochs 3]
[--workers 2] [--root DIR]``. ``--size 1024 --epochs 2`` is a quick check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
import xarray as xr

import terrapipe as tp

MIB = 2**20
WINDOW, OVERLAP, CHUNK = 256, 32, 512


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.node()} | {platform.system()} {platform.release()} | {cpu}, {os.cpu_count()} CPUs | "
        f"Python {platform.python_version()} | torch {torch.__version__} | rasterio {rasterio.__version__}"
    )


def rss_bytes() -> int:
    """Resident memory of this process (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class Sampler:
    """Sample RSS every ``interval`` seconds in a thread; ``mark()`` starts a new span."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.perf_counter(), rss_bytes()))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, since: float, until: float) -> int:
        inside = [rss for t, rss in self.samples if since <= t <= until]
        return max(inside, default=rss_bytes())


def write_cube(path: Path, times: int, size: int) -> int:
    """Write the cube (smooth values plus noise, like a real field) chunk by chunk; return its bytes."""
    import dask.array as dsa
    import zarr

    coords = {
        "time": np.datetime64("2024-01-01", "ns") + np.arange(times) * np.timedelta64(5, "D"),
        "y": 5_000_000 - 10.0 * (np.arange(size) + 0.5),
        "x": 500_000 + 10.0 * (np.arange(size) + 0.5),
    }
    lazy = dsa.zeros((times, size, size), chunks=(1, CHUNK, CHUNK), dtype="float32")
    ds = xr.Dataset({"t2m": (("time", "y", "x"), lazy)}, coords=coords).rio.write_crs("EPSG:32631")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(path, zarr_format=3, compute=False, consolidated=False)
    array = zarr.open_array(path / "t2m", mode="r+")
    rng = np.random.default_rng(0)
    ramp = np.linspace(270, 300, CHUNK, dtype="float32")[None, :]
    for t in range(times):
        for r in range(0, size, CHUNK):
            for c in range(0, size, CHUNK):
                array[t, r : r + CHUNK, c : c + CHUNK] = ramp + rng.normal(0, 0.5, (CHUNK, CHUNK)).astype(
                    "float32"
                )
    return times * size * size * 4


def make_pipe(path: Path, block_cache_bytes: int, shuffle_buffer: int) -> Any:
    return (
        tp.from_items([str(path)])
        .read_zarr(variables="t2m")
        .chip(
            {"time": 1, "y": WINDOW, "x": WINDOW},
            overlap={"y": OVERLAP, "x": OVERLAP},
            shuffle=tp.chip.WindowShuffle(buffer=shuffle_buffer, seed=0),
            reads=tp.chip.Reads(block_cache_bytes=block_cache_bytes),
        )
        .to_tensor(image="t2m", mask=None)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=8)
    parser.add_argument("--size", type=int, default=4096, help="cube height and width (pixels)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-cache-mib", type=int, default=64)
    parser.add_argument("--shuffle-buffer", type=int, default=64)
    parser.add_argument("--root", type=Path, default=None, help="folder for the cube (default: a tmp dir)")
    args, _ = parser.parse_known_args()

    print(f"bench_soak | {dt.datetime.now().isoformat(timespec='seconds')} | {machine()}")
    root = args.root or Path(tempfile.mkdtemp(prefix="terrapipe-bench-soak-"))
    path = root / f"soak-{args.times}x{args.size}.zarr"
    try:
        started = time.perf_counter()
        if not path.exists():
            cube_bytes = write_cube(path, args.times, args.size)
        else:
            cube_bytes = args.times * args.size**2 * 4
        print(
            f"cube: {args.times} x {args.size} x {args.size} float32 = {cube_bytes / MIB:.0f} MiB "
            f"(chunks 1 x {CHUNK} x {CHUNK}), written in {time.perf_counter() - started:.1f} s"
        )

        block_budget = args.block_cache_mib * MIB
        sample_bytes = WINDOW * WINDOW * 4
        loader = tp.loader(
            make_pipe(path, block_budget, args.shuffle_buffer),
            batch_size=args.batch_size,
            workers=args.workers,
        )
        bound = (
            max(1, args.workers) * (block_budget + 2 * CHUNK * CHUNK * 4 + args.shuffle_buffer * sample_bytes)
            + loader.max_elements_ahead * sample_bytes
            + args.batch_size * sample_bytes
        )
        baseline = rss_bytes()
        rows = []
        with Sampler() as sampler, loader:
            for epoch in range(args.epochs):
                start_rss, t0 = rss_bytes(), time.perf_counter()
                samples = 0
                for batch in loader:
                    samples += int(batch["image"].shape[0])
                t1 = time.perf_counter()
                rows.append((epoch, samples, t1 - t0, start_rss, sampler.peak(t0, t1), rss_bytes()))
        print(
            f"pipeline: read_zarr -> chip({WINDOW}, overlap {OVERLAP}, shuffle_buffer={args.shuffle_buffer}, "
            f"block_cache_bytes={args.block_cache_mib} MiB) -> to_tensor -> loader(batch {args.batch_size}, "
            f"{args.workers} threads)"
        )
        print(
            f"RSS before the run: {baseline / MIB:.0f} MiB; sum of the buffers' bounds: {bound / MIB:.0f} MiB"
        )
        print(
            f"{'epoch':>5} {'samples':>8} {'seconds':>8} {'samples/s':>10} {'RSS start':>10} {'RSS peak':>9} "
            f"{'RSS end':>8} {'peak-base':>10} {'/bound':>7}"
        )
        for epoch, samples, seconds, start_rss, peak, end_rss in rows:
            above = peak - baseline
            print(
                f"{epoch:>5} {samples:>8} {seconds:>8.1f} {samples / seconds:>10.0f} {start_rss / MIB:>10.0f} "
                f"{peak / MIB:>9.0f} {end_rss / MIB:>8.0f} {above / MIB:>10.0f} {above / bound:>6.2f}x"
            )
        growth = rows[-1][5] - rows[0][5]
        print(
            f"RSS growth from the end of epoch 0 to the end of epoch {rows[-1][0]}: {growth / MIB:+.1f} MiB "
            f"({growth / max(1, rows[-1][1] * (len(rows) - 1)):+.1f} bytes per sample)"
        )
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
