"""``pmap``: apply a function to every element in a pool of threads, with bounded work in flight.

GDAL, zarr/numcodecs and torch release the GIL while they work, so threads
overlap reads and decoding without the cost of processes. With
``executor=`` the calls run elsewhere instead: in any
``concurrent.futures.Executor`` (a process pool) or on a Dask cluster
(a ``distributed.Client``), still streamed back in order with at most
``max_in_flight`` calls submitted.

Examples
--------
>>> import terrapipe as tp
>>> import terrapipe.run
>>> list(tp.from_items(range(6)).pmap(lambda x: x * x, workers=3))
[0, 1, 4, 9, 16, 25]
>>> from concurrent.futures import ThreadPoolExecutor
>>> with ThreadPoolExecutor(2) as pool:
...     list(tp.from_items(range(4)).pmap(abs, executor=pool))
[0, 1, 2, 3]
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, TypeVar

from terrapipe.core.checks import check_positive_int
from terrapipe.core.errors import InvalidArgumentError, PipelineStateError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.renamed import pickled_names
from terrapipe.run._describe import describe_element, describe_fn
from terrapipe.run.pipe_state import ReadAheadState, ResumePlan, resume_plan

__all__ = ["ParallelMap"]

T = TypeVar("T")
U = TypeVar("U")


def _timed_call(fn: Callable[[T], U], element: T) -> tuple[U, float]:
    start = time.perf_counter()
    result = fn(element)
    return result, time.perf_counter() - start


class _Submitter:
    """Submit calls to the pool of one pass: own threads, a user's executor, or a Dask client."""

    def __init__(self, executor: Any, workers: int) -> None:
        self.owned: ThreadPoolExecutor | None = None
        self.client: Any = None
        self.executor: Executor | None = None
        if executor is None:
            self.owned = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="terrapipe-pmap")
            self.executor = self.owned
        elif isinstance(executor, Executor):
            self.executor = executor
        else:
            self.client = executor

    def submit(self, fn: Callable[[T], U], element: T) -> Any:
        if self.executor is None:
            return self.client.submit(_timed_call, fn, element, pure=False)
        if isinstance(self.executor, ThreadPoolExecutor):  # threads see the caller's context (shard scope)
            return self.executor.submit(contextvars.copy_context().run, _timed_call, fn, element)
        return self.executor.submit(_timed_call, fn, element)

    def wait_any(self, futures: list[Any]) -> None:
        if self.client is not None:
            require("distributed", feature="pmap(executor=client)").wait(futures, return_when=FIRST_COMPLETED)
        else:
            wait(futures, return_when=FIRST_COMPLETED)

    def close(self, futures: list[Any]) -> None:
        if self.client is not None:
            if futures:
                self.client.cancel(futures)
            return
        for future in futures:
            future.cancel()
        if self.owned is not None:
            self.owned.shutdown(wait=True, cancel_futures=True)


class _SharedExecutor:
    """A user's executor held by a stage: copies of the pipe (one per loader worker) share it."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    def __copy__(self) -> _SharedExecutor:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedExecutor:
        return self


def _executor_slots(executor: Any) -> int | None:
    """Threads or processes an executor or cluster runs at once, when it says."""
    if executor is None:
        return None
    if isinstance(executor, Executor):
        slots = getattr(executor, "_max_workers", None)
        return slots if isinstance(slots, int) and slots > 0 else None
    return max(1, sum(int(n) for n in executor.nthreads().values()))


def _check_executor(executor: Any) -> Any:
    if executor is None or isinstance(executor, Executor):
        return executor
    if type(executor).__module__.split(".")[0] == "distributed":
        distributed = require("distributed", feature="pmap(executor=client)")
        if isinstance(executor, distributed.Client):
            return executor
    msg = (
        "pmap executor must be None (a thread pool of `workers` threads), a concurrent.futures.Executor "
        f"or a distributed.Client, got {executor!r}"
    )
    raise InvalidArgumentError(msg)


def _check_positive(name: str, value: Any) -> int:
    return check_positive_int(value, f"pmap {name}")


@register("pmap")
class ParallelMap(ReadAheadState, Stage[U]):
    """Apply ``fn`` to each element of ``source`` in ``workers`` threads, or on an executor.

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
        With a process pool or a Dask client it must pickle (cloudpickle
        for Dask: lambdas are fine), and so must the elements and results.
    workers
        Number of threads, >= 1 (of the pool the stage starts when no
        ``executor`` is given).
    ordered
        ``True`` (default): yield results in the source's order. ``False``:
        yield each result as soon as it is ready (faster when durations vary,
        but the order depends on timing and the stage cannot be resumed).
    max_in_flight
        Most elements submitted and not yet yielded; ``None`` means twice the
        threads (``workers``, the executor's workers, or the cluster's threads).
    executor
        ``None`` (default): a pool of ``workers`` threads, started per pass.
        A ``concurrent.futures.Executor`` (e.g. a ``ProcessPoolExecutor``) or a
        ``distributed.Client``: calls are submitted there; the stage never
        shuts it down, and cancels the calls it no longer needs when the pass
        ends or the consumer stops early.

    Raises
    ------
    InvalidArgumentError
        For a non-callable ``fn``, non-positive sizes or another kind of executor.

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
        executor: Any = None,
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise InvalidArgumentError(f"pmap fn must be callable, got {fn!r}")
        self.source = source
        self.fn = fn
        self.workers = _check_positive("workers", workers)
        self.ordered = bool(ordered)
        self._shared_executor = _SharedExecutor(_check_executor(executor))
        slots = _executor_slots(executor) or self.workers
        self.max_in_flight = (
            2 * slots if max_in_flight is None else _check_positive("max_in_flight", max_in_flight)
        )
        self._reset_read_ahead_state()

    @property
    def executor(self) -> Any:
        """The executor or client given (``None``: the stage's own threads)."""
        return self._shared_executor.executor

    # -- iteration ------------------------------------------------------
    def __iter__(self) -> Iterator[U]:
        plan = resume_plan(self.source) if self.ordered else None
        self._snapshot = self._initial_snapshot(plan)
        pending: deque[tuple[Any, Any, list[dict[str, Any]] | None]] = deque()
        pool = _Submitter(self.executor, self.workers)
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
                    pending.append((pool.submit(self.fn, element), element, snapshot))
                if not pending:
                    return
                future, element, snapshot = self._next_done(pending, pool)
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
            pool.close([future for future, _, _ in pending])

    def _next_done(
        self, pending: deque[tuple[Any, Any, list[dict[str, Any]] | None]], pool: _Submitter
    ) -> tuple[Any, Any, list[dict[str, Any]] | None]:
        if self.ordered:
            return pending.popleft()
        pool.wait_any([entry[0] for entry in pending])
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


if not TYPE_CHECKING:  # the names a previous release's pickles gave its classes here (renamed.PICKLED)
    __getattr__ = pickled_names(__name__)
