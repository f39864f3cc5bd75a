"""The loader behind every adapter: built on the caller's rank, and a stream of batches over passes.

:func:`build_loader` makes a :func:`terrapipe.loader` that shards for a rank
and world size the caller names (JAX's process index, a ``tf.distribute``
input pipeline), not only ``torch.distributed``'s, by building it inside
:func:`~terrapipe.core.shard.shard_scope`: the loader reads its rank once,
when built, and gives each worker thread or process shard
``rank * workers + worker`` of ``world_size * workers``.

:class:`BatchStream` hands out batches one at a time, pass after pass
(epoch 0, 1, ...), for frameworks that ask for "the next batch" rather than
iterate an epoch (Keras' ``PyDataset``). Its state is the loader's after
the last batch handed out, so a stream restored from it continues exactly.

Examples
--------
>>> import terrapipe as tp
>>> stream = BatchStream(build_loader(tp.from_items(range(5)), batch_size=2, rank=1, world_size=2))
>>> [stream.next().tolist() for _ in range(3)]  # rank 1 of 2 holds 1 and 3; then the next pass
[[1, 3], [1, 3], [1, 3]]
>>> stream.passes
3
>>> stream.close()
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe
from terrapipe.core.shard import ShardInfo, shard_scope
from terrapipe.core.state import expect_keys
from terrapipe.run.pipe_loader import PipeLoader, loader

__all__ = ["BatchStream", "build_loader"]


def build_loader(
    pipe: IterDataPipe[Any] | PipeLoader[Any],
    *,
    rank: int | None = None,
    world_size: int | None = None,
    **settings: Any,
) -> PipeLoader[Any]:
    """Return ``tp.loader(pipe, **settings)``, sharded for ``rank`` of ``world_size`` when given.

    Parameters
    ----------
    pipe
        The pipe, or a loader already built (then ``settings``, ``rank`` and
        ``world_size`` must be left out).
    rank, world_size
        This process's place among the processes that each read a part of
        the data; default: ``torch.distributed``'s, else 0 of 1.
    **settings
        Keyword arguments of :func:`terrapipe.loader`.

    Raises
    ------
    InvalidArgumentError
        For settings given with a loader, one of ``rank``/``world_size``
        without the other, or ``even=True`` with an explicit rank (it needs
        ``torch.distributed``).
    """
    if isinstance(pipe, PipeLoader):
        if settings or rank is not None or world_size is not None:
            given = sorted(
                [
                    *settings,
                    *(["rank"] if rank is not None else []),
                    *(["world_size"] if world_size is not None else []),
                ]
            )
            raise InvalidArgumentError(
                f"a loader was given, so {given} cannot be applied; pass the pipe instead"
            )
        return pipe
    if (rank is None) != (world_size is None):
        raise InvalidArgumentError(f"give both rank= and world_size=, or neither; got {rank=}, {world_size=}")
    if rank is None or world_size is None:
        return loader(pipe, **settings)
    if settings.get("even"):
        raise InvalidArgumentError(
            "even=True stops all ranks together through torch.distributed, which an explicit rank= and "
            "world_size= do not use; leave even out (ranks may then yield different numbers of batches)"
        )
    with shard_scope(ShardInfo(rank=int(rank), world_size=int(world_size))):
        return loader(pipe, **settings)


class BatchStream:
    """The loader's batches one by one, the next pass starting when one ends.

    Thread-safe: frameworks that fetch batches from several threads each get
    a different batch, and every batch of every pass is handed out once.

    Parameters
    ----------
    batches
        The loader.
    """

    def __init__(self, batches: PipeLoader[Any]) -> None:
        self.loader = batches
        self._lock = threading.Lock()
        self._it: Iterator[Any] | None = None
        #: Passes started so far (the first ``next()`` starts one).
        self.passes = 0
        #: Batches handed out in the current pass.
        self.in_pass = 0

    def next(self) -> Any:
        """Return the next batch, starting the next pass when the current one is over.

        Raises
        ------
        InvalidArgumentError
            When a whole pass yields no batch (an empty pipe, or a rank with no data).
        """
        with self._lock:
            for _ in range(2):
                if self._it is None:
                    self._it = iter(self.loader)
                    self.passes += 1
                    self.in_pass = 0
                try:
                    batch = next(self._it)
                except StopIteration:
                    empty = self.in_pass == 0
                    self._it = None
                    if empty:
                        break
                    continue
                self.in_pass += 1
                return batch
            raise InvalidArgumentError(
                f"the pipe yielded no batch in epoch {self.loader.epoch} on rank {self.loader.rank} of "
                f"{self.loader.world_size}; check that it holds data and that every rank gets some"
            )

    def state_dict(self) -> dict[str, Any]:
        """Return the loader's state after the last batch handed out (see :meth:`terrapipe.run.PipeLoader.state_dict`)."""
        with self._lock:
            return {"loader": self.loader.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue after the batch where ``state`` was saved (the current pass, if any, is dropped)."""
        expect_keys(state, ("loader",), owner=type(self).__name__)
        with self._lock:
            self._it = None
            self.loader.load_state_dict(state["loader"])

    def close(self) -> None:
        """Stop the loader's workers."""
        with self._lock:
            self._it = None
            self.loader.close()
