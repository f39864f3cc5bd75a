"""Smaller parts of the run layer: shuffled_items, pipe positions, shard scope, collate, devices."""

from __future__ import annotations

import threading
from collections import namedtuple

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import terrapipe as tp
import terrapipe.run
from terrapipe.core.device import move_to
from terrapipe.core.shard import ShardInfo, shard_info
from terrapipe.core.state import check_resume
from terrapipe.run import resume_plan, shard_scope, shuffled_items
from terrapipe.tensor import collate
from tests.run.run_helpers import negate, repeat_twice


def test_shuffled_items_is_a_seeded_permutation_per_epoch():
    pipe = shuffled_items(range(10), seed=2)
    epochs = [list(pipe) for _ in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 3
    assert next(list(shuffled_items(range(10), seed=2)) for _ in range(1)) == epochs[0]
    assert epochs[0] == [list(range(10))[i] for i in pipe.order(0)]
    assert len(pipe) == 10


@pytest.mark.parametrize("stop_after", [0, 3, 10, 14, 25])
def test_shuffled_items_resumes_exactly(stop_after):
    check_resume(lambda: shuffled_items(range(10), seed=5), stop_after=stop_after, epochs=3)


def test_shuffled_items_state_checks_seed_and_input():
    with pytest.raises(tp.PipelineStateError, match="seed"):
        shuffled_items(range(3), seed=1).load_state_dict({"epoch": 0, "offset": 0, "seed": 2})
    with pytest.raises(tp.InvalidArgumentError, match="one-shot"):
        shuffled_items((x for x in range(3)), seed=1)
    with pytest.raises(tp.InvalidArgumentError, match="seed"):
        shuffled_items(range(3), seed=1.5)


def test_shuffled_items_shards_one_permutation_in_dataloader_workers():
    pipe = shuffled_items(range(21), seed=8)
    out = list(DataLoader(pipe, batch_size=None, num_workers=2))
    assert sorted(out) == list(range(21))


def test_resume_plan_frontier_and_blockers():
    src = tp.from_items(range(4))
    plan = resume_plan(src.map(negate).filter(bool).pmap(negate).prefetch(2))
    assert plan.exact
    assert [type(n).__name__ for n in plan.nodes] == ["Prefetch"]
    zipped = resume_plan(tp.from_items([1]).zip(shuffled_items([2], seed=0)))
    assert [type(n).__name__ for n in zipped.nodes] == ["FromItems", "ShuffledItems"]
    blocked = resume_plan(tp.from_items(range(4)).flatmap(repeat_twice).map(negate))
    assert blocked.blockers == ("FlatMap",)
    assert blocked.capture() is None
    with pytest.raises(tp.PipelineStateError, match="hold no state"):
        blocked.restore([])
    with pytest.raises(tp.PipelineStateError, match="same pipeline"):
        resume_plan(src).restore([{}, {}])


def test_shard_scope_is_per_thread_and_nests():
    seen = {}

    def other():
        seen["other"] = shard_info()

    with shard_scope(ShardInfo(worker_id=2, num_workers=4)):
        with shard_scope(ShardInfo(rank=1, world_size=2)):
            assert shard_info() == ShardInfo(rank=1, world_size=2)
        assert shard_info().worker_id == 2
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert list(tp.from_items(range(8))) == [2, 6]
    assert seen["other"] == ShardInfo()
    assert shard_info() == ShardInfo()


def test_collate_structures():
    Pair = namedtuple("Pair", "x y")
    batch = collate([Pair(np.zeros(2), 1.5), Pair(np.ones(2), 2.5)])
    assert isinstance(batch, Pair)
    assert batch.x.shape == (2, 2)
    assert batch.y.dtype == torch.float64
    mixed = collate(
        [{"variables": {"t2m": torch.zeros(3)}, "id": "a"}, {"variables": {"t2m": torch.ones(3)}, "id": "b"}]
    )
    assert mixed["variables"]["t2m"].shape == (2, 3)
    assert mixed["id"] == ["a", "b"]
    assert collate([None, None]) == [None, None]
    assert collate([1, 2.0]) == [1, 2.0]  # mixed number types stay a list


def test_move_to_keeps_structure():
    Pair = namedtuple("Pair", "x y")
    moved = move_to([Pair(torch.zeros(1), "a"), (torch.ones(1),)], torch.device("cpu"))
    assert isinstance(moved[0], Pair)
    assert moved[0].y == "a"
    assert isinstance(moved[1], tuple)
