"""A pipe that would be split twice is refused, not run with a share of its data.

A terrapipe stage that shards (``from_items``, a chipper) hands each loader
worker its share; a torch ``sharding_filter`` downstream of it kept one
element in ``workers`` of each share, and the rest was lost silently
(``chip(...).sharding_filter()`` through ``tp.loader(workers=3)``: a third of
the windows). Now ``tp.loader`` (and every caller of ``apply_torch_sharding``
running several shards) refuses it by name; a ``sharding_filter`` upstream of
the stage, or a stage built with ``shard=False``, still shards once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from torch.utils.data.datapipes.iter import IterableWrapper

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.shard import ShardInfo
from terrapipe.run.sharding import apply_torch_sharding, check_single_sharding

SIDE, WINDOW = 24, 8


def _cubes(n: int) -> list[Any]:
    import xarray as xr

    return [
        xr.DataArray(
            (k * 1000 + np.arange(SIDE * SIDE, dtype="float32")).reshape(SIDE, SIDE), dims=("y", "x")
        )
        for k in range(n)
    ]


def first_value(chip: Any) -> float:
    """The first pixel of an ``output="numpy"`` chip: it names the window."""
    return float(chip[0][0, 0])


def _chips(source: Any, **kwargs: Any) -> Any:
    return source.chip({"y": WINDOW, "x": WINDOW}, output="numpy", workers=0, **kwargs).map(first_value)


def _expected(n: int) -> list[float]:
    starts = range(0, SIDE, WINDOW)
    return sorted(float(k * 1000 + y * SIDE + x) for k in range(n) for y in starts for x in starts)


def _run(pipe: Any, workers: int, method: str = "thread") -> list[float]:
    with tp.loader(pipe, batch_size=4, workers=workers, method=method) as batches:
        return sorted(float(v) for batch in batches for v in batch.tolist())


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize(
    "make",
    [
        lambda: _chips(tp.from_items(_cubes(4))).sharding_filter(),  # the chip shards, then the filter
        lambda: _chips(tp.from_items(_cubes(4), shard=False)).sharding_filter(),
        lambda: tp.from_items(list(range(12))).sharding_filter(),  # from_items shards by default
        lambda: tp.from_items(list(range(12))).map(abs).sharding_filter().map(abs),
    ],
    ids=["chip", "chip-of-unsharded-items", "from_items", "from_items-map"],
)
def test_a_sharding_filter_after_a_stage_that_shards_is_refused(make, workers):
    with pytest.raises(InvalidArgumentError, match=r"sharded twice: (Chip|FromItems) shards") as err:
        tp.loader(make(), batch_size=4, workers=workers)
    assert "shard=False" in str(err.value)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_filter_alone_or_the_chip_alone_shards_once(workers):
    n = 3
    alone = _chips(tp.from_items(_cubes(n), shard=False), shard=False).sharding_filter()
    assert _run(alone, workers) == _expected(n)  # the chip passes everything, the filter splits
    chip = _chips(tp.from_items(_cubes(n)))
    assert _run(chip, workers) == _expected(n)
    upstream = _chips(IterableWrapper(_cubes(n)).sharding_filter())  # the filter upstream takes precedence
    assert _run(upstream, workers) == _expected(n)


def test_one_worker_runs_any_pipe_as_before():
    pipe = _chips(tp.from_items(_cubes(2))).sharding_filter()
    assert _run(pipe, 1) == _expected(2)
    apply_torch_sharding(pipe, ShardInfo())  # one shard of one: nothing to refuse


def test_every_caller_running_several_shards_is_refused():
    pipe = _chips(tp.from_items(_cubes(2))).sharding_filter()
    with pytest.raises(InvalidArgumentError, match="sharded twice"):
        apply_torch_sharding(pipe, ShardInfo(worker_id=1, num_workers=2))
    with pytest.raises(InvalidArgumentError, match="sharded twice"):
        apply_torch_sharding(pipe, ShardInfo(rank=1, world_size=2))
    check_single_sharding(_chips(tp.from_items(_cubes(2))))  # no filter: nothing to refuse


def test_process_workers_are_refused_before_they_start():
    with pytest.raises(InvalidArgumentError, match="sharded twice"):
        tp.loader(_chips(tp.from_items(_cubes(2))).sharding_filter(), workers=2, method="process")
