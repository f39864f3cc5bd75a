"""Batches collated straight into shared memory, so they cross to the main process without a copy.

A loader worker process collates its batches itself (see
:mod:`terrapipe.run.workers`). When a tensor is sent to another process,
torch's pickler moves its storage into shared memory first, which copies
it; a batch stacked directly into a shared-memory tensor is sent as it is
(one file descriptor per tensor, no copy), the way torch's ``DataLoader``
workers collate. :func:`collate_into_shared_memory` marks the thread that
collates in a worker process; :func:`~terrapipe.tensor.collate.collate`
then stacks into :func:`empty_shared` tensors.

Shared-memory segments are torch's (its ``file_descriptor`` sharing strategy
on Linux): each segment's name is removed from ``/dev/shm`` as soon as it
is created and the memory lives as long as a process holds its descriptor
or mapping, so a worker that crashes leaves nothing behind.

``torch.UntypedStorage._new_shared`` (what torch's own ``default_collate``
uses in workers) allocates shared memory without a copy; it is private, so
it is reached through :func:`terrapipe._compat.new_shared_storage` only, and
:func:`empty_shared` falls back to the public ``Tensor.share_memory_()`` (one
extra copy) when a torch release drops it.

Examples
--------
>>> import torch
>>> t = empty_shared((2, 3), torch.float32)
>>> t.shape, t.is_shared()
(torch.Size([2, 3]), True)
>>> collating_into_shared_memory()
False
>>> with collate_into_shared_memory():
...     collating_into_shared_memory()
True
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Sequence

import torch

from terrapipe._compat import has_new_shared_storage, new_shared_storage
from terrapipe.tensor.collate import Allocator, stacking_into

__all__ = ["collate_into_shared_memory", "collating_into_shared_memory", "empty_shared", "has_new_shared"]

_SHARED: contextvars.ContextVar[bool] = contextvars.ContextVar("terrapipe_collate_shared", default=False)


def has_new_shared() -> bool:
    """Whether this torch has the private ``UntypedStorage._new_shared`` (allocation without a copy)."""
    return has_new_shared_storage()


def empty_shared(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """Return an uninitialised CPU tensor whose storage is in shared memory.

    Parameters
    ----------
    shape
        The tensor's shape.
    dtype
        Its dtype.

    Returns
    -------
    torch.Tensor
        A contiguous tensor with ``is_shared()`` true.

    Examples
    --------
    >>> empty_shared((4,), torch.int64).is_shared()
    True
    """
    size = tuple(int(n) for n in shape)
    nbytes = max(math.prod(size), 1) * torch.empty((), dtype=dtype).element_size()
    storage = new_shared_storage(nbytes)
    if storage is None:  # a torch without UntypedStorage._new_shared (tests/test_compat.py)
        shared: torch.Tensor = torch.empty(size, dtype=dtype).share_memory_()  # type: ignore[no-untyped-call]
        return shared
    strides = [1] * len(size)
    for axis in range(len(size) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * max(size[axis + 1], 1)
    return torch.empty(0, dtype=dtype).set_(storage, 0, size, strides)


@contextlib.contextmanager
def collate_into_shared_memory(allocate: Allocator | None = None) -> Iterator[None]:
    """Make :func:`~terrapipe.tensor.collate.collate` stack into shared memory in this context.

    ``allocate``: ``(shape, dtype) -> tensor`` in shared memory (a worker's
    :class:`~terrapipe.run.shared_segments.SegmentPool`); default :func:`empty_shared`.
    """
    token = _SHARED.set(True)
    try:
        with stacking_into(allocate or empty_shared):
            yield
    finally:
        _SHARED.reset(token)


def collating_into_shared_memory() -> bool:
    """Whether the current context collates into shared memory (a loader worker process)."""
    return _SHARED.get()
