"""How long ``tp.loader(workers=2, method="process")`` takes to start and read 8 samples, by start method.

obstore's I/O threads do not survive ``fork``: once the main process used it,
``tp.loader`` starts process workers from the forkserver, preloaded with
``terrapipe`` (:func:`terrapipe.io.object_store.worker_start_method`). This
measures what that costs against the fork it replaces, each variant in a fresh
interpreter (the forkserver and its preload are per process), two loaders in a
row (the first starts the forkserver, the second reuses it):

- ``fork``: the main process never used obstore (workers are forked, as before);
- ``auto``: the main process read a file through obstore first (forkserver, preloaded; the pipe
  names a bucket, as a pipe reading one does);
- ``forkserver``: ``multiprocessing_context="forkserver"`` given (no preload: each worker imports terrapipe);
- ``spawn``: ``multiprocessing_context="spawn"``.

Variants take turns within each round (``--rounds``, medians shown), so load
elsewhere on the machine hits them alike.

Run: ``python benchmarks/bench_worker_start.py [--rounds 3]``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("fork", "auto", "forkserver", "spawn")


def _read(path: str, note: str = "") -> tuple[int, int]:
    from terrapipe.io import object_store

    return len(object_store.get(path)), os.getpid()


def _child(variant: str) -> None:
    import terrapipe as tp
    from terrapipe.io import object_store

    context = variant if variant in ("forkserver", "spawn") else None
    if variant == "auto":
        object_store.get(__file__)  # the main process has used obstore
    times = []
    for _ in range(2):
        # names a bucket (what makes tp.loader leave fork once obstore ran); reads a local file
        pipe = tp.from_items([__file__] * 8).map(functools.partial(_read, note="s3://bench/unused"))
        start = time.perf_counter()
        got = list(tp.loader(pipe, workers=2, method="process", multiprocessing_context=context, timeout=300))
        times.append(time.perf_counter() - start)
        assert sorted(n for n, _ in got) == [os.path.getsize(__file__)] * 8
    print(json.dumps(times))


def main() -> None:
    """Run the variants in turn, each in a fresh interpreter; print medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    results: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds):
        order = VARIANTS[round_ % len(VARIANTS) :] + VARIANTS[: round_ % len(VARIANTS)]
        for variant in order:
            out = subprocess.run(
                [sys.executable, __file__, "--child", variant],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"load: {os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds, seconds")
    print(f"{'variant':<12} {'first loader':>13} {'second loader':>14}")
    for variant, runs in results.items():
        first = statistics.median(r[0] for r in runs)
        second = statistics.median(r[1] for r in runs)
        print(f"{variant:<12} {first:>13.2f} {second:>14.2f}")


if __name__ == "__main__":
    main()
