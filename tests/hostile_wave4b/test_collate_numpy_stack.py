"""``tp.collate``'s numpy stacking of large CPU tensors (F, 9f8a4b1) against ``torch.stack``.

The numpy path copies with ``np.stack(out=...)`` into the ``stacking_into`` allocator's tensor.
``torch.stack(out=...)`` refused an output that shares memory with an input (``unsupported
operation: some elements of the input tensor and the written-to tensor refer to a single memory
location``); numpy writes through, overwriting inputs it has yet to copy: a batch of wrong values.
An allocator's tensor of another shape was resized by torch (a warning); numpy raises its bare
``ValueError``.
"""

from __future__ import annotations

import pytest
import torch

from terrapipe.core.errors import TerrapipeError
from terrapipe.tensor.collate import collate, stacking_into

SHAPE = (4, 64, 64)  # 16384 elements a value, 8 values: the numpy path


def test_an_output_that_overlaps_the_inputs_is_refused_or_right() -> None:
    buffer = torch.arange(8 * 4 * 64 * 64, dtype=torch.float32).reshape(8, *SHAPE)
    samples = list(buffer.unbind(0))[::-1]  # views of the buffer the allocator hands out again
    want = torch.stack([s.clone() for s in samples])
    with stacking_into(lambda shape, dtype: buffer):
        try:
            got = collate(samples)
        except TerrapipeError:
            return  # refused by name (as torch.stack refused it): fine
    assert torch.equal(got, want)


def test_an_output_whose_rows_share_memory_is_refused_or_right() -> None:
    samples = [torch.full(SHAPE, float(k)) for k in range(8)]
    with stacking_into(lambda shape, dtype: torch.empty(tuple(shape[1:]), dtype=dtype).expand(*shape)):
        try:
            got = collate(samples)
        except TerrapipeError:
            return  # refused by name (torch.stack: 'more than one element ... single memory location')
    assert torch.equal(got, torch.stack(samples))


def test_an_allocator_of_the_wrong_shape_is_a_named_error_or_resized() -> None:
    samples = [torch.rand(SHAPE) for _ in range(8)]
    with stacking_into(lambda shape, dtype: torch.empty((8, 4, 64, 63), dtype=dtype)):
        try:
            got = collate(samples)
        except TerrapipeError:
            return
    assert torch.equal(got, torch.stack(samples))


def _same(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert got.stride() == want.stride()
    assert got.requires_grad == want.requires_grad
    assert torch.equal(got, want)


DTYPES = [
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.float32,
    torch.float64,
    torch.bfloat16,
    torch.uint16,
    torch.uint32,
    torch.uint64,
    torch.complex64,
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_dtype_stacks_as_torch_stack(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(3)
    samples = [(torch.rand(SHAPE, generator=generator) * 200 - 50).to(dtype) for _ in range(8)]
    _same(collate(samples), torch.stack(samples))


def _layouts() -> dict[str, list[torch.Tensor]]:
    base = torch.rand(8, *SHAPE)
    flat = torch.rand(9 * 4 * 64 * 64)
    return {
        "views of one storage": list(base.unbind(0)),
        "one tensor eight times": [base[0]] * 8,
        "a storage offset": [flat[k * 7 + 3 :][: 4 * 64 * 64].view(SHAPE) for k in range(8)],
        "channels_last": [torch.rand(1, *SHAPE).to(memory_format=torch.channels_last)[0] for _ in range(8)],
        "transposed": [torch.rand(64, 64, 4).permute(2, 0, 1) for _ in range(8)],
        "negative-stride flip": [torch.rand(SHAPE).flip(-1) for _ in range(8)],
        "an expanded value": [torch.rand(1, 64, 64).expand(SHAPE) for _ in range(8)],
        "a size-1 axis with an odd stride": [torch.rand(64, 1, 256).transpose(0, 1)[0].view(4, 64, 64)] * 8,
        "0-d values": [torch.tensor(float(k)) for k in range(40000)],
        "detached views of a grad tensor": [torch.rand(SHAPE, requires_grad=True).detach() for _ in range(8)],
    }


@pytest.mark.parametrize("name", sorted(_layouts()))
def test_every_layout_stacks_as_torch_stack(name: str) -> None:
    samples = _layouts()[name]
    _same(collate(samples), torch.stack([s.clone() if s.dim() else s for s in samples]).contiguous())


def test_requires_grad_values_keep_their_graph() -> None:
    leaves = [torch.rand(SHAPE, requires_grad=True) for _ in range(8)]
    batch = collate(leaves)
    assert batch.requires_grad
    batch.sum().backward()
    assert all(leaf.grad is not None and torch.equal(leaf.grad, torch.ones(SHAPE)) for leaf in leaves)


def test_the_batch_owns_its_memory() -> None:
    samples = [torch.rand(SHAPE) for _ in range(8)]
    batch = collate(samples)
    samples[0].fill_(-1)
    assert bool((batch[0] >= 0).all())


def test_an_inference_mode_batch_stacks() -> None:
    with torch.inference_mode():
        samples = [torch.rand(SHAPE) for _ in range(8)]
        _same(collate(samples), torch.stack(samples))


@pytest.mark.parametrize(
    "samples",
    [
        [torch.rand(SHAPE), torch.rand(SHAPE, dtype=torch.float64)] * 4,
        [torch.rand(SHAPE), torch.rand(4, 64, 63)] * 4,
    ],
    ids=["dtypes", "shapes"],
)
def test_mixed_values_are_named_errors(samples: list[torch.Tensor]) -> None:
    with pytest.raises(TerrapipeError, match="collate"):
        collate(samples)
