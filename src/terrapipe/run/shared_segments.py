"""Shared-memory segments a loader worker process reuses from batch to batch.

A worker process that collates its own batches (:mod:`terrapipe.run.workers`)
stacks them into shared memory. A new segment per tensor per batch costs, for
every batch: creating the segment (``ftruncate`` and ``mmap``), a page fault
for every page the stack writes (the kernel zeroes each one), handing the
segment's file descriptor to the main process (a connection to the worker's
resource-sharer thread per tensor), mapping it there and unmapping it when the
batch is dropped (measured on ``benchmarks/bench_loader.py``: 10 ms of the
worker's 23 ms per 12 MiB batch of eight 256² samples were segment set-up and
page faults). torch's ``DataLoader`` pays the same.

So a worker keeps its segments and stacks the next batches into them once the
main process has let go of them:

- :class:`SegmentPool` (in the worker) allocates the collate's tensors in its
  segments (:meth:`SegmentPool.allocate`, set as the collate's allocator by
  :func:`~terrapipe.tensor.collate.stacking_into`), on the thread collating a
  batch only (inside :meth:`SegmentPool.batch`): a ``tp.collate`` the pipe
  itself runs (in ``pmap``'s threads, which see the worker's context) gets a
  segment of its own, as two threads taking one slot mixed their samples.
  A segment is reused only
  when no tensor of the worker holds it and the main process has released
  every message it was lent in;
  otherwise a new one is made, up to ``slots`` segments and
  ``batches * (the largest batch's bytes)`` in all, and beyond that the tensor
  gets a segment of its own as before (never a wait, never a reuse of memory
  someone still reads).
- :class:`SegmentPickler` sends a pooled tensor as its slot number and layout,
  with the segment itself (its file descriptor) only until the main process
  has mapped it.
- :class:`SegmentMaps` (in the main process) keeps each slot's mapping and
  rebuilds the tensors on it (:func:`rebuilt`). Every message's tensors on a
  slot share one storage, whose release (the last tensor, view or numpy array
  of it garbage-collected, however long the consumer keeps it) counts one
  return of the slot in an array the two processes share; the worker counts
  the times it lent it.

The segments are torch's (``file_descriptor`` strategy: the name is removed
from ``/dev/shm`` at creation), so a crashed process leaves nothing behind.
Tensors rebuilt on a pooled segment do not report ``is_shared()``: sent on to
another process, torch copies them into a segment of their own.

Examples
--------
>>> import multiprocessing
>>> returns = multiprocessing.RawArray("q", 4)
>>> pool = SegmentPool(returns, batches=2)
>>> with pool.batch():
...     t = pool.allocate((2, 3), torch.float32)
>>> t.shape, t.dtype, pool.lent(t)
(torch.Size([2, 3]), torch.float32, 0)
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import math
import threading
import weakref
from collections.abc import Iterator, Sequence
from multiprocessing.reduction import ForkingPickler
from typing import Any

import numpy as np
import torch

from terrapipe.core.errors import WorkerError
from terrapipe.run.shared_memory import empty_shared

__all__ = ["SLOTS", "ResolvingPickler", "SegmentMaps", "SegmentPickler", "SegmentPool", "encode", "rebuilt"]

#: Most segments per worker.
SLOTS = 64


class _Segment:
    """One segment of a :class:`SegmentPool`: its storage, a byte view of it, and who holds it."""

    __slots__ = ("base", "bytes", "lends", "nbytes", "ptr", "tensor", "token", "used")

    def __init__(self, nbytes: int, returned: int) -> None:
        self.nbytes = nbytes
        self.tensor = empty_shared((nbytes,), torch.uint8)
        self.bytes = self.tensor.numpy()
        self.ptr = int(self.bytes.ctypes.data)
        self.used = False  # a tensor of the worker (the batch being made or sent) holds it
        self.token = 0  # which allocation ``used`` belongs to
        # the slot's returns counted by the main process when this segment was made, and the
        # messages it was lent in since: free when the returns have caught up with the lends
        self.base = self.lends = returned


class SegmentPool:
    """A worker process's reusable shared-memory segments (see the module docs).

    Parameters
    ----------
    returns
        A shared array of one count per slot (``multiprocessing.RawArray("q", n)``,
        zeros), in which the main process's :class:`SegmentMaps` counts the
        messages it let go of.
    batches
        Batches that may be in flight at once (the worker's queue, the loader's
        prefetch, the consumer's hands): the pool keeps at most that many of
        the largest batch's bytes.
    """

    def __init__(self, returns: Any, *, batches: int) -> None:
        self.returns = returns
        self.slots: list[_Segment | None] = [None] * len(returns)
        self.batches = max(1, int(batches))
        self.largest = 0  # bytes of the largest batch allocated so far
        self._current = 0  # bytes allocated by the batch being made
        self._by_ptr: dict[int, int] = {}
        self._tokens = 0
        # the thread inside batch(): the pipe's own tp.collate calls (in pmap's threads, or on this
        # thread between batches) get segments of their own, so two threads never take one slot
        self._owner: int | None = None
        self._lock = threading.Lock()  # slots are taken and lent under it, whoever asks

    @property
    def held(self) -> int:
        """Bytes of the segments kept."""
        return sum(s.nbytes for s in self.slots if s is not None)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Collate a batch: what this thread allocates here (its tensors copied in when sent too) counts as one.

        Only this thread, inside this context, allocates in the pool; any other
        allocation gets a segment of its own.
        """
        self._current = 0
        owner, self._owner = self._owner, threading.get_ident()
        try:
            yield
        finally:
            self._owner = owner

    def _count(self, nbytes: int) -> None:
        self._current += nbytes
        self.largest = max(self.largest, self._current)

    def _free(self, index: int) -> bool:
        segment = self.slots[index]
        if segment is None or segment.used:
            return False
        return bool(self.returns[index] == segment.lends)

    def allocate(self, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """Return an uninitialised contiguous tensor in a pooled segment (or one of its own).

        Examples
        --------
        >>> import multiprocessing
        >>> pool = SegmentPool(multiprocessing.RawArray("b", 2), batches=1)
        >>> pool.allocate((3,), torch.bfloat16).dtype
        torch.bfloat16
        """
        size = tuple(int(n) for n in shape)
        nbytes = math.prod(size) * torch.empty((), dtype=dtype).element_size()
        if nbytes == 0 or self._owner != threading.get_ident():
            return empty_shared(size, dtype)
        with self._lock:
            self._count(nbytes)
            index = self._take(nbytes)
            if index is None:  # every slot held, or the byte limit reached: a segment of its own
                return empty_shared(size, dtype)
            segment = self.slots[index]
            assert segment is not None
            self._tokens += 1
            token = segment.token = self._tokens
            segment.used = True
        view = segment.bytes[:nbytes]  # a new array: torch.from_numpy holds it as long as the tensor lives
        weakref.finalize(view, _unused, segment, token)
        return torch.from_numpy(view).view(dtype).view(size)

    def _take(self, nbytes: int) -> int | None:
        """Find a free slot with a segment of ``nbytes``, else make one in an empty or free slot (``None``: none)."""
        empty = spare = None
        for index, segment in enumerate(self.slots):
            if segment is None:
                empty = index if empty is None else empty
            elif self._free(index):
                if segment.nbytes == nbytes:
                    return index
                spare = index if spare is None else spare
        chosen = empty if empty is not None else spare
        if chosen is None:
            return None
        old = self.slots[chosen]
        limit = self.batches * self.largest
        if self.held - (old.nbytes if old is not None else 0) + nbytes > limit:
            return None
        if old is not None:
            del self._by_ptr[old.ptr]
        made = self.slots[chosen] = _Segment(nbytes, int(self.returns[chosen]))
        self._by_ptr[made.ptr] = chosen
        return chosen

    @staticmethod
    def _plain(tensor: torch.Tensor) -> bool:
        """Whether the pool may send ``tensor`` (a plain CPU tensor without grad, not sparse or quantized).

        A lazily conjugated or negated view (``x.conj()``, whose storage holds
        the values before the conjugation) is not: its slot and layout would
        arrive without the flag, as the values unconjugated.
        """
        return (
            type(tensor) is torch.Tensor
            and tensor.device.type == "cpu"
            and tensor.layout == torch.strided
            and not tensor.requires_grad
            and not tensor.is_quantized
            and not tensor.is_conj()
            and not tensor.is_neg()
        )

    def lent(self, tensor: torch.Tensor) -> int | None:
        """Return the slot whose segment holds ``tensor``'s storage, or ``None`` (not pooled)."""
        if not self._plain(tensor):
            return None
        storage = tensor.untyped_storage()
        index = self._by_ptr.get(storage.data_ptr())
        if index is None:
            return None
        segment = self.slots[index]
        if segment is None or storage.nbytes() > segment.nbytes:
            return None
        return index

    def _copy_in(self, tensor: torch.Tensor, copies: dict[int, int]) -> int | None:
        """Copy ``tensor``'s whole storage into a free segment (once per storage and message); its slot or ``None``.

        A tensor the collate did not allocate here (a number stacked by
        ``torch.tensor``, a custom collate's ``torch.stack``, a tail element)
        would otherwise cross in a segment of its own, made for it (torch
        copies it there). Views of one storage share one copy, as they share
        one segment in torch's way.
        """
        if not self._plain(tensor):
            return None
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        index = copies.get(key)
        if index is not None:
            return index
        nbytes = storage.nbytes()
        if nbytes == 0:
            return None
        self._count(nbytes)
        index = self._take(nbytes)
        if index is None:
            return None
        segment = self.slots[index]
        assert segment is not None
        source = torch.empty(0, dtype=torch.uint8).set_(storage)
        torch.from_numpy(segment.bytes[:nbytes]).copy_(source)
        copies[key] = index
        return index

    def reduce(
        self, tensor: torch.Tensor, sent: dict[int, int], copies: dict[int, int]
    ) -> tuple[Any, tuple[Any, ...]] | None:
        """Return what :class:`SegmentPickler` sends for ``tensor``: its slot and layout (``None``: as torch does).

        ``sent`` gathers the slots of one message, so that a message that is
        not sent gives them back (:meth:`unsend`);
        ``copies``, the slots the message's other tensors were copied into.
        """
        with self._lock:
            index = self.lent(tensor)
            if index is None:
                index = self._copy_in(tensor, copies)
            if index is None:
                return None
            segment = self.slots[index]
            assert segment is not None
            if index not in sent:
                sent[index] = 1
                segment.lends += 1
            mapped = self.returns[index] > segment.base  # let go of once: the main process maps it
        storage = None if mapped else segment.tensor.untyped_storage()
        layout = (tensor.storage_offset(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        return rebuilt, (index, storage, segment.nbytes, *layout)

    def unsend(self, sent: dict[int, int]) -> None:
        """Give back the slots of a message that was not sent."""
        with self._lock:
            for index in sent:
                segment = self.slots[index]
                if segment is not None:
                    segment.lends -= 1


def _unused(segment: _Segment, token: int) -> None:
    if segment.token == token:
        segment.used = False


def _as_sent(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


class ResolvingPickler(ForkingPickler):
    """torch's pickler for messages between processes, sending lazily conjugated or negated tensors resolved.

    torch's own reduction of a tensor sends its storage and layout, not its
    conjugate or negative bit: ``x.conj()`` (complex SAR data) arrived as
    ``x``, silently. Such a tensor is sent as ``x.resolve_conj().resolve_neg()``.
    """

    def reducer_override(self, obj: Any) -> Any:
        """Send a conjugated or negated view as a resolved copy; everything else as torch sends it."""
        if isinstance(obj, torch.Tensor) and (obj.is_conj() or obj.is_neg()):
            return _as_sent, (obj.resolve_conj().resolve_neg(),)
        return NotImplemented


class SegmentPickler(ResolvingPickler):
    """torch's pickler for messages between processes, sending pooled tensors as slots of a :class:`SegmentPool`."""

    def __init__(self, file: Any, pool: SegmentPool, sent: dict[int, int]) -> None:
        super().__init__(file)
        self._pool = pool
        self._sent = sent
        self._copies: dict[int, int] = {}

    def reducer_override(self, obj: Any) -> Any:
        """Send a pooled tensor as its slot and layout; everything else as :class:`ResolvingPickler` does."""
        if isinstance(obj, torch.Tensor):
            reduced = self._pool.reduce(obj, self._sent, self._copies)
            if reduced is not None:
                return reduced
        return super().reducer_override(obj)


def encode(message: Any, pool: SegmentPool | None) -> tuple[bytes, dict[int, int]]:
    """Pickle ``message`` for the main process; return the bytes and the slots it lends.

    Examples
    --------
    >>> import multiprocessing
    >>> pool = SegmentPool(multiprocessing.RawArray("b", 2), batches=1)
    >>> data, sent = encode({"x": pool.allocate((2,), torch.int64)}, pool)
    >>> sent
    {0: 1}
    """
    if pool is None:
        plain = io.BytesIO()
        ResolvingPickler(plain).dump(message)
        return plain.getvalue(), {}
    sent: dict[int, int] = {}
    buffer = io.BytesIO()
    try:
        SegmentPickler(buffer, pool, sent).dump(message)
    except BaseException:
        pool.unsend(sent)
        raise
    return buffer.getvalue(), sent


class SegmentMaps:
    """The main process's mappings of one worker's segments (see the module docs).

    Parameters
    ----------
    returns
        The array of counts shared with the worker's :class:`SegmentPool`.
    worker
        The worker's number (for messages).
    """

    def __init__(self, returns: Any, worker: int) -> None:
        self.returns = returns
        self.worker = worker
        self.maps: dict[int, tuple[np.ndarray, int]] = {}

    @contextlib.contextmanager
    def receiving(self) -> Iterator[None]:
        """Rebuild the pooled tensors of one message on these mappings (around ``ForkingPickler.loads``)."""
        token = _MAPS.set((self, {}))
        try:
            yield
        finally:
            _MAPS.reset(token)

    def storage(
        self,
        index: int,
        storage: torch.UntypedStorage | None,
        nbytes: int,
        message: dict[int, torch.UntypedStorage],
    ) -> torch.UntypedStorage:
        """Return the storage of slot ``index`` for the message being received (one per slot and message)."""
        shared = message.get(index)
        if shared is not None:
            return shared
        if storage is not None:  # a new segment in this slot: map it (the old mapping goes with its batches)
            self.maps[index] = (torch.empty(0, dtype=torch.uint8).set_(storage).numpy(), nbytes)
        mapped = self.maps.get(index)
        if mapped is None or mapped[1] != nbytes:
            msg = (
                f"loader worker {self.worker} sent a batch in shared-memory segment {index}, which the main "
                "process has not mapped; this is a bug in terrapipe (method='thread' avoids it)"
            )
            raise WorkerError(msg)
        view = mapped[0][:nbytes]  # a new array: its storage's release frees the slot
        weakref.finalize(view, _returned, self.returns, index)
        shared = message[index] = torch.from_numpy(view).untyped_storage()
        return shared


def _returned(returns: Any, index: int) -> None:
    # finalizers of one slot's messages in two threads at once may lose a count: the slot then
    # stays lent (a segment less for the pool), never reused while read
    returns[index] += 1


#: The maps of the message being unpickled, and the storages its tensors share (one per slot).
_MAPS: contextvars.ContextVar[tuple[SegmentMaps, dict[int, torch.UntypedStorage]] | None] = (
    contextvars.ContextVar("terrapipe_segment_maps", default=None)
)


def rebuilt(
    index: int,
    storage: torch.UntypedStorage | None,
    nbytes: int,
    offset: int,
    shape: tuple[int, ...],
    stride: tuple[int, ...],
    dtype: torch.dtype,
) -> torch.Tensor:
    """Rebuild a tensor a worker sent in its pooled segment ``index`` (called by ``ForkingPickler.loads``)."""
    receiving = _MAPS.get()
    if receiving is None:
        raise WorkerError("a loader batch in a pooled shared-memory segment was unpickled outside the loader")
    maps, message = receiving
    base = maps.storage(index, storage, nbytes, message)
    itemsize = torch.empty((), dtype=dtype).element_size()
    extent = offset + sum((n - 1) * s for n, s in zip(shape, stride, strict=True)) + 1 if all(shape) else 0
    if offset < 0 or extent * itemsize > nbytes:
        raise WorkerError(f"loader worker {maps.worker} sent a tensor outside its shared-memory segment")
    return torch.empty(0, dtype=dtype).set_(base, offset, shape, stride)
