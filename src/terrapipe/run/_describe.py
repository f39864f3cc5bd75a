"""Short, safe descriptions of elements and functions for error messages."""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = ["describe_element", "describe_fn"]

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlist = 6
_REPR.maxdict = 6


def describe_element(element: Any) -> str:
    """Return a short description of ``element`` (tensors by shape and dtype, others by a clipped repr).

    Examples
    --------
    >>> import torch
    >>> describe_element(torch.zeros(2, 3))
    'Tensor(shape=(2, 3), dtype=torch.float32)'
    >>> describe_element({"path": "a.tif", "window": (0, 0, 256, 256)})
    "{'path': 'a.tif', 'window': (0, 0, 256, 256)}"
    """
    shape = getattr(element, "shape", None)
    dtype = getattr(element, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(element).__name__}(shape={tuple(shape)}, dtype={dtype})"
    try:
        return _REPR.repr(element)
    except Exception:  # a broken __repr__ must not hide the real error
        return f"<{type(element).__name__} object>"


def describe_fn(fn: Any) -> str:
    """Return a function's qualified name, or its repr.

    Examples
    --------
    >>> describe_fn(len)
    'len'
    """
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))
