"""Window reads from a COG: local vs HTTP (range server on 127.0.0.1), 1 and N threads.

Writes a tiled, compressed COG into a temporary folder, serves it with the test
range server, and reads random 256 x 256 windows through
``terrapipe.io.open_raster`` (lazy DataArray, per-thread handles) and, as the
floor, through ``rasterio`` directly. Prints windows/s, the ratio to the
rasterio local floor, and the bytes fetched per window over HTTP (counted by
the server). Every run opens new datasets, so GDAL's cache starts empty for
the floor and for terrapipe alike, and each HTTP run uses a new URL. The
readers take turns within each round (``--rounds``, medians shown), so load
from elsewhere on the machine hits them alike.

``--chips`` also reads the same windows the way terrapipe reads many windows, in one pass:
``tp.from_items([open_raster(path)]).sample_windows(size, points=...)``, one window centred on
each point in the order given (rows ``sample_windows (numpy)`` / ``(xarray)``, by ``output=``),
at the default ``buffer=256`` and at ``buffer=n`` (since 4a8d18f both read each storage block once
per pass within the block budget, as GDAL's block cache serves the floor; before, each buffer read
its blocks again), on ``--threads`` reader
threads (1: in the calling thread), every run through a new file name (cold GDAL cache); the first round checks its
pixels equal to rasterio's, window by window.

``--baseline-src DIR`` also times ``terrapipe local`` over another copy of
``src/`` (``git archive <commit> src | tar -x -C DIR``, then ``DIR/src``) and
over this one, each in a fresh child process with its own floor run just
before it in that process: rows ``terrapipe local (child)`` and ``terrapipe
local (baseline src)``, so a change is measured before/after in one run.

Run: ``python benchmarks/bench_io.py [--windows 300] [--size 4096] [--threads 1 4] [--rounds 5]
[--parts] [--chips] [--clock wall|cpu] [--baseline-src DIR]``
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from rasterio.transform import from_origin
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
#: ``--baseline-child SRC``: this process times terrapipe from another copy of ``src/`` (see main).
_CHILD_SRC = sys.argv[sys.argv.index("--baseline-child") + 1] if "--baseline-child" in sys.argv else None
sys.path.insert(0, str(ROOT))
sys.path.insert(0, _CHILD_SRC or str(ROOT / "src"))

from tests.servers.http_range import start_range_server  # noqa: E402

from terrapipe.io import open_raster  # noqa: E402
from terrapipe.io.raster_array import close_thread_handles  # noqa: E402


def write_cog(path: Path, size: int, bands: int) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    base = (np.sin(yy / 97.0) + np.cos(xx / 53.0)) * 2000 + 5000
    data = np.stack([base + rng.normal(0, 300, base.shape) for _ in range(bands)]).astype("uint16")
    profile = {
        "driver": "COG",
        "width": size,
        "height": size,
        "count": bands,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(500_000, 5_000_000, 10, 10),
        "nodata": 0,
        "blocksize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def windows(n: int, size: int, win: int, seed: int = 1) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(r), int(c)) for r, c in rng.integers(0, size - win, size=(n, 2))]


#: What :func:`run` measures: wall-clock time, or this process's CPU time (``--clock cpu``: steadier
#: on a loaded machine; the reads are CPU-bound locally, not over HTTP).
CLOCK = {"clock": time.perf_counter}


def run(read_one, picks: list[tuple[int, int]], threads: int) -> float:
    """Seconds to read every pick, in this thread (``threads == 1``) or in a new pool of ``threads``."""
    clock = CLOCK["clock"]
    started = clock()
    if threads == 1:
        for pick in picks:
            read_one(pick)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(read_one, picks))
    return clock() - started


def rasterio_run(path: Path, picks: list[tuple[int, int]], win: int, threads: int) -> float:
    """The floor: one new dataset per thread (cold GDAL cache), plain window reads."""
    handles: dict[int, rasterio.DatasetReader] = {}

    def read(pick: tuple[int, int]) -> None:
        key = threading.get_ident()
        if key not in handles:
            handles[key] = rasterio.open(path)
        handles[key].read(window=Window(pick[1], pick[0], win, win))

    try:
        return run(read, picks, threads)
    finally:
        for ds in handles.values():
            ds.close()


def terrapipe_run(url: str | Path, picks: list[tuple[int, int]], win: int, threads: int) -> float:
    """``open_raster`` then ``isel(...).values`` per window; new handles (cold GDAL cache) each run."""
    da = open_raster(url)
    close_thread_handles()  # the open's handle: reads start cold, as the floor's do
    try:
        return run(
            lambda p: da.isel(y=slice(p[0], p[0] + win), x=slice(p[1], p[1] + win)).values, picks, threads
        )
    finally:
        close_thread_handles()  # pool threads' handles close when their threads end


def terrapipe_values_run(url: str | Path, picks: list[tuple[int, int]], win: int, threads: int) -> float:
    """``.values`` of windows whose ``isel`` was done before the clock starts: the read without xarray's isel."""
    da = open_raster(url)
    close_thread_handles()
    subs = iter([da.isel(y=slice(p[0], p[0] + win), x=slice(p[1], p[1] + win)) for p in picks])
    lock = threading.Lock()

    def read(_: tuple[int, int]) -> None:
        with lock:
            sub = next(subs)
        _ = sub.values

    try:
        return run(read, picks, threads)
    finally:
        close_thread_handles()


