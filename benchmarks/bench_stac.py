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
- ``tp.stack_items(items, bands)`` then ``.compute()`` (odc-stac underneath,
  with the native grid, tile-aligned chunks and asset-naming reads).

Run: ``python benchmarks/bench_stac.py [--items 600] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
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


def bench_stack(world: Any, repeat: int) -> list[tuple[str, float, float, float]]:
    """Rows: (how, seconds, MB/s, ratio to the raw floor)."""
    import odc.stac

    items = [i for i in terrapipe.stac.search_stac(world.catalog, collections=["demo-s2"]) if "31T" in i.id]
    paths = [world.cog(b, date=d, tile=0) for d in range(3) for b in BANDS]

    def raw() -> int:
        total = 0
        for path in paths:
            with rasterio.open(path) as src:
                total += src.read(1).nbytes
        return total

    floor_t, nbytes = _best(raw, repeat)
    mb = nbytes / 1e6

    def odc_load() -> np.ndarray:
        ds = odc.stac.load(items, bands=BANDS, chunks={"x": 1024, "y": 1024})
        return ds.to_array().values

    def ours() -> np.ndarray:
        return terrapipe.stac.stack_items(items, bands=BANDS).values

    odc_t, reference = _best(odc_load, repeat)
    ours_t, cube = _best(ours, repeat)
    assert np.array_equal(np.moveaxis(reference, 0, 1), cube)
    return [
        ("rasterio reads (floor)", floor_t, mb / floor_t, 1.0),
        ("odc.stac.load + compute", odc_t, mb / odc_t, floor_t / odc_t),
        ("tp.stack_items + compute", ours_t, mb / ours_t, floor_t / ours_t),
    ]


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=600, help="items in the search benchmark")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    args = parser.parse_args()
    world = sample_world()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"\nsearch, {args.items} items, page size 100 (best of {args.repeat})")
    print(f"{'backend':20} {'how':28} {'seconds':>8} {'items':>6} {'items/s':>9} {'speed-up':>9}")
    for backend, how, seconds, n, ratio in bench_search(world, args.items, args.repeat):
        print(f"{backend:20} {how:28} {seconds:8.3f} {n:6d} {n / seconds:9.0f} {ratio:8.2f}x")
    print(f"\nstack: 3 scenes x 4 bands x 1024 x 1024 uint16 into memory (best of {args.repeat})")
    print(f"{'how':28} {'seconds':>8} {'MB/s':>8} {'vs floor':>9}")
    for how, seconds, rate, ratio in bench_stack(world, args.repeat):
        print(f"{how:28} {seconds:8.3f} {rate:8.1f} {ratio:8.2f}x")


if __name__ == "__main__":
    main()
