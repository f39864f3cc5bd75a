"""RegionStream's per-block bookkeeping: each block's key and bytes worked out once per pass, in plain ints.

The reader used to recompute a block's key (``np.unravel_index`` and a fresh
slice list) every time a region needed it, for its byte size, its read and its
assembly. These tests pin what the cheaper bookkeeping must keep: the same
keys and sizes on irregular, several-axis block grids with unsized axes, the
same regions and block reads, each block's geometry worked out once, and no
per-region state left behind by a pass, finished or closed early.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
import xarray as xr

from terrapipe.chip import reader as reader_module
from terrapipe.chip.layout import ArraySpec, describe_arrays
from terrapipe.chip.plan import plan_windows
from terrapipe.chip.reader import BlockReader
from tests.chip.chip_helpers import counting_dataarray


def _reference(spec: ArraySpec, flat: int) -> tuple[tuple[slice, ...], int]:
    """A block's key and decoded bytes, the slow obvious way."""
    grid = tuple(int(e.size - 1) for e in spec.edges if e is not None)
    multi = np.unravel_index(flat, grid)
    key = [slice(None)] * spec.variable.ndim
    k = 0
    for axis, edges in zip(spec.axes, spec.edges, strict=True):
        if axis is None or edges is None:
            continue
        key[axis] = slice(int(edges[int(multi[k])]), int(edges[int(multi[k]) + 1]))
        k += 1
    shape = [len(range(*s.indices(n))) for s, n in zip(key, spec.variable.shape, strict=True)]
    return tuple(key), spec.itemsize * int(np.prod(shape))


@pytest.mark.parametrize(
    ("shape", "dims", "axes", "edges"),
    [
        # irregular edges on both sized axes, a band axis whole in every block
        ((3, 10, 7), ("band", "y", "x"), (1, 2), ([0, 4, 9, 10], [0, 3, 7])),
        # the sized axes in another order than the array's, time last
        ((7, 10, 2), ("x", "y", "time"), (1, 0), ([0, 1, 10], [0, 2, 5, 6, 7])),
        # a plan axis the array does not have (a coordinate on y only)
        ((10,), ("y",), (0, None), ([0, 5, 10], None)),
        # one block
        ((4, 4), ("y", "x"), (0, 1), ([0, 4], [0, 4])),
    ],
)
def test_block_keys_and_bytes_match_the_block_grid(shape, dims, axes, edges):
    var = xr.Variable(dims, np.zeros(shape, dtype="int32"))
    spec = ArraySpec(
        "a", var, False, axes, tuple(None if e is None else np.asarray(e) for e in edges), "lazy", None
    )
    geometry = reader_module._BlockGeometry(spec)
    n_blocks = int(np.prod([len(e) - 1 for e in edges if e is not None]))
    for flat in range(n_blocks):
        assert geometry.block(flat) == _reference(spec, flat), flat
    # every element of the array lies in exactly one block
    assert sum(geometry.block(flat)[1] for flat in range(n_blocks)) == var.size * spec.itemsize


def _stream_setup(overlap: int):
    data = np.arange(2 * 24 * 20, dtype="uint16").reshape(2, 24, 20)
    da, backend = counting_dataarray(data, ("band", "y", "x"), (1, 8, 6))
    window = {"y": 6, "x": 6}
    stride = {"y": 6 - overlap, "x": 6 - overlap}
    arrays, grouping = describe_arrays(da, ("y", "x"), window=window, stride=stride, block_bytes=8 * 6 * 2)
    plan = plan_windows({"y": 24, "x": 20}, window, stride=stride, edges=grouping)
    starts, stops = plan.group_regions(np.arange(plan.n_groups))
    return data, backend, arrays, starts, stops


@pytest.mark.parametrize("overlap", [0, 2])
@pytest.mark.parametrize("workers", [0, 2])
def test_each_block_geometry_is_worked_out_once_and_regions_are_unchanged(monkeypatch, overlap, workers):
    data, backend, arrays, starts, stops = _stream_setup(overlap)
    calls: list[int] = []
    original = reader_module._BlockGeometry.block

    def counted(self, flat):
        calls.append(flat)
        return original(self, flat)

    monkeypatch.setattr(reader_module._BlockGeometry, "block", counted)
    reader = BlockReader(arrays, workers=workers)
    stream = reader.regions(starts, stops)
    for (out, err), lo, hi in zip(stream, starts, stops, strict=True):
        assert err is None
        np.testing.assert_array_equal(out[0], data[:, lo[0] : hi[0], lo[1] : hi[1]])
    # every block read once, and its key and size worked out once, however many regions need it
    assert len(backend.reads) == 2 * reader.blocks_read  # the 8 x 6 blocks the windows touch, both bands
    assert reader.rereads == 0
    assert sorted(calls) == sorted(set(calls))
    assert len(calls) == reader.blocks_read
    assert set(backend.reads.values()) == {1}
    assert stream.keys_of == {}
    assert stream.cache == {}


def test_a_stream_closed_early_keeps_no_region_state():
    _, _, arrays, starts, stops = _stream_setup(overlap=2)
    reader = BlockReader(arrays, workers=2, read_ahead=3)
    stream = reader.regions(starts, stops)
    next(stream)
    assert stream.keys_of  # regions read ahead are remembered until served
    stream.close()
    assert stream.keys_of == {}
    assert stream.cache == {}
    assert (reader.budget.inflight, reader.budget.pending, reader.budget.held) == (0, 0, 0)


def test_group_window_ranges_match_the_group_grid():
    plan = plan_windows(
        {"t": 3, "y": 23, "x": 17},
        {"t": 1, "y": 5, "x": 4},
        stride={"t": 1, "y": 3, "x": 4},
        edges={"t": [0, 1, 2, 3], "y": [0, 7, 14, 23], "x": [0, 5, 17]},
    )
    for g in range(plan.n_groups):
        coords = np.unravel_index(g, plan.group_shape)
        expected = tuple(
            range(int(ax.group_first[c]), int(ax.group_first[c + 1]))
            for ax, c in zip(plan.axes, coords, strict=True)
        )
        assert plan.group_window_ranges(g) == expected
        assert plan.group_window_ranges(np.int64(g)) == expected
    windows = [w for g in range(plan.n_groups) for w in product(*plan.group_window_ranges(g))]
    assert len(windows) == len(set(windows)) == plan.n_windows
    for bad in (-1, plan.n_groups):
        with pytest.raises(ValueError, match="out of bounds"):
            plan.group_window_ranges(bad)