def rasterio_isel_run(path: Path, picks: list[tuple[int, int]], win: int, threads: int) -> float:
    """The floor plus what ``DataArray.isel`` costs on an in-memory array with the same coordinates."""
    da = open_raster(path)
    close_thread_handles()
    coords = da.coords  # the same coordinates, pandas indexes
    plain = xr.DataArray(
        np.broadcast_to(np.zeros((), "uint16"), da.shape), dims=da.dims, coords=coords, attrs=da.attrs
    )
    handles: dict[int, rasterio.DatasetReader] = {}

    def read(pick: tuple[int, int]) -> None:
        key = threading.get_ident()
        if key not in handles:
            handles[key] = rasterio.open(path)
        plain.isel(y=slice(pick[0], pick[0] + win), x=slice(pick[1], pick[1] + win))
        handles[key].read(window=Window(pick[1], pick[0], win, win))

    try:
        return run(read, picks, threads)
    finally:
        for ds in handles.values():
            ds.close()


def isel_costs(path: Path, picks: list[tuple[int, int]], win: int) -> dict[str, float]:
    """Microseconds of this thread's CPU per ``DataArray.isel`` of a window: alone, and after other work.

    Each ``isel`` of a :func:`open_raster` array is timed by itself (``time.thread_time_ns``), with
    something else done before each one: nothing (back to back), a cold window read with rasterio
    (what the benchmark interleaves), or a pure-Python loop of about the same CPU time (no GDAL, no
    memory traffic). It shows whether the cost of ``isel`` between reads comes from GDAL's decoding
    or from any other work done in between.
    """
    da = open_raster(path)
    close_thread_handles()
    keys = [(slice(r, r + win), slice(c, c + win)) for r, c in picks]
    clock = time.thread_time_ns

    def spin() -> None:
        total = 0
        for i in range(20_000):
            total += i

    def timed(before: Any) -> float:
        spent = 0
        for y, x in keys:
            before()
            started = clock()
            da.isel(y=y, x=x)
            spent += clock() - started
        return spent / len(keys) / 1000

    costs = {"isel alone": timed(lambda: None), "isel after a pure-Python loop": timed(spin)}
    with rasterio.open(path) as ds:
        reads = iter(picks[::-1])
        costs["isel after a rasterio window read"] = timed(
            lambda: ds.read(window=Window(*next(reads)[::-1], win, win))
        )
    return costs


def window_points(path: Path, picks: list[tuple[int, int]], win: int) -> list[tuple[float, float]]:
    """Map ``(x, y)`` points that ``sample_windows(points=...)`` centres windows of ``win`` pixels on, at ``picks``.

    A window is centred on the pixel holding the point: its start is that pixel's row and column less
    ``win // 2`` (:mod:`terrapipe.chip.sampler`), so the point is the centre of pixel ``start + win // 2``.
    """
    with rasterio.open(path) as ds:
        t = ds.transform
    half = win // 2
    return [(t.c + (c + half + 0.5) * t.a, t.f + (r + half + 0.5) * t.e) for r, c in picks]


#: How many links :func:`_fresh_name` made (each run reads through a new one).
_LINKS = {"count": 0}


def _fresh_name(path: Path) -> Path:
    """A new symbolic link to ``path``: a new name, so the reader threads open new datasets (cold GDAL cache).

    ``sample_windows`` reads on the process's long-lived reader threads (:mod:`terrapipe.io.read_pool`),
    which keep their handles between passes; a name they never opened starts cold, as the floor does.
    """
    _LINKS["count"] += 1
    link = path.with_name(f"{path.stem}-link{_LINKS['count']}{path.suffix}")
    link.symlink_to(path)
    return link


