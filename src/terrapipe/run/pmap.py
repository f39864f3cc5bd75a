"""``pmap``: apply a function to every element in a pool of threads, with bounded work in flight.

GDAL, zarr/numcodecs and torch release the GIL while they work, so threads
overlap reads and decoding without the cost of processes.

Examples
--------
>>> import terrapipe as tp
>>> import terrapipe.run
>>> list(tp.from_items(range(6)).pmap(lambda x: x * x, workers=3))
[0, 1, 4, 9, 16, 25]
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from terrapipe.core.errors import InvalidArgumentError, PipelineStateError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.run._describe import describe_element, describe_fn
from terrapipe.run.pipe_state import ReadAheadState, ResumePlan, resume_plan

__all__ = ["ParallelMapper"]

T = TypeVar("T")
U = TypeVar("U")


def _timed_call(fn: Callable[[T], U], element: T) -> tuple[U, float]:
    start = time.perf_counter()
    result = fn(element)
    return result, time.perf_counter() - start


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"pmap {name} must be a positive int, got {value!r}")
    return value


@register("pmap")
class ParallelMapper(ReadAheadState, Stage[U]):
    """Apply ``fn`` to each element of ``source`` in ``workers`` threads.

    The source is read in the consumer's thread, only as far as needed to keep
    ``max_in_flight`` calls submitted or finished-but-not-yet-yielded; that is
    the bound on the elements this stage holds. Threads start with the pass
    and stop when it ends or the consumer stops early (the calls still
    running finish first, unfinished ones are cancelled).

    Parameters
    ----------
    source
        The pipe to map over.
    fn
        The function; it runs in the pool's threads, so it must be thread
        safe (open files per call or per thread, not once for all threads).
    workers
        Number of threads, >= 1.
    ordered
        ``True`` (default): yield results in the source's order. ``False``:
        yield each result as soon as it is ready (faster when durations vary,
        but the order depends on timing and the stage cannot be resumed).
    max_in_flight
        Most elements submitted and not yet yielded; ``None`` means ``2 * workers``.

    Raises
    ------
    InvalidArgumentError
        For a non-callable ``fn`` or non-positive sizes.

    Notes
    -----
    An exception raised by ``fn`` is re-raised to the consumer unchanged, with
    a note naming the function and the element. ``stats.seconds`` adds up the
    time spent inside ``fn`` over all threads. With ``ordered=True`` the stage
    is :class:`~terrapipe.core.state.Stateful`: its state is the state of the
    source's stateful stages right after the element last yielded was read, so
    a resume re-submits exactly the elements that were in flight.
    ``len()`` is the source's length.
    """

    _state_label = "pmap"

    def __init__(
        self,
        source: IterDataPipe[T],
        fn: Callable[[T], U],
        *,
        workers: int = 4,
        ordered: bool = True,
        max_in_flight: int | None = None,
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise InvalidArgumentError(f"pmap fn must be callable, got {fn!r}")
        self.source = source
        self.fn = fn
        self.workers = _check_positive("workers", workers)
        self.ordered = bool(ordered)
        self.max_in_flight = (
            2 * self.workers if max_in_flight is None else _check_positive("max_in_flight", max_in_flight)
        )
        self._reset_read_ahead_state()

    # -- iteration ------------------------------------------------------
    def __iter__(self) -> Iterator[U]:
        plan = resume_plan(self.source) if self.ordered else None
        self._snapshot = self._initial_snapshot(plan)
        pending: deque[tuple[Future[tuple[U, float]], Any, list[dict[str, Any]] | None]] = deque()
        executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="terrapipe-pmap")
        source_it = iter(self.source)
        exhausted = False
        self._in_pass = True
        try:
            while True:
                while not exhausted and len(pending) < self.max_in_flight:
                    try:
                        element = next(source_it)
                    except StopIteration:
                        exhausted = True
                        break
                    snapshot = plan.capture() if plan is not None else None
                    context = contextvars.copy_context()
                    future = executor.submit(context.run, _timed_call, self.fn, element)
                    pending.append((future, element, snapshot))
                if not pending:
                    return
                future, element, snapshot = self._next_done(pending)
                try:
                    result, seconds = future.result()
                except Exception as err:
                    err.add_note(
                        f"pmap: {describe_fn(self.fn)} failed on element {describe_element(element)}"
                    )
                    raise
                self._snapshot = snapshot
                self.stats.elements += 1
                self.stats.seconds += seconds
                yield result
        finally:
            self._in_pass = False
            for future, _, _ in pending:
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)

    def _next_done(
        self, pending: deque[tuple[Future[tuple[U, float]], Any, list[dict[str, Any]] | None]]
    ) -> tuple[Future[tuple[U, float]], Any, list[dict[str, Any]] | None]:
        if self.ordered:
            return pending.popleft()
        wait([entry[0] for entry in pending], return_when=FIRST_COMPLETED)
        for index, entry in enumerate(pending):
            if entry[0].done():
                del pending[index]
                return entry
        return pending.popleft()  # pragma: no cover - wait() guarantees one is done

    # -- state ----------------------------------------------------------
    def can_resume(self) -> bool:
        """Whether :meth:`state_dict` works: ordered output and a resumable source."""
        return self.ordered and super().can_resume()

    def _check_resumable(self) -> ResumePlan:
        if not self.ordered:
            raise PipelineStateError(
                "pmap(ordered=False) yields in completion order and cannot be resumed exactly"
            )
        return super()._check_resumable()
