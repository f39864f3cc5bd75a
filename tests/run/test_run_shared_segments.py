"""Process workers reuse their shared-memory segments once the main process has let go of a batch.

A segment crosses to the main process once (its file descriptor), then its
later batches travel as a slot number; a batch the consumer still holds, or
edits in place, is never written into by a later one; views, odd dtypes and
abandoned passes come out as with threads.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections import Counter as Multiset
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
import torch.multiprocessing.reductions as torch_reductions

import terrapipe as tp
from terrapipe.core.errors import WorkerError
from terrapipe.run import loader
from terrapipe.run.shared_segments import SegmentMaps, SegmentPool, encode
from terrapipe.tensor import collate


def make_sample(i: int) -> dict:
    return {
        "image": torch.full((3, 16, 16), float(i)),
        "mask": torch.full((16, 16), i, dtype=torch.int64),
        "id": i,
    }


def check(batch: dict) -> list[int]:
    """The batch's ids, after checking every pixel of the batch belongs to its sample."""
    ids = batch["id"].tolist()
    for row, i in enumerate(ids):
        assert bool((batch["image"][row] == float(i)).all()), (row, i)
        assert bool((batch["mask"][row] == i).all()), (row, i)
    return ids


@pytest.fixture
def fd_rebuilds(monkeypatch):
    """Count the shared-memory segments the main process receives by file descriptor."""
    calls = [0]
    original = torch_reductions.rebuild_storage_fd

    def counting(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    # pickled by name in the workers (forked with the patch): the name must lead to this function
    counting.__module__, counting.__qualname__ = original.__module__, original.__qualname__

    monkeypatch.setattr(torch_reductions, "rebuild_storage_fd", counting)
    return calls


@pytest.mark.parametrize("workers", [1, 2])
def test_a_segment_crosses_once_then_batches_come_as_slots(fd_rebuilds, workers):
    n, batch_size = 48 * workers, 4
    with loader(
        tp.from_items(range(n)).map(make_sample), batch_size=batch_size, workers=workers, method="process"
    ) as batches:
        for _ in range(3):
            seen = []
            for batch in batches:
                seen += check(batch)
                del batch
            assert sorted(seen) == list(range(n))
    # 3 tensors per batch (image, mask, id): one descriptor each per batch before (108 per worker);
    # now a segment per tensor of the batches in flight (the queue, prefetch, the consumer), sent once
    assert fd_rebuilds[0] <= 3 * 8 * workers


def test_batches_kept_by_the_consumer_are_never_written_again():
    n = 400  # more batches than the pool keeps: the later ones get segments of their own
    with loader(tp.from_items(range(n)).map(make_sample), batch_size=4, workers=2, method="process") as b:
        kept = list(b)
        again = list(b)
    assert sorted(i for batch in kept for i in check(batch)) == list(range(n))
    assert sorted(i for batch in again for i in check(batch)) == list(range(n))


def test_some_batches_kept_while_the_others_are_reused():
    kept, seen = [], []
    with loader(tp.from_items(range(240)).map(make_sample), batch_size=4, workers=2, method="process") as b:
        for epoch in range(2):
            for k, batch in enumerate(b):
                seen += check(batch)
                if k % 5 == epoch:
                    kept.append((batch, batch["id"].tolist()))
    assert Multiset(seen) == Multiset(list(range(240)) * 2)
    for batch, ids in kept:
        assert check(batch) == ids


def test_in_place_edits_of_a_batch_never_reach_the_next_batches():
    seen = []
    with loader(tp.from_items(range(160)).map(make_sample), batch_size=4, workers=1, method="process") as b:
        for _ in range(2):
            for batch in b:
                seen += check(batch)
                batch["image"].add_(1000.0)  # the consumer normalises in place, then drops the batch
                batch["mask"].fill_(-1)
                del batch
    assert Multiset(seen) == Multiset(list(range(160)) * 2)


def views_collate(samples: list[dict]) -> dict:
    batch = collate(samples)
    image = batch["image"]
    return {
        "band1": image[:, 1],
        "transposed": image.transpose(2, 3),
        "strided": image[:, :, ::3, 1::2],
        "empty": image[:, :0],
        "image": image,
        "id": batch["id"],
    }


def dtype_sample(i: int) -> dict:
    return {
        "bf16": torch.full((5,), float(i), dtype=torch.bfloat16),
        "flag": torch.tensor([i % 2 == 0, True]),
        "complex": torch.full((3,), complex(i, -i), dtype=torch.complex64),
        "int8": torch.full((7,), i % 100, dtype=torch.int8),
        "none": torch.zeros((0, 4)),
        "image": torch.full((2, 4, 4), float(i)),
        "id": i,
    }


@pytest.mark.parametrize(("make", "collate_fn"), [(make_sample, views_collate), (dtype_sample, collate)])
def test_views_and_dtypes_arrive_as_with_threads(make, collate_fn):
    pipe = lambda: tp.from_items(range(64)).map(make)  # noqa: E731
    with loader(pipe(), batch_size=4, workers=1, method="thread", collate=collate_fn) as b:
        expected = [list(b), list(b)]
    with loader(pipe(), batch_size=4, workers=1, method="process", collate=collate_fn) as b:
        got = [list(b), list(b)]  # the second pass reuses the first pass's segments
    for ours, theirs in zip([*got[0], *got[1]], [*expected[0], *expected[1]], strict=True):
        assert ours.keys() == theirs.keys()
        for key, value in theirs.items():
            assert ours[key].dtype == value.dtype, key
            assert ours[key].shape == value.shape, key
            assert ours[key].stride() == value.stride(), key
            assert torch.equal(ours[key], value), key


def test_abandoned_passes_give_their_segments_back(fd_rebuilds):
    with loader(
        tp.from_items(range(400)).map(make_sample), batch_size=4, workers=2, method="process", buffer=4
    ) as b:
        for _ in range(6):  # the workers have batches made and queued when each pass is dropped
            it = iter(b)
            for _ in range(3):
                check(next(it))
            del it
        seen = [i for batch in b for i in check(batch)]
    assert sorted(seen) == list(range(400))
    assert fd_rebuilds[0] < 200 // 2  # 100 batches of 2 tensors in the last pass alone, before


def test_spawned_workers_reuse_segments_too(fd_rebuilds):
    with loader(
        tp.from_items(range(96)).map(make_sample),
        batch_size=4,
        workers=1,
        method="process",
        multiprocessing_context="spawn",
    ) as b:
        seen = [i for _ in range(2) for batch in b for i in check(batch)]
    assert sorted(seen) == sorted(list(range(96)) * 2)
    assert fd_rebuilds[0] < 48


# -- the pool on its own --------------------------------------------------------------


def pool_of(slots: int = 4, batches: int = 2) -> tuple[SegmentPool, SegmentMaps]:
    returns = multiprocessing.RawArray("q", slots)
    return SegmentPool(returns, batches=batches), SegmentMaps(returns, 0)


def send(pool: SegmentPool, maps: SegmentMaps, message):
    data, lent = encode(message, pool)
    with maps.receiving():
        return ForkingPickler.loads(data), lent


def test_a_slot_is_reused_only_when_both_sides_let_go():
    pool, maps = pool_of()
    with pool.batch():
        first = pool.allocate((4,), torch.float32)
    first.fill_(1.0)
    got, lent = send(pool, maps, first)
    assert lent == {0: 1}
    assert (pool.slots[0].lends, pool.returns[0]) == (1, 0)
    del first
    gc.collect()
    with pool.batch():
        second = pool.allocate((4,), torch.float32)  # slot 0 is still in the main process's hands
    assert pool.lent(second) == 1
    assert got.tolist() == [1.0] * 4
    del got
    gc.collect()
    assert pool.returns[0] == 1
    del second
    gc.collect()
    with pool.batch():
        third = pool.allocate((4,), torch.float32)
    assert pool.lent(third) == 0
    third.fill_(3.0)
    got, _ = send(pool, maps, third)  # slot 0 mapped already: no descriptor this time
    assert got.tolist() == [3.0] * 4


def test_a_slot_lent_in_two_messages_waits_for_both():
    pool, maps = pool_of()
    with pool.batch():
        cached = pool.allocate((3,), torch.int64)  # a collate that hands out one tensor twice
    cached.copy_(torch.tensor([7, 8, 9]))
    one, _ = send(pool, maps, {"x": cached})
    two, _ = send(pool, maps, {"x": cached})
    del cached, one
    gc.collect()
    with pool.batch():
        other = pool.allocate((3,), torch.int64)
    assert pool.lent(other) == 1  # slot 0 is still read through the second message
    other.fill_(-1)
    assert two["x"].tolist() == [7, 8, 9]
    del two, other
    gc.collect()
    with pool.batch():
        assert pool.lent(pool.allocate((3,), torch.int64)) == 0


def test_the_pool_keeps_at_most_its_batches_worth_of_bytes():
    pool, _ = pool_of(slots=8, batches=2)
    held = []
    for _ in range(5):
        with pool.batch():
            held.append(pool.allocate((256,), torch.uint8))
    assert [pool.lent(t) for t in held] == [0, 1, None, None, None]  # 2 batches of 256 bytes
    assert pool.held == 512
    assert all(t.is_shared() for t in held[2:])  # segments of their own, as before


def test_a_message_not_sent_gives_its_slots_back():
    pool, maps = pool_of()
    with pool.batch():
        t = pool.allocate((2,), torch.int64)
    data, lent = encode({"x": t}, pool)
    assert pool.slots[0].lends == 1
    pool.unsend(lent)
    assert pool.slots[0].lends == 0
    del t, data
    gc.collect()
    with pool.batch():
        again = pool.allocate((2,), torch.int64)
    assert pool.lent(again) == 0
    again.copy_(torch.tensor([5, 6]))
    got, _ = send(pool, maps, again)  # never mapped by the main process: the descriptor goes along
    assert got.tolist() == [5, 6]


def test_a_pooled_tensor_unpickled_outside_the_loader_is_an_error():
    pool, _ = pool_of()
    with pool.batch():
        t = pool.allocate((2,), torch.int64)
    data, _ = encode(t, pool)
    with pytest.raises(WorkerError, match="outside the loader"):
        ForkingPickler.loads(data)


def test_other_tensors_are_copied_into_a_segment_once_per_storage():
    pool, maps = pool_of()
    plain = torch.arange(6)
    with pool.batch():
        got, lent = send(pool, maps, {"a": plain, "b": [plain[::2]], "c": plain[3:].view(torch.int32)})
    assert lent == {0: 1}  # one storage, one segment: its views stay views of one another
    assert got["a"].tolist() == list(range(6))
    assert got["b"][0].tolist() == [0, 2, 4]
    assert got["c"].tolist() == plain[3:].view(torch.int32).tolist()
    got["a"][0] = 100
    assert got["b"][0][0] == 100
    assert got["a"].untyped_storage().data_ptr() == got["c"].untyped_storage().data_ptr()
    assert plain[0] == 0  # a copy: the worker's tensor is left alone


def test_tensors_the_pool_cannot_hold_travel_as_torch_sends_them():
    pool, maps = pool_of(slots=1, batches=1)
    with pool.batch():
        held = pool.allocate((4,), torch.float32)  # the only slot
    plain = torch.arange(6)
    grad = torch.ones(2, requires_grad=True)
    got, lent = send(pool, maps, {"plain": plain, "grad": grad})
    assert lent == {}
    assert got["plain"].tolist() == list(range(6))
    assert got["grad"].requires_grad
    assert pool.lent(held) == 0
    data, lent = encode(plain, None)  # no pool: torch's own pickler
    assert lent == {}
    assert ForkingPickler.loads(data).tolist() == list(range(6))