def sample_windows_pipe(
    path: Path, picks: list[tuple[int, int]], win: int, threads: int, output: str, buffer: int = 256
) -> Any:
    """terrapipe's way to read many given windows: ``from_items([open_raster(p)]).sample_windows(points=...)``.

    One window centred on each point, in the order given; the blocks of ``buffer`` windows (256 by
    default) are read once each, on ``threads`` reader threads (``workers=0``: in the calling thread).
    """
    import terrapipe as tp

    da = open_raster(path)
    close_thread_handles()  # the open's handle: reads start cold, as the floor's do
    size = {"y": win, "x": win}
    workers = 0 if threads == 1 else threads
    points = window_points(path, picks, win)
    return tp.from_items([da]).sample_windows(
        size, points=points, workers=workers, output=output, buffer=buffer
    )


def sample_windows_run(
    path: Path, picks: list[tuple[int, int]], win: int, threads: int, output: str, buffer: int = 256
) -> float:
    """Seconds for :func:`sample_windows_pipe` to yield every window (a new file name: cold GDAL cache)."""
    pipe = sample_windows_pipe(_fresh_name(path), picks, win, threads, output, buffer)
    clock = CLOCK["clock"]
    started = clock()
    count = sum(1 for _ in pipe)
    spent = clock() - started
    close_thread_handles()
    if count != len(picks):
        raise SystemExit(f"sample_windows gave {count} windows, not {len(picks)}")
    return spent


def check_sample_windows(path: Path, picks: list[tuple[int, int]], win: int, threads: int) -> None:
    """Stop unless ``sample_windows`` gives rasterio's pixels for every pick, in order (both outputs)."""
    with rasterio.open(path) as ds:
        expected = [ds.read(window=Window(c, r, win, win)) for r, c in picks]
    for output in ("numpy", "xarray"):
        got = list(sample_windows_pipe(_fresh_name(path), picks, win, threads, output))
        close_thread_handles()
        arrays = [np.asarray(g[0] if output == "numpy" else g.values) for g in got]
        same = len(arrays) == len(expected) and all(
            a.dtype == e.dtype and np.array_equal(a, e) for a, e in zip(arrays, expected, strict=False)
        )
        if not same:
            raise SystemExit(f"sample_windows (output={output!r}, {threads} threads) differs from rasterio")


def rioxarray_run(path: Path, picks: list[tuple[int, int]], win: int, threads: int) -> float:
    """The peer: ``rioxarray.open_rasterio(path, cache=False, lock=False)``, then ``isel(...).values``."""
    import rioxarray

    da = rioxarray.open_rasterio(path, cache=False, lock=False)
    try:
        return run(
            lambda p: da.isel(y=slice(p[0], p[0] + win), x=slice(p[1], p[1] + win)).values, picks, threads
        )
    finally:
        da.close()


def baseline_run(src: str, path: Path, args: argparse.Namespace, threads: int) -> tuple[float, float]:
    """``(floor, terrapipe)`` seconds, timed in a child process that imports terrapipe from ``src``."""
    command = [sys.executable, __file__, "--baseline-child", src, "--child-file", str(path)]
    command += ["--windows", str(args.windows), "--size", str(args.size), "--window", str(args.window)]
    command += ["--threads", str(threads), "--clock", args.clock]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600).stdout
    times = json.loads(out.strip().splitlines()[-1])
    return float(times["floor"]), float(times["terrapipe"])


