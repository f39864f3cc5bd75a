"""Loader workers: process errors, dead workers, timeouts, unpicklable elements, seeding, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

import terrapipe as tp
from terrapipe.core.errors import WorkerError
from terrapipe.run import loader, worker_threads
from tests.run.run_helpers import die_on_three, fail_on_seven, random_tag


def slow_on_five(x):
    if x == 5:
        time.sleep(1.5)
    return x


def test_process_worker_error_keeps_type_and_worker_traceback():
    with (
        loader(tp.from_items(range(20)).map(fail_on_seven), workers=2, method="process") as items,
        pytest.raises(ValueError, match="seven") as info,
    ):
        list(items)
    notes = "\n".join(info.value.__notes__)
    assert "loader worker process 1" in notes
    assert "fail_on_seven" in notes  # the worker's traceback


def test_dead_worker_process_is_reported_not_waited_for():
    with (
        loader(tp.from_items(range(10)).map(die_on_three), workers=2, method="process") as items,
        pytest.raises(WorkerError, match="stopped unexpectedly with exit code 3"),
    ):
        list(items)


def test_timeout_names_the_worker():
    with (
        loader(tp.from_items(range(10)).map(slow_on_five), workers=2, timeout=0.6) as items,
        pytest.raises(WorkerError, match=r"sent nothing for 0\.6 s"),
    ):
        list(items)


def test_unpicklable_elements_fail_clearly_with_processes():
    with (
        loader(tp.from_items(range(4)).map(lambda_free_lock), workers=1, method="process") as items,
        pytest.raises(WorkerError, match="cannot send"),
    ):
        list(items)


def lambda_free_lock(x):
    return threading.Lock()


def test_seed_makes_process_workers_random_draws_reproducible():
    def draws(seed):
        with loader(tp.from_items(range(8)).map(random_tag), workers=2, method="process", seed=seed) as items:
            return [list(items) for _ in range(2)]

    a, b, c = draws(3), draws(3), draws(4)
    assert a == b
    assert a != c
    assert a[0] != a[1]  # a new draw every epoch


def test_close_stops_threads_and_processes():
    before = threading.active_count()
    idle_before = worker_threads.idle_threads()
    batches = loader(tp.from_items(range(50)), batch_size=5, workers=3)
    it = iter(batches)
    next(it)
    jobs = list(batches._source.pool._workers)
    batches.close()
    del it
    assert not any(job.is_alive() for job in jobs)  # the workers have stopped
    deadline = time.monotonic() + 5
    # torchdata's prefetch thread, and the worker threads left idle for the next loader (worker_threads.py)
    while (
        threading.active_count() > before + 2 + worker_threads.idle_threads() - idle_before
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    assert threading.active_count() <= before + 2 + worker_threads.idle_threads() - idle_before
    assert worker_threads.idle_threads() - idle_before <= 3
    with loader(tp.from_items(range(6)), workers=2, method="process") as items:
        assert sorted(items) == list(range(6))
        workers = list(items._source.pool._workers)
    assert not any(p.is_alive() for p in workers)


def test_lambdas_with_spawn_are_refused_with_advice():
    with (
        loader(
            tp.from_items(range(3)).map(lambda x: x),
            workers=1,
            method="process",
            multiprocessing_context="spawn",
        ) as items,
        pytest.raises(tp.InvalidArgumentError, match="must pickle"),
    ):
        list(items)
