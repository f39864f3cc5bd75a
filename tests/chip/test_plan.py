from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terrapipe.chip.plan import (
    axis_starts,
    block_edges,
    common_edges,
    plan_windows,
    shard_slice,
)
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.shard import ShardInfo


def brute_starts(size: int, window: int, stride: int, boundary: str) -> list[int]:
    if boundary == "drop":
        return [s for s in range(0, size, stride) if s + window <= size]
    starts = []
    s = 0
    while True:
        starts.append(s)
        if s + window >= size:
            break
        s += stride
    if boundary == "shift" and size >= window:
        starts[-1] = min(starts[-1], size - window)
    return starts if size > 0 else []


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(0, 60),
    window=st.integers(1, 20),
    stride=st.integers(1, 25),
    boundary=st.sampled_from(["drop", "pad", "shift"]),
)
def test_axis_starts_match_brute_force(size, window, stride, boundary):
    got = axis_starts(size, window, stride, boundary).tolist()
    assert got == brute_starts(size, window, stride, boundary)
    assert got == sorted(set(got))
    if boundary != "drop" and size:
        covered = np.zeros(size, bool)
        for s in got:
            covered[s : s + window] = True
        if stride <= window:
            assert covered.all()
        assert got[-1] + window >= size  # the end is always reached
    if boundary == "shift" and size >= window:
        assert all(s + window <= size for s in got)


def test_axis_starts_rejects_bad_arguments():
    with pytest.raises(InvalidArgumentError, match="boundary"):
        axis_starts(10, 2, 2, "wrap")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="window and stride"):
        axis_starts(10, 0, 2)


def test_block_edges_and_common_edges():
    assert block_edges(3, 7).tolist() == [0, 3, 6, 7]
    assert block_edges((2, 0, 5), 7).tolist() == [0, 2, 7]
    assert block_edges(5, 0).tolist() == [0]
    with pytest.raises(InvalidArgumentError, match="do not add up"):
        block_edges((2, 2), 7)
    assert common_edges(np.array([0, 2, 4, 6]), np.array([0, 3, 6]), np.array([0, 6])).tolist() == [0, 6]


plans = st.fixed_dictionaries(
    {
        "sizes": st.lists(st.integers(0, 40), min_size=1, max_size=3),
        "seed": st.integers(0, 10_000),
        "boundary": st.sampled_from(["drop", "pad", "shift"]),
    }
)


def _random_plan(sizes, seed, boundary):
    rng = np.random.default_rng(seed)
    dims = ["a", "b", "c"][: len(sizes)]
    window = {d: int(rng.integers(1, 12)) for d in dims}
    stride = {d: int(rng.integers(1, 14)) for d in dims}
    edges = {}
    for d, n in zip(dims, sizes, strict=True):
        chunk = int(rng.integers(1, 16))
        edges[d] = block_edges(chunk, n) if n else None
    return plan_windows(
        dict(zip(dims, sizes, strict=True)), window, stride=stride, boundary=boundary, edges=edges
    ), edges


@settings(max_examples=150, deadline=None)
@given(plans)
def test_groups_hold_every_window_once_and_regions_contain_them(params):
    plan, edges = _random_plan(params["sizes"], params["seed"], params["boundary"])
    all_windows = plan.windows_of_groups(np.arange(plan.n_groups))
    assert sorted(all_windows.tolist()) == list(range(plan.n_windows))
    starts, stops = plan.group_regions(np.arange(plan.n_groups))
    for g in range(plan.n_groups):
        window_starts = plan.window_starts(plan.windows_of_groups(np.array([g])))
        for k, axis in enumerate(plan.axes):
            lo, hi = starts[g, k], stops[g, k]
            assert (window_starts[:, k] >= lo).all()
            assert (np.minimum(window_starts[:, k] + axis.window, axis.size) <= hi).all()
            # every window of a group starts in the same block (its anchor)
            e = edges[axis.dim]
            if e is not None:
                anchors = np.searchsorted(e, window_starts[:, k], side="right") - 1
                assert len(set(anchors.tolist())) == 1
    assert plan.group_window_counts(np.arange(plan.n_groups)).sum() == plan.n_windows


