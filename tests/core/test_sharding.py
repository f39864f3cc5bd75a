"""Exactly-once delivery through DataLoader workers, and the shard/seed maths."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

import terrapipe as tp
from terrapipe.core.pipe import Stage, register
from terrapipe.core.shard import ShardInfo, shard_info, shard_range, shared_seed, worker_seed


@register("shard_probe_test")
class ShardProbe(Stage[int]):
    """A stage that can shard, to test who claims sharding in a chain."""

    can_shard = True

    def __init__(self, source, *, shard="auto"):
        super().__init__()
        self.source = source
        self.shard = shard

    def __iter__(self):
        claimed = self._claim_sharding()
        info = shard_info()
        for i, x in enumerate(self.source):
            if not claimed or i % info.count == info.index:
                yield x


def _worker_tag(x: int) -> tuple[int, int]:
    info = torch.utils.data.get_worker_info()
    return x, -1 if info is None else info.id


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_dataloader_two_workers_every_item_once(context):
    pipe = tp.from_items(range(23)).map(_worker_tag)
    loader = DataLoader(pipe, batch_size=None, num_workers=2, multiprocessing_context=context)
    out = list(loader)
    assert sorted(x for x, _ in out) == list(range(23))
    assert {w for _, w in out} == {0, 1}  # both workers did work


def test_dataloader_batches_and_len():
    pipe = tp.from_items(range(10))
    loader = DataLoader(pipe, batch_size=4, num_workers=2)
    items = torch.cat(list(loader)).tolist()
    assert sorted(items) == list(range(10))


def test_most_downstream_stage_shards_only():
    src = tp.from_items(range(12))
    pipe = ShardProbe(src.map(abs))
    out = list(DataLoader(pipe, batch_size=None, num_workers=3))
    assert Counter(out) == Counter(range(12))


def test_shard_false_downstream_leaves_it_upstream():
    pipe = ShardProbe(tp.from_items(range(9)), shard=False)
    out = list(DataLoader(pipe, batch_size=None, num_workers=2))
    assert sorted(out) == list(range(9))


def test_torch_sharding_filter_upstream_takes_precedence():
    pipe = ShardProbe(tp.from_items(range(10), shard=False).sharding_filter())
    out = list(DataLoader(pipe, batch_size=None, num_workers=2))
    assert sorted(out) == list(range(10))


def test_single_process_iteration_yields_everything():
    assert list(tp.from_items(range(5))) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("num_workers", [1, 2, 4])
@pytest.mark.parametrize("n_items", [0, 1, 7, 64])
def test_shard_ranges_partition_items(world_size, num_workers, n_items):
    seen = Counter()
    for rank in range(world_size):
        for worker in range(num_workers):
            info = ShardInfo(rank=rank, world_size=world_size, worker_id=worker, num_workers=num_workers)
            seen.update(shard_range(n_items, info))
    assert seen == Counter(range(n_items))


def test_shard_info_validates():
    with pytest.raises(tp.InvalidArgumentError):
        ShardInfo(rank=2, world_size=2)
    with pytest.raises(tp.InvalidArgumentError):
        ShardInfo(worker_id=0, num_workers=0)


def test_shard_info_in_workers():
    def info_of(_):
        return shard_info()

    loader = DataLoader(tp.from_items([0, 1], shard=False).map(info_of), batch_size=None, num_workers=2)
    infos = set(loader)
    assert infos == {ShardInfo(worker_id=0, num_workers=2), ShardInfo(worker_id=1, num_workers=2)}


def test_seeds_mix_seed_epoch_rank_worker():
    base = worker_seed(1, epoch=0, info=ShardInfo())
    assert base == worker_seed(1, epoch=0, info=ShardInfo())
    variants = {
        worker_seed(2, epoch=0, info=ShardInfo()),
        worker_seed(1, epoch=1, info=ShardInfo()),
        worker_seed(1, epoch=0, info=ShardInfo(rank=1, world_size=2)),
        worker_seed(1, epoch=0, info=ShardInfo(worker_id=1, num_workers=2)),
    }
    assert base not in variants
    assert len(variants) == 4
    assert shared_seed(1, epoch=2) == shared_seed(1, epoch=2)
    assert shared_seed(1, epoch=2) != shared_seed(1, epoch=3)
    assert 0 <= shared_seed(1) < 2**63
