"""Loader throughput: samples/s of a segmentation pipeline on the sample world.

The pipeline reads 256 x 256 windows of the four 10 m bands (B02, B03, B04,
B08) of every sample-world scene plus the matching window of the 20 m scene
classification (upsampled to a 256 x 256 mask), with rasterio, and turns them
into Samples (float32 image, int64 mask, GeoMeta). It is run:

- directly (``for sample in pipe``), the floor every loader is compared to,
  and directly with batches collated in the same thread (what a training
  loop without a loader does);
- through ``tp.loader`` with 0, 1 and 2 worker threads, 1 and 2 worker processes;
- through ``torch.utils.data.DataLoader`` with 1 and 2 worker processes;

and, to show the loader's own cost per element, on a pipe of plain ints with
no I/O. Modes take turns in every round; the tables show medians, and the
process loaders are compared with DataLoader by the median of their per-round
ratios.

Peak memory (``--rss``): one epoch of ``tp.loader`` with 2 worker processes,
and of DataLoader with 2 workers, in fresh processes, on the sample world at
``scale=1``, on its windows 4 times over, and at ``scale=2`` (4x the pixels:
scenes of 2048² instead of 1024², so 4x the windows); the peak resident set of the main process (VmHWM)
and the largest sum of its two workers' resident sets (sampled every 10 ms).

Run: ``python benchmarks/bench_loader.py [--reps N] [--root DIR] [--rss]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import DataLoader

import terrapipe as tp
from terrapipe.core.pipe import Stage
from terrapipe.run import loader
from terrapipe.tensor import collate

WINDOW = 256
BANDS = ("B02.tif", "B03.tif", "B04.tif", "B08.tif")


def window_items(world: Any) -> list[tuple[str, int, int]]:
    """One ``(scene_dir, row, col)`` per 256 x 256 window of every scene."""
    scenes = sorted({str(Path(p).parent) for p in world.s2_cogs})
    items = []
    for scene in scenes:
        with rasterio.open(Path(scene) / BANDS[0]) as src:
            height, width = src.shape
        items += [(scene, r, c) for r in range(0, height, WINDOW) for c in range(0, width, WINDOW)]
    return items


class ReadSegmentationSamples(Stage[dict]):
    """Read one segmentation Sample per window, keeping the scene's files open for the pass."""

    def __init__(self, source: Any) -> None:
        super().__init__()
        self.source = source

    def __iter__(self) -> Any:
        handles: dict[str, Any] = {}

        def open_(path: str) -> Any:
            if path not in handles:
                handles[path] = rasterio.open(path)
            return handles[path]

        try:
            for scene, row, col in self.source:
                window = Window(col, row, WINDOW, WINDOW)
                bands = [open_(f"{scene}/{name}").read(1, window=window) for name in BANDS]
                image = torch.from_numpy(np.stack(bands).astype(np.float32) / 10_000.0)
                scl_src = open_(f"{scene}/SCL.tif")
                scl = scl_src.read(1, window=Window(col // 2, row // 2, WINDOW // 2, WINDOW // 2))
                mask = torch.from_numpy(np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1).astype(np.int64))
                src = handles[f"{scene}/{BANDS[0]}"]
                meta = tp.core.geo_meta(
                    src.crs.to_string(), src.window_transform(window), (WINDOW, WINDOW), source_ids=(scene,)
                )
                self.stats.elements += 1
                self.stats.bytes_read += image.numel() * 2 + scl.size
                yield {"image": image, "mask": mask, "meta": meta}
        finally:
            for handle in handles.values():
                handle.close()


def segmentation_pipe(items: list[tuple[str, int, int]]) -> Any:
    return ReadSegmentationSamples(tp.from_items(items))


def direct_batches(pipe: Any, batch_size: int) -> Any:
    """Batches of ``pipe`` collated in the calling thread, no loader (the floor for a training loop)."""
    batch: list[Any] = []
    for sample in pipe:
        batch.append(sample)
        if len(batch) == batch_size:
            yield collate(batch)
            batch = []
    if batch:
        yield collate(batch)


def identity(x: int) -> int:
    return x


def int_pipe(n: int) -> Any:
    return tp.from_items(range(n)).map(identity)


def count_samples(batches: Iterable[Any]) -> int:
    total = 0
    for batch in batches:
        if isinstance(batch, dict):
            total += int(batch["image"].shape[0]) if batch["image"].dim() == 4 else 1
        elif isinstance(batch, torch.Tensor):
            total += int(batch.shape[0]) if batch.dim() else 1
        else:
            total += 1
    return total


def measure_all(
    modes: list[tuple[str, Callable[[], Callable[[], int]]]], repeat: int
) -> tuple[list[tuple[str, float, int]], dict[str, list[float]]]:
    """Median samples/s of each mode over ``repeat`` rounds; rounds interleave the modes.

    Each mode is warmed up once (workers started, files opened, caches
    filled); then every round runs every mode once, so that a burst of load
    from elsewhere on the machine hits all modes alike. Also returns every
    round's rate per mode (for per-round ratios).
    """
    runs = [(name, build()) for name, build in modes]
    for _, run in runs:
        run()
    rates: dict[str, list[float]] = {name: [] for name, _ in runs}
    counts = {name: 0 for name, _ in runs}
    for _ in range(repeat):
        for name, run in runs:
            start = time.perf_counter()
            counts[name] = run()
            rates[name].append(counts[name] / (time.perf_counter() - start))
    for _, run in runs:
        getattr(run, "close", lambda: None)()
    return [(name, statistics.median(rates[name]), counts[name]) for name, _ in runs], rates


def ratio(rates: dict[str, list[float]], ours: str, theirs: str) -> float:
    """Median over the rounds of ``ours / theirs`` (both measured in the same round)."""
    return statistics.median(a / b for a, b in zip(rates[ours], rates[theirs], strict=True))


def _children_rss_mib() -> float:
    """Sum of the resident sets of this process's children (from /proc), MiB."""
    total = 0.0
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def _own_peak_mib() -> float:
    """This process's peak resident set since it started (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(root: Path, scale: int, mode: str, batch_size: int, reps: int) -> None:
    """One epoch of ``mode`` over every window of the world in ``root``; print the peak RSS (MiB).

    The main process's peak is its VmHWM; the workers' is the largest sum of
    their resident sets seen by a thread sampling /proc every 10 ms.
    """
    import threading

    from terrapipe.datasets import sample_world

    items = window_items(sample_world(root, scale=scale)) * reps
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _children_rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if mode == "tp.loader":
        batches: Any = loader(segmentation_pipe(items), batch_size=batch_size, workers=2, method="process")
    else:
        batches = DataLoader(
            segmentation_pipe(items), batch_size=batch_size, num_workers=2, collate_fn=collate
        )
    n = count_samples(batches)
    done.set()
    sampler.join()
    getattr(batches, "close", lambda: None)()
    print(f"{n} {_own_peak_mib():.0f} {peak[0]:.0f}")


def measure_rss(roots: dict[int, Path], batch_size: int) -> list[tuple[str, str, int, float, float]]:
    """``(mode, data, samples, main MiB, workers MiB)`` of one epoch in a fresh process each.

    Data: the scale-1 world once, its windows 4 times over (4x the samples,
    same files), and the scale-2 world (4x the pixels).
    """
    import subprocess
    import sys

    rows = []
    for mode in ("tp.loader", "DataLoader"):
        for scale, reps, label in (
            (1, 1, "scale 1"),
            (1, 4, "scale 1, 4x windows"),
            (2, 1, "scale 2 (4x pixels)"),
        ):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    *("--rss-child", mode, "--root", str(roots[scale]), "--scale", str(scale)),
                    *("--batch-size", str(batch_size), "--reps", str(reps)),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            rows.append((mode, label, int(out[-3]), float(out[-2]), float(out[-1])))
    return rows


def loader_run(make_pipe: Callable[[], Any], **kwargs: Any) -> Callable[[], int]:
    batches = loader(make_pipe(), **kwargs)

    def run() -> int:
        return count_samples(batches)

    run.close = batches.close  # type: ignore[attr-defined]
    return run


def dataloader_run(make_pipe: Callable[[], Any], **kwargs: Any) -> Callable[[], int]:
    batches = DataLoader(make_pipe(), **kwargs)

    def run() -> int:
        return count_samples(batches)

    return run


def table(title: str, rows: list[tuple[str, float, int]], floor: float) -> str:
    lines = [title, f"{'mode':<44}{'samples':>9}{'samples/s':>12}{'vs direct':>11}"]
    lines.append("-" * len(lines[1]))
    for name, rate, count in rows:
        lines.append(f"{name:<44}{count:>9}{rate:>12.1f}{rate / floor:>10.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=None, help="sample world folder (default: a temp folder)"
    )
    parser.add_argument("--reps", type=int, default=3, help="passes over the windows per run")
    parser.add_argument("--repeat", type=int, default=5, help="rounds over all modes (best is kept)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rss", action="store_true", help="also measure peak RSS at scale 1 and 2")
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.root, args.scale, args.rss_child, args.batch_size, args.reps)
        return

    from terrapipe.datasets import sample_world

    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())

    with tempfile.TemporaryDirectory() as tmp:
        world = sample_world(args.root or Path(tmp) / "world")
        items = window_items(world) * args.reps
        make = lambda: segmentation_pipe(items)  # noqa: E731
        b = args.batch_size
        modes: list[tuple[str, Callable[[], Callable[[], int]]]] = [
            ("direct: for sample in pipe", lambda: lambda: count_samples(make())),
            ("direct + collate per batch", lambda: lambda: count_samples(direct_batches(make(), b))),
            ("tp.loader workers=0 (prefetch thread)", lambda: loader_run(make, batch_size=b)),
            ("tp.loader workers=1 thread", lambda: loader_run(make, batch_size=b, workers=1)),
            ("tp.loader workers=2 threads", lambda: loader_run(make, batch_size=b, workers=2)),
            (
                "tp.loader workers=1 process (fork)",
                lambda: loader_run(make, batch_size=b, workers=1, method="process"),
            ),
            (
                "tp.loader workers=2 processes (fork)",
                lambda: loader_run(make, batch_size=b, workers=2, method="process"),
            ),
            (
                "DataLoader num_workers=1 (fork, persistent)",
                lambda: dataloader_run(
                    make, batch_size=b, num_workers=1, collate_fn=collate, persistent_workers=True
                ),
            ),
            (
                "DataLoader num_workers=2 (fork, persistent)",
                lambda: dataloader_run(
                    make, batch_size=b, num_workers=2, collate_fn=collate, persistent_workers=True
                ),
            ),
        ]
        rows, rates = measure_all(modes, args.repeat)
        ratios = [
            (
                n,
                ratio(
                    rates,
                    f"tp.loader workers={n} {p} (fork)",
                    f"DataLoader num_workers={n} (fork, persistent)",
                ),
            )
            for n, p in ((1, "process"), (2, "processes"))
        ]
        rss_rows = []
        if args.rss:
            roots = {scale: Path(tmp) / f"world-s{scale}" for scale in (1, 2)}
            for scale, root in roots.items():
                sample_world(root, scale=scale)
            rss_rows = measure_rss(roots, args.batch_size)

        n_ints = 20_000
        make_ints = lambda: int_pipe(n_ints)  # noqa: E731
        overhead_modes: list[tuple[str, Callable[[], Callable[[], int]]]] = [
            ("direct: for x in pipe", lambda: lambda: sum(1 for _ in make_ints())),
            ("tp.loader workers=0 prefetch=0", lambda: loader_run(make_ints, prefetch=0)),
            ("tp.loader workers=0", lambda: loader_run(make_ints)),
            ("tp.loader workers=1 thread", lambda: loader_run(make_ints, workers=1)),
            ("tp.loader workers=2 threads", lambda: loader_run(make_ints, workers=2)),
            (
                "tp.loader workers=2 threads, batch_size=64",
                lambda: loader_run(make_ints, workers=2, batch_size=64),
            ),
            ("DataLoader num_workers=0", lambda: dataloader_run(make_ints, batch_size=None)),
        ]
        overhead_rows, _ = measure_all(overhead_modes, args.repeat)

    print(f"bench_loader  {dt.datetime.now().isoformat(timespec='seconds')}")
    print(
        f"machine: {platform.node()} {platform.machine()} {platform.processor() or ''}, "
        f"{os.cpu_count()} CPUs; python {platform.python_version()}, torch {torch.__version__}, "
        f"rasterio {rasterio.__version__}, GDAL {rasterio.__gdal_version__}"
    )
    print(f"segmentation windows: {len(items)} x (4 bands + SCL) of {WINDOW}^2, batch_size {args.batch_size}")
    print(
        f"load average before the run: {load_before}, after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}; "
        f"medians of {args.repeat} interleaved rounds after a warm-up run"
    )
    print()
    print(table("End-to-end throughput", rows, rows[0][1]))
    for n, value in ratios:
        print(
            f"tp.loader {n} process(es) / DataLoader {n} worker(s), median of per-round ratios: {value:.2f}"
        )
    print()
    if rss_rows:
        print(f"{'peak RSS, one epoch':<20}{'data':<22}{'samples':>9}{'main MiB':>10}{'workers MiB':>13}")
        for mode, label, n, own, worker in rss_rows:
            print(f"{mode:<20}{label:<22}{n:>9}{own:>10.0f}{worker:>13.0f}")
        print()
    print(table(f"Loader overhead on {n_ints} ints (no I/O)", overhead_rows, overhead_rows[0][1]))
    per_element = [1e6 / r[1] - 1e6 / overhead_rows[0][1] for r in overhead_rows[1:]]
    print("added cost per element (us): " + ", ".join(f"{v:.1f}" for v in per_element))
    print(f"median of the above: {statistics.median(per_element):.1f} us")


if __name__ == "__main__":
    main()
