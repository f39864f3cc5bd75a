"""``read_zarr(url).chip()`` over a cloud-like link: wall time and CPU per flow, per HTTP transport.

The latency server of ``benchmarks/bench_latency.py`` (30 ms per request,
50 MB/s per connection) serves its Zarr v2 store (``--size`` squared uint16,
256 x 256 zstd chunks, consolidated). Each run is a fresh process that warms
up on a 512 x 512 store first (untimed), then reads every chip of the big one
and reports wall seconds, CPU seconds of the whole process (every thread;
the server is another process) and context switches. Contenders, interleaved
in every round:

- ``peer``: 16 threads, each GETting chunks on its own ``http.client``
  connection and decoding them with numcodecs (bench_latency's peer);
- ``ours``: terrapipe's defaults, as the source tree reads;
- ``ours (baseline src)``: the same over another copy of ``src/``
  (``--baseline-src DIR``), run right after ``ours`` in each round;
- ``--patches``: ``ours`` with a transport forced in the child, for a tree
  that still has both (obstore's HTTP client was removed in #19):
  ``threads-urllib3`` (the chip's reader threads on urllib3, Zarr's async
  store reads on obstore) and ``all-urllib3`` (both on urllib3; the async
  reads in a thread).

Run: ``python benchmarks/bench_zarr_transport.py [--size 4096] [--rounds 7] [--baseline-src DIR]
[--patches threads-urllib3,all-urllib3]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _patch(name: str) -> None:
    from terrapipe.io import http_reads

    if name and not hasattr(http_reads, "_uses_obstore"):
        raise SystemExit("--patches needs a tree with both transports (before commit 32b9887)")
    if name == "threads-urllib3":
        original = http_reads.read

        def unpooled(*args: Any, pooled: bool = False, **kwargs: Any) -> Any:
            return original(*args, **kwargs)

        http_reads.read = unpooled  # type: ignore[assignment]
    elif name == "all-urllib3":
        http_reads._uses_obstore = lambda storage: False  # type: ignore[attr-defined]
    elif name:
        raise SystemExit(f"unknown patch {name!r}")


def run_one(spec: dict[str, Any]) -> None:
    """Child: warm up, then time one flow; print wall, CPU and context switches as JSON."""
    import bench_latency as bl  # puts this tree's src/ first on the path: the copy asked for goes before it

    sys.path.insert(0, spec["src"])

    if spec["who"] == "peer":
        bl.peer_zarr(spec["warm"], bl.WARM)
        fn = lambda: bl.peer_zarr(spec["url"], spec["n"])  # noqa: E731
    else:
        _patch(spec.get("patch", ""))
        bl.ours_zarr(spec["warm"], None)
        fn = lambda: bl.ours_zarr(spec["url"], None)  # noqa: E731
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    nbytes = fn()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    if spec["who"] != "peer":
        import terrapipe

        assert terrapipe.__file__.startswith(spec["src"]), terrapipe.__file__
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    switches = (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw)
    print(json.dumps({"wall": wall, "cpu": cpu, "switches": switches, "bytes": nbytes}))


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.030)
    parser.add_argument("--rate", type=float, default=50e6)
    parser.add_argument("--baseline-src", help="another copy of src/ to run as 'ours (baseline src)'")
    parser.add_argument("--patches", default="", help="comma-separated: threads-urllib3, all-urllib3")
    args = parser.parse_args()
    if args.run:
        run_one(json.loads(args.run))
        return
    import bench_latency as bl
    from tests.servers.latency_http import latency_server

    contenders: list[tuple[str, str, str]] = [
        ("peer", str(ROOT / "src"), ""),
        ("ours", str(ROOT / "src"), ""),
    ]
    contenders += [(f"ours, {p}", str(ROOT / "src"), p) for p in args.patches.split(",") if p]
    if args.baseline_src:
        contenders.append(("ours (baseline src)", args.baseline_src, ""))
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in contenders}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = bl.make_data(folder, args.size)
        with latency_server(folder, latency=args.latency, rate=args.rate) as server:
            for round_no in range(args.rounds):
                for name, src, patch in contenders:
                    spec = {
                        "who": "peer" if name == "peer" else "ours",
                        "src": src,
                        "patch": patch,
                        "url": f"{server.url}/{paths['zarr']}",
                        "warm": f"{server.url}/{paths['warm_zarr']}",
                        "n": args.size,
                    }
                    out = subprocess.run(
                        [sys.executable, __file__, "--run", json.dumps(spec)],
                        capture_output=True, text=True, timeout=600, check=False,
                    )  # fmt: skip
                    if out.returncode != 0:
                        raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    results[name].append(result)
                    print(
                        f"round {round_no + 1} {name:32} {result['wall']:.3f} s wall "
                        f"{result['cpu']:.3f} s CPU {result['switches']:6d} switches",
                        flush=True,
                    )
    load_after = os.getloadavg()
    peer = statistics.median(r["wall"] for r in results["peer"])
    print(
        f"\nLoad average {load_before[0]:.2f} -> {load_after[0]:.2f}; {args.latency * 1000:.0f} ms per request, "
        f"{args.rate / 1e6:.0f} MB/s per connection; {args.size}^2 uint16, medians of {args.rounds} rounds.\n"
    )
    print("| contender | wall s | peer / this | range of ratio per round | CPU s | context switches |")
    print("|---|---:|---:|---:|---:|---:|")
    peers = [r["wall"] for r in results["peer"]]
    for name, values in results.items():
        wall = statistics.median(r["wall"] for r in values)
        ratios = [p / r["wall"] for p, r in zip(peers, values, strict=True)]
        print(
            f"| {name} | {wall:.3f} | {peer / wall:.2f}x | {min(ratios):.2f}-{max(ratios):.2f} | "
            f"{statistics.median(r['cpu'] for r in values):.3f} | "
            f"{statistics.median(r['switches'] for r in values):.0f} |"
        )


if __name__ == "__main__":
    main()
