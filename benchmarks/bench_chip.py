"""Chipping throughput: terrapipe's ``chip`` / ``slice_with_xbatcher`` against the raw-read floor and its peers.

Builds a Zarr cube (4 bands x N x N uint16, 512 x 512 chunks per band, zstd,
smooth imagery-like content) and the same pixels as a tiled, compressed
GeoTIFF (COG layout, 512 x 512 tiles, DEFLATE), then cuts them into 256 x 256
and 64 x 64 chips, each made a torch tensor, side by side:

- ``floor``: zarr-python reads each 512 x 512 block once (all bands) and slices
  it into chips, each made a tensor with ``torch.from_numpy`` (for the COG:
  rasterio reads each tile-aligned 512 x 512 block) -- the same output work
  as ``chip``'s consumer, which makes a tensor of every chip's pixels;
- ``xbatcher``: ``xbatcher.BatchGenerator`` over the lazily opened cube, and its
  torch ``MapDataset`` in a ``DataLoader`` with 2 worker processes;
- ``chip``: ``tp.from_items([cube]).chip(...)`` (xarray chips with coordinates
  and CRS, and ``output="numpy"``), alone and in a ``DataLoader`` with 2 workers;
- ``slice_with_xbatcher``: terrapipe's xbatcher-identical slicer;
- ``torchgeo``: a ``RasterDataset`` over the COG with a ``GridGeoSampler`` in a
  ``DataLoader`` with 2 workers, when torchgeo imports (it needs torchvision,
  whose PyPI wheels are CUDA builds: install it in a separate environment, see
  ``--torchgeo-python``); otherwise the reason is printed and it is skipped.

Every contender runs in its own subprocess (so its peak RSS is its own) on a
warm page cache; slow ones stop after ``--limit`` seconds and their rate is
measured on what they did. Every contender runs right after its floor, in
each round: its ratio to the floor comes from that pair of runs, seconds
apart (the load of a shared machine changes from minute to minute); the
tables give the median over the rounds and the range. The ratios to xbatcher
and torchgeo are ratios of those medians.
A ``chip`` run on a cube 4x larger (2N x 2N) shows whether peak RSS stays flat,
and a last table counts block re-reads with shuffled, overlapping windows.

Run: ``python benchmarks/bench_chip.py [--size small|medium|full] [--repeat 5] [--markdown out.md]``
(``full`` = 8192 x 8192, the issue's configuration; ``small`` = 2048 for a quick check). The
tables in ``docs/benchmarks/chip.md`` come from ``--size full --repeat 5 --limit 8``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import json
import os
import platform
import resource
import statistics
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


def build_band_cogs(folder: Path, zarr_path: Path, n: int) -> Path:
    """The cube as one STAC item of four single-band COGs (512² tiles, DEFLATE): what ``stack_stac`` reads."""
    import rasterio
    import zarr
    from pyproj import Transformer
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    item_path = folder / "item.json"
    if item_path.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    image = zarr.open_array(zarr_path / "image", mode="r")
    profile = {
        "driver": "GTiff",
        "width": n,
        "height": n,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(500_000, 5_000_000, 10, 10),
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "predictor": 2,
    }
    assets = {}
    for band in range(BANDS):
        path = folder / f"b{band + 1}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            for y in range(0, n, BLOCK):
                dst.write(image[band, y : y + BLOCK, :], 1, window=Window(0, y, n, BLOCK))
        assets[f"b{band + 1}"] = {
            "href": str(path),
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
        }
    left, top, right, bottom = 500_000.0, 5_000_000.0, 500_000.0 + 10 * n, 5_000_000.0 - 10 * n
    to_lonlat = Transformer.from_crs("EPSG:32631", "EPSG:4326", always_xy=True)
    corners = [
        to_lonlat.transform(x, y) for x, y in ((left, bottom), (right, bottom), (right, top), (left, top))
    ]
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]
    item = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "id": f"bench-{n}",
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "geometry": {"type": "Polygon", "coordinates": [[*corners, corners[0]]]},
        "properties": {
            "datetime": "2024-06-01T10:00:00Z",
            "proj:code": "EPSG:32631",
            "proj:shape": [n, n],
            "proj:transform": [10.0, 0.0, left, 0.0, -10.0, top],
        },
        "links": [],
        "assets": assets,
    }
    item_path.write_text(json.dumps(item))
    return folder


SCENES = 64
SCENE_SIZE = 1024


def build_scenes(folder: Path) -> Path:
    """64 Zarr stores of 4 x 1024 x 1024 (copies of one): a catalog of small scenes."""
    import shutil

    if (folder / f"s{SCENES - 1}.zarr" / "zarr.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    first = build_zarr(folder / "s0.zarr", SCENE_SIZE)
    for k in range(1, SCENES):
        if not (folder / f"s{k}.zarr").exists():
            shutil.copytree(first, folder / f"s{k}.zarr")
    return folder


def warm(path: Path) -> None:
    """Read every file once so that all contenders see a warm page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


