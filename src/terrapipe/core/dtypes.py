"""numpy arrays to torch tensors: which dtype, and when no copy is made.

``torch.from_numpy`` shares memory with the array, so a tensor costs
nothing, when three things hold: the array is C-contiguous, writable, and
of a dtype torch computes with. Otherwise :func:`to_torch` makes one copy:

- a read-only array (chips from ``chip`` are read-only views of a block
  that neighbouring chips share) is copied, so that writing into the
  tensor never changes other chips;
- ``uint16``, ``uint32`` and ``uint64`` become ``int32``, ``int64`` and
  ``int64``: torch has these unsigned types only as storage (no arithmetic,
  no ``float()`` on every build), and widening to the next signed type is
  lossless (``uint64`` values above ``2**63 - 1`` are refused). Pass
  ``dtype=torch.float32`` to get floats instead;
- big-endian arrays are byte-swapped to native order.

Examples
--------
>>> import numpy as np, torch
>>> a = np.arange(6, dtype="float32").reshape(2, 3)
>>> t = to_torch(a)
>>> np.shares_memory(a, t.numpy())
True
>>> to_torch(np.array([1, 65535], dtype="uint16"))
tensor([    1, 65535], dtype=torch.int32)
>>> to_torch(np.array([1, 2], dtype="uint16"), dtype=torch.float32)
tensor([1., 2.])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["NUMPY_OF", "WIDENED", "check_torch_dtype", "to_torch", "torch_dtype_of"]

#: numpy dtype of each torch dtype that has one.
NUMPY_OF: dict[torch.dtype, np.dtype[Any]] = {
    torch.bool: np.dtype("bool"),
    torch.uint8: np.dtype("uint8"),
    torch.int8: np.dtype("int8"),
    torch.int16: np.dtype("int16"),
    torch.int32: np.dtype("int32"),
    torch.int64: np.dtype("int64"),
    torch.float16: np.dtype("float16"),
    torch.float32: np.dtype("float32"),
    torch.float64: np.dtype("float64"),
    torch.complex64: np.dtype("complex64"),
    torch.complex128: np.dtype("complex128"),
}
_TORCH_OF = {v: k for k, v in NUMPY_OF.items()}
#: Unsigned types torch cannot compute with, and the signed type they become.
WIDENED: dict[np.dtype[Any], np.dtype[Any]] = {
    np.dtype("uint16"): np.dtype("int32"),
    np.dtype("uint32"): np.dtype("int64"),
    np.dtype("uint64"): np.dtype("int64"),
}


def check_torch_dtype(value: Any, what: str) -> torch.dtype | None:
    """Return ``value`` if it is a torch dtype or ``None``; else raise, naming ``what``.

    Strings and numpy dtypes are refused rather than guessed at (``"float"``
    would be float64 to numpy and float32 to torch).

    Raises
    ------
    InvalidArgumentError
        Naming ``what`` and the value.

    Examples
    --------
    >>> check_torch_dtype(torch.float32, "dtype")
    torch.float32
    >>> check_torch_dtype("float32", "dtype")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: dtype must be a torch dtype (torch.float32) or None, got 'float32'
    """
    if value is not None and not isinstance(value, torch.dtype):
        raise InvalidArgumentError(f"{what} must be a torch dtype (torch.float32) or None, got {value!r}")
    return value


def torch_dtype_of(dtype: Any) -> torch.dtype:
    """Return the torch dtype a numpy dtype converts to by default (see the module doc).

    Raises
    ------
    InvalidArgumentError
        For dtypes torch has no tensor for (strings, objects, datetimes).

    Examples
    --------
    >>> torch_dtype_of("uint16"), torch_dtype_of("float32")
    (torch.int32, torch.float32)
    """
    native = np.dtype(dtype).newbyteorder("=")
    native = WIDENED.get(native, native)
    if native not in _TORCH_OF:
        raise InvalidArgumentError(
            f"cannot make a tensor of numpy dtype {np.dtype(dtype)!s}; convert it to a number type first"
        )
    return _TORCH_OF[native]


def to_torch(array: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert a numpy array to a tensor, without a copy where the memory allows.

    Parameters
    ----------
    array
        A numpy array (or anything ``np.asarray`` takes).
    dtype
        Target torch dtype; default :func:`torch_dtype_of` the array's dtype.

    Returns
    -------
    torch.Tensor
        Sharing memory with ``array`` when it is C-contiguous, writable and
        already of the target dtype; otherwise a copy.

    Raises
    ------
    InvalidArgumentError
        For dtypes without tensors, or ``uint64`` values beyond ``int64``.
    """
    if hasattr(array, "data_vars") or isinstance(array, Mapping):
        msg = f"as_tensor takes one array, got a {type(array).__name__}; pick a variable (ds['name']) first"
        raise InvalidArgumentError(msg)
    dtype = check_torch_dtype(dtype, "as_tensor dtype")
    try:
        values = np.asarray(array)
    except ValueError as err:  # ragged nested lists
        raise InvalidArgumentError(
            f"as_tensor takes a rectangular array, got a ragged {type(array).__name__}"
        ) from err
    target_torch = dtype if dtype is not None else torch_dtype_of(values.dtype)
    if (
        values.dtype == np.dtype("uint64")
        and target_torch == torch.int64
        and values.size
        and int(values.max()) > np.iinfo(np.int64).max
    ):
        raise InvalidArgumentError("uint64 values above 2**63 - 1 do not fit a torch int64 tensor")
    target = NUMPY_OF.get(target_torch)
    if target is None:  # e.g. bfloat16: no numpy twin; go through the default dtype
        return to_torch(values).to(target_torch)
    if values.dtype == target and values.flags.c_contiguous and values.flags.writeable:
        return torch.from_numpy(values)
    return torch.from_numpy(np.array(values, dtype=target, order="C", copy=True))
