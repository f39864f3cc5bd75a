"""Process workers that reuse shared-memory segments give the batches an in-process run gives (run/shared_segments.py).

Promised: whatever the pipe makes (odd dtypes, empty and non-contiguous tensors, tensors that share
storage, nested containers, a tp.collate run by the pipe's own threads), a ``method="process"``
loader yields the same samples in the same order as ``workers=0``, none lost or duplicated; a batch
the consumer holds (whole, or one tensor of it), for as long as it likes and past the pool's 64
slots, is never written again; a worker's error, a resume mid-epoch, two loaders at once and a
loader dropped half-way leave every batch right and nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import terrapipe as tp
from terrapipe.run import loader
from terrapipe.run.shared_segments import SLOTS, SegmentPool


def odd_sample(i: int) -> dict:
    """A sample with every kind of tensor the pool must carry, its values made from ``i``."""
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6) + 100 * i
    shared = torch.arange(10, dtype=torch.int32) + i
    return {
        "flag": torch.tensor([i % 2 == 0, i % 3 == 0, True]),
        "c128": torch.full((3,), complex(i, -i), dtype=torch.complex128),
        "f16": torch.full((5,), i / 8, dtype=torch.float16),
        "u16": torch.full((2,), 65535 - i, dtype=torch.uint16),
        "u64": torch.tensor([2**63 + i, i], dtype=torch.uint64),
        "f8": torch.full((2,), i / 4).to(torch.float8_e4m3fn).view(torch.uint8),
        "u8": torch.full((3, 3), i % 256, dtype=torch.uint8),
        "empty": torch.zeros((0, 7)),
        "transposed": base.t(),  # non-contiguous
        "strided": base[::2, 1::3],
        "numpy_flipped": np.arange(6, dtype=">i4")[::-1] + i,  # big-endian, negative stride
        "shared": {"whole": shared, "tail": shared[5:], "as_float": shared.view(torch.float32)},
        "nested": [torch.full((2,), i), (torch.tensor(float(i)), i)],
        "meta": {"id": i, "crs": "EPSG:32633", "transform": (10.0, 0.0, 500000.0 + i, 0.0, -10.0, 0.0)},
        "id": i,
    }


def ragged_sample(i: int) -> dict:
    """A sample whose tensors differ in shape from sample to sample (kept as lists) and one that stacks."""
    return {"points": torch.full((i % 5, 3), float(i)), "image": torch.full((2, 3), float(i)), "id": i}


RAGGED = functools.partial(tp.collate, lists=["points"])


def flatten(value: object, path: str = "") -> list[tuple[str, object]]:
    """Every leaf of a batch with its path: tensors kept, the rest as they are."""
    if isinstance(value, dict):
        return [leaf for key in value for leaf in flatten(value[key], f"{path}/{key}")]
    if isinstance(value, list | tuple):
        return [leaf for k, item in enumerate(value) for leaf in flatten(item, f"{path}[{k}]")]
    return [(path, value)]


def snapshot(batch: object) -> list[tuple[str, object]]:
    """A deep copy of a batch to compare with later (clones: the batch itself may be written later)."""
    return [(p, v.clone() if isinstance(v, torch.Tensor) else v) for p, v in flatten(batch)]


def assert_same(got: object, expected: list[tuple[str, object]]) -> None:
    leaves = flatten(got)
    assert [p for p, _ in leaves] == [p for p, _ in expected]
    for (path, ours), (_, theirs) in zip(leaves, expected, strict=True):
        if isinstance(theirs, torch.Tensor):
            assert isinstance(ours, torch.Tensor), path
            assert (ours.dtype, ours.shape) == (theirs.dtype, theirs.shape), path
            assert torch.equal(ours, theirs), path
        else:
            assert ours == theirs, path


def reference(make, n: int, epochs: int = 1, **kwargs) -> list[list[object]]:
    """Snapshots of the batches of an in-process run of the same pipe."""
    with loader(tp.from_items(range(n)).map(make), workers=0, **kwargs) as batches:
        return [[snapshot(b) for b in batches] for _ in range(epochs)]


@pytest.mark.parametrize(
    ("make", "collate", "batch_size"), [(odd_sample, None, 3), (ragged_sample, RAGGED, 4)]
)
def test_held_batches_of_every_kind_equal_an_in_process_run(make, collate, batch_size):
    n, epochs = 3 * SLOTS + 5, 2  # more batches held than slots, a short last batch
    kwargs = {"batch_size": batch_size, "collate": collate}
    expected = reference(make, n, epochs, **kwargs)
    with loader(tp.from_items(range(n)).map(make), workers=1, method="process", **kwargs) as batches:
        held = [list(batches) for _ in range(epochs)]  # every batch of both epochs kept to the end
    for got, want in zip(held, expected, strict=True):
        assert len(got) == len(want)
        for batch, snap in zip(got, want, strict=True):
            assert_same(batch, snap)


def test_one_tensor_kept_from_each_batch_is_never_written_again():
    n = 4 * SLOTS
    kept = []
    with loader(
        tp.from_items(range(n)).map(odd_sample), batch_size=4, workers=2, method="process"
    ) as batches:
        for _ in range(2):  # the second pass reuses every segment the consumer let go of
            for batch in batches:
                kept.append((batch["shared"]["tail"], batch["id"].clone()))
                del batch
    ids = [i for _, batch_ids in kept for i in batch_ids.tolist()]
    assert sorted(ids) == sorted(list(range(n)) * 2)
    for tail, batch_ids in kept:  # (with two workers a batch holds one shard's samples)
        assert torch.equal(tail, torch.stack([odd_sample(i)["shared"]["tail"] for i in batch_ids.tolist()]))


def series(i: int) -> dict:
    """A per-sample stack of its own length made with tp.collate, run by pmap's threads."""
    sys.setswitchinterval(1e-6)  # threads switch often: the pool is asked from several at once
    stack = tp.collate([torch.full((16 + i % 37,), float(i)) for _ in range(1 + i % 3)])
    time.sleep(0)
    return {"x": stack, "id": i}


