"""``tp.profile``: run a pipe for a while and report, per stage, elements, time, throughput and bytes read.

How it measures
---------------
The pipe is deep-copied (the original is left alone); in the copy each
stage's source is wrapped in a timer that measures how long every ``next()``
on it takes. A stage's *total* time is the time spent waiting for its
elements, which includes all the stages upstream of it; its *self* time is
its total minus the totals of its direct sources. Counters that only the
stage knows (bytes read, elements skipped on error) come from its
:class:`~terrapipe.core.stats.StageStats`; torch's own pipes have none and
show ``-``.

Stages upstream of ``prefetch`` or ``pmap`` run in background threads, so
their time overlaps the consumer's: the totals of those stages are not part
of the total of the stage that reads from them, and self times are clipped
at zero. The run is single-process (``workers=0``): it profiles the pipe, not
the loader.

Examples
--------
>>> import terrapipe as tp
>>> from terrapipe.run import profile
>>> report = profile(tp.from_items(range(100)).map(abs).header(40), n=30, show=False)
>>> [(s.name, s.elements) for s in report.stages]
[('FromItems', 30), ('MapperIterDataPipe', 30), ('Header', 30)]
>>> print(report.table())  # doctest: +SKIP
stage                 elements     self s    total s      elem/s   bytes read  skipped
FromItems                   30    0.00004    0.00004      714869            0        0
...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, TextIO

from terrapipe.core.checks import check_positive_int
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.pipe import IterDataPipe, Stage, iter_graph
from terrapipe.core.stats import StageStats
from terrapipe.run.graph_lock import copy_pipe

__all__ = ["PipeProfile", "StageProfile", "profile"]


class _Timed(IterDataPipe[Any]):
    """Wrap a pipe and add up the time each ``next()`` on it takes."""

    def __init__(self, pipe: IterDataPipe[Any]) -> None:
        self.pipe = pipe
        self.seconds = 0.0
        self.elements = 0

    def __iter__(self) -> Iterator[Any]:
        start = time.perf_counter()
        iterator = iter(self.pipe)
        self.seconds += time.perf_counter() - start
        while True:
            start = time.perf_counter()
            try:
                element = next(iterator)
            except StopIteration:
                self.seconds += time.perf_counter() - start
                return
            self.seconds += time.perf_counter() - start
            self.elements += 1
            yield element

    def __len__(self) -> int:
        pipe: Any = self.pipe
        return len(pipe)


@dataclass(frozen=True)
class StageProfile:
    """What one stage did during :func:`profile`.

    Attributes
    ----------
    name
        Class name of the stage.
    elements
        Elements it yielded.
    seconds
        Self time: its total time minus its sources' totals (>= 0).
    total_seconds
        Time spent waiting for its elements, upstream included.
    bytes_read
        Bytes it read (``None`` for pipes without stats).
    skipped
        Elements it skipped on error (``None`` for pipes without stats).
    """

    name: str
    elements: int
    seconds: float
    total_seconds: float
    bytes_read: int | None
    skipped: int | None

    @property
    def throughput(self) -> float:
        """Elements per second delivered at this point of the pipe (``elements / total_seconds``)."""
        return self.elements / self.total_seconds if self.total_seconds > 0 else float("inf")


@dataclass(frozen=True)
class PipeProfile:
    """The result of :func:`profile`: one row per stage, the source first."""

    stages: tuple[StageProfile, ...]
    elements: int
    wall_seconds: float

    def table(self) -> str:
        """Return the report as a fixed-width text table."""
        header = (
            f"{'stage':<24}{'elements':>10}{'self s':>11}{'total s':>11}{'elem/s':>12}"
            f"{'bytes read':>13}{'skipped':>9}"
        )
        lines = [header, "-" * len(header)]
        for row in self.stages:
            rate = f"{row.throughput:12.1f}" if row.throughput != float("inf") else f"{'inf':>12}"
            bytes_read = "-" if row.bytes_read is None else str(row.bytes_read)
            skipped = "-" if row.skipped is None else str(row.skipped)
            lines.append(
                f"{row.name[:23]:<24}{row.elements:>10}{row.seconds:>11.5f}{row.total_seconds:>11.5f}"
                f"{rate}{bytes_read:>13}{skipped:>9}"
            )
        lines.append(f"{self.elements} elements in {self.wall_seconds:.3f} s wall time")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _wrap_sources(nodes: list[IterDataPipe[Any]], timers: dict[int, _Timed]) -> dict[int, list[int]]:
    """Replace each node's references to its sources by timers; return each node's source ids."""
    sources: dict[int, list[int]] = {}
    for node in nodes:
        found: list[int] = []
        for attr, value in list(vars(node).items()):
            if isinstance(value, IterDataPipe) and id(value) in timers:
                found.append(id(value))
                setattr(node, attr, timers[id(value)])
            elif isinstance(value, list | tuple) and any(id(v) in timers for v in value):
                found.extend(id(v) for v in value if id(v) in timers)
                wrapped = [timers.get(id(v), v) for v in value]
                setattr(node, attr, type(value)(wrapped) if isinstance(value, tuple) else wrapped)
        sources[id(node)] = found
    return sources


def profile(
    pipe: IterDataPipe[Any], n: int = 100, *, show: bool = True, file: TextIO | None = None
) -> PipeProfile:
    """Run a copy of ``pipe`` for ``n`` elements and report each stage's work.

    Parameters
    ----------
    pipe
        The pipe to measure (it is copied, not run).
    n
        How many elements to take from the end of the pipe (fewer if it ends).
    show
        Print the table.
    file
        Where to print (standard output by default).

    Returns
    -------
    PipeProfile
        One :class:`StageProfile` per stage, the source first.

    Raises
    ------
    InvalidArgumentError
        For a non-positive ``n`` or something that is not a pipe.
    """
    n = check_positive_int(n, "profile n")
    if not isinstance(pipe, IterDataPipe):
        raise InvalidArgumentError(f"profile needs a pipe (an IterDataPipe), got {type(pipe).__name__}")
    if file is not None and not callable(getattr(file, "write", None)):
        raise InvalidArgumentError(f"profile file must be a text file (with .write) or None, got {file!r}")
    root = copy_pipe(pipe)
    nodes = iter_graph(root)
    for node in nodes:
        if isinstance(node, Stage):
            node.stats = StageStats(name=node.stats.name)
    timers = {id(node): _Timed(node) for node in nodes}
    sources = _wrap_sources(nodes, timers)
    start = time.perf_counter()
    iterator = iter(timers[id(root)])
    delivered = sum(1 for _ in islice(iterator, n))
    wall = time.perf_counter() - start
    close = getattr(iterator, "close", None)
    if close is not None:
        close()
    rows = []
    for node in reversed(nodes):
        timer = timers[id(node)]
        upstream = sum(timers[s].seconds for s in sources[id(node)])
        stats = node.stats if isinstance(node, Stage) else None
        rows.append(
            StageProfile(
                name=type(node).__name__,
                elements=timer.elements,
                seconds=max(timer.seconds - upstream, 0.0),
                total_seconds=timer.seconds,
                bytes_read=None if stats is None else stats.bytes_read,
                skipped=None if stats is None else stats.skipped,
            )
        )
    report = PipeProfile(stages=tuple(rows), elements=delivered, wall_seconds=wall)
    if show:
        print(report.table(), file=file or sys.stdout)
    return report
