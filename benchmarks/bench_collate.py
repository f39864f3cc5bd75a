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

``--loader``: the CPU one epoch costs (this process, every thread: torch's
intra-op threads spinning count) when the same in-memory Samples are
iterated plainly, collated by hand per batch, and through
``tp.loader(workers=0, batch_size=8)``, with the stacks of large CPU tensors
copied by numpy (``tp.collate`` now) and by ``torch.stack`` (before), and
with ``torch.stack`` on one intra-op thread per call (``OneThreadCollate``,
what a loader with workers does); turns rotate, medians and per-round ratios
to the plain pass.

Run: ``python benchmarks/bench_collate.py [--rounds N] [--loader]``.
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


_DATA: list[dict[str, Any]] = []


def _sample(i: int) -> dict[str, Any]:
    return _DATA[i]


def _epoch_cpu(fn: Callable[[], Any]) -> float:
    started = time.process_time()  # every thread of the process
    fn()
    return time.process_time() - started


def loader_cpu(rounds: int, samples: int = 64, batch_size: int = 8) -> None:
    """Print the CPU per epoch of a plain pass, hand collates and ``tp.loader(workers=0)``."""
    import sys

    from terrapipe.run.intra_op import OneThreadCollate

    collate_module = sys.modules["terrapipe.tensor.collate"]
    _DATA[:] = _samples(256, samples, meta=True)

    def pipe() -> Any:  # items are indexes: the loader's copy of the pipe does not copy the samples
        return tp.from_items(range(samples)).map(_sample)

    def plain() -> None:
        for _ in pipe():
            pass

    def by_hand() -> None:
        batch: list[Any] = []
        for sample in pipe():
            batch.append(sample)
            if len(batch) == batch_size:
                tp.collate(batch)
                batch = []

    def with_loader(collate: Any = None) -> Callable[[], None]:
        def run() -> None:
            for _ in tp.loader(pipe(), batch_size=batch_size, collate=collate):
                pass

        return run

    numpy_min = collate_module._NUMPY_STACK_MIN

    def torch_stack(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            collate_module._NUMPY_STACK_MIN = 2**62  # every stack by torch.stack, as before
            try:
                fn()
            finally:
                collate_module._NUMPY_STACK_MIN = numpy_min

        return run

    contenders = {
        "plain pass (no collate)": plain,
        "collate by hand per batch (numpy stacks)": by_hand,
        "tp.loader workers=0 (numpy stacks)": with_loader(),
        "collate by hand per batch (torch.stack)": torch_stack(by_hand),
        "tp.loader workers=0 (torch.stack)": torch_stack(with_loader()),
        "tp.loader workers=0 (torch.stack, one intra-op thread)": torch_stack(
            with_loader(OneThreadCollate(tp.collate))
        ),
    }
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for name in order:
        contenders[name]()  # warm-up
    for r in range(rounds):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            cpu[name].append(_epoch_cpu(contenders[name]))
    print(f"\nCPU per epoch, {samples} Samples of 4x256² float32 + int64 mask, batch_size {batch_size}:")
    base = cpu["plain pass (no collate)"]
    for name, values in cpu.items():
        ratio = statistics.median(v / b for v, b in zip(values, base, strict=True))
        print(f"{name:<58}{statistics.median(values) * 1e3:>9.1f} ms{ratio:>9.1f}x the plain pass")


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--loader", action="store_true", help="also the CPU per epoch of tp.loader(workers=0)"
    )
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
    if args.loader:
        loader_cpu(args.rounds)
    print(f"load average after: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
