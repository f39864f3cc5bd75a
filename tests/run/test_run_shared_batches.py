"""Process workers batch their own shards and send each batch once, through shared memory.

Compared with torch's DataLoader on the same pipe (same batches), checked for
exactly-once delivery with the shards' tails batched together, exact resume at
every batch, errors that name the worker and elements, and no shared-memory
segment left in /dev/shm after a normal shutdown or a crashed worker.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections import Counter as Multiset
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import terrapipe as tp
from terrapipe.core.errors import WorkerError
from terrapipe.run import loader, shuffled_items
from terrapipe.run.shared_memory import empty_shared, has_new_shared
from terrapipe.tensor import collate

SHM = Path("/dev/shm")


def make_sample(i: int) -> dict:
    meta = tp.core.geo_meta("EPSG:32631", (10.0, 0.0, 600_000.0 + 80 * i, 0.0, -10.0, 5_100_000.0), (8, 8))
    return {
        "image": torch.full((3, 8, 8), float(i)),
        "mask": torch.full((8, 8), i, dtype=torch.int64),
        "id": i,
        "meta": meta,
    }


def collate_with_pid(batch: list[int]) -> tuple[torch.Tensor, int]:
    return torch.tensor(batch), os.getpid()


def fail_collate(batch: list[int]) -> torch.Tensor:
    if 13 in batch:
        raise ValueError("thirteen does not collate")
    return torch.tensor(batch)


def exit_on_nine(x: int) -> int:
    if x == 9:
        os._exit(3)
    return x


def slow(x: int) -> int:
    time.sleep(0.01)
    return x


def ids(batches) -> list[list[int]]:
    return [b["id"].tolist() for b in batches]


def torch_segments(pids) -> set[str]:
    """Names in /dev/shm made by torch in these processes (``torch_<pid>_...``)."""
    if not SHM.is_dir():
        return set()
    prefixes = tuple(f"torch_{pid}_" for pid in pids)
    return {name for name in os.listdir(SHM) if name.startswith(prefixes)}


def in_shared_mapping(tensor: torch.Tensor) -> bool:
    """Whether ``tensor``'s memory lies in a torch shared-memory segment mapped here (/proc/self/maps)."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, *rest = line.split(maxsplit=5)
        start, stop = (int(v, 16) for v in span.split("-"))
        if start <= address < stop:
            return len(rest) == 5 and "/torch_" in rest[4]
    return False


def test_batches_equal_dataloaders_on_the_same_pipe():
    # 2 shards of 24 samples each: every batch is a full batch of one shard, as in DataLoader
    pipe = lambda: tp.from_items(range(48)).map(make_sample)  # noqa: E731
    torch_loader = DataLoader(pipe(), batch_size=6, num_workers=2, collate_fn=collate)
    expected = list(torch_loader)
    with loader(pipe(), batch_size=6, workers=2, method="process") as batches:
        got = list(batches)
    assert len(got) == len(expected) == 8
    for ours, theirs in zip(got, expected, strict=True):
        assert ours.keys() == theirs.keys()
        torch.testing.assert_close(ours["image"], theirs["image"], rtol=0, atol=0)
        torch.testing.assert_close(ours["mask"], theirs["mask"], rtol=0, atol=0)
        assert ours["id"].tolist() == theirs["id"].tolist()
        assert ours["meta"] == theirs["meta"]


def test_batches_arrive_in_shared_memory_collated_by_the_workers():
    with loader(tp.from_items(range(16)).map(make_sample), batch_size=4, workers=2, method="process") as b:
        out = list(b)  # 2 shards of 8: no tail
    assert len(out) == 4
    # in the workers' shared-memory segments (rebuilt on a reused segment, a tensor does not say is_shared())
    assert all(in_shared_mapping(batch["image"]) and in_shared_mapping(batch["mask"]) for batch in out)
    with loader(
        tp.from_items(range(8)), batch_size=4, workers=2, method="process", collate=collate_with_pid
    ) as b:
        pids = {pid for _, pid in b}
    assert os.getpid() not in pids
    assert len(pids) == 2  # each worker collated its own batches


