"""Walk pipe graphs, and copy them under :data:`terrapipe.core.pipe.GRAPH_LOCK`.

A deep copy goes through ``IterDataPipe.__reduce_ex__``, which torch's
``traverse_dps`` hooks for every thread while it runs; loader workers, ``pmap``
and ``prefetch`` start passes in several threads, so they copy pipes only
under the lock. Walks use the non-pickling :func:`terrapipe.core.pipe.pipe_graph`.

Examples
--------
>>> import terrapipe as tp
>>> from terrapipe.run.graph_lock import GRAPH_LOCK, copy_pipe
>>> with GRAPH_LOCK:
...     pass
>>> list(copy_pipe(tp.from_items([1, 2])))
[1, 2]
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from terrapipe.core.pipe import GRAPH_LOCK, PipeGraph, check_not_iterated_elsewhere, pipe_graph

__all__ = ["GRAPH_LOCK", "copy_pipe", "traverse"]

P = TypeVar("P")


def traverse(pipe: Any) -> PipeGraph:
    """Return the graph of ``pipe`` in torch's form (:func:`~terrapipe.core.pipe.pipe_graph`, no pickling)."""
    return pipe_graph(pipe)


def copy_pipe(pipe: P) -> P:
    """Deep-copy a pipe under :data:`GRAPH_LOCK`.

    Raises
    ------
    ConcurrentIterationError
        If another thread is iterating the pipe: a copy would catch its stages mid-pass.
    """
    with GRAPH_LOCK:
        check_not_iterated_elsewhere(pipe, f"cannot copy the pipe ending at {type(pipe).__name__}")  # type: ignore[arg-type]
        return copy.deepcopy(pipe)