def test_tp_collate_in_the_pipe_s_threads_never_shares_a_segment():
    """A pipe's pmap that calls tp.collate ran the worker's pool from several threads: samples were mixed."""
    n = 1500
    pipe = tp.from_items(range(n)).pmap(series, workers=8)
    collate = functools.partial(tp.collate, lists=["x"])
    with loader(pipe, batch_size=4, workers=1, method="process", collate=collate) as batches:
        got = list(batches)
    ids = [i for batch in got for i in batch["id"].tolist()]
    assert sorted(ids) == list(range(n))
    for batch in got:
        for x, i in zip(batch["x"], batch["id"].tolist(), strict=True):
            assert x.shape == (1 + i % 3, 16 + i % 37)
            assert bool((x == float(i)).all()), i


def test_the_pool_gives_each_thread_its_own_memory():
    """Allocations from several threads at once (a collate's own threads) never share a segment."""
    pool = SegmentPool(multiprocessing.RawArray("q", SLOTS), batches=SLOTS)
    with pool.batch():
        pool.allocate((1 << 20,), torch.uint8)
    errors: list[BaseException] = []
    switch = sys.getswitchinterval()

    def work(k: int) -> None:
        rng = np.random.default_rng(k)
        try:
            for step in range(400):
                # a collate's own threads, or threads each inside a batch of their own
                with pool.batch() if step % 2 else contextlib.nullcontext():
                    t = pool.allocate((int(rng.integers(1, 4096)),), torch.uint8)
                t.fill_(k)
                time.sleep(0)
                assert bool((t == k).all())
        except BaseException as err:
            errors.append(err)

    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert errors == []


def fail_at(i: int, at: int = 37) -> dict:
    if i == at:
        raise ValueError(f"bad sample {i}")
    return ragged_sample(i)


def test_a_worker_error_mid_epoch_leaves_the_earlier_batches_right():
    n = 80
    expected = reference(ragged_sample, n, batch_size=4, collate=RAGGED)[0]
    got = []
    with loader(
        tp.from_items(range(n)).map(fail_at), batch_size=4, collate=RAGGED, workers=1, method="process"
    ) as b:
        with pytest.raises(ValueError, match="bad sample 37"):
            got.extend(b)
        assert len(got) == 9  # samples 0..35: the batch of 36..39 never came
        again = []
        with pytest.raises(ValueError, match="bad sample 37"):  # the next epoch fails at the same sample
            again.extend(b)
    assert len(again) == 9
    for batch, other, snap in zip(got, again, expected, strict=False):
        assert_same(batch, snap)
        assert_same(other, snap)


@pytest.mark.parametrize("stop", [1, 7, 20])
def test_resume_mid_epoch_equals_the_rest_of_the_run(stop):
    n = 2 * 41 + 3  # two shards, each with a tail
    kwargs = {"batch_size": 4, "collate": RAGGED, "workers": 2, "method": "process"}
    with loader(tp.from_items(range(n)).map(ragged_sample), **kwargs) as batches:
        whole = [snapshot(b) for b in batches]
    with loader(tp.from_items(range(n)).map(ragged_sample), **kwargs) as batches:
        it = iter(batches)
        first = [next(it) for _ in range(stop)]
        state = batches.state_dict()
        del it
    with loader(tp.from_items(range(n)).map(ragged_sample), **kwargs) as batches:
        batches.load_state_dict(state)
        rest = list(batches)
    assert len(first) + len(rest) == len(whole)
    for batch, snap in zip([*first, *rest], whole, strict=True):
        assert_same(batch, snap)


