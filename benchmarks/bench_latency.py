"""Latency hiding: chips over a cloud-like link with the defaults, against a 16-thread hand-written reader.

A latency-injecting range server (``tests/servers/latency_http.py``: 30 ms
added to every request, 50 MB/s per connection, ``TCP_NODELAY`` as object
stores have) serves, on 127.0.0.1:

- a tiled COG (``--size`` x ``--size`` uint16, 256 x 256 DEFLATE tiles);
- the same pixels as a Zarr v2 store (256 x 256 chunks, zstd, consolidated);
- the sample world's COGs, with STAC items whose asset hrefs point at the
  server, searched through a STAC API (``rustac serve``) on 127.0.0.1.

Three flows, each with terrapipe's defaults (no ``workers=``), against a
hand-written reader of the same blocks on 16 threads (``peer``):

- ``raster``: ``from_items([url]).read_raster().chip({"y": 256, "x": 256})``;
  peer: rasterio window reads of every tile, 16 threads, a dataset per thread;
- ``zarr``: ``from_items([url]).read_zarr(variables="v").chip(...)``; peer:
  16 threads, each ``GET``-ing chunks on its own keep-alive connection and
  decoding them with numcodecs;
- ``readme``: the README flow ``search_stac(api, datetime="2024-06") ->
  stack_stac(bands, resolution=10) -> chip(256, overlap 32) -> to_tensor()``
  (one scene per element); peer: rasterio reads, 16 threads, of the blocks
  ``chip`` reads (one per band, scene and chunk of the cube);
- ``loader``: the README flow iterated as the README does,
  ``tp.loader(pipe, batch_size=8, workers=2, collate=tp.collate)``; same peer.

Every run is a fresh subprocess (GDAL's process-wide ``/vsicurl/`` cache would
otherwise answer the second contender), which first warms up, untimed, on
other files (a 512 x 512 COG and Zarr store on the same server; for the README
flow, a search of the API and the flow over the world's local files): imports
and first-use set-up are not what this measures. In each round every flow runs
its contenders back to back (``--contenders``: ``peer``; ``ours``, the
defaults; ``ours16``, ``workers=16``; ``ours4``, ``workers=4``, the default
before reads adapted to the source; ``local``, the defaults on the same
files on local disk, where there is no latency to hide; for ``zarr`` only,
``storage``, the defaults with ``storage=tp.Storage()`` (the store read
through obstore, as a bucket is), and ``open``, only opening the store as
``read_zarr`` does, no chunk read); the table gives the
median seconds over the rounds, the ratio ``peer / this`` (>= 1: faster
than the peer) of the medians, and the median CPU seconds (user + system, all
threads of the run's process) of the timed part.

``--fetch`` instead compares threads and asyncio (obstore) fetching every
chunk of the Zarr store, at 16 and 64 requests in flight.

``--baseline-src DIR`` also runs every terrapipe contender over another copy
of ``src/`` right after its own run (rows ``(baseline src)``), so a change is
measured before and after in one run, under the same load.

Run: ``python benchmarks/bench_latency.py [--size 4096] [--repeat 3] [--latency 0.03] [--rate 50e6]
[--markdown out.md] [--fetch] [--baseline-src DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

TILE = 256
WARM = 512  # side of the files the contenders warm up on
PEER_THREADS = 16
README_BANDS = ["red", "green", "blue", "nir"]
ZARR_ONLY = ("storage", "open")  # contenders of the zarr flow only


# -- data --------------------------------------------------------------------------------------------


def _pixels(n: int) -> np.ndarray:
    """Smooth, imagery-like uint16 pixels (compress like imagery, not like noise or zeros)."""
    rng = np.random.default_rng(0)
    coarse = rng.normal(2000, 600, size=(n // 64 + 2, n // 64 + 2))
    y = np.arange(n) / 64
    iy, fy = y.astype(int), (y % 1.0)[:, None]
    rows = coarse[iy] * (1 - fy) + coarse[iy + 1] * fy
    smooth = rows[:, iy] * (1 - fy.T) + rows[:, iy + 1] * fy.T
    noise = rng.normal(0, 40, size=(n, n))
    return np.clip(smooth + noise, 0, 65535).astype("uint16")


def make_data(folder: Path, n: int) -> dict[str, Any]:
    """Write the COG and the Zarr store (and small ones to warm up on) into ``folder``; return their paths."""
    warm = _write(folder / "warm", WARM)
    return {"warm_cog": f"warm/{warm['cog']}", "warm_zarr": f"warm/{warm['zarr']}", **_write(folder, n)}


def _write(folder: Path, n: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    import numcodecs
    import rasterio
    import xarray as xr
    from rasterio.transform import from_origin

    data = _pixels(n)
    transform = from_origin(500000, 5000000, 10, 10)
    profile = {
        "driver": "GTiff", "width": n, "height": n, "count": 1, "dtype": "uint16", "crs": "EPSG:32631",
        "transform": transform, "nodata": 0, "tiled": True, "blockxsize": TILE, "blockysize": TILE,
        "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(folder / "scene.tif", "w", **profile) as dst:
        dst.write(data, 1)
    ds = xr.Dataset(
        {"v": (("y", "x"), data)},
        coords={"y": 5000000 - 5 - 10 * np.arange(n), "x": 500005 + 10 * np.arange(n)},
    )
    ds.to_zarr(
        folder / "cube.zarr",
        zarr_format=2,
        consolidated=True,
        encoding={"v": {"chunks": (TILE, TILE), "compressors": [numcodecs.Zstd(level=1)]}},
    )
    return {"cog": "scene.tif", "zarr": "cube.zarr"}


def readme_items(world: Any, folder: Path, base_url: str) -> list[Path]:
    """Write the world's collection and items with asset hrefs on the server; return the files to serve."""
    root = Path(world.root).resolve()
    collection = json.loads(world.s2_api_collection.read_text())
    records = []
    for line in world.s2_items_ndjson.read_text().splitlines():
        record = json.loads(line)
        for asset in record["assets"].values():
            href = asset["href"]
            path = Path(urllib.parse.urlsplit(href).path) if href.startswith("file:") else Path(href)
            if path.is_absolute() and root in path.parents:
                asset["href"] = f"{base_url}/{path.relative_to(root).as_posix()}"
        records.append(record)
    (folder / "collection.json").write_text(json.dumps(collection))
    (folder / "items.ndjson").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return [folder / "collection.json", folder / "items.ndjson"]


