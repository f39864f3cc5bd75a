"""Stage counters across ``tp.loader``'s copies of a pipe: skips reach the user.

The loader never runs the user's pipe itself: each worker (thread or process,
and the ``workers=0`` path too) runs its own copy, so the counters of the
copies' stages (:class:`~terrapipe.core.stats.StageStats`: elements, skipped
errors, seconds, bytes read) would stay in the copies. A
:class:`StatsReporter` on the worker side sends, with the worker's messages,
its copy's counters accumulated since the worker started (whenever the number
of skips changed, at least every :data:`REPORT_EVERY` seconds, and with the
end or error of every pass); :class:`LoaderStats` on the main side keeps the
latest counters per worker, adds what is new to the stages of the user's pipe
(so ``stage.stats.skipped`` counts what the loader skipped) and offers the
sums to :class:`~terrapipe.run.pipe_loader.PipeLoader`.

Counters are cumulative per worker, so a report lost with an abandoned pass
is made up by the next one; a worker that restarts sends a new ``session``.

Examples
--------
>>> import terrapipe as tp
>>> from terrapipe.run.loader_stats import LoaderStats, StatsReporter
>>> pipe = tp.from_items([1, 2])
>>> totals = LoaderStats(pipe, shards=1)
>>> copy = tp.from_items([1, 2])
>>> reporter = StatsReporter(copy)
>>> copy.stats.record_skip("item 3 is corrupt")
>>> totals.update(0, reporter.poll(force=True))
>>> totals.skipped, pipe.stats.skipped
(1, 1)
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any

from terrapipe.core.pipe import IterDataPipe, iter_graph
from terrapipe.core.stats import StageStats

__all__ = ["REPORT_EVERY", "LoaderStats", "StatsReporter", "stage_stats"]

#: Seconds between two reports of a worker whose skips did not change.
REPORT_EVERY = 0.5

# (elements, skipped, seconds, bytes_read, last_errors) per stage
Counters = tuple[int, int, float, int, tuple[str, ...]]
# (session, counters per stage since the worker started)
Report = tuple[str, tuple[Counters, ...]]

_SESSIONS = itertools.count()


def stage_stats(pipe: IterDataPipe[Any]) -> list[StageStats]:
    """Return the counters of every stage of ``pipe`` that keeps them, downstream first."""
    return [dp.stats for dp in iter_graph(pipe) if isinstance(getattr(dp, "stats", None), StageStats)]


def _counters(stats: StageStats) -> Counters:
    return (stats.elements, stats.skipped, stats.seconds, stats.bytes_read, tuple(stats.last_errors))


def _since(now: Counters, base: Counters) -> Counters:
    new_errors = now[1] - base[1]
    errors = now[4][-new_errors:] if new_errors > 0 else ()
    return (now[0] - base[0], new_errors, now[2] - base[2], now[3] - base[3], errors)


class StatsReporter:
    """The worker side: the counters of one copy of the pipe since this reporter was made.

    Parameters
    ----------
    pipe
        The worker's copy of the pipe (its stages' counters may start above
        zero: copies are taken from a pipe that has run).
    """

    def __init__(self, pipe: IterDataPipe[Any]) -> None:
        self._stats = stage_stats(pipe)
        self._base = [_counters(s) for s in self._stats]
        self._session = f"{os.getpid()}-{next(_SESSIONS)}"
        self._last_skipped = -1
        self._last_time = 0.0

    def poll(self, *, force: bool = False) -> Report | None:
        """Return a report when the skips changed, :data:`REPORT_EVERY` passed, or ``force``; else ``None``."""
        skipped = sum(s.skipped for s in self._stats)
        now = time.monotonic()
        if not force and skipped == self._last_skipped and now - self._last_time < REPORT_EVERY:
            return None
        self._last_skipped, self._last_time = skipped, now
        counters = tuple(_since(_counters(s), b) for s, b in zip(self._stats, self._base, strict=True))
        return (self._session, counters)


class LoaderStats:
    """The main side: the sums of the workers' reports, added to the user's pipe as they come.

    Parameters
    ----------
    pipe
        The user's pipe (the one the workers copied).
    shards
        Number of workers (1 for ``workers=0``).
    """

    def __init__(self, pipe: IterDataPipe[Any], shards: int) -> None:
        self._targets = stage_stats(pipe)
        self._totals = [StageStats(name=s.name) for s in self._targets]
        self._latest: list[Report | None] = [None] * shards
        self._lock = threading.Lock()

    def update(self, shard: int, report: Report | None) -> None:
        """Take worker ``shard``'s report (``None``: nothing new)."""
        if report is None:
            return
        session, counters = report
        with self._lock:
            previous = self._latest[shard]
            base = previous[1] if previous is not None and previous[0] == session else None
            self._latest[shard] = report
            for index, now in enumerate(counters[: len(self._targets)]):
                delta = now if base is None else _since(now, base[index])
                for stats in (self._targets[index], self._totals[index]):
                    stats.elements += delta[0]
                    stats.seconds += delta[2]
                    stats.bytes_read += delta[3]
                    for message in delta[4][-delta[1] :] if delta[1] else ():
                        stats.record_skip(message)
                    stats.skipped += delta[1] - min(delta[1], len(delta[4]))

    @property
    def skipped(self) -> int:
        """Elements skipped on error over all workers, since the loader was made."""
        with self._lock:
            return sum(s.skipped for s in self._totals)

    def stages(self) -> list[StageStats]:
        """Return a copy of the summed counters per stage of the pipe, downstream first."""
        with self._lock:
            return [
                StageStats(s.name, s.elements, s.skipped, s.seconds, s.bytes_read, list(s.last_errors))
                for s in self._totals
            ]
