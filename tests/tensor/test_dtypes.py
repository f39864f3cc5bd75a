"""to_torch: zero copy where the memory allows, one copy otherwise; the unsigned-integer policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.tensor import to_torch, torch_dtype_of


@pytest.mark.parametrize(
    "dtype", ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
)
def test_zero_copy_for_contiguous_writable_arrays(dtype: str) -> None:
    array = np.ones((3, 4, 5), dtype=dtype)
    tensor = to_torch(array)
    assert tensor.data_ptr() == array.ctypes.data
    assert tensor.dtype == torch_dtype_of(dtype)


def test_copies_when_the_memory_does_not_allow() -> None:
    base = np.arange(60, dtype="float32").reshape(3, 4, 5)
    readonly = base.copy()
    readonly.flags.writeable = False
    tensor = to_torch(readonly)
    assert not np.shares_memory(tensor.numpy(), readonly)
    tensor += 1  # writing never touches the read-only source
    assert readonly[0, 0, 0] == 0
    strided = base[:, ::2]
    assert torch.equal(to_torch(strided), torch.from_numpy(np.ascontiguousarray(strided)))
    swapped = base.astype(">f4")
    assert to_torch(swapped).dtype == torch.float32
    assert torch.equal(to_torch(swapped), torch.from_numpy(base))


def test_unsigned_integers_are_widened_losslessly() -> None:
    values = np.array([0, 1, 65535], dtype="uint16")
    tensor = to_torch(values)
    assert tensor.dtype == torch.int32
    assert tensor.tolist() == [0, 1, 65535]
    assert (tensor.float() / 10000).dtype == torch.float32  # arithmetic works, unlike torch.uint16
    assert to_torch(np.array([2**32 - 1], dtype="uint32")).dtype == torch.int64
    assert to_torch(np.array([2**40], dtype="uint64")).tolist() == [2**40]
    with pytest.raises(InvalidArgumentError, match="2\\*\\*63"):
        to_torch(np.array([2**63], dtype="uint64"))


def test_explicit_dtypes() -> None:
    values = np.array([[1, 2], [3, 4]], dtype="uint16")
    assert to_torch(values, torch.float32).dtype == torch.float32
    assert to_torch(values, torch.bfloat16).dtype == torch.bfloat16
    same = np.zeros(4, dtype="float32")
    assert to_torch(same, torch.float32).data_ptr() == same.ctypes.data


def test_refuses_non_numbers() -> None:
    with pytest.raises(InvalidArgumentError, match="numpy dtype <U1"):
        to_torch(np.array(["a"]))
    with pytest.raises(InvalidArgumentError, match="datetime64"):
        to_torch(np.array(["2024-01-01"], dtype="datetime64[D]"))
