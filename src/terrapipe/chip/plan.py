"""Window planning: pure arithmetic on dimension sizes, windows and storage blocks.

A *plan* describes every window of one array and groups the windows by the
storage block their start falls in. Nothing here does I/O or holds a Python
object per window: each sized dimension keeps one array of window starts and
one array of group boundaries, and everything else (window counts, regions,
which shard gets which group) is computed from those. A plan of a billion
windows is a few arrays of tens of thousands of integers.

Vocabulary
----------
window
    ``size[d]`` pixels along each sized dimension ``d``, starting at a
    multiple of the stride (the last one possibly shifted or padded, see
    :func:`axis_starts`).
block
    A storage chunk: a Zarr chunk, a dask chunk, a COG tile. Its edges along
    each dimension come from :mod:`terrapipe.chip.layout`.
group
    The windows whose start lies in the same block, along every sized
    dimension. Groups are the unit of reading and of sharding: a group's
    *region* spans its windows (the anchor block plus the halo that windows
    reaching past the block's end need).

Examples
--------
>>> from terrapipe.chip.plan import plan_windows
>>> plan = plan_windows({"y": 10, "x": 12}, {"y": 4, "x": 4}, edges={"y": [0, 5, 10], "x": [0, 6, 12]})
>>> plan.n_windows, plan.group_shape
(6, (1, 2))
>>> plan.group_region(0)
((0, 8), (0, 8))
>>> [w.tolist() for w in plan.group_window_starts(1)]
[[0, 8], [4, 8]]
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import product
from math import prod
from typing import Literal

import numpy as np
import numpy.typing as npt

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.shard import ShardInfo

__all__ = [
    "AxisPlan",
    "Boundary",
    "WindowPlan",
    "axis_starts",
    "block_edges",
    "common_edges",
    "crossing_axes",
    "element_share",
    "plan_axis",
    "plan_windows",
    "shard_slice",
    "takes_element",
    "tiled_permutation",
]

Boundary = Literal["drop", "pad", "shift"]
BOUNDARIES: tuple[str, ...] = ("drop", "pad", "shift")

IntArray = npt.NDArray[np.int64]


def axis_starts(size: int, window: int, stride: int, boundary: Boundary = "drop") -> IntArray:
    """Return the start offsets of the windows along one dimension.

    Parameters
    ----------
    size
        Length of the dimension.
    window
        Window length (>= 1).
    stride
        Step between window starts (>= 1); ``window - overlap``.
    boundary
        What happens at the end of the dimension:

        - ``"drop"``: only windows that fit (``start + window <= size``), like
          xbatcher; no window when ``window > size``;
        - ``"pad"``: continue until every pixel is covered; the last windows
          reach past the end and are padded by the chipper;
        - ``"shift"``: like ``"pad"`` but the last window is moved back to end
          exactly at ``size`` (so it overlaps its neighbour more); a dimension
          shorter than the window gets one padded window.

    Returns
    -------
    numpy.ndarray
        Sorted, unique ``int64`` starts.

    Raises
    ------
    InvalidArgumentError
        For a non-positive window or stride, a negative size or an unknown boundary.

    Examples
    --------
    >>> axis_starts(10, 4, 3).tolist()
    [0, 3, 6]
    >>> axis_starts(10, 4, 3, "pad").tolist()
    [0, 3, 6]
    >>> axis_starts(10, 4, 4, "pad").tolist()
    [0, 4, 8]
    >>> axis_starts(10, 4, 4, "shift").tolist()
    [0, 4, 6]
    >>> axis_starts(3, 4, 4, "drop").tolist()
    []
    """
    if boundary not in BOUNDARIES:
        raise InvalidArgumentError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if window < 1 or stride < 1 or size < 0:
        msg = f"window and stride must be >= 1 and size >= 0, got window={window!r} stride={stride!r} size={size!r}"
        raise InvalidArgumentError(msg)
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    if boundary == "drop":
        if window > size:
            return np.zeros(0, dtype=np.int64)
        return np.arange(0, size - window + 1, stride, dtype=np.int64)
    # Enough windows to reach the end: the last start is the first multiple of
    # the stride at or past ``size - window``.
    count = -(-max(size - window, 0) // stride) + 1
    starts = np.arange(count, dtype=np.int64) * stride
    if boundary == "shift" and size >= window:
        starts[-1] = min(int(starts[-1]), size - window)
    return starts


def block_edges(chunks: int | Sequence[int], size: int) -> IntArray:
    """Return block edges ``[0, e1, ..., size]`` from a chunk length or a list of chunk lengths.

    Examples
    --------
    >>> block_edges(4, 10).tolist()
    [0, 4, 8, 10]
    >>> block_edges((3, 3, 4), 10).tolist()
    [0, 3, 6, 10]
    >>> block_edges(16, 10).tolist()
    [0, 10]
    """
    if isinstance(chunks, int | np.integer):
        step = int(chunks)
        if step < 1:
            raise InvalidArgumentError(f"chunk length must be >= 1, got {chunks!r}")
        edges = np.arange(0, size, step, dtype=np.int64)
        return np.append(edges, np.int64(size)) if size > 0 else np.zeros(1, dtype=np.int64)
    lengths = np.asarray(chunks, dtype=np.int64)
    if lengths.sum() != size or (lengths < 0).any():
        raise InvalidArgumentError(
            f"chunk lengths {tuple(chunks)!r} do not add up to the dimension size {size}"
        )
    edges = np.concatenate([[0], np.cumsum(lengths[lengths > 0])]).astype(np.int64)
    return edges if edges.size > 1 or size == 0 else np.array([0, size], dtype=np.int64)


def common_edges(*edge_arrays: IntArray) -> IntArray:
    """Return the edges shared by every layout: blocks that are whole in all of them.

    Reading a dask chunk decodes every storage chunk it touches, so the unit
    that is decoded once is the smallest region made of whole dask chunks
    *and* whole storage chunks.

    Examples
    --------
    >>> common_edges(np.array([0, 4, 8, 12]), np.array([0, 6, 12])).tolist()
    [0, 12]
    >>> common_edges(np.array([0, 4, 8, 12]), np.array([0, 8, 12])).tolist()
    [0, 8, 12]
    """
    out = edge_arrays[0]
    for edges in edge_arrays[1:]:
        out = np.intersect1d(out, edges)
    return out.astype(np.int64)


@dataclass(frozen=True, eq=False)
class AxisPlan:
    """The windows of one sized dimension and their grouping by block.

    Attributes
    ----------
    dim
        Dimension name.
    size
        Dimension length.
    window
        Window length.
    starts
        Sorted window starts (``int64``).
    group_first
        ``len(groups) + 1`` indices into ``starts``: group ``j`` holds windows
        ``group_first[j]:group_first[j + 1]``.
    """

    dim: Hashable
    size: int
    window: int
    starts: IntArray
    group_first: IntArray

    @property
    def n_windows(self) -> int:
        """Number of windows along this dimension."""
        return int(self.starts.size)

    @property
    def n_groups(self) -> int:
        """Number of groups along this dimension."""
        return int(self.group_first.size - 1)

    @property
    def region_start(self) -> IntArray:
        """First pixel each group needs."""
        return self.starts[self.group_first[:-1]]

    @property
    def region_stop(self) -> IntArray:
        """One past the last pixel each group needs (clipped to the dimension)."""
        last = self.starts[self.group_first[1:] - 1]
        return np.minimum(last + self.window, self.size)

    @property
    def group_sizes(self) -> IntArray:
        """Windows per group along this dimension."""
        return np.diff(self.group_first)


def plan_axis(
    dim: Hashable,
    size: int,
    window: int,
    stride: int,
    boundary: Boundary = "drop",
    edges: Sequence[int] | IntArray | None = None,
) -> AxisPlan:
    """Plan one dimension: window starts grouped by the block each start falls in.

    Parameters
    ----------
    dim, size, window, stride, boundary
        See :func:`axis_starts`.
    edges
        Block edges ``[0, ..., size]``; ``None`` means a single block.

    Examples
    --------
    >>> axis = plan_axis("x", 10, 3, 3, edges=[0, 4, 8, 10])
    >>> axis.starts.tolist(), axis.group_first.tolist()
    ([0, 3, 6], [0, 2, 3])
    >>> axis.region_start.tolist(), axis.region_stop.tolist()
    ([0, 6], [6, 9])
    """
    starts = axis_starts(size, window, stride, boundary)
    if starts.size == 0:
        return AxisPlan(dim, size, window, starts, np.zeros(1, dtype=np.int64))
    edge_array = np.array([0, max(size, 1)], dtype=np.int64) if edges is None else np.asarray(edges, np.int64)
    anchors = np.searchsorted(edge_array, starts, side="right") - 1
    # starts are sorted, so equal anchors are contiguous runs
    breaks = np.flatnonzero(np.diff(anchors)) + 1
    group_first = np.concatenate([[0], breaks, [starts.size]]).astype(np.int64)
    return AxisPlan(dim, size, window, starts, group_first)


@dataclass(frozen=True, eq=False)
class WindowPlan:
    """Every window of an array: the product of its :class:`AxisPlan` s.

    Windows and groups are numbered row-major over the axes (the first axis
    varies slowest). Groups are the product of the per-axis groups, so group
    ``g`` holds the product of its per-axis window ranges.
    """

    axes: tuple[AxisPlan, ...]

    @property
    def dims(self) -> tuple[Hashable, ...]:
        """The sized dimensions, in plan order."""
        return tuple(axis.dim for axis in self.axes)

    @property
    def window_shape(self) -> tuple[int, ...]:
        """Windows along each axis."""
        return tuple(axis.n_windows for axis in self.axes)

    @property
    def group_shape(self) -> tuple[int, ...]:
        """Groups along each axis."""
        return tuple(axis.n_groups for axis in self.axes)

    @property
    def n_windows(self) -> int:
        """Total number of windows."""
        return int(np.prod(self.window_shape, dtype=np.int64)) if self.axes else 1

    @property
    def n_groups(self) -> int:
        """Total number of groups (0 when there is no window)."""
        return int(np.prod(self.group_shape, dtype=np.int64)) if self.axes else 1

    def group_index(self, group: int | IntArray) -> tuple[IntArray, ...]:
        """Per-axis group coordinates of flat group numbers."""
        return tuple(np.asarray(i, dtype=np.int64) for i in np.unravel_index(group, self.group_shape))

    def group_regions(self, groups: IntArray) -> tuple[IntArray, IntArray]:
        """Return ``(start, stop)``, each ``[len(groups), n_axes]``: the pixels each group needs."""
        coords = self.group_index(np.asarray(groups, dtype=np.int64))
        starts = np.stack([ax.region_start[c] for ax, c in zip(self.axes, coords, strict=True)], axis=-1)
        stops = np.stack([ax.region_stop[c] for ax, c in zip(self.axes, coords, strict=True)], axis=-1)
        return starts.reshape(-1, len(self.axes)), stops.reshape(-1, len(self.axes))

    def group_region(self, group: int) -> tuple[tuple[int, int], ...]:
        """Return ``((start, stop), ...)`` per axis for one group."""
        start, stop = self.group_regions(np.array([group]))
        return tuple((int(a), int(b)) for a, b in zip(start[0], stop[0], strict=True))

    def group_window_counts(self, groups: IntArray) -> IntArray:
        """Return the number of windows in each of ``groups``."""
        coords = self.group_index(np.asarray(groups, dtype=np.int64))
        counts = np.ones(np.shape(groups), dtype=np.int64)
        for axis, c in zip(self.axes, coords, strict=True):
            counts = counts * axis.group_sizes[c]
        return counts

    @cached_property
    def _group_firsts(self) -> tuple[tuple[int, list[int]], ...]:
        """Per axis ``(groups, group_first)`` as Python ints (a group's window ranges without numpy scalars)."""
        return tuple((axis.n_groups, axis.group_first.tolist()) for axis in self.axes)

    def group_window_ranges(self, group: int) -> tuple[range, ...]:
        """Per-axis window index ranges of one group."""
        firsts = self._group_firsts
        if isinstance(group, (int, np.integer)) and 0 <= group < prod(n for n, _ in firsts):
            rest, out = int(group), []
            for n, first in reversed(firsts):
                rest, c = divmod(rest, n)
                out.append(range(first[c], first[c + 1]))
            return tuple(reversed(out))
        coords = self.group_index(group)
        return tuple(
            range(int(ax.group_first[c]), int(ax.group_first[c + 1]))
            for ax, c in zip(self.axes, coords, strict=True)
        )

    def group_window_starts(self, group: int) -> Iterator[IntArray]:
        """Yield the start offsets of each window of one group, row-major."""
        ranges = self.group_window_ranges(group)
        for index in product(*ranges):
            yield np.array([ax.starts[i] for ax, i in zip(self.axes, index, strict=True)], dtype=np.int64)

    def window_starts(self, windows: IntArray) -> IntArray:
        """Start offsets ``[n, n_axes]`` of flat window numbers (row-major over the axes)."""
        index = np.unravel_index(np.asarray(windows, dtype=np.int64), self.window_shape)
        cols = [ax.starts[i] for ax, i in zip(self.axes, index, strict=True)]
        return np.stack(cols, axis=-1).reshape(-1, len(self.axes))

    def windows_of_groups(self, groups: IntArray) -> IntArray:
        """Flat window numbers of the windows of ``groups``, group by group, row-major inside.

        Meant for checks and small plans: it materialises one integer per window.
        """
        out: list[IntArray] = []
        for g in np.asarray(groups, dtype=np.int64).ravel():
            ranges = self.group_window_ranges(int(g))
            grids = np.meshgrid(*[np.arange(r.start, r.stop) for r in ranges], indexing="ij")
            out.append(
                np.ravel_multi_index(tuple(x.ravel() for x in grids), self.window_shape).astype(np.int64)
            )
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def plan_windows(
    sizes: Mapping[Hashable, int],
    window: Mapping[Hashable, int],
    *,
    stride: Mapping[Hashable, int] | None = None,
    boundary: Boundary = "drop",
    edges: Mapping[Hashable, Sequence[int] | IntArray | None] | None = None,
) -> WindowPlan:
    """Plan the windows of an array.

    Parameters
    ----------
    sizes
        Length of every sized dimension, in plan order (the order of the keys).
    window
        Window length per sized dimension (same keys as ``sizes``).
    stride
        Step between windows per dimension; defaults to the window (no overlap).
    boundary
        See :func:`axis_starts`.
    edges
        Block edges per dimension; missing or ``None`` means one block.

    Returns
    -------
    WindowPlan

    Examples
    --------
    >>> plan = plan_windows({"y": 1_000_000, "x": 1_000_000}, {"y": 1000, "x": 1000})
    >>> plan.n_windows, plan.n_groups
    (1000000, 1)
    """
    stride = stride or {}
    edges = edges or {}
    axes = tuple(
        plan_axis(
            dim,
            int(sizes[dim]),
            int(window[dim]),
            int(stride.get(dim, window[dim])),
            boundary,
            edges.get(dim),
        )
        for dim in sizes
    )
    return WindowPlan(axes)


def shard_slice(n_items: int, info: ShardInfo, *, rotate: int = 0) -> slice:
    """Return this shard's contiguous share of ``n_items`` ordered items.

    Contiguous shares keep neighbouring groups (which share halo blocks) on
    the same shard. ``rotate`` (e.g. the index of the source element) shifts
    which shard gets which share, so that many small inputs of one group each
    spread over the shards instead of all landing on the same one.

    Examples
    --------
    >>> info = [ShardInfo(worker_id=w, num_workers=3) for w in range(3)]
    >>> [shard_slice(7, i) for i in info]
    [slice(0, 2, None), slice(2, 4, None), slice(4, 7, None)]
    >>> [shard_slice(1, i, rotate=r).stop - shard_slice(1, i, rotate=r).start for r in range(3) for i in info]
    [0, 0, 1, 1, 0, 0, 0, 1, 0]
    """
    count = info.count
    share = (info.index - rotate) % count
    return slice(share * n_items // count, (share + 1) * n_items // count)


def element_share(n_items: int, info: ShardInfo, *, element: int, whole: bool) -> slice:
    """Return this shard's share of the ``n_items`` ordered groups of source element ``element``.

    With ``whole`` (the element's round of ``info.count`` elements is
    complete: :func:`~terrapipe.chip.cursor.in_rounds`), the element goes
    whole to shard ``element % info.count``: no block is read by two shards,
    halo blocks included, and each shard plans and reads fewer elements.
    Otherwise (fewer elements left than shards) every shard takes its
    contiguous share of the groups (:func:`shard_slice`, rotated by the
    element). Either way the shares of all shards are disjoint and together
    hold every group once.

    Examples
    --------
    >>> info = [ShardInfo(worker_id=w, num_workers=2) for w in range(2)]
    >>> [element_share(4, i, element=1, whole=True) for i in info]
    [slice(0, 0, None), slice(0, 4, None)]
    >>> [element_share(4, i, element=1, whole=False) for i in info]
    [slice(2, 4, None), slice(0, 2, None)]
    """
    if whole:
        return slice(0, n_items) if takes_element(element, info, whole=True) else slice(0, 0)
    return shard_slice(n_items, info, rotate=element)


def takes_element(element: int, info: ShardInfo, *, whole: bool) -> bool:
    """Whether shard ``info`` chips any of source element ``element`` (see :func:`element_share`).

    ``False`` only for an element that goes whole to another shard: this
    shard need not build, plan or read it.

    Examples
    --------
    >>> [takes_element(3, ShardInfo(worker_id=w, num_workers=2), whole=True) for w in range(2)]
    [False, True]
    >>> takes_element(3, ShardInfo(worker_id=0, num_workers=2), whole=False)
    True
    """
    return not whole or element % info.count == info.index


def crossing_axes(plan: WindowPlan, edges: Mapping[Hashable, Sequence[int] | IntArray]) -> tuple[bool, ...]:
    """Return, per axis, whether some group's region reaches past its anchor block (a halo).

    Groups whose windows reach into the next block share that block with the
    next group: it is read for both, or kept in between.

    Examples
    --------
    >>> edges = {"y": [0, 5, 10], "x": [0, 6, 12]}
    >>> crossing_axes(plan_windows({"y": 10, "x": 12}, {"y": 4, "x": 4}, edges=edges), edges)
    (True, True)
    >>> crossing_axes(plan_windows({"y": 10, "x": 12}, {"y": 5, "x": 3}, edges=edges), edges)
    (False, False)
    """
    out = []
    for axis in plan.axes:
        if axis.n_windows == 0 or axis.dim not in edges:
            out.append(False)
            continue
        edge_array = np.asarray(edges[axis.dim], dtype=np.int64)
        anchor = np.searchsorted(edge_array, axis.region_start, side="right") - 1
        block_stop = edge_array[np.minimum(anchor + 1, edge_array.size - 1)]
        out.append(bool((axis.region_stop > block_stop).any()))
    return tuple(out)


def tiled_permutation(shape: Sequence[int], tile: Sequence[int], rng: np.random.Generator) -> IntArray:
    """Return a random order of the cells of a grid that visits it tile by tile.

    The grid (row-major flat cell numbers) is cut into tiles of ``tile``
    cells per axis; the tiles come in a random order, and the cells of each
    tile, together, in a random order. A tile of 1 along every axis is a plain
    random permutation.

    Examples
    --------
    >>> order = tiled_permutation((4, 4), (2, 2), np.random.default_rng(0))
    >>> sorted(order.tolist()) == list(range(16))
    True
    >>> tile = lambda cell: (cell // 4 // 2, cell % 4 // 2)  # which 2 x 2 tile a cell is in
    >>> [len({tile(c) for c in order[i : i + 4].tolist()}) for i in (0, 4, 8, 12)]
    [1, 1, 1, 1]
    """
    n = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    coords = np.unravel_index(np.arange(n, dtype=np.int64), tuple(shape))
    tiles_shape = tuple(-(-int(s) // max(1, int(t))) for s, t in zip(shape, tile, strict=True))
    tile_of = np.ravel_multi_index(
        tuple(c // max(1, int(t)) for c, t in zip(coords, tile, strict=True)), tiles_shape
    )
    tile_rank = rng.permutation(int(np.prod(tiles_shape, dtype=np.int64)))
    return np.lexsort((rng.random(n), tile_rank[tile_of])).astype(np.int64)
