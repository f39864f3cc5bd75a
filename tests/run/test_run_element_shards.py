"""Chips through ``tp.loader``'s workers: whole elements per worker, every window exactly once.

With at least as many elements as shards, a chipper gives each element of a
complete round to one shard (``chip.plan.element_share``), so no block is read
by two workers, halo blocks of overlapping windows included (before, every
element's window groups were split between the workers and the blocks at the
share's edge were read by both). A short last round, or fewer elements than
workers, is split among all workers as before. Whatever the split: every
window once per epoch over the workers (1, 2, 3, 5; threads and processes;
shuffled or not), and a loader resumed from a mid-epoch state yields exactly
the rest.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.shard import ShardInfo, shard_scope
from tests.chip.chip_helpers import counting_dataarray

SIDE, BLOCK, WINDOW, STRIDE = 48, 16, 12, 8  # overlapping windows: groups reach into the next blocks
STARTS = range(0, SIDE - WINDOW + 1, STRIDE)
OFFSET = 10_000  # element k holds k * OFFSET + 0 .. SIDE * SIDE - 1: a window's first value names it


def _elements(n: int) -> list[Any]:
    out = []
    for k in range(n):
        data = (k * OFFSET + np.arange(SIDE * SIDE, dtype="float32")).reshape(SIDE, SIDE)
        da, _ = counting_dataarray(data, ("y", "x"), (BLOCK, BLOCK))
        out.append(da)
    return out


def _expected(n: int) -> list[float]:
    return sorted(float(k * OFFSET + y * SIDE + x) for k in range(n) for y in STARTS for x in STARTS)


def first_value(chip: Any) -> float:
    """The first pixel of an ``output="numpy"`` chip (module level: process workers pickle it)."""
    array, _meta = chip
    return float(array[0, 0])


def _pipe(n: int, *, shuffle: bool = False) -> Any:
    chips = tp.from_items(_elements(n)).chip(
        {"y": WINDOW, "x": WINDOW},
        stride=STRIDE,
        output="numpy",
        shuffle=tp.chip.WindowShuffle(seed=5) if shuffle else False,
        workers=1,
    )
    return chips.map(first_value)


def _run(loader: Any) -> list[float]:
    return [float(v) for batch in loader for v in batch.tolist()]


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_every_window_once_through_thread_workers(workers, n):
    with tp.loader(_pipe(n), batch_size=4, workers=workers) as batches:
        got = _run(batches)
    assert sorted(got) == _expected(n)


@pytest.mark.parametrize(("workers", "n", "shuffle"), [(2, 4, False), (3, 2, True), (5, 7, True)])
def test_every_window_once_through_process_workers(workers, n, shuffle):
    with tp.loader(_pipe(n, shuffle=shuffle), batch_size=4, workers=workers, method="process") as batches:
        got = _run(batches)
    assert sorted(got) == _expected(n)


@pytest.mark.parametrize("workers", [2, 3])
def test_shuffled_chips_are_the_same_windows_and_reshuffle_per_epoch(workers):
    with tp.loader(_pipe(5, shuffle=True), batch_size=4, workers=workers) as batches:
        first, second = _run(batches), _run(batches)
    assert sorted(first) == sorted(second) == _expected(5)
    assert first != second


@pytest.mark.parametrize(("workers", "n"), [(2, 4), (2, 6)])
@pytest.mark.parametrize("method", ["thread", "process"])
def test_with_enough_elements_no_block_is_read_by_two_workers(workers, n, method):
    with tp.loader(_pipe(n), batch_size=4, workers=workers, method=method) as batches:
        assert sorted(_run(batches)) == _expected(n)
        chip_stats = next(s for s in batches.stats if s.bytes_read)
    # every block once: the elements' bytes, not the halo blocks again on a second worker
    assert chip_stats.bytes_read == n * SIDE * SIDE * 4


def test_shards_chip_whole_elements_and_split_the_short_last_round():
    n, workers = 5, 2
    per_shard: list[Counter[int]] = []
    for worker in range(workers):
        with shard_scope(ShardInfo(worker_id=worker, num_workers=workers)):
            per_shard.append(Counter(int(v) // OFFSET for v in _pipe(n)))
    assert per_shard[0][0]
    assert not per_shard[1][0]
    assert per_shard[1][1]
    assert not per_shard[0][1]
    assert per_shard[0][4]
    assert per_shard[1][4]
    assert sum(per_shard, Counter()) == dict.fromkeys(range(n), len(STARTS) ** 2)


def test_fewer_elements_than_workers_keeps_every_worker_busy():
    per_shard = []
    for worker in range(3):
        with shard_scope(ShardInfo(worker_id=worker, num_workers=3)):
            per_shard.append(list(_pipe(1)))
    assert all(per_shard)
    assert sorted(v for share in per_shard for v in share) == _expected(1)


@pytest.mark.parametrize(("workers", "n", "shuffle", "method"), [
    (2, 4, False, "thread"),
    (2, 5, True, "thread"),
    (3, 2, True, "thread"),
    (5, 7, False, "thread"),
    (2, 5, True, "process"),
])  # fmt: skip
@pytest.mark.parametrize("after", [1, 3, 7])
def test_a_mid_epoch_resume_yields_exactly_the_rest(workers, n, shuffle, method, after):
    def make() -> Any:
        return tp.loader(_pipe(n, shuffle=shuffle), batch_size=4, workers=workers, method=method)

    with make() as batches:
        full = _run(batches)
    with make() as batches:
        it = iter(batches)
        head = [float(v) for _ in range(after) for v in next(it).tolist()]
        state = batches.state_dict()
    with make() as resumed:
        resumed.load_state_dict(state)
        rest = _run(resumed)
    assert head + rest == full
    assert sorted(full) == _expected(n)
