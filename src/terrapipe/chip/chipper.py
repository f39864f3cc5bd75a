"""``chip``: cut every xarray element of a pipe into windows, reading each storage block once.

xbatcher cuts one patch at a time with ``isel``, so a Zarr chunk is read and
decompressed again for every patch that touches it (16 times for 128² patches
of 512² chunks). :class:`Chip` plans the windows first
(:mod:`terrapipe.chip.plan`), groups them by the storage block their start
falls in, reads each group's region once on a thread pool (whole blocks, with
bounded read-ahead, see :mod:`terrapipe.chip.reader`) and cuts every window of
the group from memory.

Examples
--------
>>> import numpy as np, xarray as xr
>>> import terrapipe as tp
>>> import terrapipe.chip
>>> cube = xr.DataArray(
...     np.arange(2 * 6 * 8, dtype="float32").reshape(2, 6, 8), dims=("band", "y", "x"),
...     coords={"band": [1, 2], "y": np.arange(6.0), "x": np.arange(8.0)},
... )
>>> chips = list(tp.from_items([cube]).chip({"y": 4, "x": 4}, overlap={"x": 2}, boundary="shift"))
>>> len(chips), chips[0].dims, chips[0].shape
(6, ('band', 'y', 'x'), (2, 4, 4))
>>> chips[-1].x.values.tolist(), chips[-1].y.values.tolist()
([4.0, 5.0, 6.0, 7.0], [2.0, 3.0, 4.0, 5.0])
>>> all(c.equals(cube.sel(y=c.y, x=c.x)) for c in chips)
True
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator, Hashable, Iterator, Mapping
from dataclasses import asdict, dataclass
from itertools import product
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from terrapipe.chip.build import ItemCutter, Output, crs_and_transform
from terrapipe.chip.cursor import MAX_ROUND, ItemCursor, in_rounds
from terrapipe.chip.deprecated import OLD_KEYWORDS as _OLD
from terrapipe.chip.deprecated import upgrade
from terrapipe.chip.layout import describe_arrays
from terrapipe.chip.plan import (
    BOUNDARIES,
    Boundary,
    IntArray,
    WindowPlan,
    crossing_axes,
    element_share,
    plan_windows,
    takes_element,
    tiled_permutation,
)
from terrapipe.chip.reader import DEFAULT_WORKERS, BlockReader, ReadBudget, RegionStream
from terrapipe.chip.reads import Reads
from terrapipe.chip.split import SplitSubset, window_bounds
from terrapipe.chip.window_shuffle import WindowShuffle
from terrapipe.core.checks import check_number
from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError
from terrapipe.core.on_error import OnError, check_on_error, handle_error
from terrapipe.core.pipe import IterDataPipe, ShardMode, Stage, register, registered_class
from terrapipe.core.redact import redact_url
from terrapipe.core.renamed import pickled_names
from terrapipe.core.shard import Deferred, ShardInfo, deferring, shard_info, shared_seed, worker_seed
from terrapipe.core.state import ResumesNextPass
from terrapipe.io.read_pool import Lease, lease

__all__ = ["Chip", "ChipCounters", "normalize_windows"]

_STATE_KEYS = ("epoch", "item", "group", "window", "source")
SHUFFLE_TILE = 4
"""Groups per side of the tiles that ``shuffle=True`` visits one by one when windows cross block borders."""
ELEMENTS_AHEAD = 16
"""Most source elements a chipper pulls ahead of the one it serves, to read them early (remote data)."""


@dataclass
class ChipCounters:
    """What a chipper did in this process, over all passes (``chipper.counters``).

    Attributes
    ----------
    windows
        Chips yielded.
    dropped_nodata
        Windows dropped on purpose because their nodata fraction exceeded
        ``max_nodata_fraction`` (padding counts as nodata).
    outside_split
        Windows not in the requested ``subset`` of a spatial split (including
        those in no subset: across a cell border or inside the buffer).
    groups
        Window groups (regions) served.
    blocks_read
        Storage blocks read (for arrays not already in memory).
    block_rereads
        Blocks read again because the block budget dropped them before their
        last use (0 with the default budget and no shuffle).
    """

    windows: int = 0
    dropped_nodata: int = 0
    outside_split: int = 0
    groups: int = 0
    blocks_read: int = 0
    block_rereads: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict."""
        return asdict(self)


