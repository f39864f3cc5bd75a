"""tp.loader collates on one intra-op thread when it has workers, and gives the caller's count back."""

from __future__ import annotations

import pickle

import pytest
import torch

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.run import loader
from terrapipe.run.intra_op import OneThreadCollate, one_intra_op_thread


def threads_and_items(batch: list[int]) -> tuple[int, list[int]]:
    """A collate that reports the intra-op thread count it ran with."""
    return torch.get_num_threads(), list(batch)


def refuse_five(batch: list[int]) -> list[int]:
    if 5 in batch:
        raise InvalidArgumentError("five")
    return list(batch)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("workers", "method"), [(1, "thread"), (3, "thread"), (2, "process")])
def test_a_loader_with_workers_collates_on_one_thread_and_restores_the_count(two_threads, workers, method):
    # 2 process workers over 9 items batch 4: shards of 5 and 4, so one batch of tails is collated here
    with loader(
        tp.from_items(range(9)), batch_size=4, workers=workers, method=method, collate=threads_and_items
    ) as batches:
        out = list(batches)
    assert {threads for threads, _ in out} == {1}
    assert sorted(x for _, items in out for x in items) == list(range(9))
    assert torch.get_num_threads() == 2


def test_without_workers_the_collate_runs_with_the_callers_count(two_threads):
    with loader(tp.from_items(range(6)), batch_size=4, collate=threads_and_items) as batches:
        assert [threads for threads, _ in batches] == [2, 2]
    assert torch.get_num_threads() == 2


def test_the_count_is_restored_when_the_collate_raises(two_threads):
    with (
        loader(tp.from_items(range(8)), batch_size=2, workers=2, collate=refuse_five) as batches,
        pytest.raises(InvalidArgumentError, match="five"),
    ):
        list(batches)
    assert torch.get_num_threads() == 2
    seen = []

    def inside() -> None:
        with one_intra_op_thread():
            seen.append(torch.get_num_threads())
            raise InvalidArgumentError("inside")

    with pytest.raises(InvalidArgumentError, match="inside"):
        inside()
    assert seen == [1]
    assert torch.get_num_threads() == 2


def test_the_wrapper_pickles_and_keeps_the_collates_result(two_threads):
    wrapped = pickle.loads(pickle.dumps(OneThreadCollate(threads_and_items)))
    assert wrapped([3, 4]) == (1, [3, 4])
    assert "threads_and_items" in repr(wrapped)
    assert torch.get_num_threads() == 2