# -- contenders (each run in its own subprocess) ---------------------------------------------------


def _gdal_env() -> Any:
    import rasterio

    return rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", GDAL_HTTP_MAX_RETRY="3")


def peer_windows(jobs: list[tuple[str, tuple[int, int, int, int], list[int]]]) -> int:
    """Read ``(url, (row, col, height, width), bands)`` windows on 16 threads, one dataset per thread and file."""
    import rasterio
    from rasterio.windows import Window

    local = threading.local()

    def read(job: tuple[str, tuple[int, int, int, int], list[int]]) -> int:
        url, (row, col, h, w), bands = job
        handles = local.__dict__.setdefault("handles", {})
        with _gdal_env():
            if url not in handles:
                handles[url] = rasterio.open(f"/vsicurl/{url}")
            return int(handles[url].read(bands, window=Window(col, row, w, h)).nbytes)

    with ThreadPoolExecutor(PEER_THREADS) as pool:
        return sum(pool.map(read, jobs))


def tile_jobs(url: str, n: int) -> list[tuple[str, tuple[int, int, int, int], list[int]]]:
    """Every ``TILE`` x ``TILE`` tile of the ``n`` x ``n`` COG at ``url``, row by row."""
    return [(url, (r, c, TILE, TILE), [1]) for r in range(0, n, TILE) for c in range(0, n, TILE)]