# -- contenders (run in a subprocess each) -------------------------------------------------------------


def _timed(chips: Iterator[Any], limit: float) -> tuple[int, float]:
    """Make a tensor of every chip's pixels (no copy), as a training loop would; count them."""
    import torch

    count = 0
    started = time.perf_counter()
    for chip in chips:
        array = chip[0] if isinstance(chip, tuple) else chip.values
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
                return count, time.perf_counter() - started
    return count, time.perf_counter() - started


def _raw_floor(path: Path, size: int, limit: float) -> tuple[int, float]:
    """Raw decode: each chunk file of a 512² block (all bands) read and decoded with numcodecs, in order."""
    started = time.perf_counter()
    count = _raw_chips(path, size, started, limit)
    return count, time.perf_counter() - started


def _raw_chips(path: Path, size: int, started: float, limit: float) -> int:
    """Decode the chunk files of ``path`` block by block and make every chip a tensor; return the chips made."""
    import numcodecs
    import torch
    import zarr

    image = zarr.open_array(path / "image", mode="r")
    bands, n, _ = image.shape
    codec = numcodecs.Zstd()
    folder = path / "image" / "c"
    count = 0
    for y in range(0, n, BLOCK):
        for x in range(0, n, BLOCK):
            block = np.empty((bands, BLOCK, BLOCK), dtype=np.uint16)
            for b in range(bands):
                with open(folder / str(b) / str(y // BLOCK) / str(x // BLOCK), "rb") as fh:
                    codec.decode(fh.read(), out=block[b])
            for yy in range(0, BLOCK - size + 1, size):
                for xx in range(0, BLOCK - size + 1, size):
                    torch.from_numpy(block[:, yy : yy + size, xx : xx + size])
                    count += 1
            if time.perf_counter() - started > limit:
                return count
    return count


def _scenes_floor(path: Path, size: int, limit: float) -> tuple[int, float]:
    """Raw decode of every scene's chunk files, scene after scene."""
    started = time.perf_counter()
    count = 0
    for k in range(SCENES):
        count += _raw_chips(path / f"s{k}.zarr", size, started, limit)
        if time.perf_counter() - started > limit:
            break
    return count, time.perf_counter() - started


def _stac_floor(path: Path, size: int, limit: float) -> tuple[int, float]:
    """rasterio reads each 512² tile of the four band COGs (all bands of a block), one after another."""
    import rasterio
    import torch
    from rasterio.windows import Window

    files = sorted(path.glob("b*.tif"))
    count = 0
    started = time.perf_counter()
    handles = [rasterio.open(f) for f in files]
    try:
        n = handles[0].height
        for y in range(0, n, BLOCK):
            for x in range(0, n, BLOCK):
                block = np.empty((len(handles), BLOCK, BLOCK), dtype=np.uint16)
                for b, src in enumerate(handles):
                    src.read(1, window=Window(x, y, BLOCK, BLOCK), out=block[b])
                for yy in range(0, BLOCK - size + 1, size):
                    for xx in range(0, BLOCK - size + 1, size):
                        torch.from_numpy(block[:, yy : yy + size, xx : xx + size])
                        count += 1
                if time.perf_counter() - started > limit:
                    return count, time.perf_counter() - started
    finally:
        for src in handles:
            src.close()
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
                    return count, time.perf_counter() - started
    return count, time.perf_counter() - started


def _open_zarr(path: Path) -> Any:
    import xarray as xr

    return xr.open_zarr(path, chunks=None, consolidated=False).image


def _open_dask(path: Path) -> Any:
    import xarray as xr

    return xr.open_zarr(path, consolidated=False).image  # dask chunks: what xarray's tutorials show


def _open_tp(path: Path) -> Any:
    import terrapipe as tp

    return tp.open_zarr(path, variables="image")


def _open_numpy(path: Path) -> Any:
    return _open_zarr(path).load()


def _open_stack(path: Path) -> Any:
    import terrapipe as tp

    return tp.stac.stack_items([json.loads((path / "item.json").read_text())])


def _open_stack_time0(path: Path) -> Any:
    """The cube's one time slot (``isel(time=0)``): a selection, read from the cube's array as the cube is."""
    return _open_stack(path).isel(time=0)


def _odc_xbatcher(path: Path, size: int, limit: float) -> tuple[int, float]:
    """odc-stac loads the item lazily (dask, 1024² chunks); xbatcher cuts patches from it."""
    import odc.stac
    import pystac
    import xbatcher

    item = pystac.Item.from_dict(json.loads((path / "item.json").read_text()))
    cube = odc.stac.load([item], chunks={"x": 1024, "y": 1024}).to_array("band").isel(time=0)
    gen = xbatcher.BatchGenerator(cube, {"y": size, "x": size})
    return _timed((gen[i] for i in range(len(gen))), limit)


def _scene_paths(path: Path) -> list[Path]:
    return [path / f"s{k}.zarr" for k in range(SCENES)]


def _scenes_chip(path: Path, size: int, limit: float, opener: Callable[[Path], Any]) -> tuple[int, float]:
    """Every scene opened first (a catalog's lazy arrays), then one ``chip`` pass over all of them."""
    import terrapipe as tp

    scenes = [opener(p) for p in _scene_paths(path)]
    pipe = tp.from_items(scenes).chip({"y": size, "x": size})
    return _timed(iter(pipe), limit)


def _scenes_read_chip(path: Path, size: int, limit: float) -> tuple[int, float]:
    """Opening counted too: ``read_zarr`` opens each scene inside the pass."""
    import terrapipe as tp

    pipe = tp.from_items([str(p) for p in _scene_paths(path)]).read_zarr(variables="image")
    return _timed(iter(pipe.chip({"y": size, "x": size})), limit)


def _open_cog(path: Path) -> Any:
    from terrapipe.io import open_raster

    return open_raster(path)


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
        count += len(batch["image"]) if isinstance(batch, dict) else len(batch)
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


def _chip(
    path: Path, size: int, limit: float, opener: Callable[[Path], Any], **options: Any
) -> tuple[int, float]:
    import terrapipe as tp

    pipe = tp.from_items([opener(path)]).chip({"y": size, "x": size}, **options)
    return _timed(iter(pipe), limit)


def _chip_second_pass(
    path: Path, size: int, limit: float, opener: Callable[[Path], Any], **options: Any
) -> tuple[int, float]:
    """A second epoch: one pass of ``chip`` untimed, then the next pass of the same pipe timed."""
    import terrapipe as tp

    pipe = tp.from_items([opener(path)]).chip({"y": size, "x": size}, **options)
    for _ in pipe:
        pass
    return _timed(iter(pipe), limit)


def _chip_loader(path: Path, size: int, limit: float, opener: Callable[[Path], Any]) -> tuple[int, float]:
    from torch.utils.data import DataLoader

    import terrapipe as tp

    pipe = tp.from_items([opener(path)]).chip({"y": size, "x": size}, output="numpy", workers=1)
    return _batched(DataLoader(pipe, batch_size=LOADER_BATCH, num_workers=2, collate_fn=_stack), limit)


def _stack(items: list[Any]) -> Any:
    """Stack chip arrays into one batch tensor: one copy, so a batch never drags whole blocks along.

    In a worker process the batch is made in shared memory, as torch's default collate does, so
    that sending it to the main process copies nothing more.
    """
    import torch
    from torch.utils.data import get_worker_info

    arrays = [array for array, _ in items]
    out = torch.empty((len(arrays), *arrays[0].shape), dtype=torch.from_numpy(arrays[0][:0]).dtype)
    if get_worker_info() is not None:
        out.share_memory_()
    np.stack(arrays, out=out.numpy())
    return out


def _slicer(path: Path, size: int, limit: float) -> tuple[int, float]:
    import terrapipe as tp

    pipe = tp.from_items([_open_zarr(path)]).slice_with_xbatcher({"y": size, "x": size})
    return _timed(iter(pipe), limit)


def _torchgeo(path: Path, size: int, limit: float) -> tuple[int, float]:
    """torchgeo's way: a RasterDataset over the COG, a GridGeoSampler, a DataLoader with 2 workers."""
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler, Units

    dataset = RasterDataset(paths=str(path))
    sampler = GridGeoSampler(dataset, size=size, stride=size, units=Units.PIXELS)
    loader = DataLoader(
        dataset, sampler=sampler, batch_size=LOADER_BATCH, num_workers=2, collate_fn=stack_samples
    )
    return _batched(loader, limit)


Contender = tuple[str, Callable[..., tuple[int, float]]]
CONTENDERS: dict[str, Contender] = {
    "floor": ("zarr", _raw_floor),
    "zarr-python floor": ("zarr", _zarr_floor),
    "xbatcher": ("zarr", _xbatcher),
    "xbatcher+DataLoader(2)": ("zarr", _xbatcher_loader),
    "chip": ("zarr", functools.partial(_chip, opener=_open_zarr)),
    "chip numpy": ("zarr", functools.partial(_chip, opener=_open_zarr, output="numpy")),
    "chip tp.open_zarr": ("zarr", functools.partial(_chip, opener=_open_tp)),
    "chip dask": ("zarr", functools.partial(_chip, opener=_open_dask)),
    "chip numpy-backed": ("zarr", functools.partial(_chip, opener=_open_numpy)),
    "chip+DataLoader(2)": ("zarr", functools.partial(_chip_loader, opener=_open_zarr)),
    "slice_with_xbatcher": ("zarr", _slicer),
    "cog floor": ("cog", _cog_floor),
    "cog chip": ("cog", functools.partial(_chip, opener=_open_cog)),
    "cog chip numpy": ("cog", functools.partial(_chip, opener=_open_cog, output="numpy")),
    "cog chip+DataLoader(2)": ("cog", functools.partial(_chip_loader, opener=_open_cog)),
    "torchgeo+DataLoader(2)": ("cog", _torchgeo),
    "stac floor": ("stac", _stac_floor),
    "stack_stac chip": ("stac", functools.partial(_chip, opener=_open_stack)),
    "stack_stac chip, 2nd pass": ("stac", functools.partial(_chip_second_pass, opener=_open_stack)),
    "stack_stac isel(time=0) chip": ("stac", functools.partial(_chip, opener=_open_stack_time0)),
    "odc-stac+xbatcher": ("stac", _odc_xbatcher),
    "scenes floor": ("scenes", _scenes_floor),
    "scenes chip": ("scenes", functools.partial(_scenes_chip, opener=_open_tp)),
    "scenes chip lazy": ("scenes", functools.partial(_scenes_chip, opener=_open_zarr)),
    "scenes chip dask": ("scenes", functools.partial(_scenes_chip, opener=_open_dask)),
    "scenes read_zarr+chip": ("scenes", _scenes_read_chip),
}
FLOORS = {"zarr": "floor", "cog": "cog floor", "stac": "stac floor", "scenes": "scenes floor"}
PEER_OF = {"zarr": "xbatcher", "cog": "torchgeo+DataLoader(2)", "stac": "odc-stac+xbatcher"}
PEERS = {"torchgeo+DataLoader(2)"}  # run with --torchgeo-python


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _import_for(name: str) -> None:
    """Import what a contender needs before timing it (import time is not chipping time)."""
    import torch
    import torch.utils.data

    if name in PEERS:
        import torchgeo.datasets
        import torchgeo.samplers  # noqa: F401

        return
    import rasterio  # noqa: F401
    import rioxarray  # noqa: F401
    import xarray  # noqa: F401
    import xbatcher
    import xbatcher.loaders.torch
    import zarr  # noqa: F401

    import terrapipe.chip
    import terrapipe.io  # noqa: F401

    del torch, xbatcher


def run_worker(name: str, path: Path, size: int, limit: float) -> None:
    _import_for(name)
    # Collect what the imports left behind now: the first full collection of a fresh
    # interpreter (~0.1 s with torch and xarray loaded) would otherwise land in whichever
    # contender allocates the most objects first.
    gc.collect()
    _, fn = CONTENDERS[name]
    cpu = _cpu()
    count, seconds = fn(path, size, limit)
    cpu = _cpu() - cpu
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {"chips": count, "seconds": seconds, "cpu": cpu, "rss_mb": own, "child_rss_mb": children}
    print(json.dumps(result))


def run_halo(path: Path, size: int, overlap: int, budget_mb: int, shuffle: bool) -> None:
    """Count the blocks a shuffled/ordered pass with overlapping windows reads (and re-reads)."""
    import terrapipe as tp
    import terrapipe.chip

    pipe = tp.from_items([_open_zarr(path)]).chip(
        {"y": size, "x": size},
        overlap=overlap,
        shuffle=tp.chip.WindowShuffle(seed=1) if shuffle else False,
        reads=tp.chip.Reads(block_cache_bytes=budget_mb * 2**20),
    )
    started = time.perf_counter()
    chips = sum(1 for _ in pipe)
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"chips": chips, "seconds": seconds, "rss_mb": rss, **pipe.counters.as_dict()}))


