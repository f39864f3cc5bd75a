"""pmap: order, bounded in-flight work, errors naming the element, clean early stop, resume."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

import terrapipe as tp
import terrapipe.run
from terrapipe.core.state import check_resume
from terrapipe.run import ParallelMap
from terrapipe.run.graph_lock import copy_pipe
from tests.run.run_helpers import Counter, fail_on_seven, negate, square


def test_pmap_keeps_order_and_runs_in_threads():
    names = set()

    def slow(x):
        names.add(threading.current_thread().name)
        time.sleep(0.002 * (x % 3))
        return x * 10

    out = list(tp.from_items(range(30)).pmap(slow, workers=4))
    assert out == [x * 10 for x in range(30)]
    assert len(names) > 1
    assert all(name.startswith("terrapipe-pmap") for name in names)


def test_pmap_unordered_yields_everything():
    release = threading.Event()

    def first_waits(x):
        if x == 0:
            assert release.wait(timeout=10)  # element 0 finishes only once others were yielded
        return x

    out = []
    for x in tp.from_items(range(12)).pmap(first_waits, workers=3, ordered=False):
        out.append(x)
        if len(out) == 2:
            release.set()
    assert sorted(out) == list(range(12))
    assert out.index(0) >= 2


def test_pmap_bounds_work_in_flight():
    produced = Counter()
    pipe = tp.from_items(range(100)).map(produced).pmap(negate, workers=2, max_in_flight=3)
    consumed = 0
    for _ in pipe:
        consumed += 1
        time.sleep(0.001)
        assert produced.value - consumed <= 3
    assert consumed == 100


def test_pmap_error_names_the_element_and_keeps_its_type():
    pipe = tp.from_items(range(10)).pmap(fail_on_seven, workers=2)
    with pytest.raises(ValueError, match="seven is not allowed") as info:
        list(pipe)
    assert any("fail_on_seven" in note and "7" in note for note in info.value.__notes__)


def test_pmap_stops_threads_when_consumer_stops_early():
    before = threading.active_count()
    started = threading.Event()

    def slow(x):
        started.set()
        time.sleep(0.01)
        return x

    out = list(tp.from_items(range(1000)).pmap(slow, workers=4).header(5))
    assert out == [0, 1, 2, 3, 4]
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


@pytest.mark.parametrize("stop_after", [0, 3, 10, 17])
def test_pmap_resumes_exactly(stop_after):
    check_resume(lambda: tp.from_items(range(10)).pmap(negate, workers=3), stop_after=stop_after, epochs=2)


def test_pmap_unordered_or_unresumable_source_refuses_state():
    with pytest.raises(tp.PipelineStateError, match="ordered=False"):
        tp.from_items(range(3)).pmap(negate, ordered=False).state_dict()
    with pytest.raises(tp.PipelineStateError, match="Header"):
        tp.from_items(range(3)).header(2).pmap(negate).state_dict()
    assert not tp.from_items(range(3)).pmap(negate, ordered=False).can_resume()


def test_pmap_validates_arguments():
    src = tp.from_items(range(3))
    with pytest.raises(tp.InvalidArgumentError, match="callable"):
        ParallelMap(src, 3)
    with pytest.raises(tp.InvalidArgumentError, match="workers"):
        src.pmap(negate, workers=0)
    with pytest.raises(tp.InvalidArgumentError, match="max_in_flight"):
        src.pmap(negate, max_in_flight=0)


def test_pmap_len_and_stats():
    pipe = tp.from_items(range(7)).pmap(negate, workers=2)
    assert len(pipe) == 7
    list(pipe)
    assert pipe.stats.elements == 7
    assert pipe.stats.seconds >= 0


# -- executor= ---------------------------------------------------------------------
def test_pmap_on_a_thread_pool_of_its_own_keeps_order_and_context():
    from terrapipe.core.shard import ShardInfo, shard_info, shard_scope

    def slow_with_shard(x):
        time.sleep(0.002 * (x % 3))
        return x, shard_info().index

    with ThreadPoolExecutor(3, thread_name_prefix="mine") as pool:
        with shard_scope(ShardInfo(worker_id=1, num_workers=2)):
            out = list(tp.from_items(range(20), shard=False).pmap(slow_with_shard, executor=pool))
        assert out == [(x, 1) for x in range(20)]  # in order, and the calls saw the caller's shard scope
        assert pool.submit(negate, 2).result() == -2  # the stage did not shut the pool down
        pipe = tp.from_items(range(5)).pmap(negate, executor=pool)
        assert pipe.max_in_flight == 6
        assert pipe.executor is pool


def test_pmap_on_a_process_pool_bounds_work_in_flight_and_resumes():
    produced = Counter()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        pipe = tp.from_items(range(40)).map(produced).pmap(square, executor=pool, max_in_flight=3)
        consumed = 0
        for value in pipe:
            assert value == consumed * consumed
            consumed += 1
            assert produced.value - consumed <= 3
        assert consumed == 40
        check_resume(lambda: tp.from_items(range(10)).pmap(negate, executor=pool), stop_after=4, epochs=2)
        with pytest.raises(ValueError, match="seven") as info:
            list(tp.from_items(range(10)).pmap(fail_on_seven, executor=pool))
        assert any("failed on element 7" in note for note in info.value.__notes__)


def test_pmap_early_stop_cancels_queued_calls_on_a_shared_executor():
    started = Counter()

    def slow(x):
        started(x)
        time.sleep(0.02)
        return x

    with ThreadPoolExecutor(1) as pool:
        assert list(tp.from_items(range(100)).pmap(slow, executor=pool, max_in_flight=4).header(2)) == [0, 1]
        pool.submit(time.sleep, 0).result()  # everything queued before has ended or was cancelled
        assert started.value <= 6


def test_pmap_copies_share_the_executor():
    with ThreadPoolExecutor(2) as pool:
        pipe = tp.from_items(range(12)).pmap(negate, executor=pool)
        copy = copy_pipe(pipe)
        assert copy.executor is pool
        assert copy is not pipe
        batches = tp.loader(pipe, batch_size=4, workers=2)
        try:
            assert sorted(x for b in batches for x in b.tolist()) == sorted(negate(x) for x in range(12))
        finally:
            batches.close()


def test_pmap_refuses_other_executors():
    with pytest.raises(tp.InvalidArgumentError, match=r"concurrent.futures.Executor or a distributed.Client"):
        tp.from_items(range(3)).pmap(negate, executor="threads")
