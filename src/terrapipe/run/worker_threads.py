"""Long-lived threads for the loader's thread workers, handed from one loader to the next.

A thread pays for some things the first time it does them: PROJ builds a
context of its own the first time the thread converts or looks up a CRS
(``to_tensor`` writes each chip's CRS out: in a py-spy profile of new loaders,
the worker threads spent ten times the plain flow's time in ``CRS.to_wkt``),
GDAL sets up its per-thread state, and a thread's cached dataset handles
(:func:`terrapipe.io.raster_array.acquire`) live only as long as it does. A
loader that started new worker threads paid all of that again for every
``tp.loader(...)``: on the README flow over local files (2 worker threads),
a new loader's epoch took 115-121 ms of CPU against 84 ms for the next epoch
of the same loader, and 90 ms on threads reused from an earlier loader
(medians of 15, process CPU time, load average about 10).

:func:`start` runs a loader worker on a thread of this process that an
earlier loader's worker has finished with, or on a new one. A thread:

- is started on first use, never at import (importing terrapipe starts nothing);
- is a daemon thread, named after the worker it runs (``terrapipe-loader-0``)
  and ``terrapipe-loader-idle`` between workers;
- runs each worker in a new :class:`contextvars.Context`, as a new thread
  would (nothing a worker set in a context variable reaches the next one);
- waits for the next worker at most :data:`IDLE_SECONDS`, then ends: the
  threads kept are at most those that ran at once in the last
  ``IDLE_SECONDS``;
- is not inherited: a forked child starts with none.

A worker's :class:`Job` is what the loader waits on (``join``, ``is_alive``:
whether the worker is still running), as it waited on its own thread.

Examples
--------
>>> import threading
>>> names = []
>>> job = start(lambda: names.append(threading.current_thread().name), (), name="terrapipe-loader-0")
>>> job.join(5.0)
>>> names, job.is_alive()
(['terrapipe-loader-0'], False)
"""

from __future__ import annotations

import contextvars
import sys
import threading
from collections.abc import Callable
from typing import Any

from terrapipe.core.per_process import PerProcess

__all__ = ["IDLE_SECONDS", "Job", "idle_threads", "start"]

#: Seconds a thread waits for the next loader worker before it ends.
IDLE_SECONDS = 60.0

_IDLE_NAME = "terrapipe-loader-idle"


class Job:
    """One loader worker running on a pooled thread: wait for it as for a thread."""

    def __init__(self, target: Callable[..., Any], args: tuple[Any, ...], name: str) -> None:
        self.target = target
        self.args = args
        self.name = name
        self._done = threading.Event()

    def is_alive(self) -> bool:
        """Whether the worker is still running."""
        return not self._done.is_set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the worker has returned, at most ``timeout`` seconds."""
        self._done.wait(timeout)

    def run(self) -> None:
        """Run the worker in a new context on this thread (called by the thread)."""
        thread = threading.current_thread()
        thread.name = self.name
        try:
            contextvars.Context().run(self.target, *self.args)
        except BaseException:  # as an uncaught exception of a thread would: reported, the thread goes on
            kind, value, traceback = sys.exc_info()
            threading.excepthook(threading.ExceptHookArgs((kind, value, traceback, thread)))  # type: ignore[arg-type]
        finally:
            thread.name = _IDLE_NAME
            self._done.set()


class _Thread:
    """A pooled thread: runs its job, then waits for the next one or ends."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.cond = threading.Condition()
        self.job: Job | None = None
        self.gone = False

    def offer(self, job: Job) -> bool:
        """Hand ``job`` to this idle thread; ``False`` if it has just ended."""
        with self.cond:
            if self.gone:
                return False
            self.job = job
            self.cond.notify()
            return True

    def loop(self, job: Job | None) -> None:
        while job is not None:
            job.run()
            job = None
            self.pool.park(self)
            with self.cond:
                self.cond.wait_for(lambda: self.job is not None, timeout=IDLE_SECONDS)
                job, self.job = self.job, None
                if job is None:
                    self.gone = True
        self.pool.unpark(self)


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Thread] = []  # bounded: the threads started and not ended, each listed once

    def start(self, job: Job) -> None:
        with self.lock:
            while self.idle:
                if self.idle.pop().offer(job):
                    return
        worker = _Thread(self)
        threading.Thread(target=worker.loop, args=(job,), name=job.name, daemon=True).start()

    def park(self, worker: _Thread) -> None:
        with self.lock:
            self.idle.append(worker)

    def unpark(self, worker: _Thread) -> None:
        with self.lock:
            if worker in self.idle:
                self.idle.remove(worker)


_POOL: PerProcess[_Pool] = PerProcess(_Pool)  # made on first use; a forked child makes its own


def start(target: Callable[..., Any], args: tuple[Any, ...], *, name: str) -> Job:
    """Run ``target(*args)`` on an idle pooled thread, or a new one; return its :class:`Job`."""
    job = Job(target, args, name)
    _POOL.get().start(job)
    return job


def idle_threads() -> int:
    """How many pooled threads wait for a worker now.

    Examples
    --------
    >>> idle_threads() >= 0
    True
    """
    pool = _POOL.peek()
    if pool is None:
        return 0
    with pool.lock:
        return len(pool.idle)
