"""as_tensor: zero-copy through DLPack where the memory allows, one documented copy otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.gpu import as_tensor, shares_memory


@pytest.mark.parametrize(
    "dtype",
    ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "bool", "complex64"],
)
def test_numpy_arrays_become_tensors_without_a_copy(dtype):
    a = (np.arange(24) % 2).astype(dtype).reshape(2, 3, 4)
    t = as_tensor(a)
    assert shares_memory(t, a)
    assert np.shares_memory(a, t.numpy())
    assert t.numpy().dtype == a.dtype
    t[0, 0, 0] = 1  # the same memory
    assert a[0, 0, 0] == 1


def test_positive_strides_are_kept_without_a_copy():
    a = np.arange(24, dtype="float32").reshape(4, 6)
    for view in (a[:, ::2], a.T, a[1:3, 2:]):
        t = as_tensor(view)
        assert np.shares_memory(t.numpy(), a)
        assert t.tolist() == view.tolist()


def test_negative_strides_are_copied_once_not_crashed():
    a = np.arange(12, dtype="float32").reshape(3, 4)
    flipped = a[::-1, ::-1]
    t = as_tensor(flipped)
    assert t.tolist() == flipped.tolist()
    assert not np.shares_memory(t.numpy(), a)


def test_read_only_arrays_are_copied_so_writes_cannot_reach_other_chips():
    block = np.arange(8, dtype="float32")
    block.flags.writeable = False
    t = as_tensor(block)
    assert not np.shares_memory(t.numpy(), block)
    t[0] = 99
    assert block[0] == 0


def test_non_native_byte_order_and_scalars_and_lists_are_converted():
    big = np.arange(4, dtype=">i4")
    assert as_tensor(big).tolist() == [0, 1, 2, 3]
    assert as_tensor(big).dtype == torch.int32
    assert as_tensor(np.float32(2.5)).item() == 2.5
    assert as_tensor([1.0, 2.0]).tolist() == [1.0, 2.0]


def test_unsigned_types_are_widened_like_to_torch():
    assert as_tensor(np.array([1, 65535], dtype="uint16")).dtype == torch.int32
    assert as_tensor(np.array([2**32 - 1], dtype="uint32")).tolist() == [2**32 - 1]
    assert as_tensor(np.array([7], dtype="uint64")).dtype == torch.int64
    with pytest.raises(InvalidArgumentError, match="uint64"):
        as_tensor(np.array([2**63 + 1], dtype="uint64"))


def test_dtypes_without_tensors_raise_named_errors():
    with pytest.raises(InvalidArgumentError, match="datetime64"):
        as_tensor(np.array(["2024-01-01"], dtype="datetime64[ns]"))
    with pytest.raises(InvalidArgumentError):
        as_tensor(np.array(["a"], dtype=object))


def test_xarray_chips_and_tensors_and_dtype():
    data = np.ones((2, 3), dtype="float32")
    chip = xr.DataArray(data, dims=("y", "x"))
    t = as_tensor(chip)
    assert shares_memory(t, data)
    assert as_tensor(chip.variable).data_ptr() == t.data_ptr()
    tensor = torch.zeros(3)
    assert as_tensor(tensor) is tensor
    assert as_tensor(data, dtype=torch.float64).dtype == torch.float64


# -- on a GPU ---------------------------------------------------------------------------


@pytest.mark.gpu
def test_cupy_chip_becomes_a_cuda_tensor_sharing_its_memory(cupy):
    a = cupy.arange(24, dtype=cupy.float32).reshape(2, 3, 4)
    t = as_tensor(a)
    assert t.device.type == "cuda"
    assert t.data_ptr() == a.data.ptr
    assert shares_memory(t, a)
    chip = xr.DataArray(a, dims=("band", "y", "x"))  # cupy-xarray keeps the CuPy array in .data
    assert as_tensor(chip).data_ptr() == a.data.ptr
    t[0, 0, 0] = 42
    assert float(a[0, 0, 0]) == 42


@pytest.mark.gpu
def test_cupy_negative_strides_and_unsigned_stay_on_the_gpu(cupy):
    a = cupy.arange(12, dtype=cupy.uint16).reshape(3, 4)
    t = as_tensor(a[::-1])
    assert t.device.type == "cuda"
    assert t.dtype == torch.int32
    assert t.cpu().tolist() == cupy.asnumpy(a[::-1]).astype("int32").tolist()
