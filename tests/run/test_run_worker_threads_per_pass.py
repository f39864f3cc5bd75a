"""A loader's thread workers give their threads back when their pass is over (run/workers.py).

``for batch in tp.loader(...)`` leaves the loader open after its epoch until it
is closed or collected; its worker threads waited there for its next epoch,
so the next ``tp.loader(...)`` (a new epoch of a script, a benchmark's timed
run after its warm-up) started new, cold threads: PROJ's per-thread context,
GDAL's set-up and dataset handles again (60-70 ms of CPU on the README
flow). Now a thread runs a worker for one pass at a time and returns to the
pool; the next pass of the same loader takes a thread again. Passes stay
exact: every element once per epoch, abandoned and resumed passes, errors.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.run import worker_threads

_MARK = threading.local()


def mark_thread(value: int) -> tuple[int, int]:
    """The element and how many elements this thread made before it (a thread-local count)."""
    seen = getattr(_MARK, "count", 0)
    _MARK.count = seen + 1
    return value, seen


def fail_at_five(value: int) -> int:
    if value == 5:
        raise ReadError("element 5 cannot be read")
    return value


def _values(loader: Any) -> list[int]:
    return sorted(v for v, _ in loader)


def _idle_threads_reach(count: int, seconds: float = 5.0) -> bool:
    """Wait until ``count`` pooled threads are idle (a job parks its thread just after its last message)."""
    deadline = time.monotonic() + seconds
    while worker_threads.idle_threads() < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_loader_left_open_after_its_epoch_leaves_its_threads_to_the_next():
    first = tp.loader(tp.from_items(range(8)).map(mark_thread), workers=2, collate=None)
    assert _values(first) == list(range(8))  # the epoch is over; the loader is neither closed nor collected
    assert _idle_threads_reach(2)  # before, its two threads waited for its next epoch
    second = tp.loader(tp.from_items(range(8)).map(mark_thread), workers=2, collate=None)
    got = list(second)
    assert sorted(v for v, _ in got) == list(range(8))
    assert all(seen for _, seen in got)  # on the first loader's warm threads, not new ones
    assert _values(first) == list(range(8))  # and the first loader runs its next epoch on threads again
    first.close()
    second.close()


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_many_short_epochs_are_each_exact(workers):
    with tp.loader(tp.from_items(range(7)), batch_size=2, workers=workers) as batches:
        for _ in range(40):
            assert sorted(v for batch in batches for v in batch.tolist()) == list(range(7))


def test_an_epoch_abandoned_midway_then_the_next_is_exact():
    with tp.loader(tp.from_items(range(50)), batch_size=None, workers=2, buffer=1) as items:
        for _ in range(5):
            it = iter(items)
            head = [next(it) for _ in range(3)]
            assert len(set(head)) == 3
            del it
            assert sorted(items) == list(range(50))


def test_a_worker_error_ends_the_epoch_and_the_next_epoch_runs():
    pipe = tp.from_items(range(10)).map(fail_at_five)
    with tp.loader(pipe, batch_size=None, workers=2) as items:
        for _ in range(2):
            with pytest.raises(ReadError, match="element 5"):
                list(items)


def test_close_between_epochs_and_during_one():
    loader = tp.loader(tp.from_items(range(20)), batch_size=None, workers=2)
    assert sorted(loader) == list(range(20))
    loader.close()  # no job runs: nothing to wait for
    loader = tp.loader(tp.from_items(range(2000)), batch_size=None, workers=2, buffer=1)
    it = iter(loader)
    next(it)
    start = time.monotonic()
    loader.close()
    assert time.monotonic() - start < 5.0