def peer_zarr(url: str, n: int) -> int:
    """GET and decode every chunk of the Zarr array ``v`` on 16 threads (a connection per thread)."""
    import http.client

    import numcodecs

    meta = json.loads(_get(f"{url}/v/.zarray"))
    codec = numcodecs.get_codec(meta["compressor"])
    dtype = np.dtype(meta["dtype"])
    shape = tuple(meta["chunks"])
    parts = urllib.parse.urlsplit(url)
    local = threading.local()

    def fetch(key: str) -> int:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        conn.request("GET", f"{parts.path}/v/{key}")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{key}: HTTP {response.status}")
        return int(np.frombuffer(codec.decode(body), dtype=dtype).reshape(shape).nbytes)

    keys = [f"{r}.{c}" for r in range(n // TILE) for c in range(n // TILE)]
    with ThreadPoolExecutor(PEER_THREADS) as pool:
        return sum(pool.map(fetch, keys))


def _get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as response:
        return bytes(response.read())


def ours_raster(url: str, workers: int | None) -> int:
    import terrapipe as tp

    kwargs = {} if workers is None else {"workers": workers}
    pipe = tp.from_items([url]).read_raster().chip({"y": TILE, "x": TILE}, output="numpy", **kwargs)
    return sum(int(chip.nbytes) for chip in _arrays(pipe))


def ours_zarr(url: str, workers: int | None, storage: Any = None) -> int:
    import terrapipe as tp

    kwargs = {} if workers is None else {"workers": workers}
    pipe = (
        tp.from_items([url])
        .read_zarr(variables="v", storage=storage)
        .chip({"y": TILE, "x": TILE}, output="numpy", **kwargs)
    )
    return sum(int(chip.nbytes) for chip in _arrays(pipe))


def ours_zarr_storage(url: str, workers: int | None) -> int:
    """``ours_zarr`` with ``storage=tp.Storage()``: the store on obstore (as for a bucket), not HTTPStore."""
    import terrapipe as tp

    return ours_zarr(url, workers, storage=tp.Storage())


def open_zarr_only(url: str, workers: int | None) -> int:
    """Only what ``read_zarr`` does before any chunk is read: open the store (metadata, coordinates)."""
    import terrapipe as tp

    return int(tp.open_zarr(url, variables="v").nbytes * 0)


def _arrays(pipe: Any) -> Any:
    """The pixels of each ``(array, meta)`` chip (``output="numpy"``)."""
    for array, _meta in pipe:
        yield array


def ours_readme(api: str, workers: int | None, catalog: str | None = None, loader: bool = False) -> int:
    """The README flow; with ``catalog``, the items are searched there (the API is searched too).

    ``loader``: batches from ``tp.loader(pipe, batch_size=8, workers=2, collate=tp.collate)``,
    as the README iterates it.
    """
    import terrapipe as tp

    kwargs = {} if workers is None else {"workers": workers}
    items = list(tp.search_stac(api, collections=["demo-s2"], datetime="2024-06"))
    if catalog is not None:
        items = list(tp.search_stac(catalog, collections=["demo-s2"], datetime="2024-06"))
    pipe = (
        tp.from_items([[item] for item in items])
        .stack_stac(bands=README_BANDS, resolution=10)
        .chip({"y": 256, "x": 256}, overlap={"y": 32, "x": 32}, **kwargs)
        .to_tensor()
    )
    total = 0
    samples = tp.loader(pipe, batch_size=8, workers=2, collate=tp.collate) if loader else pipe
    for sample in samples:
        total += int(sample["image"].numel() * sample["image"].element_size())
    return total


def readme_jobs(api: str) -> list[tuple[str, tuple[int, int, int, int], list[int]]]:
    """The blocks the README flow's ``chip`` reads: per scene and band, each chunk of the cube, as windows."""
    import terrapipe as tp

    jobs = []
    for item in tp.search_stac(api, collections=["demo-s2"], datetime="2024-06"):
        cube = tp.from_items([[item]]).stack_stac(bands=README_BANDS, resolution=10)
        (da,) = list(cube)
        ys = np.cumsum((0,) + da.chunks[2])
        xs = np.cumsum((0,) + da.chunks[3])
        for band in README_BANDS:
            href = item.assets[band].href
            for r0, r1 in pairwise(ys.tolist()):
                for c0, c1 in pairwise(xs.tolist()):
                    jobs.append((href, (int(r0), int(c0), int(r1 - r0), int(c1 - c0)), [1]))
    return jobs


def bench_fetch(base: str, n: int, repeat: int) -> list[tuple[str, float]]:
    """Threads or asyncio: GET every chunk of the Zarr store at ``base`` (no decoding), several ways.

    Returns ``(how, median seconds)`` rows.
    """
    import asyncio
    import http.client

    import obstore
    from obstore.store import HTTPStore

    keys = [f"v/{r}.{c}" for r in range(n // TILE) for c in range(n // TILE)]
    parts = urllib.parse.urlsplit(base)
    store = HTTPStore.from_url(base, client_options={"allow_http": True})

    def threads(count: int) -> int:
        local = threading.local()

        def get(key: str) -> int:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            conn.request("GET", f"{parts.path}/{key}")
            return len(conn.getresponse().read())

        with ThreadPoolExecutor(count) as pool:
            return sum(pool.map(get, keys))

    def obstore_threads(count: int) -> int:
        with ThreadPoolExecutor(count) as pool:
            return sum(pool.map(lambda key: len(obstore.get(store, key).bytes()), keys))

    def obstore_async(limit: int) -> int:
        async def main() -> int:
            gate = asyncio.Semaphore(limit)

            async def one(key: str) -> int:
                async with gate:
                    reply = await obstore.get_async(store, key)
                    return len(await reply.bytes_async())

            return sum(await asyncio.gather(*(one(key) for key in keys)))

        return asyncio.run(main())

    cases: list[tuple[str, Callable[[], int]]] = [
        ("http.client, 16 threads (a connection each)", lambda: threads(16)),
        ("obstore sync get, 16 threads", lambda: obstore_threads(16)),
        ("obstore get_async, 16 in flight", lambda: obstore_async(16)),
        ("obstore get_async, 64 in flight", lambda: obstore_async(64)),
    ]
    for _, fn in cases:
        fn()  # warm: connections, the runtime
    times: dict[str, list[float]] = {how: [] for how, _ in cases}
    for _ in range(repeat):
        for how, fn in cases:
            start = time.perf_counter()
            fn()
            times[how].append(time.perf_counter() - start)
    return [(how, statistics.median(values)) for how, values in times.items()]


def run_one(args: argparse.Namespace) -> None:
    """Subprocess entry: run one contender once, print ``{"seconds", "bytes"}``."""
    spec = json.loads(args.run)
    if spec.get("src"):  # --baseline-src: terrapipe from another copy of src/ (imported lazily, below)
        sys.path.insert(0, str(spec["src"]))
    flow, who, url, n = spec["flow"], spec["who"], spec["url"], spec["n"]
    workers = {"ours16": 16, "ours4": 4}.get(who)
    fn: Callable[[], int]
    # Warm-up (not timed): imports, GDAL's and the HTTP clients' first-use set-up, on other files
    # than the timed ones (GDAL's /vsicurl/ cache must not answer the timed reads).
    warm = spec["warm"]
    stac = flow in ("readme", "loader")
    loader = flow == "loader"
    peer_windows(tile_jobs(warm["tif"], WARM))
    if who == "peer":
        if flow == "zarr":
            peer_zarr(warm["zarr"], WARM)
    elif flow == "raster":
        ours_raster(warm["tif"], workers)
    elif flow == "zarr":
        {"storage": ours_zarr_storage, "open": open_zarr_only}.get(who, ours_zarr)(warm["zarr"], workers)
    else:  # search the API; read the world's local files
        ours_readme(url, workers, catalog=warm["catalog"], loader=loader)
    if who == "peer":
        if flow == "raster":
            fn = lambda: peer_windows(tile_jobs(url, n))  # noqa: E731
        elif flow == "zarr":
            fn = lambda: peer_zarr(url, n)  # noqa: E731
        else:
            jobs = readme_jobs(url)  # planning (STAC search, stacking) is not timed for the peer
            fn = lambda: peer_windows(jobs)  # noqa: E731
    elif who == "local":  # the same flow on the same files on local disk: no latency to hide
        local = spec["local"]
        if stac:
            fn = lambda: ours_readme(url, None, catalog=local["catalog"], loader=loader)  # noqa: E731
        else:
            runner = {"raster": ours_raster, "zarr": ours_zarr}[flow]
            fn = lambda: runner(local[flow], None)  # noqa: E731
    elif stac:
        fn = lambda: ours_readme(url, workers, loader=loader)  # noqa: E731
    else:
        runner = {"raster": ours_raster, "zarr": ours_zarr}[flow]
        if flow == "zarr":
            runner = {"storage": ours_zarr_storage, "open": open_zarr_only}.get(who, ours_zarr)
        fn = lambda: runner(url, workers)  # noqa: E731
    cpu = _cpu_seconds()
    start = time.perf_counter()
    nbytes = fn()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "bytes": nbytes, "cpu": _cpu_seconds() - cpu}))


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process so far, all its threads."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _spawn(
    flow: str,
    who: str,
    url: str,
    n: int,
    warm: dict[str, str],
    local: dict[str, str],
    src: str | None = None,
) -> dict[str, Any]:
    spec = json.dumps(
        {"flow": flow, "who": who, "url": url, "n": n, "warm": warm, "local": local, "src": src}
    )
    out = subprocess.run(
        [sys.executable, __file__, "--run", spec], capture_output=True, text=True, timeout=600, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{flow}/{who} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def machine() -> str:
    """``lscpu``'s model name and core count, and the load averages."""
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, load average {load}"


def main() -> None:
    """Run the rounds and print the table (and write it as Markdown with ``--markdown``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=4096, help="COG/Zarr side in pixels (multiple of 256)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--latency", type=float, default=0.030, help="seconds added per request")
    parser.add_argument("--rate", type=float, default=50e6, help="bytes/s per connection")
    parser.add_argument("--flows", default="raster,zarr,readme,loader")
    parser.add_argument("--contenders", default="peer,ours,ours16,ours4,local")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument(
        "--baseline-src",
        help="also run every terrapipe contender over this copy of src/ (e.g. `git archive <commit> | "
        "tar -x -C DIR`, then DIR/src), right after its own run: rows '<name> (baseline)'",
    )
    parser.add_argument(
        "--fetch", action="store_true", help="only compare threads and asyncio fetching chunks"
    )
    args = parser.parse_args()
    if args.run:
        run_one(args)
        return
    from tests.servers.latency_http import latency_server

    import terrapipe.stac
    from terrapipe.datasets import sample_world

    flows = args.flows.split(",")
    contenders = args.contenders.split(",")
    world = sample_world()
    before = machine()
    times: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        paths = make_data(folder, args.size)
        link = {"latency": args.latency, "rate": args.rate}
        with latency_server(folder, **link) as server, latency_server(world.root, **link) as world_server:
            hrefs = readme_items(world, Path(tmp), world_server.url)
            with terrapipe.stac.serve_stac(hrefs) as api:
                urls = {
                    "raster": f"{server.url}/{paths['cog']}",
                    "zarr": f"{server.url}/{paths['zarr']}",
                    "readme": api.url,
                    "loader": api.url,
                }
                warm = {
                    "tif": f"{server.url}/{paths['warm_cog']}",
                    "zarr": f"{server.url}/{paths['warm_zarr']}",
                    "catalog": str(world.catalog),
                }
                local = {
                    "raster": str(folder / paths["cog"]),
                    "zarr": str(folder / paths["zarr"]),
                    "catalog": str(world.catalog),
                }
                if args.fetch:
                    print(f"\nGET every chunk of the {args.size}^2 Zarr store (medians of {args.repeat}):")
                    for how, seconds in bench_fetch(urls["zarr"], args.size, args.repeat):
                        print(f"| {how} | {seconds:.3f} |")
                    return
                for round_no in range(args.repeat):
                    for flow in flows:
                        for who in contenders:
                            if who in ZARR_ONLY and flow != "zarr":
                                continue
                            runs = [(who, None)]
                            if args.baseline_src and who != "peer":
                                runs.append((f"{who} (baseline)", args.baseline_src))
                            for label, src in runs:
                                result = _spawn(flow, who, urls[flow], args.size, warm, local, src)
                                times.setdefault((flow, label), []).append(result["seconds"])
                                cpus.setdefault((flow, label), []).append(result["cpu"])
                                print(
                                    f"round {round_no + 1} {flow:7} {label:7} {result['seconds']:7.3f} s "
                                    f"{result['bytes'] / 1e6:8.1f} MB cpu {result['cpu']:6.3f} s",
                                    flush=True,
                                )
    after = machine()
    lines = [
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Machine: {before} (at the start); "
        f"load average at the end {after.rsplit('load average ', 1)[1]}.",
        f"Link: {args.latency * 1000:.0f} ms per request, {args.rate / 1e6:.0f} MB/s per connection. "
        f"COG and Zarr: {args.size} x {args.size} uint16, {TILE} x {TILE} tiles/chunks. "
        f"Medians of {args.repeat} rounds.",
        "",
        "| flow | contender | median s | range s | peer / this | CPU s (median) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    names = {
        "peer": "16-thread hand-written reader",
        "ours": "terrapipe, defaults",
        "ours16": "terrapipe, workers=16",
        "ours4": "terrapipe, workers=4 (the old default's count)",
        "local": "terrapipe, defaults, files on local disk",
        "storage": "terrapipe, defaults, storage=tp.Storage() (obstore, as for a bucket)",
        "open": "terrapipe, opening the store only (no chunk read)",
    }
    for flow in flows:
        peer = statistics.median(times[(flow, "peer")]) if (flow, "peer") in times else None
        for who in contenders:
            for label, suffix in ((who, ""), (f"{who} (baseline)", " (baseline src)")):
                if (flow, label) not in times:
                    continue
                values = times[(flow, label)]
                med = statistics.median(values)
                ratio = f"{peer / med:.2f}x" if peer is not None else "-"
                cpu = statistics.median(cpus[(flow, label)])
                lines.append(
                    f"| {flow} | {names.get(who, who)}{suffix} | {med:.3f} | "
                    f"{min(values):.3f}-{max(values):.3f} | {ratio} | {cpu:.3f} |"
                )
    text = "\n".join(lines)
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