@pytest.mark.parametrize(
    ("n", "workers", "batch_size"), [(0, 2, 4), (1, 2, 4), (23, 3, 4), (10, 2, 3), (7, 3, 8)]
)
@pytest.mark.parametrize("drop_last", [False, True])
def test_tails_of_the_shards_are_batched_together(n, workers, batch_size, drop_last):
    with loader(
        tp.from_items(range(n)).map(make_sample),
        batch_size=batch_size,
        workers=workers,
        method="process",
        drop_last=drop_last,
    ) as batches:
        out = ids(batches)
        assert len(out) == len(batches)  # as many batches as with threads
    sizes = [len(b) for b in out]
    if drop_last:
        assert sizes == [batch_size] * (n // batch_size)
    else:
        assert sum(sizes) == n
        assert Multiset(x for b in out for x in b) == Multiset(range(n))
        assert all(s == batch_size for s in sizes[:-1])


def run_epochs(make, epochs, **kwargs):
    with loader(make(), **kwargs) as batches:
        return [b.tolist() for _ in range(epochs) for b in batches]


def test_resume_at_every_batch_with_tails_in_several_shards():
    make = lambda: shuffled_items(range(23), seed=3)  # noqa: E731  3 shards of 8, 8, 7: tails 0, 0, 3
    kwargs = {"batch_size": 3, "workers": 3, "method": "process"}
    expected = run_epochs(make, 2, **kwargs)
    assert run_epochs(make, 2, **kwargs) == expected  # deterministic
    per_epoch = len(expected) // 2
    for stop in range(per_epoch + 2):
        got = []
        with loader(make(), **kwargs) as first:
            it = iter(first)
            for _ in range(min(stop, per_epoch)):
                got.append(next(it).tolist())
            if stop > per_epoch:
                list(it)
                got = expected[:per_epoch]
                it = iter(first)
                got.append(next(it).tolist())
            state = json.loads(json.dumps(first.state_dict()))
        with loader(make(), **kwargs) as second:
            second.load_state_dict(state)
            for _ in range(2 - state["epoch"]):
                got.extend(b.tolist() for b in second)
        assert got == expected, f"stop after {stop} batches"


def test_state_of_a_thread_loader_is_refused_mid_epoch():
    with loader(tp.from_items(range(20)), batch_size=2, workers=2) as threads:
        it = iter(threads)
        next(it)
        state = threads.state_dict()
    with (
        loader(tp.from_items(range(20)), batch_size=2, workers=2, method="process") as processes,
        pytest.raises(tp.PipelineStateError, match="batches_in_workers"),
    ):
        processes.load_state_dict(state)


@pytest.mark.parametrize("other", [{"workers": 0}, {"workers": 1}])
def test_one_worker_process_states_move_to_and_from_other_loaders(other):
    first, second = {"workers": 1, "method": "process"}, other
    make = lambda: shuffled_items(range(11), seed=2)  # noqa: E731
    expected = run_epochs(make, 1, batch_size=3, workers=0)
    for a, b in ((first, second), (second, first)):
        with loader(make(), batch_size=3, **a) as one:
            it = iter(one)
            head = [next(it).tolist() for _ in range(2)]
            state = one.state_dict()
        with loader(make(), batch_size=3, **b) as other:
            other.load_state_dict(state)
            assert head + [x.tolist() for x in other] == expected


def sleepy(x: int) -> int:
    time.sleep(2.0 if x == 6 else 0.15)
    return x


def test_timeout_counts_per_element_made_not_per_batch():
    # a batch of 4 takes 0.6 s, longer than the timeout, but each element comes within it
    with loader(
        tp.from_items(range(6)).map(sleepy), batch_size=4, workers=1, method="process", timeout=0.5
    ) as b:
        assert [x.tolist() for x in b] == [[0, 1, 2, 3], [4, 5]]
    # one element that takes 2 s is a stuck worker
    with (
        loader(
            tp.from_items(range(8)).map(sleepy), batch_size=4, workers=1, method="process", timeout=0.5
        ) as b,
        pytest.raises(WorkerError, match=r"sent nothing for 0\.5 s"),
    ):
        list(b)


PRODUCED = multiprocessing.get_context("fork").Value("q", 0)


def count_produced(x: int) -> int:
    with PRODUCED.get_lock():
        PRODUCED.value += 1
    return x


def test_elements_ahead_of_the_consumer_stay_bounded():
    PRODUCED.value = 0
    consumed = 0
    with loader(
        tp.from_items(range(150)).map(count_produced),
        batch_size=4,
        workers=2,
        method="process",
        multiprocessing_context="fork",
        prefetch=1,
        buffer=1,
    ) as batches:
        bound = batches.max_elements_ahead
        for batch in batches:
            consumed += len(batch)
            time.sleep(0.01)
            assert PRODUCED.value - consumed <= bound
    assert consumed == 150


def test_collate_error_names_the_worker_and_the_elements():
    with (
        loader(
            tp.from_items(range(20)), batch_size=3, workers=2, method="process", collate=fail_collate
        ) as b,
        pytest.raises(ValueError, match="thirteen") as info,
    ):
        list(b)
    notes = "\n".join(info.value.__notes__)
    assert "loader worker process 1" in notes
    assert "while collating elements" in notes
    assert "of shard 1" in notes


def test_no_shared_memory_left_after_shutdown():
    with loader(
        tp.from_items(range(64)).map(make_sample), batch_size=4, workers=2, method="process", buffer=4
    ) as batches:
        it = iter(batches)
        next(it)  # the workers have more batches waiting in the queues
        pids = [p.pid for p in batches._source.pool._workers]
    del it
    assert torch_segments([os.getpid(), *pids]) == set()


def test_no_shared_memory_left_after_a_worker_crash():
    pipe = tp.from_items(range(40)).map(exit_on_nine).map(make_sample)
    with loader(pipe, batch_size=2, workers=2, method="process") as batches:
        it = iter(batches)
        pids = [p.pid for p in batches._source.pool._workers]
        with pytest.raises(WorkerError, match="exit code 3"):
            list(it)
    assert torch_segments([os.getpid(), *pids]) == set()


def test_no_shared_memory_left_after_a_worker_is_killed():
    pipe = tp.from_items(range(400)).map(slow).map(make_sample)
    with loader(pipe, batch_size=2, workers=2, method="process", buffer=4) as batches:
        it = iter(batches)
        next(it)
        pids = [p.pid for p in batches._source.pool._workers]
        time.sleep(0.2)  # batches wait in the queues
        os.kill(pids[0], signal.SIGKILL)
        with pytest.raises(WorkerError, match="stopped unexpectedly"):
            for _ in it:
                pass
    assert torch_segments([os.getpid(), *pids]) == set()


def test_empty_shared_is_shared_and_writable():
    assert has_new_shared()  # torch still has what DataLoader's collate uses; else a copy is made
    t = empty_shared((2, 0, 3), torch.float32)
    assert t.shape == (2, 0, 3)
    assert t.is_shared()
    u = empty_shared((3, 4), torch.int16)
    u[:] = 7
    assert u.stride() == (4, 1)
    assert int(u.sum()) == 84
