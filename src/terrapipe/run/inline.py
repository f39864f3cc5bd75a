"""``InlineShard``: the torchdata node that runs the pipe in the thread that pulls from it (``workers=0``).

It has the same state as :class:`~terrapipe.run.merge.ShardMerge` with one
shard, so a run saved with one worker resumes without workers and back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from torchdata.nodes import BaseNode

from terrapipe.core.errors import PipelineStateError
from terrapipe.core.pipe import IterDataPipe, set_epoch
from terrapipe.core.shard import ShardInfo, shard_scope, worker_seed
from terrapipe.core.state import expect_keys
from terrapipe.run.loader_stats import LoaderStats, StatsReporter
from terrapipe.run.pipe_state import ResumePlan, resume_plan
from terrapipe.run.sharding import apply_torch_sharding
from terrapipe.run.workers import seed_globals

__all__ = ["InlineShard"]

KEYS = ("epoch", "turn", "done", "positions", "layout")


class InlineShard(BaseNode[Any]):  # type: ignore[misc]  # torchdata has no type hints
    """Iterate one shard of ``pipe`` in the calling thread, with the same state as a one-worker merge.

    Parameters
    ----------
    pipe
        The pipe (the loader passes its own copy).
    info
        The shard this process reads (rank and world size; one worker).
    layout
        See :class:`~terrapipe.run.merge.ShardMerge`.
    seed
        Seeds the global random generators at the start of every pass.
    stats
        Takes the counters of the pipe's stages (skips) as the pass goes.
    """

    def __init__(
        self,
        pipe: IterDataPipe[Any],
        info: ShardInfo,
        layout: Mapping[str, int],
        seed: int | None,
        stats: LoaderStats | None = None,
    ) -> None:
        super().__init__()
        self.pipe = pipe
        self.stats = stats
        self._reporter = StatsReporter(pipe)
        self.info = info
        self.layout = dict(layout)
        self.seed = seed
        self.planned_epoch = 0
        self.resume_from: dict[str, Any] | None = None
        self.epoch = 0
        self.error: BaseException | None = None
        self._lock = threading.RLock()
        self._iterator: Iterator[Any] | None = None
        self._plan: ResumePlan | None = None
        self._started = False
        self._done = False
        self._position: dict[str, Any] | None = None
        with shard_scope(info):
            apply_torch_sharding(pipe, info)

    def _close_iterator(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()
        self._iterator = None

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        """Start a fresh pass of :attr:`planned_epoch`, or continue the one saved in ``initial_state``."""
        super().reset(initial_state)
        if initial_state is None and self.resume_from is not None:
            initial_state, self.resume_from = self.resume_from, None
        with self._lock:
            self._close_iterator()
            self._started = False
            if initial_state is None:
                self.epoch, self._done, self._position = self.planned_epoch, False, None
            else:
                expect_keys(initial_state, KEYS, owner=type(self).__name__)
                if dict(initial_state["layout"]) != self.layout:
                    msg = (
                        f"the loader state was saved with {initial_state['layout']} and this loader has "
                        f"{self.layout}; an exact resume needs the same workers, rank and world size"
                    )
                    raise PipelineStateError(msg)
                self.epoch = int(initial_state["epoch"])
                self._done = bool(initial_state["done"][0])
                self._position = initial_state["positions"][0]

    def _start(self) -> None:
        set_epoch(self.pipe, self.epoch)
        self._plan = resume_plan(self.pipe)
        skip = 0
        if self._position is not None:
            if self._position["pipe"] is not None and self._plan.exact:
                self._plan.restore(self._position["pipe"])
            else:
                skip = int(self._position["yielded"])
        if self.seed is not None:
            seed_globals(worker_seed(self.seed, epoch=self.epoch, info=self.info))
        self._iterator = iter(self.pipe)
        self._started = True
        for _ in range(skip):
            next(self._iterator)

    def next(self) -> Any:
        """Return the shard's next element."""
        with self._lock, shard_scope(self.info):
            if self._done:
                raise StopIteration
            if not self._started:
                self.error = None
                self._start()
            assert self._iterator is not None
            assert self._plan is not None
            yielded = 0 if self._position is None else int(self._position["yielded"])
            try:
                element = next(self._iterator)
            except StopIteration:
                self._done = True
                self._position = {"yielded": yielded, "pipe": self._plan.capture()}
                self._iterator = None
                self._report(force=True)
                raise
            except Exception as err:
                self.error = err
                self._report(force=True)
                raise
            self._position = {"yielded": yielded + 1, "pipe": self._plan.capture()}
            self._report(force=False)
            return element

    def _report(self, *, force: bool) -> None:
        if self.stats is not None:
            self.stats.update(0, self._reporter.poll(force=force))

    def get_state(self) -> dict[str, Any]:
        """Return the position after the last element returned."""
        with self._lock:
            return {
                "epoch": self.epoch,
                "turn": 0,
                "done": [self._done],
                "positions": [self._position],
                "layout": dict(self.layout),
            }