def normalize_windows(
    size: Mapping[Hashable, int] | int,
    overlap: Mapping[Hashable, int] | int | None,
    stride: Mapping[Hashable, int] | int | None,
) -> tuple[dict[Hashable, int], dict[Hashable, int]]:
    """Validate window sizes and turn overlap/stride into a stride per dimension.

    An integer ``size`` means ``{"y": size, "x": size}``; an integer overlap or
    stride applies to every sized dimension.

    Examples
    --------
    >>> normalize_windows(256, 32, None)
    ({'y': 256, 'x': 256}, {'y': 224, 'x': 224})
    >>> normalize_windows({"time": 4}, None, {"time": 1})
    ({'time': 4}, {'time': 1})
    """
    sizes = _per_dim("size", size, {"y": None, "x": None})
    if not sizes or any(not _is_int(v) or v < 1 for v in sizes.values()):
        raise InvalidArgumentError(f"size must map dimension names to window lengths >= 1, got {size!r}")
    if overlap is not None and stride is not None:
        raise InvalidArgumentError(
            f"give overlap or stride, not both (got overlap={overlap!r}, stride={stride!r})"
        )
    strides = dict(sizes)
    for dim, value in _per_dim("overlap", overlap, sizes).items():
        if not _is_int(value) or not 0 <= value < sizes[dim]:
            raise InvalidArgumentError(
                f"overlap along {dim!r} must be in [0, {sizes[dim]}) (an int), got {value!r}"
            )
        strides[dim] = sizes[dim] - int(value)
    for dim, value in _per_dim("stride", stride, sizes).items():
        if not _is_int(value) or value < 1:
            raise InvalidArgumentError(f"stride along {dim!r} must be an int >= 1, got {value!r}")
        strides[dim] = int(value)
    return {d: int(v) for d, v in sizes.items()}, strides


class _ShuffleParameter:
    """``chip.shuffle``: the ``shuffle=`` given (its repr and truth), still calling torch's ``shuffle`` stage.

    torch's error text names a stage with its parameter-named attributes
    (``Chip(..., shuffle=True, ...)``); the chip keeps ``shuffle=`` as
    ``shuffled``, so ``shuffle`` was torch's functional ``pipe.shuffle(...)``
    and showed as ``functools.partial(...)``. Calling it still chains that
    stage.
    """

    __slots__ = ("_pipe",)

    def __init__(self, pipe: Chip) -> None:
        self._pipe = pipe

    def __bool__(self) -> bool:
        return self._pipe.shuffled

    def __repr__(self) -> str:
        return repr(self._pipe.shuffle_given)

    def __call__(self, *args: Any, **kwargs: Any) -> IterDataPipe[Any]:
        shuffler = registered_class("shuffle")
        if shuffler is None:  # pragma: no cover - torch registers it on import
            raise AttributeError("shuffle")
        result: IterDataPipe[Any] = shuffler(self._pipe, *args, **kwargs)
        return result


class _ShuffleOption:
    """Class attribute ``Chip.shuffle``: a :class:`_ShuffleParameter` of each chip."""

    def __get__(self, obj: Chip | None, owner: type | None = None) -> Any:
        return self if obj is None else _ShuffleParameter(obj)


