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

import pytest

import terrapipe as tp
from terrapipe.core.shard import ShardInfo, shard_scope
from tests.run.element_windows import (
    OFFSET,
    RESUME_AFTER,
    RESUME_CASES,
    SIDE,
    STARTS,
    STRIDE,
    WINDOW,
    check_mid_epoch_resume,
    element,
    expected,
    first_value,
    run,
)


def _pipe(n: int, *, shuffle: bool = False) -> Any:
    chips = tp.from_items([element(k) for k in range(n)]).chip(
        {"y": WINDOW, "x": WINDOW},
        stride=STRIDE,
        output="numpy",
        shuffle=tp.chip.WindowShuffle(seed=5) if shuffle else False,
        workers=1,
    )
    return chips.map(first_value)


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_every_window_once_through_thread_workers(workers, n):
    with tp.loader(_pipe(n), batch_size=4, workers=workers) as batches:
        got = run(batches)
    assert sorted(got) == expected(n)


@pytest.mark.parametrize(("workers", "n", "shuffle"), [(2, 4, False), (3, 2, True), (5, 7, True)])
def test_every_window_once_through_process_workers(workers, n, shuffle):
    with tp.loader(_pipe(n, shuffle=shuffle), batch_size=4, workers=workers, method="process") as batches:
        got = run(batches)
    assert sorted(got) == expected(n)


@pytest.mark.parametrize("workers", [2, 3])
def test_shuffled_chips_are_the_same_windows_and_reshuffle_per_epoch(workers):
    with tp.loader(_pipe(5, shuffle=True), batch_size=4, workers=workers) as batches:
        first, second = run(batches), run(batches)
    assert sorted(first) == sorted(second) == expected(5)
    assert first != second


@pytest.mark.parametrize(("workers", "n"), [(2, 4), (2, 6)])
@pytest.mark.parametrize("method", ["thread", "process"])
def test_with_enough_elements_no_block_is_read_by_two_workers(workers, n, method):
    with tp.loader(_pipe(n), batch_size=4, workers=workers, method=method) as batches:
        assert sorted(run(batches)) == expected(n)
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
    assert sorted(v for share in per_shard for v in share) == expected(1)


@pytest.mark.parametrize(("workers", "n", "shuffle", "method"), RESUME_CASES)
@pytest.mark.parametrize("after", RESUME_AFTER)
def test_a_mid_epoch_resume_yields_exactly_the_rest(workers, n, shuffle, method, after):
    check_mid_epoch_resume(lambda: _pipe(n, shuffle=shuffle), n, workers, method, after)
