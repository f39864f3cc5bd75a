"""One pass at a time: a pipe iterated from two threads is refused at once, never read twice.

Before the guard, two threads iterating one pipe each got part of the
elements, some twice, and then torch's ``RuntimeError`` ("This iterator has
been invalidated"). Now the second pass is refused with
``ConcurrentIterationError`` (a ``PipelineStateError`` and a ``RuntimeError``)
before it reads anything, and the first pass delivers every element once.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import ConcurrentIterationError, PipelineStateError

N = 50


class Gate:
    """A thread that iterates a pipe, stopping after its first element until released."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.started = threading.Event()
        self.release = threading.Event()
        self.seen: list[Any] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="gate")

    def _run(self) -> None:
        try:
            for element in self.pipe:
                self.seen.append(element)
                if len(self.seen) == 1:
                    self.started.set()
                    assert self.release.wait(30)
        except BaseException as err:  # reported by the test
            self.error = err
        finally:
            self.started.set()

    def __enter__(self) -> Gate:
        self.thread.start()
        assert self.started.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def in_thread(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    out: list[Any] = [None, None]

    def run() -> None:
        try:
            out[0] = fn()
        except BaseException as err:
            out[1] = err

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return out[0], out[1]


def test_a_second_thread_is_refused_before_reading_and_the_first_pass_completes() -> None:
    pipe = tp.from_items(range(N)).header(N)
    with Gate(pipe) as first:
        got: list[int] = []

        def second() -> None:
            for x in pipe:
                got.append(x)

        _, err = in_thread(second)
    assert isinstance(err, ConcurrentIterationError), err
    assert isinstance(err, PipelineStateError)
    assert isinstance(err, RuntimeError)
    assert "gate" in str(err)
    assert "one pass at a time" in str(err)
    assert got == []  # refused before any element
    assert first.error is None
    assert first.seen == list(range(N))  # the running pass was not disturbed


def test_branches_sharing_a_source_in_two_threads() -> None:
    source = tp.from_items(range(N))
    left, right = source.header(N), source.enumerate()
    with Gate(left) as first:
        result, err = in_thread(lambda: list(right))
    assert isinstance(err, ConcurrentIterationError), err
    assert "FromItems" in str(err)
    assert result is None
    assert first.error is None
    assert first.seen == list(range(N))
    # once the first pass ended, the other branch runs normally
    assert list(right) == list(enumerate(range(N)))


def double(x: int) -> int:
    return 2 * x


def test_torch_map_on_top_refuses_the_second_thread_and_never_duplicates() -> None:
    pipe = tp.from_items(range(N)).map(double)
    with Gate(pipe) as first:
        result, err = in_thread(lambda: list(pipe))
    assert isinstance(err, ConcurrentIterationError), err
    assert result is None
    # torch's own pipes keep torch's rule: the second thread's iter() invalidated the first
    # thread's iterator at the map (documented); what it delivered is still each element once
    assert first.error is None or "invalidated" in str(first.error)
    counts = collections.Counter(first.seen)
    assert all(c == 1 for c in counts.values())


@pytest.mark.parametrize(("workers", "method"), [(0, "thread"), (2, "thread"), (2, "process")])
def test_loader_over_a_pipe_another_thread_iterates(workers: int, method: str) -> None:
    pipe = tp.from_items(range(N)).header(N)
    with Gate(pipe) as first, pytest.raises(ConcurrentIterationError, match="gate"):
        tp.loader(pipe, workers=workers, method=method)  # type: ignore[arg-type]
    assert first.error is None
    assert first.seen == list(range(N))
    with tp.loader(pipe, workers=workers, method=method) as batches:  # type: ignore[arg-type]
        assert sorted(batches) == list(range(N))


@pytest.mark.parametrize(("workers", "method"), [(0, "thread"), (2, "thread"), (2, "process")])
def test_loader_made_before_another_thread_starts_iterating(workers: int, method: str) -> None:
    pipe = tp.from_items(range(N)).header(N)
    batches = tp.loader(pipe, workers=workers, method=method)  # type: ignore[arg-type]
    try:
        with Gate(pipe) as first:
            if workers == 0:  # the loader copied the pipe when it was made: it runs its own copy
                assert sorted(batches) == list(range(N))
            else:  # workers copy the pipe at the first pass
                with pytest.raises(ConcurrentIterationError, match="gate"):
                    list(batches)
        assert first.error is None
        assert first.seen == list(range(N))
    finally:
        batches.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_one_loader_iterated_from_two_threads(workers: int) -> None:
    # before: both threads got batches, one of them twice, then PipelineStateError in one thread
    with tp.loader(tp.from_items(range(N)), workers=workers) as batches:
        with Gate(batches) as first:
            result, err = in_thread(lambda: list(batches))
        assert isinstance(err, ConcurrentIterationError), err
        assert result is None
        assert first.error is None
        assert first.seen == list(range(N))
        assert list(batches) == list(range(N))  # the next epoch, from any thread


def test_a_second_iter_in_the_same_thread_replaces_the_first() -> None:
    pipe = tp.from_items(range(N)).header(N)
    old = iter(pipe)
    assert [next(old), next(old)] == [0, 1]
    assert list(pipe) == list(range(N))  # the new pass starts over, complete
    with pytest.raises(ConcurrentIterationError, match="iterated again"):
        next(old)  # the old one stops; it never yields an element again


def test_zipped_branches_of_one_source_fail_with_our_error_not_torchs() -> None:
    source = tp.from_items(range(N))
    zipped = source.header(N).zip(source.enumerate())
    with pytest.raises(ConcurrentIterationError, match="fork"):
        list(zipped)
    left, right = source.fork(2)
    assert list(left.header(N).zip(right.enumerate())) == [(i, (i, i)) for i in range(N)]


def test_sequential_passes_from_different_threads_are_fine() -> None:
    pipe = tp.from_items(range(N)).header(N)
    for _ in range(3):
        result, err = in_thread(lambda: list(pipe))
        assert err is None
        assert result == list(range(N))


def test_a_pass_left_open_by_an_ended_thread_is_abandoned() -> None:
    pipe = tp.from_items(range(N)).header(N)
    kept: list[Iterator[int]] = []

    def leave_open() -> None:
        iterator = iter(pipe)
        next(iterator)
        kept.append(iterator)  # the thread ends with its pass open

    in_thread(leave_open)
    assert list(pipe) == list(range(N))


def test_a_pass_left_open_by_a_live_thread_blocks_others_until_closed() -> None:
    pipe = tp.from_items(range(N)).header(N)
    iterator = iter(pipe)
    next(iterator)
    _, err = in_thread(lambda: list(pipe))
    assert isinstance(err, ConcurrentIterationError)
    iterator.close()  # type: ignore[attr-defined]
    result, err = in_thread(lambda: list(pipe))
    assert err is None
    assert result == list(range(N))


def test_prefetch_restarted_in_the_same_thread_stops_its_old_reader() -> None:
    pipe = tp.from_items(range(N)).map(str).prefetch(2)
    old = iter(pipe)
    next(old)
    assert list(pipe) == [str(i) for i in range(N)]
    with pytest.raises(ConcurrentIterationError):
        next(old)


def test_many_threads_hammering_one_pipe_never_duplicate() -> None:
    pipe = tp.from_items(range(200)).header(200)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(20):
            try:
                got = list(pipe)
            except ConcurrentIterationError:
                got = None
            with lock:
                outcomes.append(got)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 80
    complete = [o for o in outcomes if o is not None]
    assert complete, "no pass completed"
    assert all(o == list(range(200)) for o in complete)  # every pass that ran was whole, no duplicates
