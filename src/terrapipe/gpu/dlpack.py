"""``as_tensor``: arrays to torch tensors through DLPack, without a copy where possible.

Any array with ``__dlpack__`` (numpy ≥ 1.23 on the CPU, CuPy on a GPU, JAX,
...) becomes a tensor on *its own device* sharing its memory, via
``torch.from_dlpack``: a CuPy-backed xarray chip (cupy-xarray keeps the CuPy
array in ``.data``) becomes a CUDA tensor without a copy, and a numpy chip a
CPU tensor without a copy. No CuPy import is needed for that.

One copy is made instead, and said here, when:

- the array has **negative strides** (``a[::-1]``, a flipped latitude axis):
  torch tensors cannot have them, so the array's own ``copy()`` makes a
  C-ordered copy on its device first;
- a numpy array is **read-only** (chips cut from a shared block are): the
  copy keeps writes to the tensor from changing the other chips, as
  :func:`~terrapipe.core.dtypes.to_torch` does;
- the array does not speak DLPack or refuses (no ``__dlpack__``,
  **non-native byte order**, numpy scalars, lists): host data then goes
  through :func:`~terrapipe.core.dtypes.to_torch` (one copy where needed);
- the dtype is **uint16/uint32/uint64**: imported without a copy, then
  widened on its device to ``int32``/``int64``/``int64``, the project's rule
  (torch only stores unsigned types wider than 8 bits); ``uint64`` values above
  ``2**63 - 1`` raise.

Types DLPack has no code for (datetime, object, strings) raise
:class:`~terrapipe.core.errors.InvalidArgumentError`.

Examples
--------
>>> import numpy as np
>>> a = np.arange(6, dtype="float32").reshape(2, 3)
>>> t = as_tensor(a)
>>> t.data_ptr() == a.ctypes.data
True
>>> as_tensor(a[:, ::-1]).tolist()          # negative strides: one copy
[[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]
>>> as_tensor(np.array([1, 65535], dtype="uint16"))
tensor([    1, 65535], dtype=torch.int32)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr
from torch.utils.dlpack import from_dlpack

from terrapipe.core.dtypes import check_torch_dtype, to_torch
from terrapipe.core.errors import InvalidArgumentError

__all__ = ["as_tensor", "shares_memory"]

#: Unsigned types torch only stores, and the signed type they are widened to.
_WIDEN = {torch.uint16: torch.int32, torch.uint32: torch.int64, torch.uint64: torch.int64}


def _has_negative_strides(array: Any) -> bool:
    strides = getattr(array, "strides", None)
    return strides is not None and any(s < 0 for s in strides)


def _check_uint64(array: Any) -> None:
    # torch has no max() for uint64: ask the producer (numpy and CuPy arrays have one).
    if (
        getattr(array, "dtype", None) == np.dtype("uint64")
        and getattr(array, "size", 0)
        and int(array.max()) > np.iinfo(np.int64).max
    ):
        raise InvalidArgumentError("uint64 values above 2**63 - 1 do not fit a torch int64 tensor")


def _widen(tensor: torch.Tensor) -> torch.Tensor:
    target = _WIDEN.get(tensor.dtype)
    return tensor if target is None else tensor.to(target)


def as_tensor(array: Any, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``array`` as a tensor on its own device, sharing memory where possible (see the module doc).

    Parameters
    ----------
    array
        A DLPack producer (numpy, CuPy, ...), an ``xarray.DataArray`` or
        ``Variable`` (its ``.data``: a CuPy-backed one stays on the GPU), a
        torch tensor (returned as is), or anything ``numpy.asarray`` takes.
    dtype
        Convert to this torch dtype afterwards (on the array's device).

    Returns
    -------
    torch.Tensor
        On the array's device.

    Raises
    ------
    InvalidArgumentError
        For dtypes tensors cannot hold, ``uint64`` values beyond ``int64``, or
        a ``dtype`` that is not a torch dtype.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> chip = xr.DataArray(np.ones((2, 2), dtype="float32"), dims=("y", "x"))
    >>> shares_memory(as_tensor(chip), chip.data)
    True
    """
    dtype = check_torch_dtype(dtype, "as_tensor dtype")
    if isinstance(array, xr.DataArray | xr.Variable):
        array = array.data
    if isinstance(array, torch.Tensor):
        tensor = array
    elif hasattr(array, "__dlpack__") and not isinstance(array, np.generic):
        tensor = _from_dlpack(array)
    else:
        tensor = to_torch(array)
    if dtype is not None and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor


def _from_dlpack(array: Any) -> torch.Tensor:
    if isinstance(array, np.ndarray) and (
        array.dtype.kind not in "biufc" or not array.dtype.isnative or not array.flags.writeable
    ):
        return to_torch(array)  # refused by DLPack, or read-only: one copy (to_torch's rules)
    _check_uint64(array)
    if _has_negative_strides(array):
        array = array.copy()
    try:
        tensor = from_dlpack(array)
    except BufferError as err:  # e.g. a dtype DLPack has no code for
        msg = (
            f"cannot make a tensor of a {type(array).__name__} of dtype {getattr(array, 'dtype', '?')}: {err}"
        )
        raise InvalidArgumentError(msg) from err
    return _widen(tensor)


def shares_memory(tensor: torch.Tensor, array: Any) -> bool:
    """Return whether ``tensor`` starts at the same memory address as ``array`` (numpy or CuPy).

    Parameters
    ----------
    tensor
        A tensor, e.g. from :func:`as_tensor`.
    array
        A numpy array (``ctypes.data``) or CuPy array (``data.ptr``).

    Returns
    -------
    bool
        True when both start at the same address (on the same kind of device).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros(3)
    >>> shares_memory(as_tensor(a), a), shares_memory(torch.zeros(3), a)
    (True, False)
    """
    if isinstance(array, np.ndarray):
        return tensor.device.type == "cpu" and tensor.data_ptr() == array.ctypes.data
    pointer = getattr(getattr(array, "data", None), "ptr", None)  # cupy.ndarray.data is a MemoryPointer
    return pointer is not None and tensor.device.type == "cuda" and tensor.data_ptr() == int(pointer)
