"""``ShardMerge``: the torchdata node that takes the workers' shards in turn.

The merge visits workers round robin: element 1 of shard 0, element 1 of
shard 1, ..., element 2 of shard 0, ...; a shard that ends drops out of the
turn. The order depends only on each shard's own sequence, never on which
worker is faster, so it is the same on every run with the same seed and
epoch, and a run resumed from :meth:`ShardMerge.get_state` continues in the
same order: the state is the epoch, whose turn it is, which shards ended and
each shard's position after the last element taken from it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from torchdata.nodes import BaseNode

from terrapipe.core.errors import PipelineStateError
from terrapipe.core.state import expect_keys
from terrapipe.run.errors import WorkerError
from terrapipe.run.loader_stats import LoaderStats
from terrapipe.run.workers import END, ERROR, WorkerPool

__all__ = ["ShardMerge"]


class ShardMerge(BaseNode[Any]):  # type: ignore[misc]  # torchdata has no type hints
    """Round-robin merge of the shards of a :class:`~terrapipe.run.workers.WorkerPool`.

    Parameters
    ----------
    pool
        The workers.
    layout
        Describes the sharding (workers, rank, world size); a state saved
        under another layout is refused.
    stats
        Takes the stage counters the workers send with their messages.

    Attributes
    ----------
    planned_epoch
        The epoch a fresh pass (``reset(None)``) runs; set by the loader.
    resume_from
        A saved state the next ``reset(None)`` continues from instead (used
        once); set by the loader, so that the torchdata nodes downstream
        start fresh while this node resumes.
    epoch
        The epoch of the current pass.
    """

    KEYS = ("epoch", "turn", "done", "positions", "layout")

    def __init__(self, pool: WorkerPool, layout: Mapping[str, int], stats: LoaderStats | None = None) -> None:
        super().__init__()
        self.pool = pool
        self.stats = stats
        self.layout = dict(layout)
        self.planned_epoch = 0
        self.resume_from: dict[str, Any] | None = None
        self.epoch = 0
        self._lock = threading.RLock()
        self._generation = 0
        self._turn = 0
        self._done = [False] * pool.size
        self._positions: list[dict[str, Any] | None] = [None] * pool.size
        self.error: BaseException | None = None

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        """Start a fresh pass of :attr:`planned_epoch`, or continue the pass saved in ``initial_state``."""
        super().reset(initial_state)
        if initial_state is None and self.resume_from is not None:
            initial_state, self.resume_from = self.resume_from, None
        self._generation += 1  # an older next() still waiting sees this and stops
        self.pool.cancel(self._generation)
        with self._lock:
            size = self.pool.size
            if initial_state is None:
                self.epoch, self._turn = self.planned_epoch, 0
                self._done, self._positions = [False] * size, [None] * size
            else:
                expect_keys(initial_state, self.KEYS, owner=type(self).__name__)
                if dict(initial_state["layout"]) != self.layout:
                    msg = (
                        f"the loader state was saved with {initial_state['layout']} and this loader has "
                        f"{self.layout}; an exact resume needs the same workers, rank and world size"
                    )
                    raise PipelineStateError(msg)
                self.epoch, self._turn = int(initial_state["epoch"]), int(initial_state["turn"])
                self._done = [bool(d) for d in initial_state["done"]]
                self._positions = list(initial_state["positions"])
            self.error = None
            self.pool.start_pass(self._generation, self.epoch, self._positions, self._done)

    def next(self) -> Any:
        """Return the next element in turn; ``StopIteration`` when every shard ended."""
        generation = self._generation
        size = self.pool.size
        with self._lock:
            while not all(self._done):
                index = self._turn
                if self._done[index]:
                    self._turn = (index + 1) % size
                    continue
                try:
                    message = self.pool.receive(index, generation, lambda: self._generation != generation)
                except Exception as err:
                    self.error = err
                    raise
                if message is None:
                    raise StopIteration  # abandoned by reset()
                _, kind, payload, position, report = message
                if self.stats is not None:
                    self.stats.update(index, report)
                if kind == ERROR:
                    self.error = _reraisable(payload, index, self.pool.method)
                    raise self.error
                self._positions[index] = position
                self._turn = (index + 1) % size
                if kind == END:
                    self._done[index] = True
                    continue
                return payload
            raise StopIteration

    def get_state(self) -> dict[str, Any]:
        """Return the position after the last element returned (see the module docs)."""
        with self._lock:
            return {
                "epoch": self.epoch,
                "turn": self._turn,
                "done": list(self._done),
                "positions": list(self._positions),
                "layout": dict(self.layout),
            }


def _reraisable(payload: tuple[BaseException | None, str, str], index: int, method: str) -> BaseException:
    err, description, text = payload
    if err is None:
        return WorkerError(f"loader worker {index} ({method}) failed with {description}\n{text}")
    if method == "process":
        err.add_note(f"raised in loader worker process {index}; its traceback:\n{text}")
    else:
        err.add_note(f"raised in loader worker thread {index}")
    return err
