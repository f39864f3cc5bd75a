"""STAC search and stacking on the sample world, against the peers and the raw-read floor.

Search: the sample world's six scenes are replicated into ``--items`` items
(new ids and dates, same assets) and searched in full, page by page:

- STAC API (``rustac serve`` on 127.0.0.1): ``tp.search_stac`` vs pystac-client
  (``Client.search(...).items()``), same page size;
- static catalog (one JSON per item): ``tp.search_stac`` vs pystac
  (``Catalog.get_items(recursive=True)``);
- stac-geoparquet: ``tp.search_stac`` (pyarrow scan) with a bbox+datetime
  filter, vs the full scan.

Stacking: the three scenes of tile 0, four 10 m bands, 1024 x 1024 px each,
read into memory:

- raw floor: ``rasterio`` reads of the same COGs, one after another;
- ``odc.stac.load(items, bands, chunks=...)`` then ``.compute()``;
- ``tp.stac.stack_items(items, bands)`` then ``.compute()`` (odc-stac underneath,
  with the native grid, tile-aligned chunks and asset-naming reads).

Run: ``python benchmarks/bench_stac.py [--items 600] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # tests.servers.http_range: the range server of the README-flow table

import terrapipe.stac  # noqa: E402
from terrapipe.datasets import sample_world  # noqa: E402

BANDS = ["blue", "green", "red", "nir"]


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def _replicate(world: Any, count: int, folder: Path) -> tuple[Path, Path, Path]:
    """Write ``count`` items (collection + ndjson, static catalog, geoparquet) derived from the world's scenes."""
    base = [json.loads(line) for line in world.s2_items_ndjson.read_text().splitlines()]
    collection = json.loads(world.s2_api_collection.read_text())
    records = []
    for index in range(count):
        record = copy.deepcopy(base[index % len(base)])
        record["id"] = f"{record['id']}-{index:05d}"
        day = 1 + index % 28
        month = 1 + (index // 28) % 12
        record["properties"]["datetime"] = f"2023-{month:02d}-{day:02d}T10:30:{index % 60:02d}Z"
        records.append(record)
    collection["extent"]["temporal"]["interval"] = [["2023-01-01T00:00:00Z", "2024-12-31T00:00:00Z"]]
    (folder / "api").mkdir()
    (folder / "api" / "collection.json").write_text(json.dumps(collection))
    (folder / "api" / "items.ndjson").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    static = folder / "static"
    (static / "demo-s2").mkdir(parents=True)
    links = [{"rel": "root", "href": "../catalog.json"}, {"rel": "parent", "href": "../catalog.json"}]
    for record in records:
        item_dir = static / "demo-s2" / record["id"]
        item_dir.mkdir()
        (item_dir / f"{record['id']}.json").write_text(json.dumps(record))
        links.append({"rel": "item", "href": f"./{record['id']}/{record['id']}.json"})
    (static / "demo-s2" / "collection.json").write_text(json.dumps({**collection, "links": links}))
    catalog = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "bench",
        "description": "benchmark catalog",
        "links": [
            {"rel": "root", "href": "./catalog.json"},
            {"rel": "child", "href": "./demo-s2/collection.json"},
        ],
    }
    (static / "catalog.json").write_text(json.dumps(catalog))
    import stac_geoparquet.arrow as arrow

    parquet = folder / "items.parquet"
    table = arrow.parse_stac_items_to_arrow(records)
    arrow.to_parquet(table, parquet)
    return folder / "api", static / "catalog.json", parquet


