"""The Zarr row of the latency benchmark, with an earlier terrapipe in the same run.

``benchmarks/bench_latency.py --flows zarr`` times ``read_zarr(url).chip()``
against a 16-thread hand-written reader over the latency server (30 ms per
request, 50 MB/s per connection). This script runs the same contenders, each
in a fresh process, interleaved round by round, and adds the same flows run
with an earlier copy of the repository (``--before DIR``, holding ``src``
and ``benchmarks``: ``git archive <commit> src benchmarks | tar -x -C DIR``;
its ``bench_latency.py`` runs them, importing its own ``src``), so a change
is measured against its baseline on the same machine at the same load.

Contenders: ``peer`` (the hand-written reader), ``ours`` (``read_zarr(url,
variables="v").chip(...)``, defaults), ``storage`` (the same with
``storage=tp.Storage()``: the store on obstore, as for a bucket), ``open``
(opening the store only), and with ``--before`` the last three again with
the earlier sources (``ours@before``...).

``--open-ab`` times only ``tp.open_zarr`` in one process, with and without the prefetch
of :mod:`terrapipe.io.zarr_prefetch`, interleaved (at least 15 rounds).

Run: ``python benchmarks/bench_zarr_open.py --repeat 7 [--before /tmp/before] [--zarr-format 3]``
or ``python benchmarks/bench_zarr_open.py --open-ab``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_latency as bl  # type: ignore[import-not-found]  # benchmarks/ is on sys.path when run


def _spawn(who: str, url: str, n: int, warm: dict[str, str], root: str | None) -> float:
    spec = json.dumps({"flow": "zarr", "who": who, "url": url, "n": n, "warm": warm, "local": {}})
    script = bl.__file__ if root is None else str(Path(root) / "benchmarks" / "bench_latency.py")
    out = subprocess.run(
        [sys.executable, script, "--run", spec], capture_output=True, text=True, timeout=600, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"zarr/{who} failed:\n{out.stderr[-3000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def _write_v3(folder: Path, n: int) -> str:
    import xarray as xr
    from zarr.codecs import ZstdCodec

    ds = xr.Dataset(
        {"v": (("y", "x"), bl._pixels(n))},
        coords={"y": 5000000 - 5 - 10 * bl.np.arange(n), "x": 500005 + 10 * bl.np.arange(n)},
    )
    encoding = {"v": {"chunks": (bl.TILE, bl.TILE), "compressors": [ZstdCodec(level=1)]}}
    ds.to_zarr(folder / "cube3.zarr", zarr_format=3, consolidated=True, encoding=encoding)
    return "cube3.zarr"


def open_ab(folder: Path, zarr_path: str, rounds: int) -> None:
    """Time ``tp.open_zarr`` alone in this process, with and without the prefetch, interleaved.

    Without the prefetch is the code before it (``zarr_reader._prefetched`` returning ``None``
    opens the store itself); stores: the benchmark's, and 24 x 1024^2 v2 and v3 stores with a
    ``time`` coordinate; through ``HTTPStore`` and obstore (``storage=tp.Storage()``).
    """
    import pandas as pd
    import xarray as xr
    from tests.servers.latency_http import latency_server

    import terrapipe as tp
    import terrapipe.io.zarr_reader as zarr_reader

    n = 1024
    cube = xr.Dataset(
        {"v": (("time", "y", "x"), bl.np.zeros((24, n, n), "uint16"))},
        coords={"time": pd.date_range("2024-01-01", periods=24, freq="h"), "y": bl.np.arange(n, 0, -1.0),
                "x": bl.np.arange(n) * 1.0},
    )  # fmt: skip
    for fmt in (2, 3):
        cube.to_zarr(folder / f"time{fmt}.zarr", zarr_format=fmt, compute=False,
                     encoding={"v": {"chunks": (1, 256, 256)}})  # fmt: skip
    prefetched = zarr_reader._prefetched
    stores = {
        "benchmark's v2 (x, y)": zarr_path,
        "v2 (time, y, x)": "time2.zarr",
        "v3 (time, y, x)": "time3.zarr",
    }
    print("| store | through | before | now | |\n|---|---|---:|---:|---:|")
    with latency_server(folder) as server:
        for through, storage in (("HTTPStore", None), ("obstore", tp.Storage())):
            for name, path in stores.items():
                url = f"{server.url}/{path}"
                tp.open_zarr(url, storage=storage)  # warm-up
                times: dict[str, list[float]] = {"now": [], "before": []}
                requests: dict[str, int] = {}
                for _ in range(rounds):
                    for mode in times:
                        zarr_reader._prefetched = prefetched if mode == "now" else (lambda *_: None)  # type: ignore[assignment]
                        server.reset()
                        start = time.perf_counter()
                        tp.open_zarr(url, storage=storage)
                        times[mode].append(time.perf_counter() - start)
                        requests[mode] = server.stats()["total_requests"]
                zarr_reader._prefetched = prefetched
                now, before = statistics.median(times["now"]), statistics.median(times["before"])
                print(
                    f"| {name} | {through} | {before * 1000:.0f} ms ({requests['before']} requests) | "
                    f"{now * 1000:.0f} ms ({requests['now']}) | {before / now:.1f}x |",
                    flush=True,
                )


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--contenders", default="peer,ours,storage,open")
    parser.add_argument(
        "--before", help="a copy of an earlier repository (src, benchmarks): its flows are added"
    )
    parser.add_argument("--zarr-format", type=int, default=2, choices=(2, 3), help="the timed store's format")
    parser.add_argument(
        "--open-ab", action="store_true", help="only time the open, with and without prefetch"
    )
    args = parser.parse_args()
    if args.open_ab:
        with tempfile.TemporaryDirectory() as tmp:
            paths = bl.make_data(Path(tmp), args.size)
            print(f"start: {bl.machine()}")
            open_ab(Path(tmp), paths["zarr"], max(args.repeat, 15))
            print(f"end:   {bl.machine()}")
        return
    from tests.servers.latency_http import latency_server

    runs: list[tuple[str, str | None]] = [(who, None) for who in args.contenders.split(",")]
    if args.before:
        runs += [(who, args.before) for who in args.contenders.split(",") if who != "peer"]
    before_load = bl.machine()
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        paths = bl.make_data(folder, args.size)
        zarr_path = paths["zarr"] if args.zarr_format == 2 else _write_v3(folder, args.size)
        with latency_server(folder) as server:
            url = f"{server.url}/{zarr_path}"
            warm = {"tif": f"{server.url}/{paths['warm_cog']}", "zarr": f"{server.url}/{paths['warm_zarr']}"}
            for round_no in range(args.repeat):
                for who, src in runs:
                    name = who if src is None else f"{who}@before"
                    seconds = _spawn(who, url, args.size, warm, src)
                    times.setdefault(name, []).append(seconds)
                    print(f"round {round_no + 1} {name:15} {seconds:7.3f} s", flush=True)
    peer = statistics.median(times["peer"]) if "peer" in times else None
    print(f"\nstart: {before_load}\nend:   {bl.machine()}")
    print(f"Zarr v{args.zarr_format}, {args.size}^2, medians of {args.repeat} rounds\n")
    print("| contender | median s | range s | peer / this |\n|---|---:|---:|---:|")
    for name, values in times.items():
        med = statistics.median(values)
        ratio = f"{peer / med:.2f}x" if peer is not None and not name.startswith("open") else "-"
        print(f"| {name} | {med:.3f} | {min(values):.3f}-{max(values):.3f} | {ratio} |")


if __name__ == "__main__":
    main()
