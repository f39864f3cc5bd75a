"""One process-wide pool of long-lived reader threads, lent to readers pass by pass.

A thread's first GDAL open of a georeferenced file costs about 7.5 ms of CPU
(measured on a 512²-tiled COG: PROJ builds the thread's own context and looks
the file's CRS up in ``proj.db``; a second file with the same CRS opens in
0.8 ms), and the datasets it opens stay in its own handle cache
(:func:`terrapipe.io.raster_array.acquire`) only as long as the thread lives.
A stage that starts reader threads for each pass pays both at every pass;
threads borrowed from here pay them once per process.

:func:`lease` lends ``threads`` of the pool to one reader (a chip stage's
pass): the :class:`Lease` is an ``Executor`` that runs at most ``threads`` of
its tasks at once, the concurrency a pool of its own would give. The pool
keeps as many threads as the open leases need together (up to
:data:`MAX_THREADS`; beyond it tasks wait for a thread, they never deadlock:
no task waits for another task of the pool), so readers running side by side
(thread workers, zipped stages) do not slow each other down. Threads:

- are started on first use, never at import (importing terrapipe starts nothing);
- are daemon threads named ``terrapipe-read_N`` (a process exits without
  joining them);
- stay when a lease closes, warm (PROJ context, open datasets) for the next
  pass or stage; the pool keeps at least :data:`KEEP_THREADS` of them, and
  threads above that leave after :data:`IDLE_SECONDS` without work, closing
  their datasets first;
- are not inherited: a forked child starts with no pool and makes its own on
  first use, and a lease made before the fork lends the child's threads.

:func:`in_reader_thread` says whether the calling thread is one of them (a
reader that would otherwise hand its work to long-lived threads of its own
reads right there).

Examples
--------
>>> with lease(2) as threads:
...     sorted(threads.map(abs, [-3, 1, -2]))
[1, 2, 3]
>>> in_reader_thread()
False
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from terrapipe.core.per_process import PerProcess

__all__ = [
    "IDLE_SECONDS",
    "KEEP_THREADS",
    "MAX_THREADS",
    "Lease",
    "in_reader_thread",
    "lease",
    "pool_threads",
]

T = TypeVar("T")

MAX_THREADS = 64
"""Most reader threads in a process (leases that need more together share them: their tasks wait)."""

KEEP_THREADS = 4
"""Threads kept however long they wait for work (the chip stages' default reader threads)."""

IDLE_SECONDS = 120.0
"""How long a thread that the open leases do not need waits for work before it leaves."""

_Task = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any], "Lease"]

_LOCAL = threading.local()


def in_reader_thread() -> bool:
    """Whether the calling thread is one of this process's pooled reader threads.

    Examples
    --------
    >>> with lease(1) as threads:
    ...     threads.submit(in_reader_thread).result()
    True
    """
    return bool(getattr(_LOCAL, "pid", None) == os.getpid())


class _Worker:
    """A pooled thread's hand-off slot: the task it was handed while it waited, and the event that wakes it."""

    __slots__ = ("event", "task")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.task: _Task | None = None


class _Pool:
    """The reader threads of one process and the tasks the leases let through to them.

    A task goes to the thread that went idle last (its PROJ context and open
    files are the warmest: the threads of the last pass, not those other
    leases left idle), else waits in :attr:`pending` for the next thread
    to finish one; a lease's next task goes to the thread that ran its last.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        # Re-entrant: a stage collected by the garbage collector while this thread holds the lock
        # gives its lease back (shutdown) from inside that critical section.
        self.lock = threading.RLock()
        # Tasks let through by the leases (each at most its `threads` at once) that wait for a
        # thread: at most the open leases' threads together.
        self.pending: deque[_Task] = deque()
        self.idle: list[_Worker] = []  # waiting threads, the one idle the shortest last
        self.threads = 0  # started and not left
        self.need = 0  # threads the open leases lend, together
        self.names = itertools.count()

    def dispatch(self, task: _Task) -> None:
        """Hand a task to the thread idle the shortest, or queue it (starting a thread the leases need)."""
        if self.idle:
            worker = self.idle.pop()
            worker.task = task
            worker.event.set()
            return
        self.pending.append(task)
        if self.threads < min(self.need, MAX_THREADS):
            self.threads += 1
            name = f"terrapipe-read_{next(self.names)}"
            threading.Thread(target=self.work, args=(_Worker(),), name=name, daemon=True).start()

    def work(self, me: _Worker) -> None:
        """Run tasks; leave after :data:`IDLE_SECONDS` without one when the leases need fewer threads."""
        _LOCAL.pid = self.pid
        task: _Task | None = None
        while True:
            if task is not None:
                self.run(task)
                task = None
            with self.lock:
                if self.pending:
                    task = self.pending.popleft()
                    continue
                me.task = None
                me.event.clear()
                self.idle.append(me)
            if not self.wait(me):
                break
            task = me.task
        _close_handles()

    def wait(self, me: _Worker) -> bool:
        """Wait for a task (in ``me.task``); ``False``: this thread leaves."""
        while not me.event.wait(IDLE_SECONDS):
            with self.lock:
                if me.task is not None:
                    return True  # handed one as the wait ran out
                if self.threads > max(self.need, KEEP_THREADS):
                    self.idle.remove(me)
                    self.threads -= 1
                    return False
        return True

    def run(self, task: _Task) -> None:
        future, fn, args, kwargs, owner = task
        del task
        if future.set_running_or_notify_cancel():
            try:
                result = fn(*args, **kwargs)
            except BaseException as err:  # handed to the future, as concurrent.futures does
                future.set_exception(err)
                del err
            else:
                future.set_result(result)
                del result
        del fn, args, kwargs
        owner.finished(self, future)


_POOL: PerProcess[_Pool] = PerProcess(_Pool)  # made on first use; a forked child makes its own


def _pool() -> _Pool:
    """Return this process's pool (made on first use, the fork hook with the first one)."""
    return _POOL.get()


