"""200 ranged reads of 64 KiB over HTTP: the readers' byte layer against raw obstore and urllib3.

Serves a 32 MiB file with the test range server (``tests/servers/http_range.py``
on 127.0.0.1) and reads the same 200 random 64 KiB ranges with:

- ``http_reads.read`` (urllib3), one at a time, without and with headers;
- ``http_reads.read`` from 16 threads at once (chip reads over HTTP Zarr);
- ``http_reads.read_async``, 16 in flight (what ``HTTPStore`` does for Zarr);
- raw ``obstore.get_range`` and raw ``urllib3`` (the floors: no checks);
- the hand-written ``http.client`` reader that ``io/http_client.py`` was before #19,
  when ``--old PATH`` names a copy of it (``git show 2b2fae5~1:src/terrapipe/io/http_client.py``);
- ``JsonClient.request`` (the STAC client) GETting a 64 KiB JSON document, as many times as
  ``--reads``, one at a time;
- with ``--before DIR``, a folder holding earlier copies of ``io/http_reads.py`` and
  ``stac/http_json.py`` (``git show 082093c~1:src/terrapipe/io/http_reads.py``: the STAC client
  on ``requests``), the same reads through those, in the same rounds.

fsspec's HTTP filesystem needs aiohttp, which no terrapipe extra installs; it is
listed as not run when aiohttp is missing. The readers take turns within each
round, in a new order each round (``--rounds``, medians shown), so load elsewhere on the machine hits them alike.

``--size`` sets the bytes per read (64 KiB; try 4194304 for Zarr-chunk-sized reads).
``--e2e`` adds whole reads that end in HTTP reads (``--before`` does not apply to them;
``benchmarks/bench_zarr_transport.py`` compares the Zarr flow over a cloud-like link):
``tp.open_vector(url, bbox=..., storage=tp.Storage())`` of a 40,000-point
FlatGeobuf (the byte layer: its tail, header, index nodes and features by
ranges), the same without ``storage`` (``HTTPFile`` checks, GDAL reads), and
``tp.open_point_cloud`` of laspy's ``simple.copc.laz`` with bounds (COPC nodes
by ``get_ranges``), and ``read_zarr(url).chip()`` of a 2048² uint16 Zarr in
512² zstd chunks (each chunk one blocking read on the chipper's reader threads),
and ``tp.open_xarray(url, engine="scipy").load()`` of a netCDF3 file of 40
variables (about 50 ranged reads, one after another, through ``HTTPFile``).

Run: ``python benchmarks/bench_http_reads.py [--reads 200] [--rounds 5] [--size 65536] [--e2e] [--only TEXT]
[--old F] [--before DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.servers.http_range import start_range_server  # noqa: E402
from tests.servers.latency_http import start_latency_server  # noqa: E402

SIZE = 64 * 1024
COPC = ROOT / "tests" / "conformance" / "files" / "data" / "laspy" / "simple.copc.laz"


def _fgb(folder: Path) -> tuple[str, tuple[float, float, float, float]]:
    """Write a 40,000-point FlatGeobuf with a spatial index; return its name and a small query box."""
    import geopandas as gpd
    import numpy as np
    from shapely import points

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1000, size=(40_000, 2))
    gdf = gpd.GeoDataFrame({"v": np.arange(len(xy))}, geometry=points(xy), crs="EPSG:3857")
    gdf.to_file(folder / "pts.fgb", driver="FlatGeobuf", SPATIAL_INDEX="YES")
    return "pts.fgb", (100.0, 100.0, 150.0, 150.0)


def _netcdf(folder: Path, variables: int = 40) -> None:
    """Write a netCDF3 file of ``variables`` 64 x 64 float32 variables (about 50 ranged reads to load)."""
    import numpy as np
    import xarray as xr

    rng = np.random.default_rng(3)
    values = {f"v{i}": (("y", "x"), rng.random((64, 64), dtype=np.float32)) for i in range(variables)}
    xr.Dataset(values).to_netcdf(folder / "vars.nc", engine="scipy")


def _zarr(folder: Path, n: int = 2048, tile: int = 512) -> str:
    """Write an ``n`` x ``n`` uint16 Zarr (v2, zstd, ``tile``² chunks of 512 KiB); return its name."""
    import numcodecs
    import numpy as np
    import xarray as xr

    data = np.random.default_rng(2).integers(0, 4000, size=(n, n), dtype=np.uint16)
    ds = xr.Dataset(
        {"v": (("y", "x"), data)},
        coords={"y": 5000000 - 5 - 10 * np.arange(n), "x": 500005 + 10 * np.arange(n)},
    )
    ds.to_zarr(
        folder / "cube.zarr",
        zarr_format=2,
        consolidated=True,
        encoding={"v": {"chunks": (tile, tile), "compressors": [numcodecs.Zstd(level=1)]}},
    )
    return "cube.zarr"


def laspy_header(path: Path) -> Any:
    """The LAS header of ``path`` (its bounds)."""
    import laspy

    with laspy.open(path) as reader:
        return reader.header


def main() -> None:
    """Run the comparison and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--old", help="a copy of the pre-#19 io/http_client.py to compare with")
    parser.add_argument("--size", type=int, default=SIZE, help="bytes per read")
    parser.add_argument("--e2e", action="store_true", help="add FlatGeobuf and COPC reads end to end")
    parser.add_argument("--only", default="", help="run only the readers whose name holds this text")
    parser.add_argument(
        "--before", help="a folder with earlier http_reads.py and http_json.py to compare with"
    )
    args = parser.parse_args()
    size = args.size

    import concurrent.futures

    import obstore as obs
    import urllib3
    from obstore.store import HTTPStore

    import terrapipe as tp
    from terrapipe.io import http_reads
    from terrapipe.io.storage import Storage

    folder = Path(tempfile.mkdtemp())
    (folder / "big.bin").write_bytes(os.urandom(32 * 1024 * 1024))
    (folder / "doc.json").write_text(
        json.dumps({"type": "Catalog", "id": "c", "links": [], "pad": "x" * 65_000})
    )
    if args.e2e:
        fgb, box = _fgb(folder)
        shutil.copy(COPC, folder / "simple.copc.laz")
        cube = _zarr(folder)
        _netcdf(folder)
    server = start_range_server(folder)
    url = f"{server.url}/big.bin"
    rng = random.Random(1)
    starts = [rng.randrange(0, 32 * 1024 * 1024 - size) for _ in range(args.reads)]
    plain, headed = Storage(), Storage(headers={"X-Trace": "bench"})
    raw_store = HTTPStore.from_url(server.url, client_options={"allow_http": True})
    pool = urllib3.PoolManager(maxsize=16)

    def one(storage: Storage, s: int) -> None:
        reply = http_reads.read(url, storage, byte_range=http_reads.ByteRange(s, s + size))
        assert len(reply.body) == size

    def ours(storage: Storage) -> Callable[[], None]:
        def run() -> None:
            for s in starts:
                one(storage, s)

        return run

    def threaded() -> None:
        with concurrent.futures.ThreadPoolExecutor(16) as workers:
            list(workers.map(lambda s: one(plain, s), starts))

    def ours_async() -> None:
        async def go() -> None:
            gate = asyncio.Semaphore(16)

            async def one(s: int) -> None:
                async with gate:
                    reply = await http_reads.read_async(
                        url, plain, byte_range=http_reads.ByteRange(s, s + size)
                    )
                    assert len(reply.body) == size

            await asyncio.gather(*(one(s) for s in starts))

        asyncio.run(go())

    def raw_obstore() -> None:
        for s in starts:
            assert len(obs.get_range(raw_store, "big.bin", start=s, end=s + size)) == size

    def raw_urllib3() -> None:
        for s in starts:
            r = pool.request(
                "GET", url, headers={"Range": f"bytes={s}-{s + size - 1}"}, preload_content=False
            )
            assert len(r.read()) == size
            r.release_conn()

    readers: dict[str, Callable[[], None]] = {
        "http_reads.read, one at a time": ours(plain),
        "http_reads.read, headers, one at a time": ours(headed),
        "http_reads.read, 16 threads": threaded,
        "http_reads.read_async, 16 in flight": ours_async,
        "raw obstore.get_range, one at a time (no checks)": raw_obstore,
        "raw urllib3, one at a time (no checks)": raw_urllib3,
    }
    if args.e2e:
        fgb_url, copc_url = f"{server.url}/{fgb}", f"{server.url}/simple.copc.laz"
        header = laspy_header(COPC)
        cx, cy = (header.mins[0] + header.maxs[0]) / 2, (header.mins[1] + header.maxs[1]) / 2
        copc_box = (header.mins[0], header.mins[1], cx, cy)
        expected = len(tp.open_vector(str(folder / fgb), bbox=box))

        def vector_bytes() -> None:
            assert len(tp.open_vector(fgb_url, bbox=box, storage=Storage())) == expected

        def vector_gdal() -> None:
            assert len(tp.open_vector(fgb_url, bbox=box)) == expected

        def zarr_chips() -> None:
            pipe = tp.from_items([f"{server.url}/{cube}"]).read_zarr(variables="v")
            chips = pipe.chip({"y": 256, "x": 256}, output="numpy")
            assert sum(int(array.nbytes) for array, _ in chips) == 2048 * 2048 * 2

        def netcdf() -> None:
            assert len(tp.open_xarray(f"{server.url}/vars.nc", engine="scipy").load().data_vars) == 40

        def copc() -> None:
            assert tp.open_point_cloud(copc_url, bounds=copc_box, storage=Storage()).xyz.shape[0] > 0

        for label, run in (
            ("open_vector FGB bbox, storage= (byte layer)", vector_bytes),
            ("open_vector FGB bbox, GDAL + HTTPFile checks", vector_gdal),
            ("open_point_cloud COPC bounds (get_ranges)", copc),
            ("read_zarr(url).chip(), 2048² of 512² chunks", zarr_chips),
            ("open_xarray netCDF3, 40 variables (HTTPFile)", netcdf),
        ):
            readers[f"e2e {label}"] = run
    if args.old:
        spec = importlib.util.spec_from_file_location("old_http_client", args.old)
        assert spec is not None
        assert spec.loader is not None
        old: Any = importlib.util.module_from_spec(spec)
        sys.modules["old_http_client"] = old  # dataclasses look their module up
        spec.loader.exec_module(old)

        def old_client() -> None:
            options = old.HTTPOptions()
            for s in starts:
                assert len(old.fetch(url, options, byte_range=old.ByteRange(s, s + size)).body) == size

        readers["pre-#19 http.client reader, one at a time"] = old_client
    from terrapipe.core.errors import ReadError
    from terrapipe.stac.http_json import JsonClient

    # the JSON from the latency server with no latency and no rate cap: it sends without Nagle's delay
    # (the range server's whole-file answers wait ~40 ms for the client's delayed ACK)
    json_server = start_latency_server(folder, latency=0.0, rate=0.0)

    def json_gets(client: Any) -> Callable[[], None]:
        def run() -> None:
            for _ in starts:
                doc = client.request("GET", f"{json_server.url}/doc.json", error=ReadError, what="read")
                assert doc["id"] == "c"

        return run

    readers["JsonClient.request GET, 64 KiB JSON, one at a time"] = json_gets(JsonClient(plain))
    if args.before:
        before: dict[str, Any] = {}
        for name in ("http_reads", "http_json"):
            spec = importlib.util.spec_from_file_location(f"before_{name}", Path(args.before) / f"{name}.py")
            assert spec is not None
            assert spec.loader is not None
            before[name] = importlib.util.module_from_spec(spec)
            sys.modules[f"before_{name}"] = before[name]  # dataclasses look their module up
            spec.loader.exec_module(before[name])

        def before_reads(storage: Storage) -> Callable[[], None]:
            def run() -> None:
                for s in starts:
                    wanted = before["http_reads"].ByteRange(s, s + size)
                    assert len(before["http_reads"].read(url, storage, byte_range=wanted).body) == size

            return run

        readers["before: http_reads.read, default (urllib3), one at a time"] = before_reads(plain)
        readers["before: http_reads.read, urllib3 (headers), one at a time"] = before_reads(headed)
        readers["before: JsonClient.request GET, 64 KiB JSON"] = json_gets(
            before["http_json"].JsonClient(plain)
        )
    floor_name = "raw obstore.get_range, one at a time (no checks)"
    readers = {k: v for k, v in readers.items() if args.only in k or k == floor_name}
    times: dict[str, list[float]] = {name: [] for name in readers}
    order = list(readers.items())
    for _ in range(args.rounds):
        rng.shuffle(order)  # a new order each round: no reader always runs after the same one
        for name, run in order:
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    server.stop()
    json_server.stop()
    floor = statistics.median(times[floor_name])
    print(
        f"{args.reads} ranged reads of {size // 1024} KiB, median of {args.rounds} rounds; load {os.getloadavg()}"
    )
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:62s} {median:6.3f} s   {median / floor:5.2f} x raw obstore")
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("  fsspec HTTP: not run (needs aiohttp, which no terrapipe extra installs)")


if __name__ == "__main__":
    main()
