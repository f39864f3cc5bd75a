"""Collate on one intra-op thread, as torch's ``DataLoader`` workers do, then give the setting back.

A loader with workers collates in a loader thread of the main process when
its workers are threads (and stacks the shards' leftover tails there when
they are processes). ``torch.stack`` there uses the process's intra-op
threads (one per core by default), which spin and wait for each other on a
machine whose cores are busy with the workers' decoding: measured on a
loaded 2-core machine, 60-230 ms to stack 8 chips of 4 x 256 x 256 with two
threads, against 0.5-6 ms with one. torch's ``DataLoader`` workers run the
collate with ``torch.set_num_threads(1)``; :class:`OneThreadCollate` does the
same for the duration of each call only and then restores the caller's
count, so the user's own setting is unchanged before and after every batch
(with OpenMP, the count is also per thread: the thread that trains keeps its
own). In a process worker the count already is one, and nothing changes.

Examples
--------
>>> import torch
>>> before = torch.get_num_threads()
>>> collate = OneThreadCollate(lambda batch: (torch.get_num_threads(), torch.stack(batch).shape))
>>> collate([torch.zeros(2), torch.ones(2)])
(1, torch.Size([2, 2]))
>>> torch.get_num_threads() == before
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import torch

__all__ = ["OneThreadCollate", "one_intra_op_thread"]

T = TypeVar("T")


@contextlib.contextmanager
def one_intra_op_thread() -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(1)``, then restore the count it found.

    Examples
    --------
    >>> import torch
    >>> with one_intra_op_thread():
    ...     torch.get_num_threads()
    1
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class OneThreadCollate(Generic[T]):
    """Wrap a collate so that each call runs on one intra-op thread (picklable when ``fn`` is).

    Parameters
    ----------
    fn
        The collate: ``list of elements -> batch``.
    """

    def __init__(self, fn: Callable[[list[Any]], T]) -> None:
        self.fn = fn

    def __call__(self, batch: list[Any]) -> T:
        """Collate ``batch`` with ``fn`` on one intra-op thread."""
        with one_intra_op_thread():
            return self.fn(batch)

    def __repr__(self) -> str:
        return f"OneThreadCollate({self.fn!r})"
