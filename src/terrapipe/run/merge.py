"""``ShardMerge``: the torchdata node that takes the workers' shards in turn.

The merge visits workers round robin: element 1 of shard 0, element 1 of
shard 1, ..., element 2 of shard 0, ...; a shard that ends drops out of the
turn. The order depends only on each shard's own sequence, never on which
worker is faster, so it is the same on every run with the same seed and
epoch, and a run resumed from :meth:`ShardMerge.get_state` continues in the
same order: the state is the epoch, whose turn it is, which shards ended and
each shard's position after the last element taken from it.

When the workers batch their own shards (process workers with a batch size,
see :mod:`terrapipe.run.workers`), the merge yields batches: first the
workers' batches, round robin; a shard whose next message is a tail element
(the fewer than ``batch_size`` elements left at its end) drops out of that
turn, its element held but not yet taken. Once every shard has ended or
reached its tail, the tails are taken element by element, round robin from
shard 0, and collated here into batches (the last one short, or dropped
with ``drop_last``). So an epoch has ``ceil(n / batch_size)`` batches (or
``n // batch_size``) as with threads, though the elements of a batch come
from one shard. A tail element taken carries ``"tail": True`` in its shard's
position, which is how a resumed merge knows it was taking tails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from torchdata.nodes import BaseNode

from terrapipe.core.errors import PipelineStateError, WorkerError
from terrapipe.core.state import expect_keys
from terrapipe.run.loader_stats import LoaderStats
from terrapipe.run.workers import BATCH, END, ERROR, ITEM, Message, WorkerPool

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
    drop_last
        With workers that batch: drop the last batch of the tails when it is short.

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

    def __init__(
        self,
        pool: WorkerPool,
        layout: Mapping[str, int],
        stats: LoaderStats | None = None,
        *,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.drop_last = drop_last
        # set when the workers batch: (batch_size, collate)
        self._batching: tuple[int, Callable[[list[Any]], Any]] | None = pool.batching
        self._held: list[Message | None] = [None] * pool.size
        self._tailing = [False] * pool.size
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
            self._held = [None] * size
            # taking tails (some tail element was taken): every shard not done is in its tail
            in_tails = any(bool(p and p.get("tail")) for p in self._positions)
            self._tailing = [in_tails and not d for d in self._done]
            self.error = None
            self.pool.start_pass(self._generation, self.epoch, self._positions, self._done)

    def next(self) -> Any:
        """Return the next element (or batch) in turn; ``StopIteration`` when every shard ended."""
        if self._batching is not None:
            return self._next_batch()
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

    def _receive(self, index: int, generation: int) -> Message:
        held, self._held[index] = self._held[index], None
        if held is not None:
            return held
        try:
            message = self.pool.receive(index, generation, lambda: self._generation != generation)
        except Exception as err:
            self.error = err
            raise
        if message is None:
            raise StopIteration  # abandoned by reset()
        if self.stats is not None:
            self.stats.update(index, message[4])
        if message[1] == ERROR:
            self.error = _reraisable(message[2], index, self.pool.method)
            raise self.error
        return message

    def _next_batch(self) -> Any:
        """Return the next batch: the workers' own batches in turn, then batches of their tails."""
        assert self._batching is not None
        batch_size, collate = self._batching
        generation = self._generation
        size = self.pool.size
        with self._lock:
            # the workers' batches, round robin over the shards not done and not in their tail
            while not all(d or t for d, t in zip(self._done, self._tailing, strict=True)):
                index = self._turn
                if self._done[index] or self._tailing[index]:
                    self._turn = (index + 1) % size
                    continue
                message = self._receive(index, generation)
                _, kind, payload, position, _ = message
                self._turn = (index + 1) % size
                if kind == ITEM:  # the shard's tail starts: hold the element, take it with the tails
                    self._held[index], self._tailing[index] = message, True
                    continue
                self._positions[index] = position
                if kind == END:
                    self._done[index] = True
                    continue
                return payload
            # the tails, element by element, round robin from shard 0, batched and collated here
            if not any(p and p.get("tail") for p in self._positions):
                self._turn = 0
            elements: list[Any] = []
            while len(elements) < batch_size and not all(self._done):
                index = self._turn
                if self._done[index]:
                    self._turn = (index + 1) % size
                    continue
                _, kind, payload, position, _ = self._receive(index, generation)
                if kind == BATCH:
                    msg = f"loader worker {index} sent a batch after its tail (kind {kind}); this is a bug"
                    raise PipelineStateError(msg)
                self._positions[index] = position
                self._turn = (index + 1) % size
                if kind == END:
                    self._done[index] = True
                    continue
                elements.append(payload)
            if not elements or (self.drop_last and len(elements) < batch_size):
                raise StopIteration
            return collate(elements)

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
