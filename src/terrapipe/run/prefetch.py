"""``prefetch``: read ahead of the consumer in a background thread, into a bounded buffer.

Examples
--------
>>> import terrapipe as tp
>>> import terrapipe.run
>>> list(tp.from_items(range(5)).map(str).prefetch(2))
['0', '1', '2', '3', '4']
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from terrapipe.core.checks import check_positive_int
from terrapipe.core.errors import WorkerError
from terrapipe.core.pipe import IterDataPipe, Stage, pass_context, register
from terrapipe.core.renamed import pickled_names
from terrapipe.run.pipe_state import ReadAheadState, ResumePlan, resume_plan

__all__ = ["Prefetch"]

T = TypeVar("T")

_POLL = 0.05
_ITEM, _END, _ERROR = 0, 1, 2

#: The reading thread of each prefetcher's current pass (kept off the instance: copies never see it).
_READERS: weakref.WeakKeyDictionary[Any, tuple[threading.Thread, threading.Event]] = (
    weakref.WeakKeyDictionary()
)


@register("prefetch")
class Prefetch(ReadAheadState, Stage[T]):
    """Yield the elements of ``source``, read ahead by a background thread.

    Parameters
    ----------
    source
        The pipe to read ahead of.
    size
        Most elements waiting in the buffer (>= 1). The reading thread holds
        at most one more while it waits for room, so at most ``size + 1``
        elements are read and not yet yielded.

    Raises
    ------
    InvalidArgumentError
        For a size that is not a positive int.

    Notes
    -----
    The thread starts with the pass and stops when the pass ends or the
    consumer stops early. An exception upstream is re-raised to the consumer
    unchanged, with a note. The stage is
    :class:`~terrapipe.core.state.Stateful` when its source is: the state is
    the source's position right after the element last yielded (captured by
    the reading thread as it read it), so elements in the buffer are read
    again after a resume. ``len()`` is the source's length.
    """

    _state_label = "prefetch"

    def __init__(self, source: IterDataPipe[T], size: int = 2) -> None:
        super().__init__()
        self.source = source
        self.size = check_positive_int(size, "prefetch size")
        self._reset_read_ahead_state()

    def __iter__(self) -> Iterator[T]:
        # A new pass replaces one still open in this thread: stop the old reading thread first, so that
        # the source's old pass ends before the new reader starts one (a pipe runs one pass at a time).
        previous = _READERS.pop(self, None)
        if previous is not None:
            previous[1].set()
            previous[0].join()
        plan = resume_plan(self.source)
        self._snapshot = self._initial_snapshot(plan)
        buffer: queue.Queue[tuple[int, Any, Any]] = queue.Queue(maxsize=self.size)
        stop = threading.Event()
        context = pass_context()  # the source's pass belongs to the thread running this one
        reader = threading.Thread(
            target=context.run,
            args=(_read_ahead, self.source, plan, buffer, stop),
            name="terrapipe-prefetch",
            daemon=True,
        )
        _READERS[self] = (reader, stop)
        reader.start()
        self._in_pass = True
        try:
            while True:
                try:
                    kind, payload, snapshot = buffer.get(timeout=_POLL)
                except queue.Empty:
                    if not reader.is_alive() and buffer.empty():
                        raise WorkerError("prefetch: the reading thread ended without a result") from None
                    continue
                if kind == _END:
                    return
                if kind == _ERROR:
                    payload.add_note("raised upstream of prefetch, in its reading thread")
                    raise payload
                self._snapshot = snapshot
                self.stats.elements += 1
                yield payload
        finally:
            self._in_pass = False
            stop.set()
            reader.join()
            if _READERS.get(self, (None,))[0] is reader:
                del _READERS[self]


def _put(
    buffer: queue.Queue[tuple[int, Any, Any]], message: tuple[int, Any, Any], stop: threading.Event
) -> bool:
    while not stop.is_set():
        try:
            buffer.put(message, timeout=_POLL)
        except queue.Full:
            continue
        return True
    return False


def _read_ahead(
    source: IterDataPipe[Any],
    plan: ResumePlan,
    buffer: queue.Queue[tuple[int, Any, Any]],
    stop: threading.Event,
) -> None:
    iterator = iter(source)
    try:
        for element in iterator:
            if not _put(buffer, (_ITEM, element, plan.capture()), stop):
                return
        _put(buffer, (_END, None, None), stop)
    except Exception as err:
        _put(buffer, (_ERROR, err, None), stop)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


if not TYPE_CHECKING:  # the names a previous release's pickles gave its classes here (renamed.PICKLED)
    __getattr__ = pickled_names(__name__)
