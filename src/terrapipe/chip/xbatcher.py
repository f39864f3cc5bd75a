"""``slice_with_xbatcher``: xbatcher 0.4.0's batches, cut by terrapipe's block-aware engine.

zen3geo's ``slice_with_xbatcher`` wrapped ``xbatcher.BatchGenerator``, which
cuts every patch with its own ``isel`` and so reads (and decompresses) a
storage chunk once for every patch that touches it. :class:`SliceWithXbatcher`
yields the same batches — same number, order, dimensions (including the
``sample`` stacking and the ``<dim>_input`` / ``input_batch`` names of concat
mode), coordinates and values — without importing xbatcher: the batch
layout is computed by :class:`~terrapipe.chip.xbatcher_schema.XbatcherSchema`
and the pixels are served by :class:`~terrapipe.chip.reader.BlockReader`,
which reads each block once.

Where we differ from xbatcher 0.4.0 on purpose
-----------------------------------------------
- **DataArray + concat_input_dims**: xbatcher concatenates patches whose
  input-dimension *index* coordinates differ, so xarray's outer join pads
  every patch with NaN to the union of all coordinates (a batch of 8 patches
  4 wide becomes 8 x the full width, mostly NaN). We do what xbatcher does for
  a Dataset: the input-dimension coordinates become non-index coordinates
  along ``(sample, <dim>_input)``, no padding.
- **preload_batch**: xbatcher's concat mode calls ``.load()`` on
  ``ds.isel({})``, which for dask-backed inputs loads the user's whole source
  in place, on every batch. We never modify the source; batches are always
  in memory (numpy), whatever ``preload_batch`` says (it is accepted for
  compatibility).
- **empty batches**: with a dimension in both ``input_dims`` and
  ``batch_dims``, xbatcher 0.4.0 can plan batches that hold no patch and then
  fails on them (``ValueError: min() arg is an empty sequence``); we skip
  them. A batch length longer than its dimension raises
  :class:`~terrapipe.core.errors.InvalidArgumentError` (xbatcher raises a
  ``ValueError`` from numpy).
- **cache**: xbatcher's ``cache=`` keys cached batches by their index only,
  so a cache reused with another input or configuration silently returns
  stale batches. There is no ``cache`` argument here; put a terrapipe cache
  stage after this one (its keys include the configuration).
- Errors are :class:`~terrapipe.core.errors.InvalidArgumentError` (a
  ``ValueError``, as xbatcher's are) and name the dimension.

Examples
--------
>>> import numpy as np, xarray as xr
>>> import terrapipe as tp
>>> import terrapipe.chip
>>> da = xr.DataArray(np.arange(48.0).reshape(2, 4, 6), dims=("time", "y", "x"), name="t2m")
>>> batches = list(tp.from_items([da]).slice_with_xbatcher({"y": 2, "x": 3}))
>>> len(batches), batches[0].dims
(4, ('time', 'y', 'x'))
>>> stacked = list(tp.from_items([da]).slice_with_xbatcher({"x": 3}, concat_input_dims=True))
>>> len(stacked), stacked[0].dims, stacked[0].sizes["sample"]
(1, ('sample', 'x_input'), 16)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Generator, Hashable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from terrapipe.chip.build import ItemCutter
from terrapipe.chip.cursor import ItemCursor
from terrapipe.chip.layout import describe_arrays
from terrapipe.chip.plan import IntArray, plan_windows, shard_slice
from terrapipe.chip.reader import BlockReader
from terrapipe.chip.xbatcher_schema import XbatcherSchema
from terrapipe.core.checks import check_int, check_mapping
from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError, TerrapipeWarning
from terrapipe.core.on_error import OnError, check_on_error, handle_error
from terrapipe.core.pipe import IterDataPipe, ShardMode, Stage, register
from terrapipe.core.renamed import pickled_names
from terrapipe.core.shard import ShardInfo, shard_info
from terrapipe.core.state import ResumesNextPass

__all__ = ["SliceWithXbatcher", "stack_sample", "to_input_dims"]

_STATE_KEYS = ("epoch", "item", "batch", "source")
_SUFFIX = "_input"
_TMP_NAME = "__terrapipe_xbatcher__"


def stack_sample(obj: Any, input_dims: Sequence[Hashable]) -> Any:
    """Stack every non-input dimension into ``sample`` when there are two or more (xbatcher's layout).

    Examples
    --------
    >>> da = xr.DataArray(np.zeros((2, 3, 4)), dims=("t", "b", "x"))
    >>> stack_sample(da, ["x"]).dims
    ('sample', 'x')
    >>> stack_sample(da.isel(t=0), ["b", "x"]).dims
    ('b', 'x')
    """
    others = [d for d in obj.sizes if d not in input_dims]
    if len(others) < 2:
        return obj
    return obj.stack(sample=others).transpose("sample", *input_dims)


def to_input_dims(patch: xr.Dataset, input_dims: Sequence[Hashable]) -> xr.Dataset:
    """Rename each input dimension ``d`` to ``d_input``, keeping its coordinate as a non-index ``d``.

    Examples
    --------
    >>> ds = xr.Dataset({"v": (("y", "x"), np.zeros((2, 3)))}, coords={"x": [10, 20, 30]})
    >>> out = to_input_dims(ds, ["y", "x"])
    >>> out.v.dims, out.x.dims, list(out.xindexes)
    (('y_input', 'x_input'), ('x_input',), [])
    """
    out = patch
    for dim in input_dims:
        new = f"{dim}{_SUFFIX}"
        coord = patch.variables.get(dim)
        if coord is not None:
            out = out.drop_vars([dim])
        out = out.rename_dims({dim: new})
        if coord is not None:
            out = out.assign_coords({dim: xr.Variable((new,), coord.data, coord.attrs)})
    return out


@register("slice_with_xbatcher")
class SliceWithXbatcher(ResumesNextPass, Stage[Any]):
    """Yield xbatcher 0.4.0's batches of each xarray element, reading every block once.

    Parameters
    ----------
    source
        A pipe of ``xr.DataArray`` or ``xr.Dataset``.
    input_dims
        Patch length per dimension, e.g. ``{"y": 64, "x": 64}`` (the dimensions
        the model sees; all others are stacked into ``sample``).
    input_overlap
        Overlap per dimension.
    batch_dims
        Batch length per dimension (always iterated over).
    concat_input_dims
        Concatenate the patches of a batch along ``input_batch`` (dimensions
        renamed ``<dim>_input``) and stack into ``sample``.
    preload_batch
        Accepted for compatibility; batches are always loaded (see the module doc).
    workers, block_cache_bytes
        Reader threads and block budget (see :class:`~terrapipe.chip.chipper.Chip`).
    shard
        ``"auto"``: split the batches across DataLoader workers and DDP ranks
        (contiguous ranges); in a single process the order is xbatcher's.
    on_error
        What to do when a block cannot be read: ``"raise"``, or ``"skip"`` /
        ``"warn"`` the batches that need it.

    Raises
    ------
    InvalidArgumentError
        Where xbatcher raises ``ValueError``: a dimension the input lacks, a
        patch longer than its dimension, an overlap not smaller than the patch.

    Warns
    -----
    TerrapipeWarning
        When a dimension is in both ``input_dims`` and ``batch_dims`` without
        ``concat_input_dims``: the batch length is then ignored (as in xbatcher).

    Notes
    -----
    ``len()`` is unknown (``TypeError``). The stage is
    :class:`~terrapipe.core.state.Stateful` (state: epoch, element, batch).
    """

    state_keys = _STATE_KEYS

    can_shard = True

    def __init__(
        self,
        source: IterDataPipe[Any],
        input_dims: Mapping[Hashable, int],
        *,
        input_overlap: Mapping[Hashable, int] | None = None,
        batch_dims: Mapping[Hashable, int] | None = None,
        concat_input_dims: bool = False,
        preload_batch: bool = True,
        workers: int | None = None,
        block_cache_bytes: int = 512 * 2**20,
        shard: ShardMode = "auto",
        on_error: OnError = "raise",
    ) -> None:
        super().__init__()
        if not isinstance(input_dims, Mapping) or not input_dims:
            raise InvalidArgumentError(
                f"input_dims must be a non-empty mapping of dimension lengths, got {input_dims!r}"
            )
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise InvalidArgumentError(f"workers must be None or an int >= 0, got {workers!r}")
        self.source = source
        self.input_dims = dict(input_dims)
        self.input_overlap = dict(
            check_mapping(input_overlap if input_overlap is not None else {}, "input_overlap")
        )
        self.batch_dims = dict(check_mapping(batch_dims if batch_dims is not None else {}, "batch_dims"))
        self.concat_input_dims = bool(concat_input_dims)
        self.preload_batch = bool(preload_batch)
        self.workers = workers
        self.block_cache_bytes = check_int(block_cache_bytes, "block_cache_bytes", minimum=0)
        self.shard = shard
        self.on_error = check_on_error(on_error)
        duplicates = [d for d in self.batch_dims if d in self.input_dims]
        if duplicates and not self.concat_input_dims:
            warnings.warn(
                f"slice_with_xbatcher: dimension(s) {duplicates!r} are in both input_dims and batch_dims; "
                "without concat_input_dims=True their batch length is ignored (as in xbatcher)",
                TerrapipeWarning,
                stacklevel=2,
            )
        self.blocks_read = 0
        self._cursor = ItemCursor(source)
        self._resume: dict[str, Any] | None = None
        self._in_pass = False
        self._epoch = 0
        self._item = 0
        self._batch = 0

    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, None
        self._epoch = self._begin_epoch()
        info = shard_info() if self._claim_sharding() else ShardInfo()
        start_item = int(resume["item"]) if resume else 0
        self._item, self._batch = start_item, 0
        self._in_pass = True
        clock = time.perf_counter()
        for item, obj in self._cursor.items(start=start_item, snapshot=resume["source"] if resume else None):
            self._item = item
            first = int(resume["batch"]) if resume and item == start_item else 0
            self._batch = first
            batches = self._slice_item(obj, item, info, first)
            try:
                for batch in batches:
                    self.stats.seconds += time.perf_counter() - clock
                    yield batch
                    clock = time.perf_counter()
            finally:
                batches.close()
            self._item, self._batch = item + 1, 0
        self.stats.seconds += time.perf_counter() - clock
        self._in_pass = False

    def _slice_item(self, obj: Any, item: int, info: ShardInfo, first: int) -> Generator[Any, None, None]:
        if not isinstance(obj, xr.DataArray | xr.Dataset):
            raise InvalidArgumentError(
                f"slice_with_xbatcher takes xarray DataArray or Dataset elements, got {type(obj).__name__}"
            )
        schema = XbatcherSchema(
            dict(obj.sizes), self.input_dims, self.input_overlap, self.batch_dims, self.concat_input_dims
        )
        dims = schema.sliced_dims
        arrays, edges = describe_arrays(
            obj,
            dims,
            window=schema.sliced,
            stride=schema.strides,
            block_bytes=max(2**16, min(self.block_cache_bytes // 16, 2**23)),
        )
        plan = plan_windows(
            {d: int(obj.sizes[d]) for d in dims}, schema.sliced, stride=schema.strides, edges=edges
        )
        share = shard_slice(schema.n_batches, info, rotate=item)
        lo, hi = share.start + first, share.stop
        if lo >= hi:
            return
        patches, offsets = schema.patch_sequence(lo, hi)
        cutter = ItemCutter(obj, plan, arrays, boundary="drop", output="xarray")
        run_of, run_start, run_stop = _runs(plan, patches, edges[dims[-1]])
        reader = BlockReader(arrays, workers=self.workers, cache_bytes=self.block_cache_bytes)
        served = reader.regions(run_start, run_stop)
        current = -1
        regions: list[np.ndarray] | None = None
        origin: tuple[int, ...] = ()
        failed = False
        starts = plan.window_starts(patches)
        stacks = sum(1 for d in obj.sizes if d not in self.input_dims) >= 2
        try:
            for b in range(hi - lo):
                parts = []
                failed = False
                for p in range(int(offsets[b]), int(offsets[b + 1])):
                    while current < run_of[p]:
                        got, err = next(served)
                        current += 1
                        regions = None if err is not None else cutter.prepare(got or [])
                        origin = tuple(int(v) for v in run_start[current])
                        if err is not None:
                            self._fail(err, obj)
                    if regions is None:
                        failed = True
                        continue
                    start = tuple(int(v) for v in starts[p])
                    views, _ = cutter.data_views(regions, origin, start)
                    parts.append(cutter.build(views, start))
                self._batch = first + b + 1
                if failed:
                    continue
                self.stats.elements += 1
                yield self._assemble(parts, stacks)
        finally:
            served.close()
            self.blocks_read += reader.blocks_read
            self.stats.bytes_read += reader.bytes_read

    def _fail(self, err: BaseException, obj: Any) -> None:
        if isinstance(err, TerrapipeError):
            handle_error(err, on_error=self.on_error, stats=self.stats)
            return
        wrapped = ReadError(
            f"slice_with_xbatcher: cannot read a block of {type(obj).__name__} {dict(obj.sizes)}: "
            f"{type(err).__name__}: {err}; pass on_error='skip' to skip the batches that need it"
        )
        if self.on_error == "raise":
            raise wrapped from err
        handle_error(wrapped, on_error=self.on_error, stats=self.stats)

    def _assemble(self, parts: list[Any], stacks: bool) -> Any:
        input_dims = list(self.input_dims)
        if not self.concat_input_dims:
            # patches keep the source's dims, so whether they stack is known per element
            return stack_sample(parts[0], input_dims) if stacks else parts[0]
        is_array = isinstance(parts[0], xr.DataArray)
        name = parts[0].name if is_array else None
        datasets = [p.to_dataset(name=_TMP_NAME) if is_array else p for p in parts]
        renamed = [to_input_dims(ds, input_dims) for ds in datasets]
        joined = xr.concat(
            renamed, dim="input_batch", data_vars="all", coords="different", compat="equals", join="outer"
        )
        out = stack_sample(joined, [f"{d}{_SUFFIX}" for d in input_dims])
        if is_array:
            array = out[_TMP_NAME]
            array.name = name
            return array
        return out

    # -- state -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Return ``{"epoch", "item", "batch", "source"}``: batches done in the current element."""
        if self._in_pass:
            return {
                "epoch": self._epoch,
                "item": self._item,
                "batch": self._batch,
                "source": self._cursor.snapshot if self._cursor.stateful else None,
            }
        return {"epoch": self._next_epoch, "item": 0, "batch": 0, "source": self._cursor.state()}

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} has no known length: it depends on every element's size")