@settings(max_examples=150, deadline=None)
@given(
    plans,
    st.integers(1, 4),
    st.integers(1, 5),
    st.booleans(),
    st.integers(0, 7),
)
def test_any_workers_times_ranks_split_covers_every_window_exactly_once(
    params, world, workers, shuffle, item
):
    plan, _ = _random_plan(params["sizes"], params["seed"], params["boundary"])
    order = (
        np.random.default_rng(params["seed"]).permutation(plan.n_groups)
        if shuffle
        else np.arange(plan.n_groups)
    )
    seen: list[int] = []
    groups_seen: list[int] = []
    for rank in range(world):
        for worker in range(workers):
            info = ShardInfo(rank=rank, world_size=world, worker_id=worker, num_workers=workers)
            mine = order[shard_slice(plan.n_groups, info, rotate=item)]
            groups_seen.extend(mine.tolist())
            seen.extend(plan.windows_of_groups(mine).tolist())
    assert sorted(seen) == list(range(plan.n_windows))
    assert sorted(groups_seen) == list(range(plan.n_groups))  # no group (so no anchor block) on two shards


def test_shard_slice_rotation_spreads_single_group_elements():
    infos = [ShardInfo(worker_id=w, num_workers=4) for w in range(4)]
    owners = [
        next(i for i, info in enumerate(infos) if shard_slice(1, info, rotate=item).stop) for item in range(8)
    ]
    assert sorted(owners) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_planning_a_billion_windows_holds_no_per_window_objects():
    plan = plan_windows(
        {"y": 3_200_000, "x": 3_200_000},
        {"y": 100, "x": 100},
        edges={"y": block_edges(512, 3_200_000), "x": block_edges(512, 3_200_000)},
    )
    assert plan.n_windows == 32_000**2
    held = sum(ax.starts.nbytes + ax.group_first.nbytes for ax in plan.axes)
    assert held < 2_000_000  # two arrays per axis, not one entry per window
    starts, stops = plan.group_regions(np.array([0, plan.n_groups - 1]))
    assert starts[0].tolist() == [0, 0]
    assert stops[-1].tolist() == [3_200_000, 3_200_000]
    assert plan.window_starts(np.array([plan.n_windows - 1])).tolist() == [[3_199_900, 3_199_900]]


# -- shuffled order by tiles, halos ------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    tile=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_tiled_permutation_visits_every_cell_once_tile_by_tile(shape, tile, seed):
    from terrapipe.chip.plan import tiled_permutation

    tiles = [tile] * len(shape)
    order = tiled_permutation(shape, tiles, np.random.default_rng(seed))
    n = int(np.prod(shape))
    assert sorted(order.tolist()) == list(range(n))
    coords = np.stack(np.unravel_index(order, shape), axis=-1) // tile
    tile_ids = [tuple(c) for c in coords.tolist()]
    # each tile's cells are consecutive: once a tile is left, it never comes back
    finished: set[tuple[int, ...]] = set()
    for previous, current in itertools.pairwise(tile_ids):
        if current != previous:
            finished.add(previous)
            assert current not in finished


def test_tiled_permutation_of_tile_one_is_a_plain_shuffle():
    from terrapipe.chip.plan import tiled_permutation

    orders = {tuple(tiled_permutation((5, 5), (1, 1), np.random.default_rng(s)).tolist()) for s in range(5)}
    assert len(orders) == 5


def test_crossing_axes_finds_windows_that_reach_into_the_next_block():
    from terrapipe.chip.plan import crossing_axes

    edges = {"y": block_edges(8, 32), "x": block_edges(8, 32)}
    aligned = plan_windows({"y": 32, "x": 32}, {"y": 4, "x": 8}, edges=edges)
    assert crossing_axes(aligned, edges) == (False, False)
    overlapping = plan_windows({"y": 32, "x": 32}, {"y": 4, "x": 8}, stride={"y": 4, "x": 6}, edges=edges)
    assert crossing_axes(overlapping, edges) == (False, True)
    empty = plan_windows({"y": 3, "x": 32}, {"y": 4, "x": 8}, edges=edges)
    assert crossing_axes(empty, edges) == (False, False)