def _subprocess(command: list[str]) -> dict[str, float]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{done.stderr[-3000:]}")
    out: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def measure(
    name: str, path: Path, size: int, limit: float, python: str, src: Path | None = None
) -> dict[str, float]:
    command = [python, __file__, "--worker", name, "--path", str(path), "--chip", str(size)]
    if src is not None:
        command += ["--src", str(src)]
    out = _subprocess([*command, "--limit", str(limit)])
    out["rate"] = out["chips"] / out["seconds"]
    return out


def torchgeo_python(requested: str | None) -> tuple[str | None, str]:
    """The interpreter that has torchgeo (``--torchgeo-python``, ``.bench-venv``, or this one), or why none does."""
    candidates = [requested] if requested else [str(ROOT / ".bench-venv" / "bin" / "python"), sys.executable]
    reasons = []
    for python in candidates:
        if not Path(python).exists():
            reasons.append(f"{python}: not found")
            continue
        probe = "import torchgeo, torchvision, torch; print(torchgeo.__version__, torchvision.__version__, torch.__version__)"
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return python, done.stdout.strip()
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        reasons.append(f"{python}: {last}")
    return None, "; ".join(reasons)


# -- report --------------------------------------------------------------------------------------------


def machine() -> str:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{platform.platform()}, {cpu}, {os.cpu_count()} CPUs, {mem_gb:.0f} GiB RAM"


