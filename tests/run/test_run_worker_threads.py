"""Loader thread workers run on long-lived threads handed from one loader to the next (run/worker_threads.py).

A thread's first CRS conversion (PROJ's per-thread context), its GDAL set-up
and its cached dataset handles cost CPU once per thread; a loader that started
new threads paid them for every ``tp.loader(...)``. The threads must still
behave like new ones: a new context per worker, exceptions reported, the
loader's close ends its workers, idle threads end after ``IDLE_SECONDS``, and
a forked child starts with none.
"""

from __future__ import annotations

import contextvars
import multiprocessing
import threading
import time
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.run import worker_threads

_MARK = threading.local()
_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("test_worker_threads_var", default="unset")


def _mark_thread(value: int) -> tuple[int, bool, str]:
    """Whether this thread ran a loader worker before (a thread-local mark), and its name."""
    seen = getattr(_MARK, "seen", False)
    _MARK.seen = True
    return value, seen, threading.current_thread().name


def _wait(condition: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_second_loader_runs_on_the_threads_the_first_left_warm():
    def run() -> list[tuple[int, bool, str]]:
        with tp.loader(tp.from_items(range(8)).map(_mark_thread), workers=2, collate=None) as items:
            return list(items)

    first = run()
    assert sorted(v for v, _, _ in first) == list(range(8))
    assert {name for _, _, name in first} <= {"terrapipe-loader-0", "terrapipe-loader-1"}
    second = run()
    assert sorted(v for v, _, _ in second) == list(range(8))
    assert all(seen for _, seen, _ in second)  # no new thread: each had run a worker of the first loader


def _busy_loader_threads() -> set[threading.Thread]:
    return {
        t
        for t in threading.enumerate()
        if t.name.startswith("terrapipe-loader") and t.name != "terrapipe-loader-idle"
    }


def test_close_ends_the_workers_and_leaves_their_threads_idle():
    busy_before = _busy_loader_threads()  # an earlier test's loader may still be running (full suite)
    batches = tp.loader(tp.from_items(range(50)), batch_size=5, workers=3)
    it = iter(batches)
    next(it)
    jobs = list(batches._source.pool._workers)
    batches.close()
    del it
    assert not any(job.is_alive() for job in jobs)
    assert _wait(lambda: worker_threads.idle_threads() >= 3)
    assert _busy_loader_threads() <= busy_before  # this loader's threads went back to idle


def test_each_worker_runs_in_a_new_context():
    seen: list[str] = []

    def first() -> None:
        _VAR.set("left by the first worker")

    def second() -> None:
        seen.append(_VAR.get())

    worker_threads.start(first, (), name="terrapipe-loader-0").join(5.0)
    assert _wait(lambda: worker_threads.idle_threads() >= 1)
    worker_threads.start(second, (), name="terrapipe-loader-0").join(5.0)
    assert seen == ["unset"]


def test_an_exception_is_reported_and_the_thread_runs_the_next_worker(monkeypatch):
    reported: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", reported.append)

    def boom() -> None:
        raise RuntimeError("worker failed")

    job = worker_threads.start(boom, (), name="terrapipe-loader-0")
    job.join(5.0)
    assert not job.is_alive()
    assert len(reported) == 1
    assert isinstance(reported[0].exc_value, RuntimeError)
    assert _wait(lambda: worker_threads.idle_threads() >= 1)
    done: list[int] = []
    worker_threads.start(done.append, (1,), name="terrapipe-loader-0").join(5.0)
    assert done == [1]


def test_idle_threads_end_after_idle_seconds(monkeypatch):
    monkeypatch.setattr(worker_threads, "IDLE_SECONDS", 0.2)
    # every idle thread (some left by earlier tests, waiting with the old time-out) takes one of these
    # jobs at once, and waits with the new time-out after it
    release = threading.Event()
    idents: list[int] = []

    def hold() -> None:
        idents.append(threading.get_ident())
        release.wait(5.0)

    jobs = [worker_threads.start(hold, (), name="x") for _ in range(worker_threads.idle_threads() + 3)]
    release.set()
    for job in jobs:
        job.join(5.0)
    assert _wait(lambda: worker_threads.idle_threads() == 0)
    assert _wait(lambda: not {t.ident for t in threading.enumerate()} & set(idents))
    assert not any(t.name == "terrapipe-loader-idle" for t in threading.enumerate())


def _child_pool(queue: Any) -> None:
    pool_before = worker_threads._POOL.peek()
    done: list[int] = []
    worker_threads.start(done.append, (1,), name="terrapipe-loader-0").join(5.0)
    queue.put((pool_before is None, done))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_starts_with_no_threads_of_the_parent():
    worker_threads.start(lambda: None, (), name="terrapipe-loader-0").join(5.0)
    assert _wait(lambda: worker_threads.idle_threads() >= 1)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_pool, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=30) == (True, [1])
    finally:
        child.join(timeout=30)
    assert child.exitcode == 0
