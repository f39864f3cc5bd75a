"""Whole-element sharding with hostile scenes: every window exactly once, or a loud refusal.

Scenes of zero windows (skipped), of one window, of odd sizes, dealt to odd worker counts (more than
chip's MAX_ROUND of 16 too); and a torch ``sharding_filter`` put after a chip that shards itself, the
torch idiom, which shards the pipe twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.shard import ShardInfo, shard_scope
from tests.chip.chip_helpers import counting_dataarray

OFFSET = 10_000
WINDOW, STRIDE = 12, 8
SIZES = [48, 8, 12, 48, 5, 48, 12, 20]  # 8 and 5: no window (skipped); 12: one window
WHOLE = [48, 12, 48, 20, 48, 12]  # every scene has windows (a skip would warn, an error in tests)


def _elements(sizes: list[int]) -> list[Any]:
    out = []
    for k, side in enumerate(sizes):
        data = (k * OFFSET + np.arange(side * side, dtype="float32")).reshape(side, side)
        da, _ = counting_dataarray(data, ("y", "x"), (16, 16))
        out.append(da)
    return out


def first_value(chip: Any) -> float:
    """The first pixel of an ``output="numpy"`` chip: it names the window."""
    return float(chip[0][0, 0])


def _pipe(sizes: list[int]) -> Any:
    chips = tp.from_items(_elements(sizes)).chip(
        {"y": WINDOW, "x": WINDOW}, stride=STRIDE, output="numpy", workers=1, on_error="skip"
    )
    return chips.map(first_value)


def _expected(sizes: list[int]) -> list[float]:
    out = []
    for k, side in enumerate(sizes):
        starts = range(0, side - WINDOW + 1, STRIDE)
        out += [float(k * OFFSET + y * side + x) for y in starts for x in starts]
    return sorted(out)


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7, 9, 17])
def test_scenes_of_no_window_and_of_one_window_over_odd_worker_counts(workers: int) -> None:
    got: list[float] = []
    for worker in range(workers):
        with shard_scope(ShardInfo(worker_id=worker, num_workers=workers)):
            got += list(_pipe(SIZES))
    assert sorted(got) == _expected(SIZES)


def test_a_sharding_filter_after_a_sharding_chip_loses_no_window() -> None:
    try:
        with tp.loader(_pipe(WHOLE).sharding_filter(), batch_size=4, workers=3) as batches:
            got = [float(v) for batch in batches for v in batch.tolist()]
    except InvalidArgumentError:
        return  # refused loudly: fine
    assert sorted(got) == _expected(WHOLE)
