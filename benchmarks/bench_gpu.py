"""ERA5-like Zarr cube to batches of tensors on the GPU: CPU zarr path vs GPU path, and the copy floor.

The cube is generated here, offline: four float32 variables (``t2m``, ``u10``,
``v10``, ``msl``) on a ``(time, latitude, longitude)`` grid, one chunk per time
step and variable (ERA5 analysis-ready stores are chunked by time), written
twice: uncompressed and zstd. Values are smooth fields plus noise rounded to
0.01, so zstd compresses them by a realistic factor, not by 100x.

A batch is ``--batch`` consecutive time steps of all four variables, a
``float32 [B, 4, lat, lon]`` tensor on the device. Paths timed per store:

- ``cpu zarr``: ``open_zarr`` (host buffers, zarr's CPU decode) -> numpy ->
  ``torch.stack`` -> ``to_device`` (reused pinned buffers, asynchronous copy);
- ``gpu zarr``: ``open_zarr_on_device(device="cuda", gds=False)`` (chunks
  decoded into CuPy buffers) -> ``as_tensor`` (DLPack, no copy) -> ``torch.stack``
  on the GPU;
- ``gpu zarr + GDS``: the same through kvikio's ``GDSStore``, when kvikio is
  installed;
- ``gpu-path twin`` (``--cpu-only``): the GPU path's code with host buffers
  (``device="cpu"``), to check it end to end without a GPU.

The floor is the host-to-device copy bandwidth of a pinned tensor of one batch
(and of a pageable one, for reference). Each path reads every batch once per
round; rounds alternate the paths (paired) and the table shows the median
(min-max) of ``--repeat`` rounds. Files sit in the page cache (warm reads:
the machine has the memory), so this measures decode + copies, not the disk.

Targets (issue #9): GPU path >= 1.33x the CPU path, and within 2x of the
pinned copy bandwidth (``vs copy`` >= 0.5).

Run on a GPU machine: ``python benchmarks/bench_gpu.py [--gb 2] [--repeat 3]``.
Without a CUDA device it prints "no CUDA device: skipped" and exits 0;
``--cpu-only --small`` runs the CPU path and the GPU path's host twin
(tensors stay on the CPU), to check the script end to end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

VARIABLES = ("t2m", "u10", "v10", "msl")
FULL_GRID = (721, 1440)  # ERA5 0.25 degree
SMALL_GRID = (91, 180)


# -- data ---------------------------------------------------------------------------------------


def make_cube(steps: int, grid: tuple[int, int], seed: int = 0) -> Any:
    import xarray as xr

    rng = np.random.default_rng(seed)
    lat = np.linspace(90, -90, grid[0])
    lon = np.linspace(0, 360, grid[1], endpoint=False)
    base = np.cos(np.deg2rad(lat))[:, None] * np.sin(np.deg2rad(lon))[None, :]
    data = {}
    for k, (name, scale, offset) in enumerate(
        zip(VARIABLES, (30.0, 8.0, 8.0, 2000.0), (260.0, 0.0, 0.0, 101325.0), strict=True)
    ):
        field = np.empty((steps, *grid), dtype="float32")
        for t in range(steps):
            phase = 0.05 * t + k
            noise = rng.normal(0, 0.02 * scale, grid)
            field[t] = np.round(offset + scale * np.roll(base, int(phase * 40), axis=1) + noise, 2)
        data[name] = (("time", "latitude", "longitude"), field)
    times = np.datetime64("2024-01-01T00", "h") + np.arange(steps).astype("timedelta64[h]")
    return xr.Dataset(data, coords={"time": times, "latitude": lat, "longitude": lon})


def write_stores(folder: Path, steps: int, grid: tuple[int, int]) -> dict[str, Path]:
    import zarr

    cube = make_cube(steps, grid)
    stores = {}
    for label, compressors in (("raw", None), ("zstd", zarr.codecs.ZstdCodec(level=3))):
        path = folder / f"era5_{label}.zarr"
        encoding = {v: {"chunks": (1, *grid), "compressors": compressors} for v in VARIABLES}
        cube.to_zarr(path, zarr_format=3, encoding=encoding, consolidated=False, mode="w")
        stores[label] = path
    return stores


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def size(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"


# -- paths ---------------------------------------------------------------------------------------


def batches(steps: int, batch: int) -> list[slice]:
    return [slice(start, min(start + batch, steps)) for start in range(0, steps, batch)]


def cpu_path(store: Path, device: torch.device, batch: int) -> Callable[[], int]:
    from terrapipe.gpu import DeviceMover
    from terrapipe.io import open_zarr
    from terrapipe.tensor import to_torch

    mover = DeviceMover(device)

    def run() -> int:
        cube = open_zarr(store)
        steps = cube.sizes["time"]
        total = 0
        for window in batches(steps, batch):
            planes = [to_torch(cube[v].isel(time=window).values) for v in VARIABLES]
            tensor = mover(torch.stack(planes, dim=1))
            total += tensor.numel() * tensor.element_size()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return total

    return run


def gpu_path(store: Path, device: torch.device, batch: int, gds: bool) -> Callable[[], int]:
    from terrapipe.gpu import as_tensor, open_zarr_on_device

    def run() -> int:
        cube = open_zarr_on_device(store, device=device, gds=gds)
        steps = cube.sizes["time"]
        total = 0
        for window in batches(steps, batch):
            tensor = torch.stack([as_tensor(cube[v].isel(time=window).data) for v in VARIABLES], dim=1)
            total += tensor.numel() * tensor.element_size()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return total

    return run


def copy_floor(device: torch.device, shape: tuple[int, ...], pinned: bool, copies: int = 20) -> float:
    """Host-to-device GB/s of a batch-sized tensor (pinned or pageable)."""
    host = torch.empty(shape, dtype=torch.float32, pin_memory=pinned).fill_(1.0)
    host.to(device, non_blocking=pinned)
    torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(copies):
        host.to(device, non_blocking=pinned)
    torch.cuda.synchronize(device)
    return host.numel() * 4 * copies / (time.perf_counter() - started) / 1e9


# -- main ---------------------------------------------------------------------------------------


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.0, help="decoded size of the cube (GB)")
    parser.add_argument("--small", action="store_true", help="a tiny cube (91 x 180, 16 steps)")
    parser.add_argument("--batch", type=int, default=4, help="time steps per batch")
    parser.add_argument("--repeat", type=int, default=3, help="paired rounds")
    parser.add_argument("--cpu-only", action="store_true", help="CPU path only, tensors on the CPU")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write the cube (default: a temp dir)"
    )
    args = parser.parse_args()

    if not args.cpu_only and not torch.cuda.is_available():
        print("no CUDA device: skipped (run on a GPU machine, or --cpu-only --small to check the CPU path)")
        return 0

    import zarr

    import terrapipe as tp

    grid = SMALL_GRID if args.small else FULL_GRID
    step_bytes = len(VARIABLES) * grid[0] * grid[1] * 4
    steps = 16 if args.small else max(args.batch, int(args.gb * 1e9 // step_bytes))
    device = torch.device("cpu") if args.cpu_only else torch.device("cuda")
    has_kvikio = importlib.util.find_spec("kvikio") is not None

    folder = Path(tempfile.mkdtemp(prefix="bench_gpu_", dir=args.dir))
    try:
        started = time.perf_counter()
        stores = write_stores(folder, steps, grid)
        print(
            f"# wrote {steps} steps of {len(VARIABLES)} x {grid[0]} x {grid[1]} float32 "
            f"({size(steps * step_bytes)} decoded) in {time.perf_counter() - started:.0f} s; "
            + ", ".join(f"{k} {size(folder_bytes(p))} on disk" for k, p in stores.items())
        )

        paths: dict[tuple[str, str], Callable[[], int]] = {}
        for label, store in stores.items():
            paths[(label, "cpu zarr")] = cpu_path(store, device, args.batch)
            # on the CPU: the host-buffer twin of the GPU path (same code, host buffers)
            paths[(label, "gpu zarr" if device.type == "cuda" else "gpu-path twin")] = gpu_path(
                store, device, args.batch, gds=False
            )
            if device.type == "cuda" and has_kvikio:
                paths[(label, "gpu zarr + GDS")] = gpu_path(store, device, args.batch, gds=True)

        for run in paths.values():  # warm-up: page cache, CUDA context, pools
            run()
        rates: dict[tuple[str, str], list[float]] = {key: [] for key in paths}
        for _ in range(args.repeat):
            for key, run in paths.items():
                t0 = time.perf_counter()
                nbytes = run()
                rates[key].append(nbytes / (time.perf_counter() - t0) / 1e9)

        floor_pinned = floor_pageable = None
        if device.type == "cuda":
            shape = (args.batch, len(VARIABLES), *grid)
            floor_pinned = statistics.median(copy_floor(device, shape, True) for _ in range(args.repeat))
            floor_pageable = statistics.median(copy_floor(device, shape, False) for _ in range(args.repeat))
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU only (no GPU path)"
    print(f"# {dt.datetime.now().isoformat(timespec='seconds')}  device: {name}")
    print(
        f"# {platform.node()} {platform.platform()}  cpus {os.cpu_count()}  python {platform.python_version()}  "
        f"torch {torch.__version__}  zarr {zarr.__version__}  terrapipe {tp.__version__}  "
        f"cupy {'yes' if importlib.util.find_spec('cupy') else 'no'}  kvikio {'yes' if has_kvikio else 'no'}"
    )
    print(
        f"# batch {args.batch} steps = {args.batch * step_bytes / 1e6:.1f} MB; median (min-max) of {args.repeat} "
        "paired rounds, warm page cache"
    )
    if floor_pinned is not None:
        print(f"# host->device copy: pinned {floor_pinned:.2f} GB/s, pageable {floor_pageable:.2f} GB/s")
    print()
    print(f"| {'store':5} | {'path':15} | {'GB/s (decoded)':>22} | {'vs cpu zarr':>11} | {'vs copy':>7} |")
    print(f"|{'-' * 7}|{'-' * 17}|{'-' * 24}|{'-' * 13}|{'-' * 9}|")
    for (label, path), values in rates.items():
        rate = statistics.median(values)
        base = statistics.median(rates[(label, "cpu zarr")])
        vs_copy = f"{rate / floor_pinned:7.2f}" if floor_pinned else f"{'-':>7}"
        print(f"| {label:5} | {path:15} | {fmt(values):>22} | {rate / base:10.2f}x | {vs_copy} |")
    if device.type == "cuda":
        print("\n# targets: gpu zarr >= 1.33x cpu zarr; vs copy >= 0.50 (within 2x of the pinned copy)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