def bench_search(world: Any, count: int, repeat: int) -> list[tuple[str, str, float, int, float]]:
    """Rows: (backend, how, seconds, items, ratio to the peer)."""
    import pystac
    import pystac_client

    rows: list[tuple[str, str, float, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        api_dir, catalog, parquet = _replicate(world, count, Path(tmp))
        hrefs = [api_dir / "collection.json", api_dir / "items.ndjson"]
        with terrapipe.stac.serve_stac(hrefs) as server:
            peer_t, peer = _best(
                lambda: list(
                    pystac_client.Client.open(server.url).search(collections=["demo-s2"], limit=100).items()
                ),
                repeat,
            )
            ours_t, ours = _best(
                lambda: list(terrapipe.stac.search_stac(server.url, collections=["demo-s2"], limit=100)),
                repeat,
            )
            assert [i.id for i in ours] == [i.id for i in peer]
            rows.append(("STAC API (rustac)", "pystac-client .items()", peer_t, len(peer), 1.0))
            rows.append(("STAC API (rustac)", "tp.search_stac", ours_t, len(ours), peer_t / ours_t))
        peer_t, peer = _best(
            lambda: list(pystac.Catalog.from_file(str(catalog)).get_items(recursive=True)), repeat
        )
        ours_t, ours = _best(lambda: list(terrapipe.stac.search_stac(catalog)), repeat)
        assert sorted(i.id for i in ours) == sorted(i.id for i in peer)
        rows.append(("static catalog", "pystac get_items", peer_t, len(peer), 1.0))
        rows.append(("static catalog", "tp.search_stac", ours_t, len(ours), peer_t / ours_t))
        full_t, full = _best(lambda: list(terrapipe.stac.search_stac(parquet)), repeat)
        query = {"bbox": [5.93, 45.72, 5.95, 45.74], "datetime": "2023-03"}
        part_t, part = _best(lambda: list(terrapipe.stac.search_stac(parquet, **query)), repeat)
        rows.append(("stac-geoparquet", "tp.search_stac, all", full_t, len(full), 1.0))
        rows.append(("stac-geoparquet", "tp.search_stac, bbox+month", part_t, len(part), full_t / part_t))
    return rows


def _fresh_items(items: list[Any], folder: Path, run: int) -> tuple[list[Any], list[Path]]:
    """The items with every asset behind a new symlink (a new path: no handle or GDAL block cache from before)."""
    import pystac

    out, paths = [], []
    where = folder / f"run-{run}"
    where.mkdir()
    for item in items:
        record = item.to_dict(include_self_link=False)
        for key, asset in record["assets"].items():
            source = Path(asset["href"].removeprefix("file://"))
            link = where / f"{record['id']}-{key}{source.suffix}"
            link.symlink_to(source)
            asset["href"] = str(link)
            if key in BANDS:
                paths.append(link)
        out.append(pystac.Item.from_dict(record))
    return out, paths


def bench_stack(world: Any, repeat: int) -> list[tuple[str, float, float, float]]:
    """Rows: (how, median seconds, MB/s, ratio to the raw floor), the three interleaved in each round.

    Every run reads files it never opened before (new symlinks), so neither
    terrapipe's per-thread handles nor GDAL's block cache of an open dataset
    serve it: what a user pays the first time a cube is computed.
    """
    import odc.stac

    items = [i for i in terrapipe.stac.search_stac(world.catalog, collections=["demo-s2"]) if "31T" in i.id]
    times: dict[str, list[float]] = {"raw": [], "odc": [], "ours": []}
    nbytes = 0
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(repeat + 1):  # run 0 warms the libraries up and is not counted
            fresh = {how: _fresh_items(items, Path(tmp), 3 * run + k) for k, how in enumerate(times)}

            def raw(paths: list[Path] = fresh["raw"][1]) -> int:
                total = 0
                for path in sorted(paths):
                    with rasterio.open(path) as src:
                        total += src.read(1).nbytes
                return total

            start = time.perf_counter()
            nbytes = raw()
            raw_t = time.perf_counter() - start
            start = time.perf_counter()
            ds = odc.stac.load(fresh["odc"][0], bands=BANDS, chunks={"x": 1024, "y": 1024})
            theirs = ds.to_array().values
            odc_t = time.perf_counter() - start
            start = time.perf_counter()
            cube = terrapipe.stac.stack_items(fresh["ours"][0], bands=BANDS).values
            ours_t = time.perf_counter() - start
            assert np.array_equal(np.moveaxis(theirs, 0, 1), cube)
            reference = cube
            if run:
                times["raw"].append(raw_t)
                times["odc"].append(odc_t)
                times["ours"].append(ours_t)
    assert reference is not None
    mb = nbytes / 1e6
    floor = statistics.median(times["raw"])
    rows = [("rasterio reads (floor)", floor, mb / floor, 1.0)]
    for how, label in (("odc", "odc.stac.load + compute"), ("ours", "tp.stac.stack_items + compute")):
        median = statistics.median(times[how])
        rows.append((label, median, mb / median, floor / median))
    return rows


def _http_items(world: Any, server: Any, tag: str) -> list[Any]:
    """The world's six scenes with asset hrefs on the range server, under a query no earlier run used."""
    import pystac

    out = []
    root = Path(world.catalog).parent.parent
    for item in terrapipe.stac.search_stac(world.catalog, collections=["demo-s2"]):
        record = item.to_dict(include_self_link=False)
        for asset in record["assets"].values():
            path = Path(asset["href"].removeprefix("file://"))
            asset["href"] = f"{server.url_for(root / path.relative_to(root))}?run={tag}"
        out.append(pystac.Item.from_dict(record))
    return out


def _flow_ours(items: list[Any], chip: int) -> tuple[int, float]:
    """The README flow: stack_stac -> chip -> to_tensor -> tp.loader (2 worker threads, batches of 8)."""
    import terrapipe as tp

    pipe = (
        tp.from_items([[item] for item in items])
        .stack_stac(bands=BANDS, resolution=10)
        .chip({"y": chip, "x": chip})
        .to_tensor()
    )
    count, total = 0, 0.0
    for batch in tp.loader(pipe, batch_size=8, workers=2, collate=tp.collate):
        count += int(batch["image"].shape[0])
        total += float(batch["image"].double().sum())
    return count, total


def _flow_floor(items: list[Any], chip: int, threads: int) -> tuple[int, float]:
    """A hand-written reader: ``threads`` threads read each chip's four 256² tiles (own handles per thread)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from rasterio.windows import Window

    from terrapipe.io.paths import gdal_path

    local = threading.local()
    opened: list[Any] = []
    tasks = []
    for item in items:
        hrefs = [item.assets[band].href for band in BANDS]
        height, width = item.properties["proj:shape"]
        tasks += [(hrefs, row, col) for row in range(0, height, chip) for col in range(0, width, chip)]

    def read(task: tuple[list[str], int, int]) -> Any:
        hrefs, row, col = task
        handles = local.__dict__.setdefault("handles", {})
        planes = []
        for href in hrefs:
            if href not in handles:
                handles[href] = rasterio.open(gdal_path(href))
                opened.append(handles[href])
            planes.append(handles[href].read(1, window=Window(col, row, chip, chip)))
        return torch.from_numpy(np.stack(planes))

    count, total = 0, 0.0
    with ThreadPoolExecutor(threads) as pool:
        chips = list(pool.map(read, tasks))
        for start in range(0, len(chips), 8):
            batch = torch.stack(chips[start : start + 8])
            count += int(batch.shape[0])
            total += float(batch.double().sum())
    for dataset in opened:
        dataset.close()
    return count, total


def bench_flow(scale: int, repeat: int, threads: int = 16) -> list[tuple[str, float, float, float]]:
    """Rows: (how, median seconds, chips/s, ratio to the hand-written reader), interleaved rounds.

    The README flow on the sample world at ``scale`` (6 scenes x 4 one-band COGs of
    ``1024 * scale`` px in 256² tiles) served over HTTP on 127.0.0.1 (no added latency), 256² chips
    without overlap (the chips are the tiles): ``stack_stac -> chip -> to_tensor -> tp.loader``
    against ``threads`` threads reading the same tiles with rasterio. Each run reads URLs no earlier
    run read (a new query string), so no cache of an earlier run serves it.
    """
    from tests.servers.http_range import start_range_server

    world = sample_world(scale=scale)
    server = start_range_server(Path(world.catalog).parent.parent)
    times: dict[str, list[float]] = {"floor": [], "ours": []}
    count = 0
    try:
        for run in range(repeat + 1):  # run 0 warms the libraries up and is not counted
            start = time.perf_counter()
            count, floor_sum = _flow_floor(_http_items(world, server, f"{run}-floor"), 256, threads)
            floor_t = time.perf_counter() - start
            start = time.perf_counter()
            ours_count, ours_sum = _flow_ours(_http_items(world, server, f"{run}-ours"), 256)
            ours_t = time.perf_counter() - start
            assert (ours_count, ours_sum) == (count, floor_sum), "not the same chips"
            if run:
                times["floor"].append(floor_t)
                times["ours"].append(ours_t)
    finally:
        server.stop()
    floor = statistics.median(times["floor"])
    ours = statistics.median(times["ours"])
    return [
        (f"{threads} threads reading the tiles (floor)", floor, count / floor, 1.0),
        ("stack_stac -> chip -> to_tensor -> tp.loader", ours, count / ours, floor / ours),
    ]


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=600, help="items in the search benchmark")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per measurement (search: best; stack, flow: median)"
    )
    parser.add_argument(
        "--scale", type=int, default=2, help="sample-world scale of the README-flow benchmark"
    )
    parser.add_argument(
        "--only", choices=["search", "stack", "flow"], action="append", help="run only these tables"
    )
    args = parser.parse_args()
    only = set(args.only or ["search", "stack", "flow"])
    world = sample_world()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average before: {os.getloadavg()}"
    )
    if "search" in only:
        print(f"\nsearch, {args.items} items, page size 100 (best of {args.repeat})")
        print(f"{'backend':20} {'how':28} {'seconds':>8} {'items':>6} {'items/s':>9} {'speed-up':>9}")
        for backend, how, seconds, n, ratio in bench_search(world, args.items, args.repeat):
            print(f"{backend:20} {how:28} {seconds:8.3f} {n:6d} {n / seconds:9.0f} {ratio:8.2f}x")
    if "stack" in only:
        print(
            f"\nstack: 3 scenes x 4 bands x 1024 x 1024 uint16 into memory (median of {args.repeat}, interleaved)"
        )
        print(f"{'how':28} {'seconds':>8} {'MB/s':>8} {'vs floor':>9}")
        for how, seconds, rate, ratio in bench_stack(world, args.repeat):
            print(f"{how:28} {seconds:8.3f} {rate:8.1f} {ratio:8.2f}x")
    if "flow" in only:
        print(
            f"\nREADME flow, sample world scale={args.scale}, HTTP on 127.0.0.1, 256² chips "
            f"(median of {args.repeat}, interleaved)"
        )
        print(f"{'how':46} {'seconds':>8} {'chips/s':>8} {'vs floor':>9}")
        for how, seconds, rate, ratio in bench_flow(args.scale, args.repeat):
            print(f"{how:46} {seconds:8.3f} {rate:8.1f} {ratio:8.2f}x")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
