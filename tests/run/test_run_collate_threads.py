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


# --- tp.collate stacks large CPU tensors with numpy, not torch.stack (F, #20) ---------------------------
# torch.stack's copy runs on the intra-op pool, whose threads spin against other work on busy cores:
# measured (bench_collate.py --loader, 2 busy cores) 30-40x the CPU of one copy per value by numpy.

STACKED_BY_NUMPY = [
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.float32,
    torch.float64,
]


def _values(dtype: torch.dtype, count: int = 8, shape: tuple[int, ...] = (4, 64, 64)) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return [(torch.rand(shape, generator=generator) * 200).to(dtype) for _ in range(count)]


@pytest.fixture
def stack_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count torch.stack's calls (each one's batch size), still stacking with it."""
    calls: list[int] = []
    real = torch.stack

    def counted(values, *args, **kwargs):
        calls.append(len(values))
        return real(values, *args, **kwargs)

    monkeypatch.setattr(torch, "stack", counted)
    return calls


def _same_batch(got: torch.Tensor, want: torch.Tensor) -> None:
    assert type(got) is torch.Tensor
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert got.stride() == want.stride()
    assert got.device == want.device
    assert got.requires_grad == want.requires_grad
    assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", STACKED_BY_NUMPY, ids=str)
def test_large_cpu_stacks_are_copied_without_torch_stack_and_equal_it(
    dtype: torch.dtype, stack_calls: list[int]
) -> None:
    values = _values(dtype)
    want = torch.cat([v.unsqueeze(0) for v in values])  # torch.stack's result, without calling it
    got = tp.collate(values)
    _same_batch(got, want)
    assert stack_calls == []
    if dtype is torch.bool:
        got.logical_not_()
    else:
        got.add_(1)
    assert torch.equal(values[0], want[0])  # the batch owns its memory


def test_a_sample_batch_is_the_same_as_torch_stacks_and_small_tensors_keep_torch_stack(
    stack_calls: list[int],
) -> None:
    samples = [
        {
            "image": v,
            "mask": torch.zeros(64, 64, dtype=torch.int64),
            "label": torch.tensor(i),
            "small": torch.ones(3, 4),
        }
        for i, v in enumerate(_values(torch.float32))
    ]
    batch = tp.collate(samples)
    for key in ("image", "mask", "label", "small"):
        _same_batch(batch[key], torch.cat([s[key].unsqueeze(0) for s in samples]))
    assert stack_calls == [8, 8]  # label and small: below the size where numpy copies


@pytest.mark.parametrize(
    "case",
    ["bfloat16", "complex64", "transposed", "channels_last", "requires_grad", "subclass", "sliced"],
)
def test_other_tensors_are_stacked_by_torch_stack_as_before(case: str, stack_calls: list[int]) -> None:
    values = _values(torch.float32)
    if case == "bfloat16":
        values = [v.to(torch.bfloat16) for v in values]
    elif case == "complex64":
        values = [v.to(torch.complex64) for v in values]
    elif case == "transposed":
        values = [v.transpose(1, 2) for v in values]
    elif case == "channels_last":
        values = [torch.rand(4, 3, 32, 32).contiguous(memory_format=torch.channels_last) for _ in range(8)]
    elif case == "requires_grad":
        values = [v.requires_grad_() for v in values]
    elif case == "subclass":
        values = [v.as_subclass(Marked) for v in values]
    elif case == "sliced":
        values = [v[:, ::2] for v in values]
    got = tp.collate(values)
    assert stack_calls == [8]
    want = torch.stack(values)
    assert type(got) is type(want)
    _same_batch(got.as_subclass(torch.Tensor), want.as_subclass(torch.Tensor))
    assert got.is_contiguous(memory_format=torch.channels_last) == want.is_contiguous(
        memory_format=torch.channels_last
    )


class Marked(torch.Tensor):
    """A tensor subclass: torch.stack keeps it, so collate leaves it to torch.stack."""


def test_shapes_or_dtypes_that_differ_are_refused_as_before() -> None:
    values = _values(torch.float32)
    with pytest.raises(InvalidArgumentError, match=r"shape"):
        tp.collate([*values[:-1], torch.zeros(4, 64, 63)])
    with pytest.raises(InvalidArgumentError, match=r"dtype"):
        tp.collate([*values[:-1], values[-1].double()])


def test_a_given_allocator_receives_the_stack(stack_calls: list[int]) -> None:
    from terrapipe.tensor.collate import stacking_into

    made: list[torch.Tensor] = []

    def allocate(shape, dtype):
        made.append(torch.full(tuple(shape), 9, dtype=dtype))
        return made[-1]

    values = _values(torch.int16)
    with stacking_into(allocate):
        got = tp.collate(values)
    assert got is made[0]
    _same_batch(got, torch.cat([v.unsqueeze(0) for v in values]))
    assert stack_calls == []


def _big_sample(i: int) -> dict[str, torch.Tensor]:
    return {"image": torch.full((4, 64, 64), float(i)), "mask": torch.full((128, 64), i, dtype=torch.int64)}


def test_a_loader_without_workers_yields_the_same_batches_and_keeps_the_count(
    two_threads, stack_calls: list[int]
) -> None:
    with loader(tp.from_items(range(20)).map(_big_sample), batch_size=8) as batches:
        out = list(batches)
    assert [len(b["image"]) for b in out] == [8, 8, 4]
    for n, batch in enumerate(out):
        items = range(8 * n, min(20, 8 * n + 8))
        _same_batch(batch["image"], torch.cat([_big_sample(i)["image"].unsqueeze(0) for i in items]))
        _same_batch(batch["mask"], torch.cat([_big_sample(i)["mask"].unsqueeze(0) for i in items]))
    assert stack_calls == []
    assert torch.get_num_threads() == 2
