"""``sample_windows``: random windows over one or many rasters, or windows centred on points.

:class:`SampleWindows` takes every xarray element of its source (lazy rasters
or cubes) and, each epoch, yields

- ``n`` random windows: a raster is drawn in proportion to ``weights``
  (default: its area of valid window positions, ``prod(size - window + 1)``),
  then a uniformly random position inside it; or
- one window centred on each point of ``points`` (map coordinates in the
  rasters' CRS) for every raster that contains it.

Draws come from ``seed`` mixed with the epoch, and are the same on every
worker and rank; each shard then takes a contiguous share, so that over all
DataLoader workers and DDP ranks every drawn window is yielded exactly once.
Reading is block-aware like ``chip``: windows are taken ``buffer`` at a time,
their blocks read once (on ``workers`` threads) in storage order, and the
windows yielded in draw order. A block that windows of several buffers need
is kept for the later ones within the block budget (``reads=``): each
raster's windows of up to :data:`SPAN` draws are read as one ordered stream
(:class:`~terrapipe.chip.reader.BlockReader`), buffer after buffer, so a
pass reads each block once where the budget holds it, as GDAL's block cache
does for a window-by-window reader (before, every buffer read its blocks
again: 367 block reads instead of 253 for 300 random 256² windows of a
4096² COG at ``buffer=256``). Rasters read from remote storage with the
default ``workers=None`` keep one stream per buffer (their threads and
requests in flight are the stream's own).

Examples
--------
>>> import numpy as np, xarray as xr
>>> import terrapipe as tp
>>> import terrapipe.chip
>>> a = xr.DataArray(np.zeros((20, 30)), dims=("y", "x"), coords={"y": np.arange(20.0), "x": np.arange(30.0)})
>>> b = xr.DataArray(np.ones((10, 10)), dims=("y", "x"), coords={"y": np.arange(10.0), "x": np.arange(10.0)})
>>> chips = list(tp.from_items([a, b]).sample_windows({"y": 8, "x": 8}, n=20, seed=1))
>>> len(chips), chips[0].shape, sum(float(c.mean()) for c in chips) < 10  # b holds few valid positions
(20, (8, 8), True)
>>> pts = list(tp.from_items([a]).sample_windows({"y": 4, "x": 4}, points=[(10.0, 5.0)]))
>>> pts[0].x.values.tolist(), pts[0].y.values.tolist()
([8.0, 9.0, 10.0, 11.0], [3.0, 4.0, 5.0, 6.0])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from terrapipe.chip.build import ItemCutter, Output, crs_and_transform
from terrapipe.chip.deprecated import OLD_KEYWORDS as _OLD
from terrapipe.chip.deprecated import upgrade
from terrapipe.chip.layout import ArraySpec, describe_arrays
from terrapipe.chip.plan import IntArray, WindowPlan, plan_windows, shard_slice
from terrapipe.chip.reader import DEFAULT_WORKERS, BlockReader, RegionStream
from terrapipe.chip.reads import Reads
from terrapipe.chip.split import SplitSubset, window_bounds
from terrapipe.core.checks import check_int, check_number
from terrapipe.core.crs import longitude_period
from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError
from terrapipe.core.on_error import OnError, check_on_error, handle_error
from terrapipe.core.pipe import IterDataPipe, ShardMode, Stage, register
from terrapipe.core.renamed import pickled_names
from terrapipe.core.shard import ShardInfo, shard_info, shared_seed
from terrapipe.core.state import ResumesNextPass
from terrapipe.io.read_pool import Lease, lease

__all__ = ["SampleWindows"]

#: Most windows ``sample_windows(n=)`` plans per epoch (they are planned up front).
MAX_WINDOWS = 100_000_000

#: Most draws whose blocks are planned together (one stream per raster, read buffer after buffer).
SPAN = 16_384

_STATE_KEYS = ("epoch", "window")
Weights = Sequence[float] | Callable[[Any], float] | None


class _Raster:
    """One source element with what sampling needs."""

    def __init__(
        self, obj: Any, dims: list[Hashable], size: Mapping[Hashable, int], block_bytes: int
    ) -> None:
        self.obj = obj
        self.dims = dims
        self.sizes = np.array([int(obj.sizes[d]) for d in dims], dtype=np.int64)
        self.window = np.array([int(size[d]) for d in dims], dtype=np.int64)
        self.room = np.maximum(self.sizes - self.window + 1, 0)
        self._block_bytes = block_bytes
        self._arrays: list[ArraySpec] | None = None
        self._edges: dict[Hashable, IntArray] | None = None
        self._plan: WindowPlan | None = None
        self._streamed: bool | None = None

    @property
    def positions(self) -> int:
        return int(np.prod(self.room, dtype=np.int64))

    def described(self) -> tuple[list[ArraySpec], dict[Hashable, IntArray], WindowPlan]:
        if self._arrays is None or self._edges is None or self._plan is None:
            size = dict(zip(self.dims, self.window.tolist(), strict=True))
            one = dict.fromkeys(self.dims, 1)
            self._arrays, self._edges = describe_arrays(
                self.obj, self.dims, window=size, stride=one, block_bytes=self._block_bytes
            )
            self._plan = plan_windows(
                dict(zip(self.dims, self.sizes.tolist(), strict=True)), size, stride=one, edges=self._edges
            )
        return self._arrays, self._edges, self._plan

    def streamed(self, workers: int | None) -> bool:
        """Whether a pass reads this raster as one stream over many buffers (not remote with ``workers=None``)."""
        if self._streamed is None:
            reader = BlockReader(self.described()[0], workers=workers)
            self._streamed = not (workers is None and reader.remote and reader.workers > 0)
        return self._streamed

    def order(self, mine: IntArray, starts: IntArray) -> IntArray:
        """``mine`` (window numbers) in storage order, so that neighbouring windows share blocks."""
        _, edges, _ = self.described()
        anchors = np.stack(
            [np.searchsorted(edges[d], starts[mine, k], side="right") - 1 for k, d in enumerate(self.dims)],
            axis=-1,
        )
        order = np.lexsort(anchors.T[::-1]) if anchors.size else np.zeros(0, np.int64)
        return mine[order]


class _SpanReads:
    """The block streams of up to :data:`SPAN` draws of a pass: one per raster, read buffer after buffer.

    Each buffer's windows of a raster are served in storage order (as a
    stream per buffer did), the raster's buffers one after the other from
    one :class:`~terrapipe.chip.reader.RegionStream`, whose plan knows
    every later use of a block and so keeps it, within the stream's share
    of the block budget, instead of reading it again for the next buffer. A
    stream is made at its raster's first window and closed after its last.
    """

    def __init__(
        self,
        stage: SampleWindows,
        rasters: list[_Raster],
        which: IntArray,
        starts: IntArray,
        begin: int,
        pool: Lease | None,
    ) -> None:
        self.stage = stage
        self.rasters = rasters
        self.starts = starts
        self.pool = pool
        buffer = stage.buffer
        self.stop = min(len(which), begin + buffer * max(1, SPAN // buffer))
        self.keep = stage._split_keep(rasters, which[begin : self.stop], starts[begin : self.stop])
        self.begin = begin
        # per buffer: [(raster, its windows in storage order)], and per streamed raster, all of them in order
        self.order: dict[int, list[tuple[int, IntArray]]] = {}
        positions: dict[int, list[IntArray]] = {}
        for b in range(begin, self.stop, buffer):
            chunk = which[b : b + buffer]
            keep = self.keep[b - begin : b - begin + chunk.size]
            served = []
            for r in np.unique(chunk[keep]).tolist():
                mine = rasters[r].order(np.flatnonzero((chunk == r) & keep), starts[b:])
                served.append((r, mine))
                if rasters[r].streamed(stage.workers):
                    positions.setdefault(r, []).append(b + mine)
            self.order[b] = served
        self.positions = {r: np.concatenate(parts) for r, parts in positions.items()}
        self.left = {r: int(p.size) for r, p in self.positions.items()}
        others = any(
            not rasters[r].streamed(stage.workers) for r in np.unique(which[begin : self.stop]).tolist()
        )
        # the block budget, shared by the streams that may be open at once (and a per-buffer one)
        self.share = max(1, stage.block_cache_bytes // max(1, len(self.positions) + int(others)))
        self.streams: dict[int, tuple[BlockReader, RegionStream]] = {}

    def regions(self, r: int, mine: IntArray, position: int) -> tuple[BlockReader, Any, bool]:
        """Return the reader and the regions of ``mine`` (raster ``r``'s windows of the buffer at ``position``).

        The third value says whether the caller closes them (a stream of this buffer only).
        """
        raster = self.rasters[r]
        arrays, _, _ = raster.described()
        if r not in self.positions:  # remote with workers=None: a stream for this buffer, as before
            region_start = self.starts[position + mine]
            region_stop = np.minimum(region_start + raster.window, raster.sizes)
            reader = BlockReader(arrays, workers=self.stage.workers, cache_bytes=self.share)
            return reader, reader.regions(region_start, region_stop), True
        if r not in self.streams:
            region_start = self.starts[self.positions[r]]
            region_stop = np.minimum(region_start + raster.window, raster.sizes)
            reader = BlockReader(
                arrays, workers=self.stage.workers, cache_bytes=self.share, executor=self.pool
            )
            self.streams[r] = (reader, reader.regions(region_start, region_stop))
        reader, stream = self.streams[r]
        return reader, _take(stream, mine.size), False

    def served(self, r: int, count: int) -> None:
        """Count ``count`` windows of raster ``r`` served; close its stream after its last."""
        if r not in self.left:
            return
        self.left[r] -= count
        if self.left[r] <= 0 and r in self.streams:
            reader, stream = self.streams.pop(r)
            stream.close()
            self.stage.stats.bytes_read += reader.bytes_read

    def close(self) -> None:
        """Close every stream still open (a pass left early), counting what they read."""
        for reader, stream in self.streams.values():
            stream.close()
            self.stage.stats.bytes_read += reader.bytes_read
        self.streams.clear()


def _take(stream: RegionStream, count: int) -> Iterator[Any]:
    for _ in range(count):
        yield next(stream)


@register("sample_windows")
class SampleWindows(ResumesNextPass, Stage[Any]):
    """Yield random windows (or windows centred on points) from the xarray elements of ``source``.

    Parameters
    ----------
    source
        A finite pipe of ``xr.DataArray`` / ``xr.Dataset`` (read fully at the
        start of each pass).
    size
        Window length per dimension (an int means ``{"y": size, "x": size}``).
    n
        Windows per epoch (random mode).
    points
        ``[(x, y), ...]`` map coordinates, or a GeoDataFrame / GeoSeries of
        points (reprojected to each raster's CRS); one window per point and
        raster containing it (on a lon/lat raster, longitudes wrap: a point
        at -75 is in a raster written 0..360). Give ``n`` or ``points``, not both.
    seed
        Seed of the draws; mixed with the epoch.
    weights
        Random mode: per-raster weights (a sequence in source order, or a
        function of the element); default the number of valid window positions.
    shuffle
        Points mode: yield the point windows in a new random order each epoch.
    boundary
        Points mode: ``"shift"`` (default) moves windows at an edge inside,
        ``"drop"`` leaves them out.
    max_nodata_fraction, nodata
        Drop windows with more nodata than this (counted in ``dropped_nodata``).
    split
        Only windows in one subset of a :class:`~terrapipe.chip.split.SpatialSplit`,
        ``split.select("train")`` (others are drawn but not read, and counted
        in ``outside_split``).
    buffer
        Windows read together (their blocks are read once).
    workers
        Reader threads (``None``: chosen by the source, as in
        :class:`~terrapipe.chip.chipper.Chip`).
    reads
        Read bounds, a :class:`~terrapipe.chip.reads.Reads` (or a mapping of
        its fields): ``block_cache_bytes``, the block budget (512 MiB);
        ``read_ahead`` must stay ``None`` (``buffer`` is what is read
        together). ``None``: the defaults.
    output
        ``"xarray"`` or ``"numpy"`` (see :class:`~terrapipe.chip.chipper.Chip`).
    shard
        ``"auto"``: split the drawn windows across DataLoader workers and DDP ranks.
    on_error
        ``"raise"``, ``"skip"`` or ``"warn"`` for windows whose blocks cannot be read.

    Raises
    ------
    InvalidArgumentError
        For bad arguments, an element that is not an xarray object, points
        without a transform, weights of the wrong length, or an element
        smaller than the window (that one follows ``on_error``: with
        ``"skip"`` it is counted and gets no windows).

    Attributes
    ----------
    dropped_nodata, outside_split
        Windows dropped on purpose, over all passes.

    Notes
    -----
    The old keywords ``subset=`` and ``block_cache_bytes=`` still work for one
    release and warn (:class:`~terrapipe.core.errors.TerrapipeDeprecationWarning`;
    see :mod:`terrapipe.chip.deprecated`).

    ``len()`` is ``n`` in random mode (over all shards) and unknown in points
    mode. The stage is :class:`~terrapipe.core.state.Stateful` (epoch and
    windows passed); a resumed pass reads only the buffer it stopped in.
    """

    state_keys = _STATE_KEYS

    can_shard = True

    def __init__(
        self,
        source: IterDataPipe[Any],
        size: Mapping[Hashable, int] | int,
        *,
        n: int | None = None,
        points: Any = None,
        seed: int = 0,
        weights: Weights = None,
        shuffle: bool = False,
        boundary: Literal["shift", "drop"] = "shift",
        max_nodata_fraction: float | None = None,
        nodata: float | None = None,
        split: SplitSubset | None = None,
        buffer: int = 256,
        workers: int | None = None,
        reads: Reads | Mapping[str, Any] | None = None,
        output: Output = "xarray",
        shard: ShardMode = "auto",
        on_error: OnError = "raise",
        **deprecated: Any,
    ) -> None:
        super().__init__()
        if deprecated:
            unknown = sorted(set(deprecated) - set(_OLD["sample_windows"]))
            if unknown:
                raise TypeError(f"SampleWindows.__init__() got an unexpected keyword argument {unknown[0]!r}")
            new = upgrade("sample_windows", {"split": split, "reads": reads, **deprecated}, warn=True)
            split, reads = new.kwargs["split"], new.kwargs["reads"]
        subset = SplitSubset.of(split)
        bounds = Reads.of(reads)
        if bounds.read_ahead is not None:
            raise InvalidArgumentError(
                f"sample_windows reads buffer={buffer!r} windows together: give reads=tp.chip.Reads(...) "
                f"without read_ahead (got read_ahead={bounds.read_ahead!r})"
            )
        from terrapipe.chip.chipper import normalize_windows

        self.size, _ = normalize_windows(size, None, None)
        if (n is None) == (points is None):
            raise InvalidArgumentError(
                "give n= (random windows) or points= (windows on points), not both or neither"
            )
        if n is not None:
            # every window of an epoch is planned up front (8 bytes per dimension and window)
            n = check_int(n, "sample_windows n", minimum=0, maximum=MAX_WINDOWS)
        if (
            points is not None
            and getattr(points, "geometry", None) is None
            and type(points).__name__ != "GeoSeries"
        ):
            _points_xy(points, "")  # an array of [x, y] pairs, checked now rather than mid-pass
        if weights is not None and not callable(weights):
            try:
                np.asarray(list(weights), dtype=np.float64)
            except (TypeError, ValueError) as err:
                msg = f"weights must be a sequence of numbers, a function of the element, or None; got {weights!r}"
                raise InvalidArgumentError(msg) from err
        if boundary not in ("shift", "drop"):
            raise InvalidArgumentError(
                f"boundary must be 'shift' or 'drop' for sample_windows, got {boundary!r}"
            )
        if max_nodata_fraction is not None:
            check_number(max_nodata_fraction, "max_nodata_fraction", minimum=0, maximum=1)
        if nodata is not None:
            check_number(nodata, "nodata", finite=False)
        check_int(buffer, "sample_windows buffer", minimum=1)
        check_int(seed, "sample_windows seed", minimum=0)
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise InvalidArgumentError(f"workers must be None or an int >= 0, got {workers!r}")
        if output not in ("xarray", "numpy"):
            raise InvalidArgumentError(f"output must be 'xarray' or 'numpy', got {output!r}")
        self.source = source
        self.n = n
        self.points = points
        if points is not None:  # in the cache key: windows on points wrap longitudes since b80f997
            self.points_revision = 2
        self.seed = int(seed)
        self.weights = weights
        self.shuffled = bool(shuffle)
        self.boundary = boundary
        self.max_nodata_fraction = max_nodata_fraction
        self.nodata = nodata
        # the attributes (and so the cache key) it had when these were keywords of their own
        self.split = subset.split if subset is not None else None
        self.subset = subset.name if subset is not None else None
        self.buffer = int(buffer)
        self.workers = workers
        self.block_cache_bytes = bounds.block_cache_bytes
        self.output: Output = output
        self.shard = shard
        self.on_error = check_on_error(on_error)
        self.dropped_nodata = 0
        self.outside_split = 0
        self._resume: int | None = None
        self._in_pass = False
        self._epoch = 0
        self._window = 0

    @property
    def reads(self) -> Reads:
        """The stage's read bounds (``reads=``)."""
        return Reads(self.block_cache_bytes)

    # -- drawing -------------------------------------------------------------
    def _rasters(self) -> list[_Raster]:
        rasters: list[_Raster] = []
        block_bytes = max(2**16, min(self.block_cache_bytes // 16, 2**23))
        for obj in self.source:
            if not isinstance(obj, xr.DataArray | xr.Dataset):
                msg = f"sample_windows takes xarray DataArray or Dataset elements, got {type(obj).__name__}"
                raise InvalidArgumentError(msg)
            missing = [d for d in self.size if d not in obj.dims]
            if missing:
                raise InvalidArgumentError(
                    f"window dimension(s) {missing!r} are not dimensions of an element (it has {tuple(obj.dims)!r})"
                )
            ref = obj.dims if isinstance(obj, xr.DataArray) else _largest_dims(obj)
            dims = [d for d in ref if d in self.size] + [d for d in self.size if d not in ref]
            raster = _Raster(obj, dims, self.size, block_bytes)
            if raster.positions == 0:
                sizes = dict(zip(dims, raster.sizes.tolist(), strict=True))
                err = InvalidArgumentError(
                    f"sample_windows: element {len(rasters)} ({type(obj).__name__} of sizes {sizes}) is smaller "
                    f"than the window {self.size}, so no window fits in it; pass a smaller window, or "
                    "on_error='skip' to skip and count such elements"
                )
                handle_error(err, on_error=self.on_error, stats=self.stats)
            rasters.append(raster)
        return rasters

    def _weights(self, rasters: list[_Raster]) -> np.ndarray:
        if self.weights is None:
            w = np.array([r.positions for r in rasters], dtype=np.float64)
        elif callable(self.weights):
            try:
                w = np.array([float(self.weights(r.obj)) for r in rasters], dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise InvalidArgumentError(f"the weights function must return a number ({err})") from err
        else:
            w = np.asarray(list(self.weights), dtype=np.float64)
            if w.size != len(rasters):
                raise InvalidArgumentError(f"weights has {w.size} values for {len(rasters)} source elements")
        w = np.where(np.array([r.positions > 0 for r in rasters]), w, 0.0)
        if (w < 0).any() or not np.isfinite(w).all():
            raise InvalidArgumentError(f"weights must be finite and >= 0, got {w.tolist()!r}")
        return w

    def _draw(self, rasters: list[_Raster], epoch: int) -> tuple[IntArray, IntArray]:
        """Raster number and start offsets ``[n, k]`` of every window of the epoch (all shards)."""
        k = len(self.size)
        if self.n is not None:
            w = self._weights(rasters)
            if self.n == 0 or w.sum() <= 0:
                return np.zeros(0, np.int64), np.zeros((0, k), np.int64)
            rng = np.random.default_rng(shared_seed(self.seed, epoch=epoch))
            which = rng.choice(len(rasters), size=self.n, p=w / w.sum()).astype(np.int64)
            room = np.stack([r.room for r in rasters])[which]
            starts = np.floor(rng.random((self.n, k)) * room).astype(np.int64)
            return which, starts
        return self._point_windows(rasters, epoch)

    def _point_windows(self, rasters: list[_Raster], epoch: int) -> tuple[IntArray, IntArray]:
        which_all: list[IntArray] = []
        starts_all: list[IntArray] = []
        for number, raster in enumerate(rasters):
            crs, transform, x_dim, y_dim = crs_and_transform(raster.obj)
            if transform is None or x_dim not in raster.dims or y_dim not in raster.dims:
                raise InvalidArgumentError(
                    "sample_windows(points=...) needs elements with x/y coordinates (a transform) and windows "
                    f"along both; got dims {tuple(raster.obj.dims)!r} and window {self.size!r}"
                )
            xy = _points_xy(self.points, crs)
            if xy.size == 0:
                continue
            xy = _wrapped(
                xy,
                crs,
                transform,
                raster.sizes[raster.dims.index(x_dim)],
                raster.sizes[raster.dims.index(y_dim)],
            )
            col, row = (~transform) @ (xy[:, 0], xy[:, 1])
            col, row = np.floor(np.asarray(col)), np.floor(np.asarray(row))
            ix, iy = raster.dims.index(x_dim), raster.dims.index(y_dim)
            inside = (col >= 0) & (col < raster.sizes[ix]) & (row >= 0) & (row < raster.sizes[iy])
            starts = np.zeros((int(inside.sum()), len(raster.dims)), dtype=np.int64)
            starts[:, ix] = col[inside].astype(np.int64) - raster.window[ix] // 2
            starts[:, iy] = row[inside].astype(np.int64) - raster.window[iy] // 2
            if self.boundary == "shift":
                starts = np.clip(starts, 0, np.maximum(raster.sizes - raster.window, 0))
                fits = np.all(raster.window <= raster.sizes)
                starts = starts if fits else starts[:0]
            else:
                fits_all = np.all((starts >= 0) & (starts + raster.window <= raster.sizes), axis=1)
                starts = starts[fits_all]
            which_all.append(np.full(len(starts), number, dtype=np.int64))
            starts_all.append(starts)
        if not which_all:
            return np.zeros(0, np.int64), np.zeros((0, len(self.size)), np.int64)
        which, starts = np.concatenate(which_all), np.concatenate(starts_all)
        if self.shuffled:
            order = np.random.default_rng(shared_seed(self.seed, epoch=epoch)).permutation(len(which))
            which, starts = which[order], starts[order]
        return which, starts

    def _split_keep(self, rasters: list[_Raster], which: IntArray, starts: IntArray) -> np.ndarray:
        keep = np.ones(len(which), dtype=bool)
        if self.split is None or self.subset is None:
            return keep
        number = self.split.subset_number(self.subset)
        for r, raster in enumerate(rasters):
            mine = np.flatnonzero(which == r)
            if mine.size == 0:
                continue
            crs, transform, x_dim, y_dim = crs_and_transform(raster.obj)
            ix = raster.dims.index(x_dim) if x_dim in raster.dims else None
            iy = raster.dims.index(y_dim) if y_dim in raster.dims else None
            col = starts[mine, ix] if ix is not None else np.zeros(mine.size, np.int64)
            row = starts[mine, iy] if iy is not None else np.zeros(mine.size, np.int64)
            w = int(raster.window[ix]) if ix is not None else 1
            h = int(raster.window[iy]) if iy is not None else 1
            bounds = window_bounds(transform, col, row, w, h, crs=crs)
            keep[mine] = self.split.assign(bounds) == number
        return keep

    # -- iteration -------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, None
        self._epoch = epoch = self._begin_epoch()
        info = shard_info() if self._claim_sharding() else ShardInfo()
        self._in_pass = True
        self._window = start = resume or 0
        clock = time.perf_counter()
        rasters = self._rasters()
        which, starts = self._draw(rasters, epoch)
        share = shard_slice(len(which), info)
        which, starts = which[share], starts[share]
        first_batch = start // self.buffer
        cutters: dict[int, ItemCutter] = {}
        # one pool of reader threads for the pass (the streams of several rasters read on it)
        threads = DEFAULT_WORKERS if self.workers is None else self.workers
        pool = lease(threads) if threads else None
        reads: _SpanReads | None = None
        try:
            for b in range(first_batch * self.buffer, len(which), self.buffer):
                if reads is None or b >= reads.stop:
                    if reads is not None:
                        reads.close()
                    reads = _SpanReads(self, rasters, which, starts, b, pool)
                chips = self._read_batch(rasters, cutters, reads, b)
                for offset, chip in enumerate(chips):
                    position = b + offset + 1
                    if position <= start:
                        continue
                    self._window = position
                    if chip is None:
                        continue
                    self.stats.elements += 1
                    self.stats.seconds += time.perf_counter() - clock
                    yield chip
                    clock = time.perf_counter()
                self._window = min(b + self.buffer, len(which))
        finally:
            if reads is not None:
                reads.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self.stats.seconds += time.perf_counter() - clock
        self._in_pass = False

    def _read_batch(
        self, rasters: list[_Raster], cutters: dict[int, ItemCutter], reads: _SpanReads, b: int
    ) -> list[Any]:
        """Return the chips of the buffer at draw ``b`` (``None`` for a window dropped), in draw order."""
        starts = reads.starts[b:]
        size = min(self.buffer, reads.stop - b)
        keep = reads.keep[b - reads.begin : b - reads.begin + size]
        out: list[Any] = [None] * size
        self.outside_split += int((~keep).sum())
        for r, mine in reads.order[b]:
            raster = rasters[r]
            arrays, _, plan = raster.described()
            if r not in cutters:
                cutters[r] = ItemCutter(raster.obj, plan, arrays, boundary="drop", output=self.output)
            cutter = cutters[r]
            reader, served, own = reads.regions(r, mine, b)
            try:
                for position, (regions, err) in zip(mine.tolist(), served, strict=True):
                    if err is not None:
                        self._fail(err, raster.obj)
                        continue
                    start = tuple(int(v) for v in starts[position])
                    views, _ = cutter.data_views(cutter.prepare(regions or []), start, start)
                    if self.max_nodata_fraction is not None and (
                        cutter.missing_fraction(views, start) > self.max_nodata_fraction
                    ):
                        self.dropped_nodata += 1
                        continue
                    out[position] = cutter.build(views, start)
            finally:
                served.close()
                if own:
                    self.stats.bytes_read += reader.bytes_read
                else:
                    reads.served(r, mine.size)
        return out

    def _fail(self, err: BaseException, obj: Any) -> None:
        if isinstance(err, TerrapipeError):
            handle_error(err, on_error=self.on_error, stats=self.stats)
            return
        wrapped = ReadError(
            f"sample_windows: cannot read a window of {type(obj).__name__} {dict(obj.sizes)}: "
            f"{type(err).__name__}: {err}; pass on_error='skip' to skip such windows"
        )
        if self.on_error == "raise":
            raise wrapped from err
        handle_error(wrapped, on_error=self.on_error, stats=self.stats)

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Return ``{"epoch", "window"}``: the pass and the drawn windows of this shard already passed."""
        if self._in_pass:
            return {"epoch": self._epoch, "window": self._window}
        return {"epoch": self._next_epoch, "window": 0}

    def _resume_point(self, state: Mapping[str, Any]) -> Any:
        return int(state["window"])

    def __len__(self) -> int:
        if self.n is None or self.max_nodata_fraction is not None or self.split is not None:
            raise TypeError(
                f"{type(self).__name__} has no known length with points, nodata dropping or a split"
            )
        return self.n


def _largest_dims(ds: xr.Dataset) -> tuple[Hashable, ...]:
    variables = sorted(ds.data_vars.values(), key=lambda v: -v.size)
    return variables[0].dims if variables else tuple(ds.dims)


def _wrapped(xy: np.ndarray, crs: str, transform: Any, width: int, height: int) -> np.ndarray:
    """Move lon/lat points by whole turns of the globe into the raster's x range (0..360 rasters, -75 points)."""
    period = longitude_period(crs)
    if period is None:
        return xy
    west = min((transform * corner)[0] for corner in ((0, 0), (width, 0), (0, height), (width, height)))
    out = xy.copy()
    out[:, 0] = west + np.mod(xy[:, 0] - west, period)
    return out


def _points_xy(points: Any, crs: str) -> np.ndarray:
    """``[n, 2]`` x/y of the points in ``crs`` (GeoDataFrame/GeoSeries are reprojected)."""
    geometry = getattr(points, "geometry", None)
    if geometry is not None or type(points).__name__ == "GeoSeries":
        series = geometry if geometry is not None else points
        if crs and series.crs is not None:
            series = series.to_crs(crs)
        return np.stack([series.x.to_numpy(), series.y.to_numpy()], axis=-1).astype(np.float64)
    try:
        xy = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as err:
        msg = f"points must be a GeoDataFrame, a GeoSeries or an [n, 2] array of x/y, got {type(points).__name__}"
        raise InvalidArgumentError(msg) from err
    if xy.size == 0:
        return xy.reshape(0, 2)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InvalidArgumentError(f"points must be [(x, y), ...] pairs, got an array of shape {xy.shape}")
    return xy


if not TYPE_CHECKING:  # the names a previous release's pickles gave its classes here (renamed.PICKLED)
    __getattr__ = pickled_names(__name__)