def _close_handles() -> None:
    """Close the datasets of a thread that leaves (where the raster reader was used at all)."""
    import sys  # not imported here when nothing read a raster: no handles to close

    raster_array = sys.modules.get("terrapipe.io.raster_array")
    if raster_array is not None:
        with contextlib.suppress(Exception):  # best effort: its datasets close when collected anyway
            raster_array.close_thread_handles()


def pool_threads() -> int:
    """How many pooled reader threads this process has (0 before a lease first runs a task).

    Examples
    --------
    >>> pool_threads() >= 0
    True
    """
    pool = _POOL.peek()
    if pool is None or pool.pid != os.getpid():
        return 0
    with pool.lock:
        return pool.threads


class Lease(Executor):
    """``threads`` of the process's reader threads, lent to one reader (see the module doc).

    At most ``threads`` of the lease's tasks run at once, in the order they
    were submitted; the others wait in the lease (as many as its reader
    submitted: the reader's read-ahead bounds them). :meth:`shutdown` gives
    the threads back (they stay in the pool, warm); the lease then takes no
    more tasks. The pool's threads start at the lease's first task.

    Parameters
    ----------
    threads
        Most tasks of this lease running at once (>= 1).
    """

    def __init__(self, threads: int) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"a lease needs threads >= 1, got {threads!r}")
        self.threads = threads
        self._pool: _Pool | None = None
        self._idle: threading.Condition | None = None
        self._running: set[Future[Any]] = set()  # let through to the pool, not finished: <= threads
        self._queued: deque[_Task] = deque()  # submitted beyond `threads`: bounded by the reader's read-ahead
        self._closed = False
        self._counted = False  # whether `threads` is in the pool's need

    def __repr__(self) -> str:
        return f"Lease(threads={self.threads})"

    def _bound(self) -> _Pool:
        """Return this process's pool, with this lease's threads counted in its need (again after a fork)."""
        pool = self._pool
        if pool is not None and pool.pid == os.getpid():
            return pool
        pool = _pool()
        with pool.lock:
            self._pool, self._idle = pool, threading.Condition(pool.lock)
            self._running, self._queued = set(), deque()  # what ran in a parent is not here
            self._counted = not self._closed
            if self._counted:
                pool.need += self.threads
        return pool

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on a pooled thread once the lease has one free; return its future."""
        if self._closed:
            raise RuntimeError("cannot submit to a lease that was shut down")
        pool = self._bound()
        future: Future[T] = Future()
        task: _Task = (future, fn, args, kwargs, self)
        with pool.lock:
            if self._closed:
                raise RuntimeError("cannot submit to a lease that was shut down")
            if len(self._running) < self.threads:
                self._running.add(future)
                pool.dispatch(task)
            else:
                self._queued.append(task)
        return future

    def finished(self, pool: _Pool, future: Future[Any]) -> None:
        """Let the next task through: one of this lease's finished (or was skipped: cancelled).

        Called by the thread that ran it, which takes the next one itself (its files are open).
        """
        with pool.lock:
            if pool is not self._pool:
                return
            self._running.discard(future)
            while self._queued and len(self._running) < self.threads:
                task = self._queued.popleft()
                if task[0].cancelled():
                    continue
                self._running.add(task[0])
                pool.pending.appendleft(task)  # this thread's next task
            if not self._running and not self._queued and self._idle is not None:
                self._idle.notify_all()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more tasks; with ``cancel_futures`` cancel those not started; with ``wait`` wait for the rest."""
        pool = self._pool
        if pool is None or pool.pid != os.getpid():
            self._closed = True
            return
        with pool.lock:
            if self._counted:
                self._counted = False
                pool.need -= self.threads
            self._closed = True
            if cancel_futures:
                for future in list(self._running):
                    future.cancel()  # only those not started yet; the pool skips them
                for task in self._queued:
                    task[0].cancel()
                self._queued.clear()
            if wait and self._idle is not None:
                while self._running or self._queued:
                    self._idle.wait()


def lease(threads: int) -> Lease:
    """Lend ``threads`` of the process's long-lived reader threads to one reader (see :class:`Lease`).

    Examples
    --------
    >>> with lease(4) as threads:
    ...     list(threads.map(len, ["ab", "c"]))
    [2, 1]
    """
    return Lease(threads)
