"""Whole elements per worker, built only by the worker that chips them.

A chip stage run by several shards (loader workers, DDP ranks) gives each
element of a complete round to one shard whole (``chip.plan.element_share``).
Every shard still pulls every element, so before, each worker's copy of the
pipe built every element upstream (``stack_stac``: a cube and its grid, about
5 ms of CPU a scene) and planned it, only to skip the ones another worker
chips. Now the chip asks its direct source for deferred elements
(``core.shard.deferring``) and builds and plans only those it takes; a
source that does not defer (``from_items`` of arrays) is still not planned
for the elements another worker takes.

Whatever the split: every window exactly once per epoch over 1, 2, 3, 5
thread and process workers, shuffled or not, fewer elements than workers, a
resume mid-epoch; each element built once over the workers when the rounds
are complete (a short last round's elements by every worker, which split
them); errors of a build come from the worker that takes the element.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError, SkipsInEpochWarning
from terrapipe.core.pipe import IterDataPipe, Stage
from terrapipe.core.shard import Deferred, ShardInfo, defer_wanted, shard_scope
from tests.run.element_windows import (
    OFFSET,
    RESUME_AFTER,
    RESUME_CASES,
    STARTS,
    STRIDE,
    WINDOW,
    check_mid_epoch_resume,
    element,
    expected,
    first_value,
    run,
)

FAIL = 1  # the element whose build fails in the failing cases


class BuildOnDemand(Stage[Any]):
    """Element ``k`` of the source becomes a lazy array; deferred when the consumer asks (as ``stack_stac``).

    ``stats.elements`` counts the builds; ``fail=True`` makes building
    element :data:`FAIL` raise a ``ReadError``.
    """

    stateless = True

    def __init__(self, source: IterDataPipe[int], *, fail: bool = False) -> None:
        super().__init__()
        self.source = source
        self.fail = fail

    def _build(self, k: int) -> Any:
        if self.fail and k == FAIL:
            raise ReadError(f"cannot build element {k}")
        self.stats.elements += 1
        return element(k)

    def __iter__(self) -> Iterator[Any]:
        for k in self.source:
            yield Deferred(lambda k=k: self._build(k)) if defer_wanted(self) else self._build(k)


def not_deferred(element: Any) -> Any:
    """A stage between the source and the chip sees elements, never their builds."""
    assert not isinstance(element, Deferred), "a stage upstream of the chip's source was asked to defer"
    return element


def _chips(source: IterDataPipe[Any], *, shuffle: bool = False, on_error: str = "raise") -> Any:
    return source.chip(
        {"y": WINDOW, "x": WINDOW},
        stride=STRIDE,
        output="numpy",
        shuffle=tp.chip.WindowShuffle(seed=5) if shuffle else False,
        workers=1,
        on_error=on_error,
    ).map(first_value)


def _pipe(n: int, *, shuffle: bool = False, fail: bool = False) -> Any:
    return _chips(BuildOnDemand(tp.from_items(list(range(n))), fail=fail), shuffle=shuffle)


def _builds(n: int, shards: int) -> int:
    """Builds over all shards: a complete round's elements once, a short last round's by every shard."""
    whole = n // shards * shards
    return whole + (n - whole) * shards


def _stage_stats(loader: Any, name: str) -> Any:
    return next(s for s in loader.stats if s.name == name)


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_each_element_is_built_by_the_worker_that_chips_it(workers, n):
    with tp.loader(_pipe(n), batch_size=4, workers=workers) as batches:
        got = run(batches)
        builds = _stage_stats(batches, "BuildOnDemand").elements
    assert sorted(got) == expected(n)
    assert builds == _builds(n, workers)


@pytest.mark.parametrize(("workers", "n", "shuffle"), [(2, 4, False), (3, 2, True), (5, 7, True)])
def test_process_workers_build_only_their_elements(workers, n, shuffle):
    loader = tp.loader(_pipe(n, shuffle=shuffle), batch_size=4, workers=workers, method="process")
    with loader as batches:
        got = run(batches)
        builds = _stage_stats(batches, "BuildOnDemand").elements
    assert sorted(got) == expected(n)
    assert builds == _builds(n, workers)


@pytest.mark.parametrize("workers", [2, 3])
def test_shuffled_epochs_are_the_same_windows_and_reshuffle(workers):
    with tp.loader(_pipe(5, shuffle=True), batch_size=4, workers=workers) as batches:
        first, second = run(batches), run(batches)
    assert sorted(first) == sorted(second) == expected(5)
    assert first != second


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_same_chips_as_from_built_elements(shuffle):
    """Deferred or not, each shard yields the same chips in the same order (seeds and shares unchanged)."""
    n, workers = 5, 2
    for worker in range(workers):
        with shard_scope(ShardInfo(worker_id=worker, num_workers=workers)):
            deferred = list(_pipe(n, shuffle=shuffle))
            built = list(_chips(tp.from_items([element(k) for k in range(n)]), shuffle=shuffle))
        assert deferred == built


def test_a_single_process_is_never_handed_a_deferred_element():
    pipe = _chips(BuildOnDemand(tp.from_items(list(range(3)))).map(not_deferred))
    assert sorted(pipe) == expected(3)


def test_only_the_chips_direct_source_is_asked_to_defer():
    pipe = _chips(BuildOnDemand(tp.from_items(list(range(4)))).map(not_deferred))
    got = []
    for worker in range(2):
        with shard_scope(ShardInfo(worker_id=worker, num_workers=2)):
            got += list(pipe)
    assert sorted(got) == expected(4)


@pytest.mark.parametrize(("workers", "n", "shuffle", "method"), RESUME_CASES)
@pytest.mark.parametrize("after", RESUME_AFTER)
def test_a_mid_epoch_resume_yields_exactly_the_rest(workers, n, shuffle, method, after):
    check_mid_epoch_resume(lambda: _pipe(n, shuffle=shuffle), n, workers, method, after)


def test_a_failing_build_is_raised_by_the_worker_that_takes_the_element():
    n, workers = 2, 2  # one complete round: element 0 to worker 0, element 1 (failing) to worker 1
    with shard_scope(ShardInfo(worker_id=0, num_workers=workers)):
        assert sorted(_pipe(n, fail=True)) == expected(1)  # all of element 0; element 1 never built
    with (
        shard_scope(ShardInfo(worker_id=1, num_workers=workers)),
        pytest.raises(ReadError, match="cannot build element 1"),
    ):
        list(_pipe(n, fail=True))
    with pytest.raises(ReadError, match="cannot build element 1"):  # a single process: as before
        list(_pipe(n, fail=True))


def test_a_failing_build_is_a_source_error_even_when_the_chip_skips_read_errors():
    source = BuildOnDemand(tp.from_items(list(range(4))), fail=True)
    with (
        shard_scope(ShardInfo(worker_id=1, num_workers=2)),
        pytest.raises(ReadError, match="cannot build element 1"),
    ):
        list(_chips(source, on_error="skip"))


@pytest.mark.parametrize("method", ["thread", "process"])
def test_a_failing_build_ends_the_loader_with_its_error(method):
    with (
        tp.loader(_pipe(4, fail=True), batch_size=4, workers=2, method=method) as batches,
        pytest.raises(ReadError, match="cannot build element 1"),
    ):
        run(batches)


def _too_small_second(n: int) -> list[Any]:
    """``n`` elements, element 1 smaller than a window (no chip with ``boundary="drop"``)."""
    out = [element(k) for k in range(n)]
    out[1] = out[1].isel(y=slice(0, WINDOW - 1))
    return out


def test_an_element_another_worker_takes_is_not_planned():
    # element 1 (too small: an error when planned) goes whole to worker 1 of 2
    per_worker: list[Counter[int]] = []
    for worker in range(2):
        with shard_scope(ShardInfo(worker_id=worker, num_workers=2)):
            pipe = _chips(tp.from_items(_too_small_second(4)))
            if worker == 1:
                with pytest.raises(tp.InvalidArgumentError, match="smaller than the window"):
                    list(pipe)
                continue
            per_worker.append(Counter(int(v) // OFFSET for v in pipe))
    assert per_worker == [Counter(dict.fromkeys([0, 2], len(STARTS) ** 2))]


def test_a_skipped_element_is_counted_once_over_the_workers():
    pipe = _chips(tp.from_items(_too_small_second(4)), on_error="skip")
    with tp.loader(pipe, batch_size=4, workers=2) as batches:
        with pytest.warns(SkipsInEpochWarning, match=r"1 element\(s\) skipped"):
            got = run(batches)
        skipped = batches.skipped
    assert sorted(got) == expected(4, skip=(1,))
    assert skipped == 1


def chip_key(chip: Any) -> tuple[float, float, float]:
    """A chip's place and content: its transform's origin and the sum of its pixels."""
    array, meta = chip
    return (
        float(meta["transform"][2]),
        float(meta["transform"][5]),
        float(np.nansum(array, dtype="float64")),
    )


def test_stack_stac_builds_each_scene_once_over_the_loader_workers(sample_world):
    items = list(tp.search_stac(str(sample_world.catalog), collections=["demo-s2"]))[:4]
    assert len(items) == 4

    def pipe() -> Any:
        return (
            tp.from_items([[item] for item in items])
            .stack_stac(bands=["red", "nir"], resolution=20)
            .chip({"y": 64, "x": 64}, overlap={"y": 8, "x": 8}, output="numpy")
            .map(chip_key)
        )

    alone = sorted(pipe())
    with tp.loader(pipe(), batch_size=None, workers=2) as chips:
        got = sorted(tuple(float(v) for v in chip) for chip in chips)
        cubes = _stage_stats(chips, "StackSTAC").elements
    assert got == alone
    assert cubes == 4  # every worker built all four before
