"""Collate cost: ``tp.collate`` against torch's ``default_collate`` (the peer) on the same batches.

Batches of Samples as ``to_tensor`` makes them: a float32 ``image`` (4 bands),
an int64 ``mask``, one ``variables`` raster and a ``GeoMeta``. torch's
``default_collate`` gets the same samples without ``meta`` (it would turn the
metadata dicts inside out, see :mod:`terrapipe.tensor.collate`), so both stack
the same tensors. Two shapes: few large chips (8 x 4 x 256²: the stacking's
memory copies dominate) and many small ones (64 x 4 x 16²: the per-key and
per-sample Python work dominates). The contenders take turns in every round,
in a rotating order; the table shows medians and the median of the per-round
ratios.

Run: ``python benchmarks/bench_collate.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import default_collate

import terrapipe as tp
from terrapipe.core.sample import geo_meta


def _samples(size: int, count: int, *, meta: bool) -> list[dict[str, Any]]:
    grid = geo_meta("EPSG:32631", (10, 0, 600000, 0, -10, 5100000), (size, size), time="2024-06-19")
    out = []
    for _ in range(count):
        sample: dict[str, Any] = {
            "image": torch.rand(4, size, size),
            "mask": torch.zeros(size, size, dtype=torch.int64),
            "variables": {"dem": torch.rand(size, size)},
        }
        if meta:
            sample["meta"] = grid
        out.append(sample)
    return out


def _time(fn: Callable[[], Any], reps: int) -> float:
    started = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - started) / reps


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(
        f"load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'batch':<16}{'tp.collate':>14}{'default_collate':>18}{'ratio':>8}")
    for size, count, reps in ((256, 8, 10), (16, 64, 200)):
        ours, peer = _samples(size, count, meta=True), _samples(size, count, meta=False)
        contenders = {
            "ours": lambda ours=ours: tp.collate(ours),
            "peer": lambda peer=peer: default_collate(peer),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        order = list(contenders)
        for _ in range(args.rounds):
            for name in order:
                times[name].append(_time(contenders[name], reps))
            order.reverse()
        ratios = [o / p for o, p in zip(times["ours"], times["peer"], strict=True)]
        label = f"{count} x 4x{size}²"
        print(
            f"{label:<16}{statistics.median(times['ours']) * 1e6:>11.0f} us"
            f"{statistics.median(times['peer']) * 1e6:>15.0f} us{statistics.median(ratios):>8.2f}"
        )


if __name__ == "__main__":
    main()
