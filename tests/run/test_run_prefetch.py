"""prefetch: read-ahead bound, errors, clean early stop, resume."""

from __future__ import annotations

import threading
import time

import pytest

import terrapipe as tp
import terrapipe.run
from terrapipe.core.state import check_resume
from tests.run.run_helpers import Counter, fail_on_seven, negate


def test_prefetch_reads_ahead_within_its_bound():
    produced = Counter()
    pipe = tp.from_items(range(60)).map(produced).prefetch(4)
    consumed = 0
    for _ in pipe:
        consumed += 1
        time.sleep(0.001)
        assert produced.value - consumed <= 4 + 1
    assert consumed == 60


def test_prefetch_actually_reads_ahead():
    produced = Counter()
    it = iter(tp.from_items(range(60)).map(produced).prefetch(4))
    next(it)
    deadline = time.monotonic() + 5
    while produced.value < 6 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    assert produced.value == 1 + 4 + 1  # one yielded, four buffered, one waiting for room
    it.close()


def test_prefetch_reraises_upstream_errors():
    pipe = tp.from_items(range(10)).map(fail_on_seven).prefetch(2)
    with pytest.raises(ValueError, match="seven") as info:
        list(pipe)
    assert any("prefetch" in note for note in info.value.__notes__)


def test_prefetch_stops_its_thread_on_early_stop():
    before = threading.active_count()
    assert list(tp.from_items(range(1000)).map(negate).prefetch(3).header(4)) == [0, -1, -2, -3]
    assert threading.active_count() == before


@pytest.mark.parametrize("stop_after", [0, 4, 10, 15])
def test_prefetch_resumes_exactly(stop_after):
    check_resume(lambda: tp.from_items(range(10)).prefetch(3), stop_after=stop_after, epochs=2)


def test_prefetch_sees_the_shard_of_its_consumer():
    from terrapipe.core.shard import ShardInfo
    from terrapipe.run import shard_scope

    with shard_scope(ShardInfo(worker_id=1, num_workers=2)):
        assert list(tp.from_items(range(6)).prefetch(2)) == [1, 3, 5]
        assert list(tp.from_items(range(6)).pmap(negate, workers=2)) == [-1, -3, -5]


def test_prefetch_validates_size():
    with pytest.raises(tp.InvalidArgumentError, match="size"):
        tp.from_items([1]).prefetch(0)
