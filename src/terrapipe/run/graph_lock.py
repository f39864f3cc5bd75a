"""Walk and copy pipe graphs under :data:`terrapipe.core.pipe.GRAPH_LOCK`.

torch's ``traverse_dps`` pickles a pipe with a hook installed on the
IterDataPipe class for every thread while it runs, so loader workers, ``pmap``
and ``prefetch``, which start passes in several threads, walk and copy pipes
only under the lock.

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

from torch.utils.data.graph import DataPipeGraph, traverse_dps

from terrapipe.core.pipe import GRAPH_LOCK

__all__ = ["GRAPH_LOCK", "copy_pipe", "traverse"]

P = TypeVar("P")


def traverse(pipe: Any) -> DataPipeGraph:
    """Return torch's graph of ``pipe`` (``traverse_dps``), walked under :data:`GRAPH_LOCK`."""
    with GRAPH_LOCK:
        return traverse_dps(pipe)


def copy_pipe(pipe: P) -> P:
    """Deep-copy a pipe under :data:`GRAPH_LOCK`."""
    with GRAPH_LOCK:
        return copy.deepcopy(pipe)
