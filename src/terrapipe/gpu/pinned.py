"""A bounded pool of page-locked (pinned) host buffers, reused across batches.

A host-to-GPU copy is asynchronous only from pinned memory. Pinning a new
buffer for every batch costs a page-locked allocation each time;
:class:`PinnedPool` keeps the buffers it hands out, keyed by
``(shape, dtype)``, so that the next batch of the same shape reuses one.

Rules
-----
- **Never reused too early.** A buffer is given back with :meth:`PinnedPool.release`
  together with the event recorded after the copy that reads it (a
  ``torch.cuda.Event``; ``None`` when the copy has already finished, e.g. a
  blocking copy or the CPU). :meth:`PinnedPool.acquire` hands a released
  buffer out again only once ``event.query()`` is true, or after waiting on
  it with ``event.synchronize()`` when the pool is full.
- **Bounded.** The buffers the pool owns (handed out or free) never hold more
  than ``max_bytes`` bytes nor number more than ``max_buffers``. When a new
  buffer would pass a bound, free buffers are dropped, least recently
  released first (waiting for their copies where needed). A request that still
  cannot fit (larger than ``max_bytes``, or every buffer handed out) gets a
  one-off buffer the pool does not keep (counted in ``stats.unpooled``).
- **Allocator.** Buffers come from ``allocator(shape, dtype)``: by default
  ``torch.empty(..., pin_memory=True)``, which needs CUDA. Tests and
  CPU-only code pass another (``torch.empty``), which exercises the same
  reuse and bound logic.

torch's own pinned allocator also caches freed blocks; the pool adds the
explicit bound, per-shape reuse without a free/alloc round trip, and the
event rule above that does not depend on torch's internals.

Examples
--------
>>> import torch
>>> pool = PinnedPool(max_bytes=1024, allocator=lambda shape, dtype: torch.empty(shape, dtype=dtype))
>>> a = pool.acquire((4, 4), torch.float32)
>>> pool.release(a)                      # its copy is done (no event)
>>> b = pool.acquire((4, 4), torch.float32)
>>> b.data_ptr() == a.data_ptr(), pool.stats.hits, pool.stats.allocations
(True, 1, 1)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from terrapipe.core.checks import check_int
from terrapipe.core.errors import InvalidArgumentError

__all__ = ["Allocator", "CopyEvent", "PinnedPool", "PinnedPoolStats", "pinned_allocator"]

#: Makes an uninitialised host tensor of a shape and dtype.
Allocator = Callable[[tuple[int, ...], torch.dtype], torch.Tensor]

#: Default bound of the bytes a pool keeps (256 MiB).
DEFAULT_MAX_BYTES = 256 * 2**20
#: Default bound of the number of buffers a pool keeps.
DEFAULT_MAX_BUFFERS = 32


@runtime_checkable
class CopyEvent(Protocol):
    """What :meth:`PinnedPool.release` needs of an event (``torch.cuda.Event`` has it)."""

    def query(self) -> bool:
        """Return whether the work recorded before the event has finished."""
        ...

    def synchronize(self) -> None:
        """Wait until the work recorded before the event has finished."""
        ...


def pinned_allocator(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Allocate a page-locked host tensor (needs a CUDA build and device)."""
    return torch.empty(shape, dtype=dtype, pin_memory=True)


@dataclass
class PinnedPoolStats:
    """Counters of a :class:`PinnedPool`.

    Attributes
    ----------
    hits
        Requests served by a pooled buffer.
    allocations
        Buffers allocated and kept by the pool.
    unpooled
        One-off buffers allocated because the request did not fit the bounds.
    evictions
        Free buffers dropped to make room.
    waits
        Times the pool waited for a copy to finish before reusing or dropping a buffer.
    """

    hits: int = 0
    allocations: int = 0
    unpooled: int = 0
    evictions: int = 0
    waits: int = 0


_Key = tuple[tuple[int, ...], torch.dtype]


@dataclass
class _Free:
    key: _Key
    buffer: torch.Tensor
    event: CopyEvent | None

    def ready(self) -> bool:
        return self.event is None or bool(self.event.query())


def _nbytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    count = 1
    for size in shape:
        count *= size
    return count * dtype.itemsize


