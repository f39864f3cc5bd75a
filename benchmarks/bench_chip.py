"""Chipping throughput: terrapipe's ``chip`` / ``slice_with_xbatcher`` against the raw-read floor and xbatcher.

Builds a Zarr cube (4 bands x N x N uint16, 512 x 512 chunks per band, zstd,
smooth imagery-like content) and the same pixels as a tiled, compressed
GeoTIFF (COG layout, 512 x 512 tiles, DEFLATE), then cuts them into 256 x 256
and 64 x 64 chips converted to torch tensors (``torch.from_numpy``), side by
side:

- ``floor``: zarr-python reads each 512 x 512 block once (all bands) and slices
  it (for the COG: rasterio reads each tile-aligned 512 x 512 block);
- ``xbatcher``: ``xbatcher.BatchGenerator`` over the lazily opened cube, and its
  torch ``MapDataset`` in a ``DataLoader`` with 2 worker processes;
- ``chip``: ``tp.from_items([cube]).chip(...)`` (xarray chips, and
  ``output="numpy"``), alone and in a ``DataLoader`` with 2 workers;
- ``slice_with_xbatcher``: terrapipe's xbatcher-identical slicer.

Every contender runs in its own subprocess (so its peak RSS is its own) on a
warm page cache; slow ones stop after ``--limit`` seconds and their rate is
measured on what they did. A second ``chip`` run on a cube 4x larger (2N x 2N)
shows whether peak RSS stays flat. torchgeo is not installed here (it needs
torchvision, which has no CPU wheel for this torch), so it is not compared.

Run: ``python benchmarks/bench_chip.py [--size small|medium|full] [--repeat 3] [--markdown out.md]``
(``full`` = 8192 x 8192, the issue's configuration, about 10 minutes per repeat plus building the
data once; ``small`` = 2048 for a quick check). The table in ``docs/benchmarks/chip.md`` comes from
``--size full --repeat 3 --limit 15``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SIZES = {"small": 2048, "medium": 4096, "full": 8192}
BANDS = 4
BLOCK = 512


# -- data --------------------------------------------------------------------------------------------


def _bilinear(coarse: np.ndarray, n: int, rows: slice) -> np.ndarray:
    """Rows ``rows`` of ``coarse`` stretched bilinearly to ``n x n`` (memory: one strip)."""
    cells = coarse.shape[0] - 2
    pos_y = np.arange(rows.start, rows.stop) * cells / n
    pos_x = np.arange(n) * cells / n
    iy, fy = np.floor(pos_y).astype(int), (pos_y % 1.0)[:, None]
    ix, fx = np.floor(pos_x).astype(int), pos_x % 1.0
    strip = coarse[iy] * (1 - fy) + coarse[iy + 1] * fy
    return (strip[:, ix] * (1 - fx) + strip[:, ix + 1] * fx).astype(np.float32)


def _strip(n: int, rows: slice, grids: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Smooth, imagery-like uint16 content of all bands for ``rows``: large fields, texture, sensor noise."""
    out = np.empty((BANDS, rows.stop - rows.start, n), dtype=np.uint16)
    for band, (large, medium) in enumerate(grids):
        noise = np.random.default_rng([band, rows.start]).normal(0.0, 1.0, size=(rows.stop - rows.start, n))
        values = (
            1800 + 500 * band + 600 * _bilinear(large, n, rows) + 150 * _bilinear(medium, n, rows) + 9 * noise
        )
        out[band] = np.clip(values, 1, 65535).astype(np.uint16)
    return out