@register("chip")
class Chip(ResumesNextPass, Stage[Any]):
    """Cut each xarray element of ``source`` into chips, reading every storage block once.

    Parameters
    ----------
    source
        A pipe of ``xr.DataArray`` or ``xr.Dataset`` (lazy Zarr, COG, dask or
        numpy-backed).
    size
        Window length per dimension name, e.g. ``{"y": 256, "x": 256}``; an int
        means ``{"y": size, "x": size}``. Dimensions not named are kept whole
        (``band``, ``time``, ...).
    overlap
        Pixels shared by neighbouring windows, per dimension (or one int).
    stride
        Step between window starts (instead of ``overlap``).
    boundary
        ``"drop"`` (default, like xbatcher): only windows that fit;
        ``"pad"``: windows past the end are padded with ``pad_value``;
        ``"shift"``: the last window is moved back inside.
    pad_value
        Fill value for ``"pad"``; default the nodata value, else NaN (floats) or 0.
    nodata
        Nodata value of the data variables; default from ``_FillValue`` /
        ``nodata`` / ``missing_value`` attributes, else NaN for floats.
    max_nodata_fraction
        Drop windows whose share of nodata values (NaN, nodata, padding)
        exceeds this; they are counted in ``counters.dropped_nodata``.
    workers
        Reader threads (0: read in the calling thread); default ``None``:
        chosen by the source, :data:`~terrapipe.chip.reader.DEFAULT_WORKERS`
        (4) for local data, more for remote data (see :mod:`terrapipe.chip.reader`).
    reads
        Read bounds, a :class:`~terrapipe.chip.reads.Reads` (or a mapping of
        its fields): ``block_cache_bytes``, the budget for blocks read ahead
        or kept for a later group (halo blocks, 512 MiB), and ``read_ahead``,
        the groups whose blocks may be read ahead of the one being cut
        (default ``2 * workers``). ``None``: the defaults. They tune speed
        and memory only.
    shuffle
        ``True``, or a :class:`~terrapipe.chip.window_shuffle.WindowShuffle`
        (or a mapping of its fields; ``True`` is ``WindowShuffle()``): shuffle
        the order of block groups (one permutation per epoch, the same on
        every worker and rank before the split) and the windows inside a
        buffer of ``buffer`` windows of consecutive groups (per worker; whole
        groups are added until it is full), seeded by its ``seed`` mixed with
        the epoch, element, rank and worker. When windows cross block
        borders, the groups come tile by tile (see the notes).
    split
        One subset of a :class:`~terrapipe.chip.split.SpatialSplit`,
        ``split.select("train")`` (a :class:`~terrapipe.chip.split.SplitSubset`):
        windows of other subsets, or of none, are skipped without being read.
    output
        ``"xarray"`` (default): chips of the input's type with its coordinates,
        attributes and CRS (``chip.rio.transform()`` is the window's);
        ``"numpy"``: ``(array, GeoMeta)`` (a dict of arrays for a Dataset),
        which skips building xarray objects.
    shard
        ``"auto"``: split the work across DataLoader workers and DDP ranks:
        whole elements, one shard each, while at least as many elements are
        left as shards, then the block groups of the rest (contiguous shares,
        so neighbouring groups stay together); ``False``: every worker chips
        everything.
    on_error
        What to do when a block cannot be read: ``"raise"``, or ``"skip"`` /
        ``"warn"`` the windows of its group (counted in ``stats.skipped``).

    Raises
    ------
    InvalidArgumentError
        For bad arguments, an element that is not an xarray object, a
        window dimension that the element lacks, an element smaller than the
        window with ``boundary="drop"``, or a one-pixel grid without a
        ``GeoTransform`` with ``output="numpy"`` (the element errors follow
        ``on_error``).
    ReadError
        When a block cannot be read and ``on_error="raise"``.

    Notes
    -----
    The old keywords ``shuffle_buffer=``, ``seed=``, ``subset=``,
    ``block_cache_bytes=`` and ``read_ahead=`` still work for one release and
    warn (:class:`~terrapipe.core.errors.TerrapipeDeprecationWarning`; see
    :mod:`terrapipe.chip.deprecated`); a chip built either way is the same
    (windows, order, state, cache key).

    Guarantees, for the windows of one element:

    - every window is yielded once per epoch over all shards (workers x ranks),
      none twice and none missing (minus those dropped on purpose);
    - within a shard each storage block is read once, when the blocks kept
      for later groups fit in ``block_cache_bytes`` (about one row of blocks
      with overlapping windows; nothing with windows that do not cross
      block borders). Over budget, the kept block needed last is dropped
      and read again when its turn comes (``counters.block_rereads``);
    - with ``shuffle=True`` and windows that cross block borders (so that
      neighbouring groups share blocks), the groups come in tiles of
      :data:`SHUFFLE_TILE` x :data:`SHUFFLE_TILE` neighbours: the tiles in
      a random order, the groups of each tile together in a random order,
      and the window buffer mixes consecutive groups. Blocks shared inside a
      tile are used close together; those shared with a later tile are kept
      until then when the budget allows. (A plain permutation of the groups
      would keep nearly every halo block alive for most of the pass.) Without
      such windows the groups are a plain permutation;
    - across shards, the elements of each complete round of as many elements
      as shards go whole to one shard each (:func:`~terrapipe.chip.cursor.in_rounds`,
      which pulls up to ``shards - 1`` elements ahead to know; with more than
      :data:`~terrapipe.chip.cursor.MAX_ROUND` shards, every element is split),
      so their blocks are read by one shard, and the other shards neither
      plan them nor, where the source hands them over unbuilt
      (:class:`~terrapipe.core.shard.Deferred`: ``stack_stac``), build them;
      the elements of a short last round are split by block groups, and there a block is read by one
      shard unless windows of groups on different shards cross into it
      (overlap or windows not aligned with blocks), in which case the shards
      at a share's edge read it too.

    Chips are read-only and share memory with no other chip, no block that
    overlapping chips, the block cache or a later pass read again, and no
    user's in-memory array: each is a view of a region decoded for its
    group alone where the windows do not overlap, else a copy of its
    window, so writing through ``torch.as_tensor(chip)`` changes that chip
    alone. Copy one before writing into it.
    The order without shuffle is group by group (row-major over blocks), and
    row-major within a group. ``len()`` is unknown (``TypeError``). The stage
    is :class:`~terrapipe.core.state.Stateful`: a resumed pass starts at the
    interrupted group without reading the groups before it.

    Over remote data read on threads (see :mod:`terrapipe.chip.reader`), the
    next elements are read ahead: once every region of the current element
    has its reads started, elements are pulled from the source (at most
    :data:`ELEMENTS_AHEAD`), planned, and their first blocks read, within the
    same bounds in bytes and reads in flight, counted over all of them
    (:class:`~terrapipe.chip.reader.ReadBudget`), so the link does not go idle
    between elements. Their chips still come after the current element's, and
    an error of the source or of an element comes in its turn. ``state_dict()``
    keeps the source's state before the element being chipped (not the last
    one pulled), so a resume is exact. Local data is read one element at a
    time, as before; ``reads=Reads(read_ahead=0)`` turns reading ahead off.
    """

    state_keys = _STATE_KEYS

    can_shard = True

    # shows ``shuffle=`` where torch names the stage (in its error text); calling it chains torch's shuffle
    shuffle = _ShuffleOption()

    def __init__(
        self,
        source: IterDataPipe[Any],
        size: Mapping[Hashable, int] | int,
        *,
        overlap: Mapping[Hashable, int] | int | None = None,
        stride: Mapping[Hashable, int] | int | None = None,
        boundary: Boundary = "drop",
        pad_value: float | None = None,
        nodata: float | None = None,
        max_nodata_fraction: float | None = None,
        workers: int | None = None,
        reads: Reads | Mapping[str, Any] | None = None,
        shuffle: bool | WindowShuffle | Mapping[str, Any] = False,
        split: SplitSubset | None = None,
        output: Output = "xarray",
        shard: ShardMode = "auto",
        on_error: OnError = "raise",
        **deprecated: Any,
    ) -> None:
        super().__init__()
        kept = WindowShuffle()  # what an unshuffled chip records (its cache key holds it)
        if deprecated:
            unknown = sorted(set(deprecated) - set(_OLD["chip"]))
            if unknown:
                raise TypeError(f"Chip.__init__() got an unexpected keyword argument {unknown[0]!r}")
            new = upgrade(
                "chip", {"shuffle": shuffle, "split": split, "reads": reads, **deprecated}, warn=True
            )
            shuffle, split, reads = new.kwargs["shuffle"], new.kwargs["split"], new.kwargs["reads"]
            kept = new.unshuffled or kept
        shuffling = WindowShuffle.of(shuffle)
        subset = SplitSubset.of(split)
        bounds = Reads.of(reads)
        self.source = source
        self.size, self.stride = normalize_windows(size, overlap, stride)
        if boundary not in BOUNDARIES:
            raise InvalidArgumentError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        if max_nodata_fraction is not None:
            check_number(max_nodata_fraction, "max_nodata_fraction", minimum=0, maximum=1)
        if pad_value is not None:
            check_number(pad_value, "pad_value", finite=False)
        if nodata is not None:
            check_number(nodata, "nodata", finite=False)
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise InvalidArgumentError(f"workers must be None or an int >= 0, got {workers!r}")
        if output not in ("xarray", "numpy"):
            raise InvalidArgumentError(f"output must be 'xarray' or 'numpy', got {output!r}")
        self.boundary: Boundary = boundary
        self.pad_value = pad_value
        self.nodata = nodata
        self.max_nodata_fraction = max_nodata_fraction
        self.workers = workers
        # the attributes (and so the cache key) a chip had when these were keywords of their own
        self.block_cache_bytes = bounds.block_cache_bytes
        self.read_ahead = bounds.read_ahead
        self.shuffled = shuffling is not None
        self.shuffle_buffer = (shuffling or kept).buffer
        self.seed = (shuffling or kept).seed
        self.split = subset.split if subset is not None else None
        self.subset = subset.name if subset is not None else None
        self._shuffle_given: bool | WindowShuffle = (
            False if shuffling is None else True if shuffling == WindowShuffle() else shuffling
        )
        self.output: Output = output
        self.shard = shard
        self.on_error = check_on_error(on_error)
        self.counters = ChipCounters()
        self._cursor = ItemCursor(source)
        self._resume: dict[str, Any] | None = None
        self._snapshot: dict[str, Any] | None = None  # the source's state before the element served
        self._pass: _Pass | None = None
        self._in_pass = False
        self._epoch = 0
        self._item = 0
        self._group = 0
        self._window = 0

    @property
    def reads(self) -> Reads:
        """The chip's read bounds (``reads=``)."""
        return Reads(self.block_cache_bytes, self.read_ahead)

    @property
    def shuffle_given(self) -> bool | WindowShuffle:
        """The ``shuffle=`` of this chip: ``False``, ``True`` (the default shuffle) or its :class:`WindowShuffle`."""
        return self._shuffle_given

    def keep_shuffle_settings(self, settings: WindowShuffle) -> None:
        """Record a shuffle's settings on a chip that does not shuffle (they change nothing it yields).

        A recipe gave its seed to every chip step while ``seed=`` was a chip
        keyword, and a chip's cache key holds its seed and buffer; a recipe
        run records them here, so that a cache written then is still found.
        A shuffling chip keeps its own.
        """
        if not self.shuffled:
            settings = WindowShuffle.of(settings) or WindowShuffle()
            self.shuffle_buffer, self.seed = settings.buffer, settings.seed

    # -- planning ----------------------------------------------------------
    def _plan(self, obj: xr.DataArray | xr.Dataset) -> tuple[WindowPlan, list[Any], tuple[bool, ...]]:
        if not isinstance(obj, xr.DataArray | xr.Dataset):
            raise InvalidArgumentError(
                f"chip takes xarray DataArray or Dataset elements, got {type(obj).__name__}"
            )
        order = _plan_order(obj, self.size)
        arrays, edges = describe_arrays(
            obj,
            order,
            window=self.size,
            stride=self.stride,
            block_bytes=max(2**16, min(self.block_cache_bytes // 16, 2**23)),
            nodata=self.nodata,
        )
        plan = plan_windows(
            {d: int(obj.sizes[d]) for d in order},
            self.size,
            stride=self.stride,
            boundary=self.boundary,
            edges=edges,
        )
        return plan, arrays, crossing_axes(plan, edges)

    def _keep_mask(self, obj: xr.DataArray | xr.Dataset, plan: WindowPlan) -> np.ndarray | None:
        if self.split is None or self.subset is None:
            return None
        crs, transform, x_dim, y_dim = crs_and_transform(obj)
        starts = plan.window_starts(np.arange(plan.n_windows))
        dims = list(plan.dims)
        zeros = np.zeros(len(starts), np.int64)
        col = starts[:, dims.index(x_dim)] if x_dim in dims else zeros
        row = starts[:, dims.index(y_dim)] if y_dim in dims else zeros
        width = plan.axes[dims.index(x_dim)].window if x_dim in dims else int(obj.sizes.get(x_dim, 1))
        height = plan.axes[dims.index(y_dim)].window if y_dim in dims else int(obj.sizes.get(y_dim, 1))
        labels = self.split.assign(window_bounds(transform, col, row, width, height, crs=crs))
        return np.asarray(labels == self.split.subset_number(self.subset))

    def _group_order(
        self,
        plan: WindowPlan,
        crossing: tuple[bool, ...],
        epoch: int,
        item: int,
        info: ShardInfo,
        whole: bool,
    ) -> IntArray:
        n = plan.n_groups
        if self.shuffled:
            rng = np.random.default_rng(shared_seed(self.seed, epoch=epoch) ^ (item * 0x9E3779B1))
            # Groups that share halo blocks come tile by tile (see the class notes).
            tile = [SHUFFLE_TILE if c else 1 for c in crossing]
            order = tiled_permutation(plan.group_shape, tile, rng)
        else:
            order = np.arange(n, dtype=np.int64)
        return order[element_share(n, info, element=item, whole=whole)]

    def _batches(self, plan: WindowPlan, groups: IntArray, kept: IntArray | None) -> IntArray:
        """First group position of each shuffle buffer (one group per buffer without shuffle)."""
        if not self.shuffled or groups.size == 0:
            return np.arange(groups.size + 1, dtype=np.int64)
        counts = plan.group_window_counts(groups) if kept is None else kept
        ends = np.cumsum(counts)
        marks = [0]
        filled = 0
        for pos, total in enumerate(ends.tolist()):
            if total - filled >= self.shuffle_buffer:
                marks.append(pos + 1)
                filled = total
        if marks[-1] != groups.size:
            marks.append(int(groups.size))
        return np.asarray(marks, dtype=np.int64)

    # -- iteration ---------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, None
        self._epoch = epoch = self._begin_epoch()
        info = shard_info() if self._claim_sharding() else ShardInfo()
        start_item = int(resume["item"]) if resume else 0
        self._item, self._group, self._window = start_item, 0, 0
        self._snapshot = resume["source"] if resume else None
        self._in_pass = True
        clock = time.perf_counter()
        # One pool of reader threads for the whole pass: starting threads per element cost
        # more than decoding a small scene (see docs/benchmarks/chip.md, many small scenes).
        threads = DEFAULT_WORKERS if self.workers is None else self.workers  # remote: see chip.reader
        pool = lease(threads) if threads else None  # the process's long-lived reader threads
        before = self._cursor.with_snapshots(start=start_item, snapshot=resume["source"] if resume else None)
        pulls = in_rounds(before, info.count)  # whole elements per shard while there are enough (plan.py)
        # elements another shard takes whole are not built: their source may hand them over deferred
        defer = self.source if 1 < info.count <= MAX_ROUND else None
        ctx = self._pass = _Pass(epoch, info, pool, ReadBudget(), pulls, defer)
        try:
            while True:
                pulled = ctx.ahead.popleft() if ctx.ahead else ctx.pull(ahead=False)
                if pulled is None:
                    break
                if pulled.error is not None:  # the source failed while this element was pulled ahead
                    raise pulled.error
                item = self._item = pulled.item
                self._snapshot = pulled.snapshot
                first_group = int(resume["group"]) if resume and item == start_item else 0
                skip_windows = int(resume["window"]) if resume and item == start_item else 0
                self._group, self._window = first_group, skip_windows
                if pulled.work is None:
                    pulled.work = self._prepare(pulled, ctx, first_group, skip_windows)
                chips = self._chip_item(pulled.obj, pulled.work, epoch, item, info, first_group, skip_windows)
                try:
                    for chip in chips:
                        self.stats.seconds += time.perf_counter() - clock
                        yield chip
                        clock = time.perf_counter()
                finally:
                    chips.close()
                self._group, self._window = 0, 0
                self._item = item + 1
        finally:
            self._pass = None
            for pulled in ctx.ahead:  # read ahead, never served: count what was read
                if pulled.work is not None:
                    self._finish(pulled.work)
            ctx.ahead.clear()
            ctx.budget.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self.stats.seconds += time.perf_counter() - clock
        self._in_pass = False

    def _prepare(self, pulled: _Pulled, ctx: _Pass, first_group: int, skip_windows: int) -> _Work:
        """Plan an element's windows and groups, and make the reader of its regions (no read yet)."""
        if not takes_element(pulled.item, ctx.info, whole=pulled.whole):
            return _Work(None)  # another shard chips it whole: not built (if deferred), planned or read
        if isinstance(pulled.obj, Deferred):
            pulled.obj = pulled.obj.take()  # the source's error, if any, comes from here
        obj, item = pulled.obj, pulled.item
        plan, arrays, crossing = self._plan(obj)
        if plan.n_windows == 0:
            sizes = {dim: int(obj.sizes[dim]) for dim in self.size if dim in obj.sizes}
            err = InvalidArgumentError(
                f"chip: {_describe(obj)} is smaller than the window (sizes {sizes}, window {self.size}) and "
                f"boundary={self.boundary!r} yields no chip from it; pass boundary='pad' or a smaller window, "
                "or on_error='skip' to skip and count such elements"
            )
            return _Work(plan, error=err)
        keep = self._keep_mask(obj, plan)
        groups = self._group_order(plan, crossing, ctx.epoch, item, ctx.info, pulled.whole)
        kept_counts: IntArray | None = None
        outside = 0
        if keep is not None:
            counts_all = _kept_per_group(plan, keep)
            outside = int(plan.group_window_counts(groups).sum() - counts_all[groups].sum())
            groups = groups[counts_all[groups] > 0]
            kept_counts = counts_all[groups]
        marks = self._batches(plan, groups, kept_counts)
        batch_no = int(np.searchsorted(marks, first_group, side="right") - 1)
        work = _Work(plan, keep=keep, groups=groups, marks=marks, batch_no=batch_no, outside_split=outside)
        if first_group >= groups.size or marks[batch_no] != first_group:
            if groups.size == 0 and first_group == 0:
                return work
            raise InvalidArgumentError(
                f"cannot resume chip at group {first_group} of element {item}: it is not the start of a group "
                "buffer in this configuration; was the state saved from the same pipeline?"
            )
        try:
            work.cutter = ItemCutter(
                obj, plan, arrays, boundary=self.boundary, pad_value=self.pad_value, output=self.output
            )
        except InvalidArgumentError as err:
            work.error = err
            return work
        reader = BlockReader(
            arrays,
            workers=self.workers,
            cache_bytes=self.block_cache_bytes,
            read_ahead=self.read_ahead,
            executor=ctx.pool,
            budget=ctx.budget,
        )
        work.starts, stops = plan.group_regions(groups[first_group:])
        work.served = reader.regions(work.starts, stops)
        return work

    def _read_ahead(self, ctx: _Pass) -> None:
        """Start the reads of the next elements while the current one's last regions are read or served.

        Called when every region of the current element (remote, read on
        threads) has its reads started: the elements already pulled ahead get
        theirs, in order, then further elements are pulled from the source and
        planned, as long as the shared budget (bytes and reads in flight,
        blocks held) has room, up to :data:`ELEMENTS_AHEAD` elements. An
        element's chips still come only after the previous element's; an error
        of the source, or of planning an element, surfaces when its turn comes.
        """
        for pulled in ctx.ahead:
            if not _reads_ahead(pulled):
                return
        while len(ctx.ahead) < ELEMENTS_AHEAD and ctx.budget_room():
            new = ctx.pull(ahead=True)
            if new is None:
                return
            ctx.ahead.append(new)
            if new.error is not None:
                return
            try:
                new.work = self._prepare(new, ctx, 0, 0)
            except Exception:  # planned again, and raised, when its turn comes
                return
            if not _reads_ahead(new):
                return

    def _chip_item(
        self,
        obj: xr.DataArray | xr.Dataset,
        work: _Work,
        epoch: int,
        item: int,
        info: ShardInfo,
        first_group: int,
        skip_windows: int,
    ) -> Generator[Any, None, None]:
        self.counters.outside_split += work.outside_split
        if work.error is not None:
            handle_error(work.error, on_error=self.on_error, stats=self.stats)
            return
        served, cutter, plan, groups, marks, starts = (
            work.served,
            work.cutter,
            work.plan,
            work.groups,
            work.marks,
            work.starts,
        )
        if (
            plan is None
            or served is None
            or cutter is None
            or groups is None
            or marks is None
            or starts is None
        ):
            return  # no group of this element in this shard (or the split)
        keep = work.keep
        try:
            for b in range(work.batch_no, marks.size - 1):
                lo, hi = int(marks[b]), int(marks[b + 1])
                self._group = lo
                if self.shuffled:
                    yield from self._emit_shuffled(
                        plan,
                        cutter,
                        groups[lo:hi],
                        served,
                        starts[lo - first_group : hi - first_group],
                        keep,
                        epoch,
                        item,
                        b,
                        info,
                        skip_windows if b == work.batch_no else 0,
                    )
                else:
                    yield from self._emit_group(
                        plan,
                        cutter,
                        int(groups[lo]),
                        served,
                        starts[lo - first_group],
                        keep,
                        skip_windows if b == work.batch_no else 0,
                    )
                self._window = 0
        finally:
            self._finish(work)

    def _finish(self, work: _Work) -> None:
        """Close an element's reads and count them."""
        if work.served is None:
            return
        work.served.close()
        reader = work.served.reader
        self.counters.blocks_read += reader.blocks_read
        self.counters.block_rereads += reader.rereads
        self.stats.bytes_read += reader.bytes_read
        work.served = None

    def _next_region(
        self, served: RegionStream, group: int, obj: xr.DataArray | xr.Dataset
    ) -> list[np.ndarray] | None:
        ctx = self._pass
        ahead = ctx is not None and served.reader.crosses_elements
        if ahead:
            ctx.limits = served.reader  # type: ignore[union-attr]
            served.fill(serving=True)
            if served.submitted_all:
                self._read_ahead(ctx)  # type: ignore[arg-type]
        regions, err = next(served)
        if ahead and served.submitted_all:
            self._read_ahead(ctx)  # type: ignore[arg-type]  # the budget this region held is free again
        self.counters.groups += 1
        if err is None:
            return regions  # type: ignore[no-any-return]
        if isinstance(err, TerrapipeError):
            handle_error(err, on_error=self.on_error, stats=self.stats)
            return None
        wrapped = ReadError(
            f"chip: cannot read the blocks of window group {group} of {_describe(obj)}: {type(err).__name__}: {err}; "
            "check that the source is readable, or pass on_error='skip' to skip its windows"
        )
        if self.on_error == "raise":
            raise wrapped from err
        handle_error(wrapped, on_error=self.on_error, stats=self.stats)
        return None

    def _accept(self, cutter: ItemCutter, views: list[np.ndarray], start: tuple[int, ...]) -> bool:
        if self.max_nodata_fraction is None:
            return True
        if cutter.missing_fraction(views, start) > self.max_nodata_fraction:
            self.counters.dropped_nodata += 1
            return False
        return True

    def _window_starts(
        self, plan: WindowPlan, group: int, keep: np.ndarray | None
    ) -> Iterator[tuple[int, ...]]:
        """Start offsets of the windows of one group (row-major), minus those the split excludes."""
        ranges = plan.group_window_ranges(group)
        starts = [ax.starts[r.start : r.stop].tolist() for ax, r in zip(plan.axes, ranges, strict=True)]
        if keep is None:
            yield from product(*starts)
            return
        shape = plan.window_shape
        for index, start in zip(product(*ranges), product(*starts), strict=True):
            if keep[np.ravel_multi_index(index, shape)]:
                yield start

    def _emit_group(
        self,
        plan: WindowPlan,
        cutter: ItemCutter,
        group: int,
        served: RegionStream,
        region_start: IntArray,
        keep: np.ndarray | None,
        skip: int,
    ) -> Iterator[Any]:
        regions = self._next_region(served, group, cutter.obj)
        if regions is None:
            return
        regions = cutter.prepare(regions, cut_once=True)  # each window of the group once (a view where apart)
        origin = tuple(int(v) for v in region_start)
        check = self.max_nodata_fraction is not None
        counters, stats = self.counters, self.stats
        views_of, build = cutter.data_views, cutter.build
        position = 0
        for start in self._window_starts(plan, group, keep):
            position += 1
            if position <= skip:
                continue
            views, _ = views_of(regions, origin, start)
            self._window = position
            if check and not self._accept(cutter, views, start):
                continue
            chip = build(views, start)
            counters.windows += 1
            stats.elements += 1
            yield chip

    def _emit_shuffled(
        self,
        plan: WindowPlan,
        cutter: ItemCutter,
        groups: IntArray,
        served: RegionStream,
        region_starts: IntArray,
        keep: np.ndarray | None,
        epoch: int,
        item: int,
        batch: int,
        info: ShardInfo,
        skip: int,
    ) -> Iterator[Any]:
        regions: list[list[np.ndarray] | None] = []
        entries: list[tuple[int, tuple[int, ...]]] = []
        for local, g in enumerate(groups.tolist()):
            served_region = self._next_region(served, g, cutter.obj)
            regions.append(None if served_region is None else cutter.prepare(served_region, cut_once=True))
            if served_region is not None:
                entries.extend((local, start) for start in self._window_starts(plan, g, keep))
        origins = [tuple(int(v) for v in row) for row in region_starts]
        rng = np.random.default_rng(worker_seed(self.seed, epoch=epoch, info=info) ^ (item << 20) ^ batch)
        order = rng.permutation(len(entries))
        check = self.max_nodata_fraction is not None
        counters, stats = self.counters, self.stats
        views_of, build = cutter.data_views, cutter.build
        for position, e in enumerate(order.tolist(), start=1):
            if position <= skip:
                continue
            local, start = entries[e]
            views, _ = views_of(regions[local], origins[local], start)  # type: ignore[arg-type]
            self._window = position
            if check and not self._accept(cutter, views, start):
                continue
            chip = build(views, start)
            counters.windows += 1
            stats.elements += 1
            yield chip

    # -- state -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Return ``{"epoch", "item", "group", "window", "source"}``: where the pass stands.

        ``item`` is the index of the current source element in this pass,
        ``group`` the position (in this shard's group order) of the first group
        of the current buffer, ``window`` the windows of that buffer already
        passed, and ``source`` the source's state before the current element
        (``None`` for a source that is not stateful: it is replayed).
        """
        if self._in_pass:
            return {
                "epoch": self._epoch,
                "item": self._item,
                "group": self._group,
                "window": self._window,
                "source": self._snapshot if self._cursor.stateful else None,
            }
        return {"epoch": self._next_epoch, "item": 0, "group": 0, "window": 0, "source": self._cursor.state()}

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} has no known length: it depends on every element's size")


@dataclass
class _Work:
    """An element planned for chipping: its groups in this shard and the reader of their regions."""

    plan: WindowPlan | None  # None: another shard takes the element
    error: TerrapipeError | None = None  # what the element's on_error handles when its turn comes
    keep: np.ndarray | None = None
    groups: IntArray | None = None
    marks: IntArray | None = None
    batch_no: int = 0
    outside_split: int = 0
    cutter: ItemCutter | None = None
    starts: IntArray | None = None
    served: RegionStream | None = None


@dataclass
class _Pulled:
    """A source element, the source's state before it, and its work once planned."""

    item: int
    obj: Any
    snapshot: dict[str, Any] | None
    whole: bool = False  # chipped whole by one shard (chip.plan.element_share)
    work: _Work | None = None
    error: Exception | None = None  # the source raised pulling it (ahead)


class _Pass:
    """What one pass of a chipper holds: its shard, thread pool, shared read budget and elements pulled ahead."""

    def __init__(
        self,
        epoch: int,
        info: ShardInfo,
        pool: Lease | None,
        budget: ReadBudget,
        pulls: Iterator[tuple[int, Any, dict[str, Any] | None, bool]],
        defer: IterDataPipe[Any] | None = None,
    ) -> None:
        self.epoch = epoch
        self.defer = defer  # the source asked for Deferred elements (core.shard.deferring)
        self.info = info
        self.pool = pool
        self.budget = budget
        self.pulls = pulls
        self.ahead: deque[_Pulled] = deque()  # bounded: ELEMENTS_AHEAD
        self.exhausted = False
        self.limits: BlockReader | None = None  # the reader whose limits bound reading ahead

    def pull(self, *, ahead: bool) -> _Pulled | None:
        """Pull the next element (``None`` at the end); pulled ahead, an error of the source is kept for later."""
        if self.exhausted:
            return None
        try:
            if self.defer is None:
                item, obj, snapshot, whole = next(self.pulls)
            else:
                with deferring(self.defer):
                    item, obj, snapshot, whole = next(self.pulls)
        except StopIteration:
            self.exhausted = True
            return None
        except Exception as err:
            if not ahead:
                raise
            self.exhausted = True  # a source that raised is finished
            return _Pulled(-1, None, None, error=err)
        return _Pulled(item, obj, snapshot, whole)

    def budget_room(self) -> bool:
        """Whether the shared budget has room for another element's reads (by the current reader's limits)."""
        return self.limits is not None and self.limits.room()


def _reads_ahead(pulled: _Pulled) -> bool:
    """Start the reads of an element pulled ahead that the budget allows; whether all have started."""
    work = pulled.work
    if pulled.error is not None or work is None:
        return False
    served = work.served
    if served is None:  # nothing to read in this shard (or an error for its turn): on to the next
        return True
    if not served.reader.crosses_elements:
        return False  # local data: read when its turn comes, as always
    served.fill()
    return served.submitted_all


def _plan_order(obj: xr.DataArray | xr.Dataset, size: Mapping[Hashable, int]) -> list[Hashable]:
    """Sized dims in the order of the largest variable's dims (memory order), then the rest."""
    if isinstance(obj, xr.DataArray):
        ref: tuple[Hashable, ...] = obj.dims
    else:
        variables = sorted(obj.data_vars.values(), key=lambda v: -v.size)
        ref = variables[0].dims if variables else tuple(obj.dims)
    order = [d for d in ref if d in size]
    order += [d for d in obj.dims if d in size and d not in order]
    order += [d for d in size if d not in order]  # missing dims: describe_arrays raises
    return order


def _kept_per_group(plan: WindowPlan, keep: np.ndarray) -> IntArray:
    grid = keep.reshape(plan.window_shape)
    for k, axis in enumerate(plan.axes):
        grid = np.add.reduceat(grid.astype(np.int64), axis.group_first[:-1], axis=k)
    return grid.reshape(-1).astype(np.int64)


def _per_dim(name: str, value: object, dims: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
    """``value`` per dimension: a mapping is checked against ``dims``, anything else applies to all."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        if name == "size" and not _is_int(value):
            raise InvalidArgumentError(f"size must map dimension names to window lengths >= 1, got {value!r}")
        return dict.fromkeys(dims, value)
    if name != "size":
        for dim in value:
            if dim not in dims:
                raise InvalidArgumentError(
                    f"{name} names {dim!r}, which is not a window dimension of {dict(dims)!r}"
                )
    return dict(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _describe(obj: xr.DataArray | xr.Dataset) -> str:
    source = obj.encoding.get("source")
    if source:
        return repr(redact_url(str(source)))
    name = getattr(obj, "name", None)
    kind = type(obj).__name__
    return f"{kind} {name!r} {dict(obj.sizes)}" if name is not None else f"{kind} {dict(obj.sizes)}"


if not TYPE_CHECKING:  # the names a previous release's pickles gave its classes here (renamed.PICKLED)
    __getattr__ = pickled_names(__name__)