def _ratio_cell(values: list[float]) -> str:
    """Median of the paired ratios, and their range."""
    if not values:
        return "-"
    mid = statistics.median(values)
    if len(values) == 1 or min(values) == max(values):
        return f"{mid:.2f}"
    return f"{mid:.2f} ({min(values):.2f}-{max(values):.2f})"


def _floor_of(name: str) -> str:
    return FLOORS[CONTENDERS[name][0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--chips", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--limit", type=float, default=10.0, help="seconds per contender at most")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; every contender runs once per round")
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS))
    parser.add_argument(
        "--torchgeo-python", help="a Python that has torchgeo (default: .bench-venv, then this one)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "terrapipe" / "bench-chip",
    )
    parser.add_argument("--no-rss-growth", action="store_true", help="skip the 4x larger cube")
    parser.add_argument("--no-halo", action="store_true", help="skip the block re-read table")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run every contender (not the floors) over this copy of src/ (e.g. `git archive <commit> src | "
        "tar -x -C DIR`, then DIR/src), each right after its own floor run: rows '<name> (baseline)'",
    )
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--halo", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chip", type=int, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()  # nox passes the same arguments to every benchmark
    if args.src:
        sys.path.insert(0, str(args.src.resolve()))  # before anything imports terrapipe
    if args.worker:
        run_worker(args.worker, args.path, args.chip, args.limit)
        return
    if args.halo:
        overlap, budget, shuffle = args.halo.split(",")
        run_halo(args.path, args.chip, int(overlap), int(budget), shuffle == "1")
        return

    n = SIZES[args.size]
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"building data under {args.cache_dir} (cached between runs) ...", flush=True)
    contenders = list(args.contenders)
    kinds = {CONTENDERS[c][0] for c in contenders}
    zarr_path = build_zarr(args.cache_dir / f"cube-{n}.zarr", n)
    paths = {"zarr": zarr_path}
    if "cog" in kinds:
        paths["cog"] = build_cog(args.cache_dir / f"cube-{n}.tif", zarr_path, n)
    if "stac" in kinds:
        paths["stac"] = build_band_cogs(args.cache_dir / f"bands-{n}", zarr_path, n)
    if "scenes" in kinds:
        paths["scenes"] = build_scenes(args.cache_dir / f"scenes-{SCENES}x{SCENE_SIZE}")
    for p in paths.values():
        warm(p)

    peer_python, peer_note = torchgeo_python(args.torchgeo_python)
    if any(c in PEERS for c in contenders) and peer_python is None:
        print(f"torchgeo is skipped: it does not import ({peer_note})", flush=True)
        contenders = [c for c in contenders if c not in PEERS]

    lines = [
        f"chipping benchmark, {dt.date.today().isoformat()}, {machine()}",
        f"cube: {BANDS} x {n} x {n} uint16, {BLOCK}² chunks (zarr: zstd, one band per chunk; "
        "COG: DEFLATE + predictor, pixel-interleaved tiles; stack_stac: one item of four one-band COGs, "
        f"{BLOCK}² tiles); scenes: {SCENES} Zarr stores of {BANDS} x {SCENE_SIZE} x {SCENE_SIZE}",
        f"{args.repeat} round(s), every contender once per round, at most {args.limit:g} s each; "
        f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())}",
    ]
    if peer_python is not None:
        lines.append(f"torchgeo, torchvision, torch (in {peer_python}): {peer_note}")
    else:
        lines.append(f"torchgeo: not run ({peer_note})")
    lines.append("")
    # Each contender runs right after its floor (a pair), so that its ratio compares two runs
    # seconds apart: on a machine shared with other jobs the load changes from minute to minute.
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    pairs: dict[tuple[str, int], list[float]] = {}

    def run_one(name: str, size: int, repeat: int, baseline: bool = False) -> dict[str, float]:
        path = paths[CONTENDERS[name][0]]
        python = peer_python if name in PEERS and peer_python else sys.executable
        run = measure(name, path, size, args.limit, python, args.baseline_src if baseline else None)
        label = f"{name} (baseline)" if baseline else name
        runs.setdefault((label, size), []).append(run)
        print(
            f"  round {repeat + 1} {size:>4}² {label:<35} {run['rate']:9.0f} chips/s "
            f"{1000 * run['cpu'] / max(run['chips'], 1):7.2f} CPU s/1000 chips",
            flush=True,
        )
        return run

    for repeat in range(args.repeat):
        for size in args.chips:
            for name in contenders:
                floor_name = _floor_of(name)
                if name == floor_name:
                    if not any(_floor_of(c) == name and c != name for c in contenders):
                        run_one(name, size, repeat)  # a floor with nothing to pair
                    continue
                floor_run = run_one(floor_name, size, repeat)
                run = run_one(name, size, repeat)
                pairs.setdefault((name, size), []).append(run["rate"] / floor_run["rate"])
                if args.baseline_src is not None and name not in PEERS:
                    floor_run = run_one(floor_name, size, repeat)
                    run = run_one(name, size, repeat, baseline=True)
                    pairs.setdefault((f"{name} (baseline)", size), []).append(run["rate"] / floor_run["rate"])
    for size in args.chips:
        lines += [
            f"### {size}² chips from {BLOCK}² blocks",
            "",
            "| contender | chips/s | x floor | x peer (which) | CPU s / 1000 chips | peak RSS (MB) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in contenders:
            for label in (name, f"{name} (baseline)"):
                if (label, size) not in runs:
                    continue
                group = runs[(label, size)]
                to_floor = pairs.get((label, size), [1.0] if label == _floor_of(name) else [])
                peer = PEER_OF.get(CONTENDERS[name][0], "")
                to_peer = pairs.get((peer, size)) if name != peer else None
                rate = statistics.median(r["rate"] for r in group)
                cpu = statistics.median(1000 * r["cpu"] / max(r["chips"], 1) for r in group)
                rss = max(r["rss_mb"] + r["child_rss_mb"] for r in group)
                over_peer = (
                    f"{statistics.median(to_floor) / statistics.median(to_peer):.1f} ({peer})"
                    if to_peer and to_floor
                    else "-"
                )
                lines.append(
                    f"| {label} | {rate:,.0f} | {_ratio_cell(to_floor)} | {over_peer} | {cpu:.2f} | {rss:,.0f} |"
                )
        lines.append("")

    if not args.no_rss_growth and "chip" in contenders:
        big = build_zarr(args.cache_dir / f"cube-{2 * n}.zarr", 2 * n)
        warm(big)
        size = args.chips[0]
        lines += [
            f"### peak RSS of `chip` ({size}² chips, whole cube) when the cube grows 4x",
            "",
            "| input | cube | chips | chips/s | peak RSS (MB) |",
            "|---|---|---:|---:|---:|",
        ]
        for name in ("chip", "chip dask", "chip tp.open_zarr"):
            for side, path in ((n, zarr_path), (2 * n, big)):
                run = measure(name, path, size, 1e9, sys.executable)
                lines.append(
                    f"| {name} | {BANDS} x {side} x {side} | {run['chips']:,.0f} | {run['rate']:,.0f} | "
                    f"{run['rss_mb']:,.0f} |"
                )
        lines.append("")

    if not args.no_halo:
        size, overlap = args.chips[0], args.chips[0] // 8
        block_mb = BANDS * BLOCK * BLOCK * 2 / 2**20
        n_blocks = (n // BLOCK) ** 2
        lines += [
            f"### block reads with overlapping windows ({size}² chips, overlap {overlap}: windows cross block "
            f"borders; {n_blocks} blocks of {block_mb:g} MB)",
            "",
            "| block_cache_bytes | shuffle | chips | blocks read | re-reads | peak RSS (MB) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for budget in (16, 64, 512):
            for shuffle in (False, True):
                command = [sys.executable, __file__, "--halo", f"{overlap},{budget},{int(shuffle)}"]
                out = _subprocess([*command, "--path", str(zarr_path), "--chip", str(size)])
                lines.append(
                    f"| {budget} MB | {shuffle} | {out['windows']:,.0f} | {out['blocks_read']:,.0f} | "
                    f"{out['block_rereads']:,.0f} | {out['rss_mb']:,.0f} |"
                )
        lines.append("")
    lines.append(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    text = "\n".join(lines)
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
