"""Where this process stands: rank, world size, worker, and the seeds that follow.

Every stage that splits or shuffles work asks :func:`shard_info` once per pass
and derives its randomness with :func:`shared_seed` (the same on every worker
and rank: use it for a permutation that is then split) or :func:`worker_seed`
(different per worker and rank: use it for local buffers).

Shards are numbered ``rank * num_workers + worker_id``; shard ``i`` of ``n``
takes the items ``i, i + n, i + 2n, ...`` (:func:`shard_range`), so the shards
are disjoint and together hold every item exactly once.

A stage that shards whole elements of its source (a chip stage run by several
loader workers) pulls every element but takes only some: around each pull it
asks its source for :class:`Deferred` elements (:func:`deferring`), and a
source whose elements cost CPU to build (``stack_stac``'s cubes) yields, when
:func:`defer_wanted`, the build instead of the element; the elements another
shard takes are never built. A source that does not know about this yields
its elements as always.

Examples
--------
>>> from terrapipe.core.shard import ShardInfo, shard_range, shared_seed
>>> info = ShardInfo(rank=1, world_size=2, worker_id=0, num_workers=2)
>>> info.index, info.count
(2, 4)
>>> list(shard_range(10, info))
[2, 6]
>>> shared_seed(42, epoch=0) == shared_seed(42, epoch=0) != shared_seed(42, epoch=1)
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch

from terrapipe.core.errors import InvalidArgumentError

__all__ = [
    "Deferred",
    "ShardInfo",
    "defer_wanted",
    "deferring",
    "shard_info",
    "shard_range",
    "shard_scope",
    "shared_seed",
    "torch_generator",
    "worker_seed",
]

_MASK64 = (1 << 64) - 1

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """Rank and worker of this process.

    Attributes
    ----------
    rank, world_size
        From ``torch.distributed`` when a process group is initialised, else 0 and 1.
    worker_id, num_workers
        From ``torch.utils.data.get_worker_info()`` inside a DataLoader worker, else 0 and 1.
    """

    rank: int = 0
    world_size: int = 1
    worker_id: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise InvalidArgumentError(f"rank {self.rank} is not in a world of size {self.world_size}")
        if self.num_workers < 1 or not 0 <= self.worker_id < self.num_workers:
            raise InvalidArgumentError(f"worker {self.worker_id} is not among {self.num_workers} workers")

    @property
    def index(self) -> int:
        """Number of this shard: ``rank * num_workers + worker_id``."""
        return self.rank * self.num_workers + self.worker_id

    @property
    def count(self) -> int:
        """How many shards there are, ``world_size * num_workers``."""
        return self.world_size * self.num_workers


_SCOPE: ContextVar[ShardInfo | None] = ContextVar("terrapipe_shard_scope", default=None)


@contextmanager
def shard_scope(info: ShardInfo) -> Iterator[None]:
    """Make :func:`shard_info` answer ``info`` in this thread (context), inside the block.

    ``tp.loader`` runs one copy of a pipe per worker thread; inside each, the
    sharding stages must see that worker (and the parent's DDP rank), exactly
    as inside a DataLoader worker process. A :class:`contextvars.ContextVar`
    keeps threads from seeing each other's answer.

    Examples
    --------
    >>> with shard_scope(ShardInfo(worker_id=1, num_workers=3)):
    ...     shard_info().index
    1
    >>> shard_info().index
    0
    """
    token = _SCOPE.set(info)
    try:
        yield
    finally:
        _SCOPE.reset(token)


_DEFER_FOR: ContextVar[int] = ContextVar("terrapipe_defer_for", default=0)


class Deferred(Generic[T]):
    """A source element not built yet: :meth:`take` builds it (for the shard that takes it).

    Yielded in place of an element only to a consumer that asked for it
    (:func:`deferring`); each one is built at most once by that consumer.

    Examples
    --------
    >>> late = Deferred(lambda: sum(range(4)))
    >>> late.take()
    6
    """

    __slots__ = ("_build",)

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build

    def take(self) -> T:
        """Build the element (the source's own errors come from here)."""
        return self._build()

    def __repr__(self) -> str:
        return "Deferred(<element not built yet>)"


@contextmanager
def deferring(pipe: object) -> Iterator[None]:
    """Inside the block (one ``next()`` on ``pipe``), ``pipe`` may yield :class:`Deferred` elements.

    Only ``pipe`` itself sees the request (:func:`defer_wanted`), not the
    stages upstream of it, so each element reaching the caller is either the
    element or its build. Keep the block around a single ``next()``: it sets
    a :class:`contextvars.ContextVar` of this thread's context.

    Examples
    --------
    >>> import terrapipe as tp
    >>> pipe = tp.from_items([1])
    >>> with deferring(pipe):
    ...     defer_wanted(pipe), defer_wanted(object())
    (True, False)
    >>> defer_wanted(pipe)
    False
    """
    token = _DEFER_FOR.set(id(pipe))
    try:
        yield
    finally:
        _DEFER_FOR.reset(token)


def defer_wanted(pipe: object) -> bool:
    """Whether the consumer pulling from ``pipe`` now asked for :class:`Deferred` elements (:func:`deferring`)."""
    return _DEFER_FOR.get() == id(pipe)


def shard_info() -> ShardInfo:
    """Read rank, world size, worker id and worker count for this process.

    Inside :func:`shard_scope` the scoped answer wins; otherwise rank and
    world size come from ``torch.distributed`` and the worker from
    ``torch.utils.data.get_worker_info()``.

    Examples
    --------
    >>> shard_info()
    ShardInfo(rank=0, world_size=1, worker_id=0, num_workers=1)
    """
    scoped = _SCOPE.get()
    if scoped is not None:
        return scoped
    rank, world_size = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    worker = torch.utils.data.get_worker_info()
    if worker is None:
        return ShardInfo(rank=rank, world_size=world_size)
    return ShardInfo(rank=rank, world_size=world_size, worker_id=worker.id, num_workers=worker.num_workers)


def shard_range(n_items: int, info: ShardInfo | None = None) -> range:
    """Return the item indices that belong to this shard (round robin).

    Parameters
    ----------
    n_items
        Number of items to split (windows, blocks, files, ...).
    info
        The shard; :func:`shard_info` when omitted.

    Examples
    --------
    >>> list(shard_range(5, ShardInfo(worker_id=1, num_workers=2)))
    [1, 3]
    """
    info = info or shard_info()
    return range(info.index, n_items, info.count)


def _mix(*parts: int) -> int:
    state = np.random.SeedSequence([p & _MASK64 for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 32 | int(state[1])) & ((1 << 63) - 1)


def shared_seed(seed: int, *, epoch: int = 0) -> int:
    """Seed that every worker and rank agrees on for one epoch.

    Use it for permutations of work that is then split by shard, so that the
    split stays disjoint and complete.
    """
    return _mix(seed, epoch, 0x5EED)


def worker_seed(seed: int, *, epoch: int = 0, info: ShardInfo | None = None) -> int:
    """Seed that differs per epoch, rank and worker (for local shuffle buffers).

    Examples
    --------
    >>> a = worker_seed(7, info=ShardInfo(worker_id=0, num_workers=2))
    >>> b = worker_seed(7, info=ShardInfo(worker_id=1, num_workers=2))
    >>> a != b
    True
    """
    info = info or shard_info()
    return _mix(seed, epoch, info.rank, info.worker_id, 0x3A7E)


def torch_generator(seed: int) -> torch.Generator:
    """Return a CPU ``torch.Generator`` seeded with ``seed``."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
