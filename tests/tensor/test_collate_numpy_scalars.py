"""numpy scalars collate as torch's default_collate makes them: a tensor of their dtype, np.bool_ included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.tensor.collate import collate

SCALARS = [
    [np.True_, np.False_],
    [np.float16(1.5), np.float16(2)],
    [np.float32(1.5), np.float32(2)],
    [np.float64(1.5), np.float64(2)],
    [np.int8(-1), np.int8(2)],
    [np.int16(1), np.int16(2)],
    [np.int32(1), np.int32(2)],
    [np.int64(1), np.int64(2)],
    [np.uint8(1), np.uint8(255)],
    [np.uint16(1), np.uint16(3)],
    [np.uint32(4_000_000_000), np.uint32(1)],
    [np.complex64(1 + 2j), np.complex64(2)],
]


@pytest.mark.parametrize("values", SCALARS, ids=lambda v: type(v[0]).__name__)
def test_numpy_scalars_of_one_type_collate_like_default_collate(values: list[object]) -> None:
    ours, torchs = collate(values), default_collate(values)
    assert isinstance(ours, torch.Tensor), ours  # np.bool_ was a list
    assert ours.dtype == torchs.dtype
    assert torch.equal(ours, torchs)
    nested = collate([{"flag": v, "pair": (v, "x")} for v in values])
    assert torch.equal(nested["flag"], torchs)
    assert torch.equal(nested["pair"][0], torchs)
    assert nested["pair"][1] == ["x", "x"]


def test_a_uint64_beyond_int64_is_a_uint64_tensor_as_in_an_array() -> None:
    batch = collate([np.uint64(2**63), np.uint64(1)])  # torch.tensor raised a bare TypeError
    assert batch.dtype == torch.uint64
    assert batch.tolist() == [2**63, 1]
    assert torch.equal(batch, collate([np.array(2**63, np.uint64), np.array(1, np.uint64)]))


@pytest.mark.parametrize(
    "values",
    [
        [np.longdouble(1), np.longdouble(2)],
        [np.array([1.0], np.longdouble), np.array([2.0], np.longdouble)],
        [{"v": np.clongdouble(1)}, {"v": np.clongdouble(2)}],
    ],
    ids=["float128 scalars", "float128 arrays", "complex256 in a dict"],
)
def test_a_numpy_dtype_torch_has_not_is_refused_by_name(values: list[object]) -> None:
    if np.dtype(np.longdouble).itemsize == np.dtype(np.float64).itemsize:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(InvalidArgumentError, match="has no torch dtype"):  # a bare TypeError before
        collate(values)


def test_mixed_scalar_types_and_non_numbers_still_become_lists() -> None:
    assert collate([np.True_, True]) == [np.True_, True]
    assert collate([np.int64(1), np.int32(2)]) == [1, 2]
    days = [np.datetime64("2024-01-01"), np.datetime64("2024-01-02")]
    assert collate(days) == days
    assert collate([np.str_("a"), np.str_("b")]) == ["a", "b"]
