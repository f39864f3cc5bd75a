"""``chip.cursor.in_rounds`` and ``chip.plan.element_share``: which shard chips which element.

A chipper run by several shards (loader workers, DDP ranks) gives each
element of a complete round of ``count`` elements whole to one shard, and
splits the elements of a short last round among all of them. These tests
check the tagging (complete rounds, short rounds, resumed passes, errors of
the source, the buffer bound) and that the shares of all shards hold every
group once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from terrapipe.chip.cursor import MAX_ROUND, in_rounds
from terrapipe.chip.plan import element_share
from terrapipe.core.shard import ShardInfo


def _pulls(n: int, start: int = 0, log: list[int] | None = None) -> Iterator[tuple[int, Any, None]]:
    for index in range(start, n):
        if log is not None:
            log.append(index)
        yield index, f"e{index}", None


@pytest.mark.parametrize("count", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 10])
def test_complete_rounds_are_whole_and_the_short_last_round_is_split(n, count):
    tagged = list(in_rounds(_pulls(n), count))
    assert [t[0] for t in tagged] == list(range(n))  # every element once, in order
    assert [t[1] for t in tagged] == [f"e{i}" for i in range(n)]
    whole = n // count * count  # the elements of complete rounds
    assert [t[3] for t in tagged] == [True] * whole + [False] * (n - whole)


@pytest.mark.parametrize("start", [0, 1, 2, 4, 5, 6])
def test_a_resumed_pass_tags_its_elements_as_the_whole_pass_did(start):
    full = {t[0]: t[3] for t in in_rounds(_pulls(7), 3)}
    resumed = {t[0]: t[3] for t in in_rounds(_pulls(7, start), 3)}
    assert resumed == {i: full[i] for i in range(start, 7)}


def test_elements_are_pulled_only_to_the_end_of_their_round():
    log: list[int] = []
    tagged = in_rounds(_pulls(9, log=log), 3)
    assert next(tagged)[0] == 0
    assert log == [0, 1, 2]  # at most count - 1 held beyond the one handed out
    next(tagged), next(tagged)
    assert log == [0, 1, 2]
    next(tagged)
    assert log == [0, 1, 2, 3, 4, 5]


def test_more_shards_than_max_round_pull_nothing_ahead_and_split_everything():
    log: list[int] = []
    tagged = in_rounds(_pulls(3 * MAX_ROUND, log=log), MAX_ROUND + 1)
    first = next(tagged)
    assert log == [0]
    assert first[3] is False
    assert not any(t[3] for t in tagged)


def test_an_error_of_the_source_comes_after_the_elements_before_it():
    def failing() -> Iterator[tuple[int, Any, None]]:
        yield from _pulls(3)
        raise OSError("source failed at element 3")

    tagged = in_rounds(failing(), 2)
    got = [next(tagged) for _ in range(3)]
    assert [(t[0], t[3]) for t in got] == [(0, True), (1, True), (2, False)]  # 2's round never completed
    with pytest.raises(OSError, match="element 3"):
        next(tagged)


@pytest.mark.parametrize(("world", "workers"), [(1, 1), (1, 2), (1, 3), (2, 2), (1, 5)])
@pytest.mark.parametrize("n_groups", [0, 1, 2, 5, 9])
@pytest.mark.parametrize("whole", [False, True])
def test_the_shards_shares_of_an_element_hold_every_group_once(world, workers, n_groups, whole):
    for element in range(7):
        taken: list[int] = []
        owners = 0
        for rank in range(world):
            for worker in range(workers):
                info = ShardInfo(rank=rank, world_size=world, worker_id=worker, num_workers=workers)
                share = list(range(n_groups))[element_share(n_groups, info, element=element, whole=whole)]
                taken += share
                owners += bool(share)
        assert sorted(taken) == list(range(n_groups))
        if whole and n_groups:
            assert owners == 1  # one shard reads all of the element's blocks
