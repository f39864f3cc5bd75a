"""core.per_process.PerProcess: one object a process, made on first use, made again in a forked child.

The pools of io/read_pool and run/worker_threads hold it (each wrote the same lock + fork-hook + reset
code before); tests/io/test_io_workers*.py, tests/run/test_run_worker_threads.py and the fork tests
check the pools themselves.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Any

import pytest

from terrapipe.core.per_process import PerProcess

fork_only = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")


def test_made_once_on_first_use() -> None:
    made: list[int] = []

    def make() -> list[int]:
        made.append(1)
        return []

    holder = PerProcess(make)
    assert holder.peek() is None
    assert made == []
    first = holder.get()
    assert holder.get() is first
    assert holder.peek() is first
    assert made == [1]


def test_threads_racing_make_one() -> None:
    holder = PerProcess(object)
    barrier = threading.Barrier(8)
    got: list[object] = []

    def take() -> None:
        barrier.wait()
        got.append(holder.get())

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(got) == 8
    assert len({id(value) for value in got}) == 1


def _made_here() -> dict[str, int]:
    return {"pid": os.getpid()}


HOLDER: PerProcess[dict[str, int]] = PerProcess(_made_here)


def _child(queue: Any) -> None:
    before = HOLDER.peek()
    value = HOLDER.get()  # the lock was held by a parent thread at the fork: a new one here
    queue.put((before is None, value["pid"] == os.getpid(), HOLDER.get() is value, os.getpid()))


@fork_only
def test_a_forked_child_makes_its_own_even_with_the_lock_held_at_the_fork() -> None:
    parent = HOLDER.get()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with HOLDER._lock:
            held.set()
            release.wait(10)

    holder_thread = threading.Thread(target=hold)
    holder_thread.start()
    try:
        assert held.wait(10)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child, args=(queue,))
        child.start()
        try:
            forgot, new, kept, pid = queue.get(timeout=30)
        finally:
            child.join(10)
            if child.is_alive():
                child.kill()
    finally:
        release.set()
        holder_thread.join(10)
    assert (forgot, new, kept, child.exitcode) == (True, True, True, 0)
    assert pid != os.getpid()
    assert HOLDER.get() is parent
    assert parent["pid"] == os.getpid()