def test_two_loaders_at_once_keep_their_batches_apart():
    n = 2 * SLOTS
    one = reference(odd_sample, n, batch_size=3)[0]
    two = reference(ragged_sample, n, batch_size=5, collate=RAGGED)[0]
    with (
        loader(tp.from_items(range(n)).map(odd_sample), batch_size=3, workers=1, method="process") as a,
        loader(
            tp.from_items(range(n)).map(ragged_sample),
            batch_size=5,
            collate=RAGGED,
            workers=1,
            method="process",
        ) as b,
    ):
        got_a, got_b = [], []
        for x, y in zip(a, b, strict=False):
            got_a.append(x)
            got_b.append(y)
        got_a += list(a)  # (a had not finished its epoch: a new pass, from the start)
    for batch, snap in zip(got_b, two, strict=False):
        assert_same(batch, snap)
    for batch, snap in zip(got_a[: len(got_b)], one, strict=False):
        assert_same(batch, snap)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def shm_names() -> set[str]:
    shm = Path("/dev/shm")
    return set(os.listdir(shm)) if shm.is_dir() else set()


def shared_mappings() -> int:
    """Mappings of torch shared-memory segments in this process."""
    return sum("/torch_" in line for line in Path("/proc/self/maps").read_text().splitlines())


def test_a_loader_dropped_half_way_leaves_nothing_behind():
    gc.collect()
    names, fds, maps = shm_names(), open_descriptors(), shared_mappings()
    kept = []
    for _ in range(3):
        b = loader(tp.from_items(range(400)).map(odd_sample), batch_size=4, workers=2, method="process")
        it = iter(b)
        held = [next(it) for _ in range(5)]
        kept.append(held[2])  # one batch outlives its loader and its workers
        del it, b, held  # neither exhausted nor closed
        gc.collect()
    for batch in kept:  # still its own values, read after the workers are gone
        for row, i in enumerate(batch["id"].tolist()):
            assert torch.equal(batch["c128"][row], odd_sample(i)["c128"])
            assert torch.equal(batch["transposed"][row], odd_sample(i)["transposed"])
    del kept, batch
    gc.collect()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and multiprocessing.active_children():
        time.sleep(0.1)
    gc.collect()
    assert multiprocessing.active_children() == []
    assert shm_names() - names == set()
    assert open_descriptors() <= fds + 2  # (pytest's own may come and go)
    assert shared_mappings() <= maps


def lazy_views(i: int) -> dict:
    """Complex SAR-like values seen through torch's lazy conjugate and negative views."""
    base = torch.tensor([complex(i, 1), complex(i, 2)], dtype=torch.complex64)
    return {"slc": base.conj(), "neg": torch._neg_view(torch.tensor([float(i), 0.5])), "id": i}


def keep_views(samples: list[dict]) -> dict:
    """A collate that hands out lazy views of its stacks (a conjugate product's lazy half)."""
    batch = tp.collate(samples)
    return {"slc": batch["slc"].conj(), "neg": torch._neg_view(batch["neg"]), "id": batch["id"]}


@pytest.mark.parametrize(
    ("batch_size", "collate"),
    [(4, None), (4, keep_views), (None, None)],
    ids=["tails", "collate", "elements"],
)
def test_lazily_conjugated_or_negated_tensors_arrive_resolved(batch_size, collate):
    """torch's pickling drops the conjugate and negative bits: x.conj() arrived as x, silently."""
    n = 10  # two full batches and a tail of two
    with loader(
        tp.from_items(range(n)).map(lazy_views),
        batch_size=batch_size,
        collate=collate,
        workers=1,
        method="process",
    ) as batches:
        got = list(batches)
    rows = []
    for batch in got:
        if batch_size is None:
            rows.append((batch["id"], batch["slc"], batch["neg"]))
        else:
            rows += zip(batch["id"].tolist(), batch["slc"], batch["neg"], strict=True)
    assert [i for i, _, _ in rows] == list(range(n))
    for i, slc, neg in rows:
        want = lazy_views(i)
        sign = -1 if collate is keep_views else 1  # the collate conjugates and negates once more
        expected_slc = want["slc"].resolve_conj() if sign == 1 else want["slc"].conj().resolve_conj()
        assert torch.equal(slc.resolve_conj(), expected_slc), (i, slc)
        assert torch.equal(neg.resolve_neg(), sign * want["neg"].resolve_neg()), (i, neg)


def flaky(i: int, at: int = 50) -> dict:
    if i == at:
        raise OSError(f"transient read error at {i}")
    return ragged_sample(i)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_that_failed_mid_epoch_resumes_from_its_last_state(workers):
    """A transient read error ends the epoch; a loader given the last state yields exactly the rest (holds)."""
    n, kwargs = 83, {"batch_size": 4, "collate": RAGGED, "workers": workers, "method": "process"}
    with loader(tp.from_items(range(n)).map(ragged_sample), **kwargs) as batches:
        whole = [batch["id"].tolist() for batch in batches]
    got: list[list[int]] = []
    states: list[dict] = []

    def train(batches) -> None:
        for batch in batches:
            got.append(batch["id"].tolist())
            states.append(batches.state_dict())  # the checkpoint after each step

    with (
        loader(tp.from_items(range(n)).map(flaky), **kwargs) as batches,
        pytest.raises(OSError, match="transient"),
    ):
        train(batches)
    state = states[-1]
    with loader(tp.from_items(range(n)).map(ragged_sample), **kwargs) as batches:
        batches.load_state_dict(state)
        rest = [batch["id"].tolist() for batch in batches]
    assert got + rest == whole