def _grids(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    grids = []
    for band in range(BANDS):
        rng = np.random.default_rng(100 + band)
        grids.append(
            (rng.normal(size=(n // 256 + 2, n // 256 + 2)), rng.normal(size=(n // 16 + 2, n // 16 + 2)))
        )
    return grids


def build_zarr(path: Path, n: int) -> Path:
    import zarr

    if (path / "zarr.json").exists():
        return path
    tmp = path.with_suffix(".partial")
    group = zarr.open_group(tmp, mode="w")
    image = group.create_array(
        "image",
        shape=(BANDS, n, n),
        chunks=(1, BLOCK, BLOCK),
        dtype="uint16",
        dimension_names=("band", "y", "x"),
    )
    grids = _grids(n)
    for y in range(0, n, BLOCK):
        rows = slice(y, min(y + BLOCK, n))
        image[:, rows, :] = _strip(n, rows, grids)
    group.create_array("band", data=np.arange(1, BANDS + 1), dimension_names=("band",))
    group.create_array("y", data=5_000_000.0 - 10.0 * np.arange(n) - 5.0, dimension_names=("y",))
    group.create_array("x", data=500_000.0 + 10.0 * np.arange(n) + 5.0, dimension_names=("x",))
    tmp.rename(path)
    return path


def build_cog(path: Path, zarr_path: Path, n: int) -> Path:
    import rasterio
    import zarr
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    if path.exists():
        return path
    image = zarr.open_array(zarr_path / "image", mode="r")
    tmp = path.with_suffix(".partial.tif")
    profile = {
        "driver": "GTiff",
        "width": n,
        "height": n,
        "count": BANDS,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(500_000, 5_000_000, 10, 10),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
    }
    with rasterio.open(tmp, "w", **profile) as dst:
        for y in range(0, n, BLOCK):
            dst.write(image[:, y : y + BLOCK, :], window=Window(0, y, n, BLOCK))
    tmp.rename(path)
    return path


def warm(path: Path) -> None:
    """Read every file once so that all contenders see a warm page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


# -- contenders (run in a subprocess each) -------------------------------------------------------------


def _timed(chips: Iterator[Any], limit: float) -> tuple[int, float]:
    import torch

    count = 0
    started = time.perf_counter()
    for chip in chips:
        array = (
            chip[0] if isinstance(chip, tuple) else (chip if isinstance(chip, torch.Tensor) else chip.values)
        )
        if not isinstance(array, torch.Tensor):
            torch.from_numpy(array)
        count += 1
        if count % 16 == 0 and time.perf_counter() - started > limit:
            break
    return count, time.perf_counter() - started


def _zarr_floor(path: Path, size: int, limit: float) -> tuple[int, float]:
    import torch
    import zarr

    image = zarr.open_array(path / "image", mode="r")
    _, n, _ = image.shape
    count = 0
    started = time.perf_counter()
    for y in range(0, n, BLOCK):
        for x in range(0, n, BLOCK):
            block = image[:, y : y + BLOCK, x : x + BLOCK]
            for yy in range(0, BLOCK - size + 1, size):
                for xx in range(0, BLOCK - size + 1, size):
                    torch.from_numpy(block[:, yy : yy + size, xx : xx + size])
                    count += 1
        if time.perf_counter() - started > limit:
            break
    return count, time.perf_counter() - started


def _cog_floor(path: Path, size: int, limit: float) -> tuple[int, float]:
    import rasterio
    import torch
    from rasterio.windows import Window

    count = 0
    started = time.perf_counter()
    with rasterio.open(path) as src:
        n = src.height
        for y in range(0, n, BLOCK):
            for x in range(0, n, BLOCK):
                block = src.read(window=Window(x, y, BLOCK, BLOCK))
                for yy in range(0, BLOCK - size + 1, size):
                    for xx in range(0, BLOCK - size + 1, size):
                        torch.from_numpy(block[:, yy : yy + size, xx : xx + size])
                        count += 1
            if time.perf_counter() - started > limit:
                break
    return count, time.perf_counter() - started


def _open_zarr(path: Path) -> Any:
    import xarray as xr

    return xr.open_zarr(path, chunks=None, consolidated=False).image


def _xbatcher(path: Path, size: int, limit: float) -> tuple[int, float]:
    import xbatcher

    gen = xbatcher.BatchGenerator(_open_zarr(path), {"y": size, "x": size})
    return _timed((gen[i] for i in range(len(gen))), limit)


LOADER_BATCH = 32


def _batched(loader: Any, limit: float) -> tuple[int, float]:
    """Count the chips of a DataLoader's batches, then shut its workers down (so their CPU is counted)."""
    count = 0
    started = time.perf_counter()
    it = iter(loader)
    for batch in it:
        count += len(batch)
        if time.perf_counter() - started > limit:
            break
    seconds = time.perf_counter() - started
    del it
    gc.collect()
    return count, seconds


def _xbatcher_loader(path: Path, size: int, limit: float) -> tuple[int, float]:
    import xbatcher
    from torch.utils.data import DataLoader
    from xbatcher.loaders.torch import MapDataset

    gen = xbatcher.BatchGenerator(_open_zarr(path), {"y": size, "x": size})
    return _batched(DataLoader(MapDataset(gen), batch_size=LOADER_BATCH, num_workers=2), limit)


def _chip(path: Path, size: int, limit: float, **options: Any) -> tuple[int, float]:
    import terrapipe as tp
    import terrapipe.chip

    pipe = tp.from_items([_open_zarr(path)]).chip({"y": size, "x": size}, **options)
    return _timed(iter(pipe), limit)


def _chip_loader(path: Path, size: int, limit: float) -> tuple[int, float]:
    from torch.utils.data import DataLoader

    import terrapipe as tp
    import terrapipe.chip

    pipe = tp.from_items([_open_zarr(path)]).chip({"y": size, "x": size}, output="numpy", workers=1)
    return _batched(DataLoader(pipe, batch_size=LOADER_BATCH, num_workers=2, collate_fn=_stack), limit)


def _stack(items: list[Any]) -> Any:
    """Stack chip arrays into one batch tensor (a copy, so a batch never drags whole blocks along)."""
    import torch

    return torch.from_numpy(np.stack([array for array, _ in items]))


def _slicer(path: Path, size: int, limit: float) -> tuple[int, float]:
    import terrapipe as tp
    import terrapipe.chip

    pipe = tp.from_items([_open_zarr(path)]).slice_with_xbatcher({"y": size, "x": size})
    return _timed(iter(pipe), limit)


def _chip_cog(
    path: Path, size: int, limit: float, opener: str = "terrapipe", **options: Any
) -> tuple[int, float]:
    import terrapipe as tp
    import terrapipe.chip

    if opener == "rioxarray":
        import rioxarray

        cube = rioxarray.open_rasterio(path)
    else:
        from terrapipe.io import open_raster

        cube = open_raster(path)
    pipe = tp.from_items([cube]).chip({"y": size, "x": size}, **options)
    return _timed(iter(pipe), limit)


CONTENDERS: dict[str, tuple[str, Callable[..., tuple[int, float]]]] = {
    "floor": ("zarr", _zarr_floor),
    "xbatcher": ("zarr", _xbatcher),
    "xbatcher+DataLoader(2)": ("zarr", _xbatcher_loader),
    "chip": ("zarr", _chip),
    "chip numpy": ("zarr", lambda p, s, lim: _chip(p, s, lim, output="numpy")),
    "chip+DataLoader(2)": ("zarr", _chip_loader),
    "slice_with_xbatcher": ("zarr", _slicer),
    "cog floor": ("cog", _cog_floor),
    "cog chip": ("cog", _chip_cog),
    "cog chip numpy": ("cog", lambda p, s, lim: _chip_cog(p, s, lim, output="numpy")),
    "cog chip rioxarray": ("cog", lambda p, s, lim: _chip_cog(p, s, lim, opener="rioxarray")),
}


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_worker(name: str, path: Path, size: int, limit: float) -> None:
    # import everything first: import time is not chipping time
    import rasterio  # noqa: F401
    import rioxarray  # noqa: F401
    import torch
    import torch.utils.data  # noqa: F401
    import xarray  # noqa: F401
    import xbatcher
    import xbatcher.loaders.torch  # noqa: F401
    import zarr  # noqa: F401

    import terrapipe.chip
    import terrapipe.io  # noqa: F401

    _, fn = CONTENDERS[name]
    cpu = _cpu()
    count, seconds = fn(path, size, limit)
    cpu = _cpu() - cpu
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {"chips": count, "seconds": seconds, "cpu": cpu, "rss_mb": own, "child_rss_mb": children}
    print(json.dumps(result))


def measure(name: str, path: Path, size: int, limit: float) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", name, "--path", str(path), "--chip", str(size)]
    command += ["--limit", str(limit)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    out: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    out["rate"] = out["chips"] / out["seconds"]
    return out


# -- report --------------------------------------------------------------------------------------------


def machine() -> str:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {mem_gb:.0f} GiB RAM"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--chips", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--limit", type=float, default=20.0, help="seconds per contender at most")
    parser.add_argument(
        "--repeat", type=int, default=1, help="interleaved runs per contender (the best is reported)"
    )
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS))
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "terrapipe" / "bench-chip",
    )
    parser.add_argument("--no-rss-growth", action="store_true", help="skip the 4x larger cube")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chip", type=int, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()  # nox passes the same arguments to every benchmark
    if args.worker:
        run_worker(args.worker, args.path, args.chip, args.limit)
        return

    n = SIZES[args.size]
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"building data under {args.cache_dir} (cached between runs) ...", flush=True)
    zarr_path = build_zarr(args.cache_dir / f"cube-{n}.zarr", n)
    cog_path = build_cog(args.cache_dir / f"cube-{n}.tif", zarr_path, n)
    for p in (zarr_path, cog_path):
        warm(p)

    lines = [
        f"chipping benchmark, {dt.date.today().isoformat()}, {machine()}",
        f"cube: {BANDS} x {n} x {n} uint16, {BLOCK}² chunks (zarr: zstd, one band per chunk; "
        "COG: DEFLATE + predictor, pixel-interleaved tiles)",
        f"best of {args.repeat} interleaved runs per contender; load average before: "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}",
        "",
    ]
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    for repeat in range(args.repeat):
        for size in args.chips:
            for name in args.contenders:
                kind, _ = CONTENDERS[name]
                path = zarr_path if kind == "zarr" else cog_path
                run = measure(name, path, size, args.limit)
                runs.setdefault((name, size), []).append(run)
                print(
                    f"  run {repeat + 1} {size:>4}² {name:<24} {run['rate']:9.0f} chips/s "
                    f"{1000 * run['cpu'] / max(run['chips'], 1):7.2f} CPU s/1000 chips",
                    flush=True,
                )
    results = {
        key: {
            "rate": max(r["rate"] for r in group),
            "cpu": min(r["cpu"] / max(r["chips"], 1) for r in group) * 1000,
            "rss": max(r["rss_mb"] + r["child_rss_mb"] for r in group),
        }
        for key, group in runs.items()
    }
    for size in args.chips:
        lines += [
            f"### {size}² chips from {BLOCK}² blocks",
            "",
            "| contender | chips/s | x floor | x xbatcher | CPU s / 1000 chips | peak RSS (MB) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in args.contenders:
            r = results[(name, size)]
            floor = results.get(("cog floor" if name.startswith("cog") else "floor", size))
            xb = results.get(("xbatcher", size))
            ratio_floor = f"{r['rate'] / floor['rate']:.2f}" if floor else "-"
            ratio_xb = f"{r['rate'] / xb['rate']:.1f}" if xb and not name.startswith("cog") else "-"
            lines.append(
                f"| {name} | {r['rate']:,.0f} | {ratio_floor} | {ratio_xb} | {r['cpu']:.2f} | {r['rss']:,.0f} |"
            )
        lines.append("")

    if not args.no_rss_growth and "chip" in args.contenders:
        big = build_zarr(args.cache_dir / f"cube-{2 * n}.zarr", 2 * n)
        warm(big)
        size = args.chips[0]
        small_run = measure("chip", zarr_path, size, 1e9)
        big_run = measure("chip", big, size, 1e9)
        lines += [
            f"### peak RSS of `chip` ({size}² chips, whole cube) when the cube grows 4x",
            "",
            "| cube | chips | chips/s | peak RSS (MB) |",
            "|---|---:|---:|---:|",
            f"| {BANDS} x {n} x {n} | {small_run['chips']:,.0f} | {small_run['rate']:,.0f} | {small_run['rss_mb']:,.0f} |",
            f"| {BANDS} x {2 * n} x {2 * n} | {big_run['chips']:,.0f} | {big_run['rate']:,.0f} | {big_run['rss_mb']:,.0f} |",
            "",
        ]
    text = "\n".join(lines)
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
