"""tp.loader: exactly-once delivery, batching, collate, epochs, devices, bounds, errors."""

from __future__ import annotations

import time
from collections import Counter as Multiset

import pytest
import torch

import terrapipe as tp
from terrapipe.run import loader, shuffled_items
from terrapipe.tensor import collate
from tests.run.run_helpers import Counter, fail_on_seven, negate

LAYOUTS = [(0, "thread"), (1, "thread"), (3, "thread"), (2, "process")]


def flat(batches):
    return [x for b in batches for x in (b.tolist() if isinstance(b, torch.Tensor) else [b])]


@pytest.mark.parametrize(("workers", "method"), LAYOUTS)
@pytest.mark.parametrize("n_items", [0, 1, 7, 40])
def test_every_element_exactly_once(workers, method, n_items):
    with loader(
        tp.from_items(range(n_items)).map(negate), batch_size=3, workers=workers, method=method
    ) as batches:
        for _ in range(2):
            out = flat(batches)
            assert Multiset(out) == Multiset(-x for x in range(n_items))


def test_order_is_round_robin_over_worker_shards():
    with loader(tp.from_items(range(10)), workers=3) as items:
        # shard i holds i, i+3, ...; the merge takes them in turn, so the order is the source order
        assert list(items) == list(range(10))


def test_same_batches_on_every_run_whatever_the_timing():
    def jitter(x):
        time.sleep(0.003 * ((x * 7) % 3))
        return x

    runs = []
    for _ in range(2):
        with loader(shuffled_items(range(30), seed=5).map(jitter), batch_size=4, workers=3) as batches:
            runs.append([b.tolist() for b in batches])
    assert runs[0] == runs[1]


def test_shuffles_are_deterministic_per_seed_and_epoch():
    def epochs(seed, n=3):
        with loader(shuffled_items(range(20), seed=seed), batch_size=5, workers=2) as batches:
            return [flat(batches) for _ in range(n)]

    a, b, c = epochs(1), epochs(1), epochs(2)
    assert a == b
    assert a != c
    assert len({tuple(e) for e in a}) == 3  # a new order every epoch
    assert all(sorted(e) == list(range(20)) for e in a + c)


def test_set_epoch_picks_the_epoch():
    with loader(shuffled_items(range(12), seed=0), workers=2) as batches:
        first = [list(batches) for _ in range(3)]
        batches.set_epoch(1)
        assert list(batches) == first[1]
        assert batches.epoch == 1
        assert list(batches) == first[2]  # then carries on


def test_len_counts_batches_of_this_rank():
    pipe = tp.from_items(range(10))
    assert len(loader(pipe, batch_size=4)) == 3
    assert len(loader(pipe, batch_size=4, drop_last=True)) == 2
    assert len(loader(pipe, workers=2)) == 10
    with pytest.raises(TypeError):
        len(loader(tp.from_items(range(10)).flatmap(lambda x: [x]), batch_size=2))


def test_drop_last_drops_the_short_batch():
    with loader(tp.from_items(range(10)), batch_size=4, drop_last=True, workers=2) as batches:
        assert [len(b) for b in batches] == [4, 4]


def test_default_collate_stacks_and_keeps_meta():
    meta = tp.core.geo_meta("EPSG:32631", (10, 0, 0, 0, -10, 0), (2, 2))

    def sample(i):
        return {"image": torch.full((1, 2, 2), float(i)), "boxes": torch.zeros(i % 2, 4), "meta": meta}

    with loader(tp.from_items(range(5)).map(sample), batch_size=2, workers=2) as batches:
        out = list(batches)
    assert [b["image"].shape[0] for b in out] == [2, 2, 1]
    assert isinstance(out[0]["meta"], list)
    assert out[0]["meta"][0]["crs"] == "EPSG:32631"
    assert isinstance(out[0]["boxes"], list)  # 0 and 1 boxes: not stackable


def test_custom_collate_and_unbatched_elements():
    with loader(tp.from_items(range(6)), batch_size=3, collate=sum) as batches:
        assert list(batches) == [3, 12]
    with loader(tp.from_items(range(3)), collate=negate) as items:
        assert list(items) == [0, -1, -2]


def test_device_cpu_and_missing_cuda():
    with loader(tp.from_items([torch.ones(2)] * 3), batch_size=2, device="cpu", pin_memory=True) as batches:
        assert all(b.device.type == "cpu" for b in batches)
    if not torch.cuda.is_available():
        with pytest.raises(tp.DeviceError, match="CUDA is not available"):
            loader(tp.from_items([1]), device="cuda")
    with pytest.raises(tp.InvalidArgumentError, match="device"):
        loader(tp.from_items([1]), device="warp-drive")


@pytest.mark.parametrize(("workers", "prefetch"), [(0, 2), (2, 0), (2, 3)])
def test_memory_ahead_of_the_consumer_is_bounded(workers, prefetch):
    produced = Counter()
    pipe = tp.from_items(range(120)).map(produced)
    consumed = 0
    with loader(pipe, batch_size=4, workers=workers, prefetch=prefetch, buffer=2) as batches:
        bound = batches.max_elements_ahead
        for batch in batches:
            consumed += len(batch)
            time.sleep(0.002)
            assert produced.value - consumed <= bound
    assert consumed == 120


def test_worker_errors_keep_their_type_and_say_where():
    with (
        loader(tp.from_items(range(20)).map(fail_on_seven), workers=2) as items,
        pytest.raises(ValueError, match="seven") as info,
    ):
        list(items)
    assert any("loader worker thread 1" in note for note in info.value.__notes__)
    with (
        loader(tp.from_items(range(20)).map(fail_on_seven), batch_size=2) as batches,
        pytest.raises(ValueError, match="seven"),
    ):
        list(batches)


def test_pipe_without_sharding_stage_is_refused_with_workers():
    from torch.utils.data.datapipes.iter import IterableWrapper

    with pytest.raises(tp.InvalidArgumentError, match="no stage that shards"):
        loader(IterableWrapper(range(5)), workers=2)
    # a torch sharding_filter is honoured
    with loader(IterableWrapper(range(9)).sharding_filter(), workers=3) as items:
        assert sorted(items) == list(range(9))
    with loader(IterableWrapper(range(4)), workers=1) as items:
        assert list(items) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"workers": -1}, "workers"),
        ({"method": "fiber"}, "method"),
        ({"prefetch": -1}, "prefetch"),
        ({"buffer": 0}, "buffer"),
        ({"collate": 3}, "collate"),
        ({"seed": "x"}, "seed"),
        ({"timeout": 0}, "timeout"),
        ({"multiprocessing_context": "thread"}, "multiprocessing_context"),
    ],
)
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(tp.InvalidArgumentError, match=match):
        loader(tp.from_items([1]), **kwargs)
    with pytest.raises(tp.InvalidArgumentError, match="from_items"):
        loader([1, 2, 3])


def test_early_stop_then_new_epoch_and_stale_iterator():
    with loader(tp.from_items(range(10)), workers=2) as items:
        it = iter(items)
        assert [next(it) for _ in range(3)] == [0, 1, 2]
        assert list(items) == list(range(10))  # a new pass
        with pytest.raises(tp.PipelineStateError, match="iterated again"):
            next(it)


def test_progress_bar_draws(capsys):
    with loader(tp.from_items(range(6)), batch_size=2, progress=True) as batches:
        assert len(list(batches)) == 3
    out = capsys.readouterr().out
    assert "epoch 0" in out
    assert "3/3" in out


def test_collate_samples_rejects_empty_batches():
    with pytest.raises(tp.InvalidArgumentError, match="empty"):
        collate([])
