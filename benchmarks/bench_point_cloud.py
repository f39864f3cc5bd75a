"""Lidar per chip over a cloud-like link: COPC octree nodes per chip vs the whole file per chip.

A latency-injecting range server (``tests/servers/latency_http.py``: ``--latency``
seconds added to every request, default 30 ms, 50 MB/s per connection) serves a
COPC file: by default the sample world's (``sample_point_cloud(world, copc=True)``:
163,840 points over 1280 m x 1280 m, 814 KB, 37 nodes of up to 4096 points);
``--file tests/conformance/files/data/laspy/simple.copc.laz`` takes laspy
2.7.0's (33 KB, 1065 points in 65 nodes). The file's extent is
cut into ``--chips`` x ``--chips`` chips (grids of 32 x 32 pixels in the file's
CRS), and every chip gets ``max_z``, ``min_z``, ``mean_z`` and ``count``:

- ``nodes``: ``from_items(chips).rasterize_points(url)``: the header and root
  hierarchy page once, then per chip one concurrent ``get_ranges`` of the octree
  nodes whose cube reaches the chip (:class:`terrapipe.io.copc.CopcFile`);
- ``whole``: per chip, one ``GET`` of the whole file through the same byte layer,
  decoded by ``laspy.read`` (lazrs), the points filtered to the chip and binned
  with the same :func:`~terrapipe.fuse.rasterize_points.rasterize_cloud`.

Both give the same rasters (checked each round). The two run back to back in
each of ``--rounds`` rounds; the table gives median seconds, the ratio
``whole / nodes`` of the medians (>= 1: reading nodes is faster) and the bytes
fetched per chip.

Run: ``python benchmarks/bench_point_cloud.py [--file F.copc.laz] [--chips 4]
[--rounds 5] [--latency 0.03]``.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import laspy  # noqa: E402
from tests.servers.latency_http import start_latency_server  # noqa: E402

import terrapipe as tp  # noqa: E402
from terrapipe.fuse.grid import grid_of  # noqa: E402
from terrapipe.fuse.rasterize_points import rasterize_cloud  # noqa: E402
from terrapipe.io import object_store  # noqa: E402

STATS = ("max_z", "min_z", "mean_z", "count")


def chips_over(path: Path, n: int, pixels: int = 32) -> list[xr.DataArray]:
    header = laspy.open(path).header
    crs = header.parse_crs()
    crs = crs.sub_crs_list[0] if crs.is_compound else crs
    (minx, miny), (maxx, maxy) = header.mins[:2], header.maxs[:2]
    width, height = (maxx - minx) / n, (maxy - miny) / n
    out = []
    for i in range(n):
        for j in range(n):
            left, top = minx + j * width, maxy - i * height
            rx, ry = width / pixels, height / pixels
            coords = {"y": top - ry * (np.arange(pixels) + 0.5), "x": left + rx * (np.arange(pixels) + 0.5)}
            chip = xr.DataArray(
                np.zeros((1, pixels, pixels), "float32"), dims=("band", "y", "x"), coords=coords
            )
            out.append(chip.rio.write_crs(crs.to_wkt()))
    return out


def run_nodes(url: str, chips: list[xr.DataArray]) -> tuple[float, int, list[np.ndarray]]:
    started = time.perf_counter()
    stage = tp.from_items(chips).rasterize_points(url, statistics=STATS)
    maxes = [ds["lidar_max_z"].values for ds in stage]
    return time.perf_counter() - started, stage.bytes_fetched, maxes


def run_whole(url: str, chips: list[xr.DataArray]) -> tuple[float, int, list[np.ndarray]]:
    started = time.perf_counter()
    fetched = 0
    maxes = []
    for chip in chips:
        data = object_store.get(url)
        fetched += len(data)
        las = laspy.read(io.BytesIO(data))
        grid = grid_of(chip)
        left, bottom, right, top = grid.boundingbox
        x, y, z = np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)
        keep = (x >= left) & (x <= right) & (y >= bottom) & (y <= top)
        maxes.append(
            rasterize_cloud(np.column_stack([x[keep], y[keep]]), z[keep], grid, statistics=STATS)["max_z"]
        )
    return time.perf_counter() - started, fetched, maxes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--chips", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.03)
    args = parser.parse_args()
    if args.file is None:
        args.file = tp.datasets.sample_point_cloud(tp.datasets.sample_world(), copc=True)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / args.file.name
        shutil.copy(args.file, target)
        server = start_latency_server(tmp, latency=args.latency)
        try:
            url = server.url_for(target)
            chips = chips_over(args.file, args.chips)
            run_nodes(url, chips[:1])  # warm-up: imports, first connections
            run_whole(url, chips[:1])
            times: dict[str, list[float]] = {"nodes": [], "whole": []}
            fetched: dict[str, int] = {}
            for _ in range(args.rounds):
                t_nodes, b_nodes, m_nodes = run_nodes(url, chips)
                t_whole, b_whole, m_whole = run_whole(url, chips)
                for a, b in zip(m_nodes, m_whole, strict=True):
                    np.testing.assert_array_equal(a, b)
                times["nodes"].append(t_nodes)
                times["whole"].append(t_whole)
                fetched = {"nodes": b_nodes, "whole": b_whole}
        finally:
            server.stop()
    size = args.file.stat().st_size
    n = len(chips)
    nodes, whole = statistics.median(times["nodes"]), statistics.median(times["whole"])
    print(
        f"file {args.file.name} ({size} bytes), {n} chips, latency {args.latency * 1000:.0f} ms, {args.rounds} rounds"
    )
    print("| contender | median s | bytes per chip | share of the file per chip |")
    print("|---|---|---|---|")
    for name, seconds in (("nodes", nodes), ("whole", whole)):
        per_chip = fetched[name] / n
        print(f"| {name} | {seconds:.3f} | {per_chip:.0f} | {per_chip / size:.2f} |")
    print(f"ratio whole / nodes: {whole / nodes:.2f}")


if __name__ == "__main__":
    main()
