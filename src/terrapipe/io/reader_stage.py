"""The base of the reader stages: open one thing per element, apply ``on_error``.

``read_raster``, ``read_zarr``, ``open_xarray`` and ``read_vector`` all turn
each element of their source (a path, URL, store or STAC asset) into one
opened object with a plain function (``open_raster``, ...). This class holds
what they share: the ``on_error`` policy, the counters, and ``len()``.

Examples
--------
>>> import terrapipe as tp
>>> from terrapipe.io.reader_stage import ReaderStage
>>> class Upper(ReaderStage[str]):
...     def open_one(self, element):
...         return element.upper()
>>> list(Upper(tp.from_items(["a", "b"])))
['A', 'B']
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from terrapipe.core.errors import TerrapipeError
from terrapipe.core.on_error import OnError, check_on_error, handle_error
from terrapipe.core.pipe import IterDataPipe, Stage

__all__ = ["ReaderStage"]

T = TypeVar("T")


class ReaderStage(Stage[T]):
    """Yield ``self.open_one(element)`` for each element of ``source``.

    Parameters
    ----------
    source
        A pipe of paths, URLs, stores or assets.
    on_error
        ``"raise"`` (default): a :class:`~terrapipe.core.errors.TerrapipeError`
        stops the pipe; ``"skip"``: the element is dropped and counted in
        ``stats.skipped``; ``"warn"``: the same plus a ``SkippedElementWarning``.

    Notes
    -----
    ``len()`` is the source's length with ``on_error="raise"``; with
    ``"skip"``/``"warn"`` it is unknown (``TypeError``), since elements may drop.
    """

    #: Elements opened ahead on a thread while the current one is used (0: each in its turn); a
    #: subclass whose ``open_one`` may run on another thread sets it (``read_zarr``: 1). Private:
    #: how the stage runs, not what it yields (kept out of cache keys).
    _opens_ahead: int = 0

    def __init__(self, source: IterDataPipe[Any], *, on_error: OnError = "raise") -> None:
        super().__init__()
        self.source = source
        self.on_error = check_on_error(on_error)

    def open_one(self, element: Any) -> T:  # pragma: no cover - subclasses implement
        """Open one element of the source."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[T]:
        if self._opens_ahead > 0:
            yield from self._opened_ahead(self._opens_ahead)
            return
        for element in self.source:
            started = time.perf_counter()
            try:
                opened = self.open_one(element)
            except TerrapipeError as err:
                self.stats.seconds += time.perf_counter() - started
                handle_error(err, on_error=self.on_error, stats=self.stats)
                continue
            self.stats.seconds += time.perf_counter() - started
            self.stats.elements += 1
            yield opened

    def _timed_open(self, element: Any) -> tuple[Any, TerrapipeError | None, float]:
        started = time.perf_counter()
        try:
            return self.open_one(element), None, time.perf_counter() - started
        except TerrapipeError as err:
            return None, err, time.perf_counter() - started

    def _opened_ahead(self, ahead: int) -> Iterator[T]:
        """Open up to ``ahead`` elements after the current one on a thread; yield them in order.

        A catalog of small scenes otherwise waits for each scene's open (its
        metadata and coordinates) between the reads of one scene and the next
        (docs/benchmarks/chip.md, many small scenes). The source is pulled here,
        in order, on this thread; an error of the source comes after the
        elements pulled before it. An element's error is handled
        (``on_error``) in its turn, as is any other exception of ``open_one``.
        Each open runs in a copy of this thread's context (shard scope).
        """
        pool = ThreadPoolExecutor(1, thread_name_prefix="terrapipe-open-ahead")
        pending: deque[Future[tuple[Any, TerrapipeError | None, float]]] = deque()  # bounded: ahead + 1
        source, pulling, failure = iter(self.source), True, None
        try:
            while True:
                while pulling and len(pending) <= ahead:
                    try:
                        element = next(source)
                    except StopIteration:
                        pulling = False
                        break
                    except Exception as err:  # raised after the elements pulled before it
                        pulling, failure = False, err
                        break
                    context = contextvars.copy_context()
                    pending.append(pool.submit(context.run, self._timed_open, element))
                if not pending:
                    if failure is not None:
                        raise failure
                    return
                opened, refused, seconds = pending.popleft().result()
                self.stats.seconds += seconds
                if refused is not None:
                    handle_error(refused, on_error=self.on_error, stats=self.stats)
                    continue
                self.stats.elements += 1
                yield opened
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True)  # at most the one open in flight (it has its own deadline)

    def __len__(self) -> int:
        if self.on_error != "raise":
            name = type(self).__name__
            msg = f"{name} with on_error={self.on_error!r} may drop elements; its length is unknown"
            raise TypeError(msg)
        source: Any = self.source
        return len(source)
