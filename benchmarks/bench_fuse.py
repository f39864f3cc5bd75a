"""Fusion and tensor stages per chip: terrapipe against the naive way of doing the same per chip.

On the sample world (6 scenes x 16 chips of 256 x 256 in two UTM zones, the
chips' pixels held in memory so that only the fusion work is timed):

- ``align_to(dem)`` (reads the DEM window under each chip, reprojects it) vs
  reading the whole DEM and reprojecting it onto each chip;
- ``rasterize(landcover)`` (layer reprojected once per CRS, spatial-index
  query per chip) vs reprojecting the whole layer for every chip and burning
  every feature;
- ``clip_vector(buildings)`` vs ``geopandas.clip`` of the whole reprojected
  layer per chip;
- ``to_tensor`` of the fused chips, and ``collate`` of batches of 8.

Outputs are checked equal (the DEM within float32 rounding) before timing.
Each contender runs ``--repeat`` times; the table shows the best ms per chip
and the naive/terrapipe ratio.

Run: ``python benchmarks/bench_fuse.py [--repeat 3] [--root DIR]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _chips(world: Any) -> list[Any]:
    import terrapipe as tp

    chips = []
    for item in world.s2_item_ids:
        date = next(i for i, d in enumerate(world.DATES) if d.strftime("%Y%m%d") in item)
        tile = 0 if world.TILES[0] in item else 1
        red = tp.open_raster(world.cog("red", date=date, tile=tile))
        for row in range(0, red.sizes["y"], 256):
            for col in range(0, red.sizes["x"], 256):
                window = red.isel(y=slice(row, row + 256), x=slice(col, col + 256))
                chips.append(window.copy(data=window.values))
    return chips


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", default=None)
    args = parser.parse_args()

    import geopandas as gpd
    import rasterio
    import rasterio.warp
    from rasterio.features import rasterize

    import terrapipe as tp
    import terrapipe.fuse
    import terrapipe.tensor
    from terrapipe.fuse import grid_of

    world = tp.datasets.sample_world(args.root)
    chips = _chips(world)
    grids = [grid_of(c) for c in chips]
    landcover = tp.open_vector(world.landcover_fgb)
    buildings = tp.open_vector(world.buildings_gpkg)
    n = len(chips)
    rows: list[tuple[str, float, float | None]] = []

    # align_to -----------------------------------------------------------------------------
    def ours_align() -> list[np.ndarray]:
        return [ds["dem"].values for ds in tp.from_items(chips).align_to(world.dem, name="dem")]

    def naive_align() -> list[np.ndarray]:
        out = []
        for grid in grids:
            with rasterio.open(world.dem) as src:
                whole = src.read(1)
                dst = np.full(grid.shape.yx, src.nodata, np.float32)
                rasterio.warp.reproject(
                    whole,
                    dst,
                    src_transform=src.transform,
                    src_crs=src.crs,
                    src_nodata=src.nodata,
                    dst_transform=grid.affine,
                    dst_crs=str(grid.crs),
                    dst_nodata=src.nodata,
                    resampling=rasterio.enums.Resampling.bilinear,
                )
            out.append(dst)
        return out

    t_ours, a = _best(ours_align, args.repeat)
    t_naive, b = _best(naive_align, args.repeat)
    assert all(np.allclose(x, y, atol=1e-3) for x, y in zip(a, b, strict=True))
    rows.append(("align_to(dem), bilinear", t_ours, t_naive))

    # rasterize ----------------------------------------------------------------------------
    def ours_rasterize() -> list[np.ndarray]:
        return [ds["mask"].values for ds in tp.from_items(chips).rasterize(landcover, column="class")]

    def naive_rasterize() -> list[np.ndarray]:
        out = []
        for grid in grids:
            frame = landcover.to_crs(str(grid.crs))
            out.append(
                rasterize(
                    zip(frame.geometry, frame["class"], strict=True),
                    out_shape=grid.shape.yx,
                    transform=grid.affine,
                    dtype="int32",
                )
            )
        return out

    t_ours, a = _best(ours_rasterize, args.repeat)
    t_naive, b = _best(naive_rasterize, args.repeat)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    rows.append((f"rasterize({len(landcover)} polygons)", t_ours, t_naive))

    # clip_vector ----------------------------------------------------------------------------
    def ours_clip() -> list[int]:
        return [len(tp.fuse.chip_vectors(ds)) for ds in tp.from_items(chips).clip_vector(buildings)]

    def naive_clip() -> list[int]:
        out = []
        for grid in grids:
            clipped = gpd.clip(buildings.to_crs(str(grid.crs)), grid.boundingbox)
            out.append(int((clipped.area > 0).sum()))
        return out

    t_ours, a = _best(ours_clip, args.repeat)
    t_naive, b = _best(naive_clip, args.repeat)
    assert a == b, (a, b)
    rows.append((f"clip_vector({len(buildings)} buildings)", t_ours, t_naive))

    # to_tensor + collate ------------------------------------------------------------------------
    fused = list(tp.from_items(chips).align_to(world.dem, name="dem").rasterize(landcover, column="class"))
    t_tensor, samples = _best(
        lambda: [tp.tensor.to_sample(ds, channels=["dem"]) for ds in fused], args.repeat
    )
    rows.append(("to_tensor(channels=['dem'])", t_tensor, None))
    t_collate, _ = _best(lambda: [tp.tensor.collate(samples[i : i + 8]) for i in range(0, n, 8)], args.repeat)
    rows.append(("collate (batches of 8)", t_collate, None))

    print(f"\nbench_fuse: {n} chips of 256 x 256 on the sample world, best of {args.repeat}")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'stage':34s} {'terrapipe ms/chip':>18s} {'naive ms/chip':>14s} {'naive/ours':>11s}")
    for name, ours, naive in rows:
        naive_text = f"{1000 * naive / n:14.2f}" if naive is not None else f"{'-':>14s}"
        ratio = f"{naive / ours:10.1f}x" if naive is not None else f"{'-':>11s}"
        print(f"{name:34s} {1000 * ours / n:18.2f} {naive_text} {ratio}")


if __name__ == "__main__":
    main()
