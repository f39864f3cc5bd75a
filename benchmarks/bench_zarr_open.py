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

Run: ``python benchmarks/bench_zarr_open.py --repeat 7 [--before /tmp/before] [--zarr-format 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
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
    args = parser.parse_args()
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