class PinnedPool:
    """Host buffers keyed by ``(shape, dtype)``, reused once their copies finish (see the module doc).

    Parameters
    ----------
    max_bytes
        Most bytes the pool keeps, in buffers handed out and free (256 MiB).
    max_buffers
        Most buffers the pool keeps (32).
    allocator
        ``allocator(shape, dtype) -> Tensor``; default :func:`pinned_allocator`
        (page-locked, needs CUDA).

    Raises
    ------
    InvalidArgumentError
        For bounds that are not positive integers or an allocator that is not callable.

    Notes
    -----
    A buffer handed out and never released stays owned (and counted in the
    bounds) for the pool's life. The pool is thread-safe, but meant for one
    stream of batches: each
    pipe copy (one per loader worker) makes its own. It is never pickled
    with its buffers: :class:`~terrapipe.gpu.transfer.DeviceMover` makes it
    in the process that uses it.
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_buffers: int = DEFAULT_MAX_BUFFERS,
        allocator: Allocator | None = None,
    ) -> None:
        max_bytes = check_int(max_bytes, "PinnedPool max_bytes", minimum=1)
        max_buffers = check_int(max_buffers, "PinnedPool max_buffers", minimum=1)
        if allocator is not None and not callable(allocator):
            raise InvalidArgumentError(f"PinnedPool allocator must be callable, got {allocator!r}")
        self.max_bytes = max_bytes
        self.max_buffers = max_buffers
        self.allocator: Allocator = allocator if allocator is not None else pinned_allocator
        self.stats = PinnedPoolStats()
        self._lock = threading.Lock()
        #: id(buffer) -> (key, nbytes, buffer) of every buffer the pool owns.
        self._owned: dict[int, tuple[_Key, int, torch.Tensor]] = {}
        #: Released buffers, least recently released first.
        self._free: OrderedDict[int, _Free] = OrderedDict()
        self._bytes = 0

    # -- sizes ------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers the pool owns (handed out and free)."""
        return self._bytes

    def __len__(self) -> int:
        """Return the number of buffers the pool owns (handed out and free)."""
        return len(self._owned)

    @property
    def free_count(self) -> int:
        """Number of released buffers waiting for reuse."""
        return len(self._free)

    # -- use --------------------------------------------------------------
    def acquire(self, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """Return a buffer of ``shape`` and ``dtype`` that no unfinished copy reads.

        Parameters
        ----------
        shape
            The buffer's shape.
        dtype
            The buffer's torch dtype.

        Returns
        -------
        torch.Tensor
            A pooled buffer (give it back with :meth:`release`) or, when it
            cannot fit the bounds, a one-off buffer (releasing it is a no-op).
            Its contents are undefined.
        """
        key: _Key = (tuple(int(s) for s in shape), dtype)
        need = _nbytes(key[0], dtype)
        with self._lock:
            reused = self._take_ready(key)
            if reused is not None:
                return reused
            if self._make_room(need, wait=False):
                return self._allocate(key, need)
            same = next((entry_id for entry_id, entry in self._free.items() if entry.key == key), None)
            if same is not None:  # the pool is full: wait for the oldest copy of this shape
                entry = self._free.pop(same)
                assert entry.event is not None  # a ready entry would have been taken
                entry.event.synchronize()
                self.stats.waits += 1
                self.stats.hits += 1
                return entry.buffer
            if self._make_room(need, wait=True):
                return self._allocate(key, need)
            self.stats.unpooled += 1
            return self.allocator(key[0], dtype)

    def release(self, buffer: torch.Tensor, event: CopyEvent | None = None) -> None:
        """Give ``buffer`` back; it is reused once ``event`` (if any) has completed.

        Parameters
        ----------
        buffer
            A buffer from :meth:`acquire`. One-off buffers are dropped.
        event
            Recorded on the stream of the last copy reading ``buffer``
            (``None``: that copy has finished).

        Raises
        ------
        InvalidArgumentError
            When ``event`` has no ``query``/``synchronize`` or the buffer is released twice.
        """
        if event is not None and not isinstance(event, CopyEvent):
            msg = f"PinnedPool.release event must have query() and synchronize(), got {event!r}"
            raise InvalidArgumentError(msg)
        with self._lock:
            owned = self._owned.get(id(buffer))
            if owned is None or owned[2] is not buffer:
                return
            if id(buffer) in self._free:
                raise InvalidArgumentError("PinnedPool.release: this buffer was already released")
            self._free[id(buffer)] = _Free(owned[0], buffer, event)

    def clear(self) -> None:
        """Drop every free buffer, waiting for their copies; buffers handed out stay owned."""
        with self._lock:
            while self._free:
                self._evict(next(iter(self._free)))

    # -- internals (lock held) ----------------------------------------------
    def _take_ready(self, key: _Key) -> torch.Tensor | None:
        for entry_id, entry in self._free.items():
            if entry.key == key and entry.ready():
                del self._free[entry_id]
                self.stats.hits += 1
                return entry.buffer
        return None

    def _fits(self, need: int) -> bool:
        return self._bytes + need <= self.max_bytes and len(self._owned) < self.max_buffers

    def _make_room(self, need: int, *, wait: bool) -> bool:
        """Drop free buffers, oldest first, until ``need`` fits; return whether it does.

        Without ``wait`` only buffers whose copies have finished are dropped.
        """
        candidates = [i for i, e in self._free.items() if wait or e.ready()]
        freeable = sum(self._owned[i][1] for i in candidates)
        if (
            self._bytes - freeable + need > self.max_bytes
            or len(self._owned) - len(candidates) >= self.max_buffers
        ):
            return False  # dropping them all would not do: keep them
        for entry_id in candidates:
            if self._fits(need):
                break
            self._evict(entry_id)
        return True

    def _evict(self, entry_id: int) -> None:
        entry = self._free.pop(entry_id)
        if not entry.ready():
            assert entry.event is not None
            entry.event.synchronize()
            self.stats.waits += 1
        _, nbytes, _ = self._owned.pop(entry_id)
        self._bytes -= nbytes
        self.stats.evictions += 1

    def _allocate(self, key: _Key, need: int) -> torch.Tensor:
        buffer = self.allocator(key[0], key[1])
        self._owned[id(buffer)] = (key, need, buffer)
        self._bytes += need
        self.stats.allocations += 1
        return buffer