def child(args: argparse.Namespace) -> None:
    """``--baseline-child``: one floor run, then one terrapipe run, printed as JSON."""
    path = Path(args.child_file)
    picks = windows(args.windows, args.size, args.window)
    threads = args.threads[0]
    rasterio_run(path, picks[:10], args.window, threads)  # a fresh process: first-use costs before the clock
    terrapipe_run(path, picks[:10], args.window, threads)
    floor = rasterio_run(path, picks, args.window, threads)
    ours = terrapipe_run(path, picks, args.window, threads)
    print(json.dumps({"floor": floor, "terrapipe": ours}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--bands", type=int, default=2)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are shown)")
    parser.add_argument(
        "--parts",
        action="store_true",
        help="also time, locally: .values alone (isel done before the clock), rasterio plus an in-memory "
        "DataArray's isel (the xarray floor) and rioxarray (the peer)",
    )
    parser.add_argument(
        "--chips",
        action="store_true",
        help="also time, locally: the same windows through terrapipe's sample_windows(points=...) over "
        "open_raster (output numpy and xarray; pixels checked equal to rasterio's in the first round)",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="time with the wall clock (default) or this process's CPU time (steadier under load)",
    )
    parser.add_argument(
        "--baseline-src",
        default=None,
        help="also time terrapipe local over this copy of src/ (a child process per round, after its own floor)",
    )
    parser.add_argument("--baseline-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clock == "cpu":
        CLOCK["clock"] = time.process_time
    if args.baseline_child:
        child(args)
        return

    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.tif"
        write_cog(path, args.size, args.bands)
        file_size = path.stat().st_size
        server = start_range_server(tmp)
        win = args.window
        picks = windows(args.windows, args.size, win)
        seconds: dict[tuple[str, int], list[float]] = {}
        floors_of: dict[tuple[str, int], list[float]] = {}  # rows timed against another floor run
        fetched: dict[int, list[float]] = {}
        costs: dict[str, list[float]] = {}  # --parts: us of CPU per isel, alone and after other work
        try:
            for round_ in range(args.rounds):
                for threads in args.threads:
                    # the three readers one after the other, in every round: load hits them alike
                    floor = rasterio_run(path, picks, win, threads)
                    seconds.setdefault(("rasterio local (floor)", threads), []).append(floor)
                    local = terrapipe_run(path, picks, win, threads)
                    seconds.setdefault(("terrapipe local", threads), []).append(local)
                    if args.chips:
                        if round_ == 0:
                            check_sample_windows(path, picks, win, threads)
                        for output, buffer in (("numpy", 256), ("xarray", 256), ("numpy", len(picks))):
                            spent = sample_windows_run(path, picks, win, threads, output, buffer)
                            label = f"sample_windows ({output}{', buffer=n' if buffer != 256 else ''})"
                            seconds.setdefault((label, threads), []).append(spent)
                    if args.parts:
                        values = terrapipe_values_run(path, picks, win, threads)
                        seconds.setdefault(("  .values alone", threads), []).append(values)
                        both = rasterio_isel_run(path, picks, win, threads)
                        seconds.setdefault(("rasterio + xarray isel", threads), []).append(both)
                        peer = rioxarray_run(path, picks, win, threads)
                        seconds.setdefault(("rioxarray", threads), []).append(peer)
                        if threads == args.threads[0]:
                            for name, spent in isel_costs(path, picks, win).items():
                                costs.setdefault(name, []).append(spent)
                    if args.baseline_src:  # before/after, each in a fresh process after its own floor
                        for label, src in (
                            ("(child)", str(ROOT / "src")),
                            ("(baseline src)", args.baseline_src),
                        ):
                            child_floor, child_ours = baseline_run(src, path, args, threads)
                            key = (f"terrapipe local {label}", threads)
                            seconds.setdefault(key, []).append(child_ours)
                            floors_of.setdefault(key, []).append(child_floor)
                    server.reset()
                    remote = terrapipe_run(
                        f"{server.url_for(path)}?run={threads}-{round_}", picks, win, threads
                    )
                    seconds.setdefault(("terrapipe HTTP", threads), []).append(remote)
                    fetched.setdefault(threads, []).append(server.bytes_served() / len(picks))
        finally:
            server.stop()

    print(f"# bench_io: {args.windows} random {win}x{win} windows, {args.bands} x uint16, COG {args.size}^2")
    print(
        f"# {dt.datetime.now().isoformat(timespec='seconds')}  {platform.platform()}  "
        f"python {platform.python_version()}  cpus {os.cpu_count()}  GDAL {rasterio.__gdal_version__}  "
        f"file {file_size / 1e6:.1f} MB"
    )
    print(f"# load average before: {load}; after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        f"# medians of {args.rounds} interleaved rounds ({args.clock} clock); ratio: median of the per-round "
        "ratios to the floor"
    )
    print(f"{'reader':<32}{'threads':>8}{'windows/s':>12}{'vs floor':>10}{'KB fetched/window':>20}")
    for (name, threads), times in seconds.items():
        floors = floors_of.get((name, threads), seconds[("rasterio local (floor)", threads)])
        rate = len(picks) / statistics.median(times)
        ratio = statistics.median(f / t for f, t in zip(floors, times, strict=True))
        kb = f"{statistics.median(fetched[threads]) / 1024:.1f}" if name.endswith("HTTP") else "-"
        print(f"{name:<32}{threads:>8}{rate:>12.1f}{ratio:>10.2f}{kb:>20}")
    for name, spent in costs.items():
        print(f"# {name}: {statistics.median(spent):.1f} us of CPU (median of {len(spent)} rounds)")


if __name__ == "__main__":
    main()