def _runs(plan: Any, patches: IntArray, last_edges: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Group consecutive patches into read requests: same indices but along the last axis, same block there.

    Returns the run number of each patch and each run's region ``(start, stop)``.
    """
    n = patches.size
    k = len(plan.axes)
    if n == 0:
        empty = np.zeros((0, k), dtype=np.int64)
        return np.zeros(0, dtype=np.int64), empty, empty
    index = np.stack(np.unravel_index(patches, plan.window_shape), axis=-1).astype(np.int64)
    starts = plan.window_starts(patches)
    anchor = np.searchsorted(last_edges, starts[:, -1], side="right") - 1
    new = np.ones(n, dtype=bool)
    if n > 1:
        same_outer = np.all(index[1:, :-1] == index[:-1, :-1], axis=1)
        next_step = index[1:, -1] == index[:-1, -1] + 1
        same_block = anchor[1:] == anchor[:-1]
        new[1:] = ~(same_outer & next_step & same_block)
    run_of = np.cumsum(new) - 1
    firsts = np.flatnonzero(new)
    lasts = np.append(firsts[1:] - 1, n - 1)
    window = np.array([ax.window for ax in plan.axes], dtype=np.int64)
    sizes = np.array([ax.size for ax in plan.axes], dtype=np.int64)
    run_start = starts[firsts]
    run_stop = np.minimum(starts[lasts] + window, sizes)
    return run_of.astype(np.int64), run_start, run_stop


if not TYPE_CHECKING:  # the names a previous release's pickles gave its classes here (renamed.PICKLED)
    __getattr__ = pickled_names(__name__)
