"""Read regions of arrays block by block, each block once, with bounded read-ahead.

:class:`BlockReader` takes the full, ordered list of regions a pass will need
(one per window group) and yields each region's data in that order. It reads
whole storage blocks on a thread pool and assembles regions from them:

- a block is read when the first region that needs it comes within the
  read-ahead horizon, and kept until the last region that needs it has been
  served (the use counts come from the region list, so no guessing);
- blocks kept for a later region count against ``cache_bytes``; when the
  budget is exceeded, the one whose next use comes last is dropped (the
  order of the regions is known, so this is Belady's optimal rule) and read
  again when its region comes (counted in :attr:`BlockReader.rereads`);
- a region inside one block is a view of that block; a region spanning
  blocks is copied together from them;
- arrays already in memory are never "read": regions are views of them.

Each region comes as a :class:`~terrapipe.chip.region.Region` that says,
per array, whether its memory is that region's alone (``exclusive``): a
block read whole into a buffer the reader allocated and needed by no other
region, or a region copied together from several blocks. A view of a block
that other regions (or a re-read) use, of an array in memory, or of what a
dask graph or a lazy backend returned, is not: its chips are copies
(:meth:`terrapipe.chip.build.ItemCutter.data_views`).

With the default budget and the chipper's row-major group order, halo blocks
live for about one row of blocks, so every block is read exactly once.

How many reads are in flight adapts to where the blocks come from, unless
``workers=`` is given:

- **local** files, dask graphs over local files and arrays in memory:
  :data:`DEFAULT_WORKERS` threads and ``2 * workers`` regions of read-ahead
  (reads there are decode-bound);
- **remote** sources (``http(s)://``, ``s3://``, ``gs://``, ``az://``,
  ``/vsicurl/``... see :func:`remote_concurrency`): reads are latency-bound,
  so the reader keeps the source's :attr:`Storage.concurrency
  <terrapipe.io.storage.Storage.concurrency>` requests in flight (16 by
  default), on its own threads, reading as many regions ahead as that takes,
  and splits a block that spans several storage chunks along the axes the
  windows do not cut (the bands of a band-interleaved COG, the time steps of
  a cube, ...) into one read per chunk.

Either way the blocks read ahead of the region being served are bounded in
bytes (``max_inflight_bytes``, :data:`DEFAULT_INFLIGHT_BYTES`), not only in
count, so memory stays flat whatever the block size or the concurrency; the
bound is exceeded only by a single region that is larger than it (it is read
anyway, alone). :attr:`BlockReader.peak_inflight_bytes` records the peak.
Readers given one :class:`ReadBudget` (a chipper's elements, read ahead over
remote data) count these bounds over all of them together, and
:meth:`RegionStream.fill` starts an element's reads before its regions are
asked for.

Threads rather than ``asyncio``: GDAL (COG reads) and the Zarr stores we read
through are blocking libraries that release the GIL, and a thread per request
in flight kept the link as busy as a hand-written 16-thread reader in
``benchmarks/bench_latency.py`` (see ``docs/benchmarks/latency.md``). Zarr
arrays of the common layouts, local or remote, are read by
:mod:`terrapipe.io.zarr_direct` on these threads (each fetches and decodes
its own chunks), not by zarr-python, which would schedule every chunk on its
one event-loop thread.

The threads are the process's long-lived reader threads
(:mod:`terrapipe.io.read_pool`), lent pass by pass: a thread's GDAL/PROJ
set-up and its open datasets serve every later pass and stage, instead of
being paid again by threads started for each pass.

Examples
--------
>>> import numpy as np, xarray as xr
>>> from terrapipe.chip.layout import describe_arrays
>>> var = xr.Variable(("y", "x"), np.arange(16).reshape(4, 4))
>>> lazy = xr.DataArray(xr.core.indexing.LazilyIndexedArray(var.to_numpy()), dims=("y", "x"))
>>> lazy.encoding["preferred_chunks"] = {"y": 2, "x": 2}
>>> arrays, _ = describe_arrays(lazy, ("y", "x"), window={"y": 2, "x": 2}, stride={"y": 2, "x": 2}, block_bytes=64)
>>> reader = BlockReader(arrays, workers=0)
>>> starts, stops = np.array([[0, 1], [2, 0]]), np.array([[2, 3], [4, 4]])
>>> [out[0].tolist() for out, err in reader.regions(starts, stops)]
[[[1, 2], [5, 6]], [[8, 9, 10, 11], [12, 13, 14, 15]]]
>>> reader.blocks_read, reader.rereads
(4, 0)
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Sequence
from concurrent.futures import Executor
from itertools import pairwise, product
from typing import Any

import numpy as np

from terrapipe._compat import variable_data
from terrapipe.chip.layout import ArraySpec
from terrapipe.chip.plan import IntArray
from terrapipe.chip.region import Region
from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError
from terrapipe.io.read_pool import Lease, lease

__all__ = [
    "DEFAULT_INFLIGHT_BYTES",
    "DEFAULT_WORKERS",
    "BlockReader",
    "ReadBudget",
    "RegionStream",
    "read_block",
    "reader_threads",
    "remote_concurrency",
]

BlockKey = tuple[int, int]  # (array number, flat block number)

DEFAULT_WORKERS = 4
"""Reader threads of the chip stages by default.

Reads are decode-bound and release the GIL. Four threads keep two cores
decoding while the calling thread cuts chips, and keep the stage's share of
the CPU when other processes compete for it (zarr-python decodes up to ten
chunks at once, on ``min(32, cores + 4)`` threads). Remote sources get more
(see the module doc and :func:`reader_threads`).
"""

DEFAULT_INFLIGHT_BYTES = 256 * 2**20
"""Most decoded bytes of blocks read ahead of the region being served (a reader's default).

Enough for 16 requests in flight of blocks up to 16 MiB; smaller than the
default block cache (512 MiB), which also holds the blocks kept for later regions.
"""


def _default_concurrency() -> int:
    """``Storage().concurrency``: requests in flight to one remote source by default (16)."""
    from terrapipe.io.storage import Storage

    return int(Storage().concurrency)


def _backend_source(variable: Any) -> Any:
    """Return what a lazily indexed variable reads from, where it knows its source (``RasterArray``), else ``None``."""
    data = variable_data(variable)
    for _ in range(16):  # xarray's wrappers (copy-on-write, memory cache, lazy indexing) hold ``.array``
        if data is None:
            return None
        source = getattr(data, "source", None)
        if source is not None and hasattr(source, "path"):
            return source
        data = getattr(data, "array", None)
    return None


def remote_concurrency(spec: ArraySpec) -> int | None:
    """Return the requests to keep in flight for an array read from a remote source, or ``None`` if local.

    An array is remote when its ``encoding["source"]`` (set by ``read_raster``,
    ``read_zarr``) is a URL or GDAL network path
    (:func:`~terrapipe.io.paths.is_remote`), when its backend reads a remote
    path (``read_raster``'s reader), or when its producer set
    ``encoding["remote"] = True`` (``stack_stac`` over remote hrefs). The
    concurrency is the source's :class:`~terrapipe.io.storage.Storage`'s
    ``concurrency`` where the backend has one, else ``Storage().concurrency``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from terrapipe.chip.layout import describe_arrays
    >>> da = xr.DataArray(np.zeros((4, 4)), dims=("y", "x"))
    >>> da.encoding["source"] = "https://example.com/a.tif"
    >>> (spec,), _ = describe_arrays(da, ("y", "x"), window={"y": 2, "x": 2}, stride={"y": 2, "x": 2}, block_bytes=64)
    >>> remote_concurrency(spec) is None  # in memory: nothing is read
    True
    >>> spec.mode = "lazy"
    >>> remote_concurrency(spec)
    16
    """
    from terrapipe.io.paths import is_remote

    if spec.mode == "memory":
        return None
    backend = _backend_source(spec.variable)
    storage = getattr(backend, "storage", None) if backend is not None else None
    remote = backend is not None and _is_remote_path(getattr(backend, "path", None), is_remote)
    encoding = spec.variable.encoding
    remote = remote or _is_remote_path(encoding.get("source"), is_remote) or encoding.get("remote") is True
    if not remote:
        return None
    concurrency = getattr(storage, "concurrency", None)
    return int(concurrency) if isinstance(concurrency, int) and concurrency > 0 else _default_concurrency()


def _is_remote_path(path: Any, is_remote: Any) -> bool:
    if not isinstance(path, (str, os.PathLike)):
        return False
    try:
        return bool(is_remote(path))
    except (TypeError, ValueError):
        return False


def reader_threads(arrays: Sequence[ArraySpec], workers: int | None = None) -> tuple[int, bool]:
    """Return ``(threads, remote)``: the reader threads for ``arrays`` and whether any is read remotely.

    ``workers`` given: that many threads. ``None`` (the stages' default): the
    largest :func:`remote_concurrency` of the arrays, else
    :data:`DEFAULT_WORKERS`.

    Examples
    --------
    >>> reader_threads([]), reader_threads([], workers=2)
    ((4, False), (2, False))
    """
    found = [c for c in (remote_concurrency(spec) for spec in arrays) if c is not None]
    if workers is not None:
        return workers, bool(found)
    return (max(found), True) if found else (DEFAULT_WORKERS, False)


def read_block(spec: ArraySpec, key: tuple[slice, ...], out: np.ndarray | None = None) -> np.ndarray:
    """Read ``variable[key]`` into a numpy array (dask arrays computed in this thread).

    ``out`` is used by the direct Zarr path only (see :func:`block_buffer`).
    """
    if spec.direct is not None:
        return spec.direct.read(key, out)  # type: ignore[no-any-return]
    try:
        if spec.mode == "dask":
            return _compute(spec.variable.data[key])
        return np.asarray(spec.variable[key].values)
    except TerrapipeError:
        raise
    except Exception as err:
        raise _explained(spec.variable, key, err) from err


def _compute(part: Any) -> np.ndarray:
    compute = getattr(part, "compute", None)
    if compute is not None:
        try:
            return np.asarray(compute(scheduler="synchronous"))
        except TypeError:  # a chunked array type without dask's scheduler keyword
            return np.asarray(compute())
    return np.asarray(part)


def _explained(variable: Any, key: tuple[slice, ...], err: Exception) -> Exception:
    """Explain a failed read of a Zarr store (``xr.open_zarr``): name the chunk at fault, or keep ``err``."""
    try:
        from terrapipe.io.zarr_chunks import diagnose, store_name, variable_name, zarr_under

        found = zarr_under(variable)
    except Exception:  # no zarr, or not a dask graph we know
        return err
    if found is None:
        return err
    array, offsets = found
    shifted = tuple(  # the key is the variable's (a window of the store array): an open end is the variable's
        slice(o + (k.start or 0), o + (k.stop if k.stop is not None else n))
        for o, k, n in zip(offsets, key, variable.shape, strict=True)
    )
    return diagnose(array, shifted, err, source=store_name(array), variable=variable_name(array))


def block_buffer(spec: ArraySpec, key: tuple[slice, ...]) -> np.ndarray | None:
    """Allocate the array a block is decoded into, in the calling thread (direct Zarr reads only).

    Allocating in the thread that also frees the blocks (the one cutting chips)
    keeps them in one malloc arena: a freed block is reused for the next one
    instead of every reader thread's arena keeping its own free blocks
    (which grew peak RSS by about 40 MB per reader thread).
    """
    if spec.direct is None:
        return None
    return np.empty(spec.direct.shape_of(key), dtype=spec.direct.dtype)


class _Inline:
    """A finished future for reads done in the calling thread (``workers=0``)."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        try:
            self._value = fn(*args)
        except Exception as err:  # re-raised by result(), like a Future
            self._error = err

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> bool:
        return False


def _shape(spec: ArraySpec, index: Sequence[slice]) -> tuple[int, ...]:
    return tuple(
        s.stop - s.start if isinstance(s, slice) and s.stop is not None else n_ax
        for s, n_ax in zip(index, spec.variable.shape, strict=True)
    )


def _parts(
    index: tuple[slice, ...], split: Sequence[tuple[int, IntArray]]
) -> list[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """Split a block's key at the storage chunks of axes it spans whole: ``[(part key, where in the block)]``."""
    if not split:
        return [(index, tuple(slice(None) for _ in index))]
    choices = [
        [(slice(int(lo), int(hi)), axis) for lo, hi in pairwise(edges.tolist())] for axis, edges in split
    ]
    out = []
    for combo in product(*choices):
        key, dst = list(index), [slice(None)] * len(index)
        for part, axis in combo:
            key[axis] = dst[axis] = part  # the axis is whole in the block: block and array agree
        out.append((tuple(key), tuple(dst)))
    return out


def _read_part(spec: ArraySpec, key: tuple[slice, ...], buffer: np.ndarray, dst: tuple[slice, ...]) -> None:
    """Read one storage chunk's share of a block into the block's buffer (on a reader thread)."""
    part = read_block(spec, key)
    target = buffer[dst]
    if part.shape != target.shape or not np.can_cast(part.dtype, target.dtype, casting="safe"):
        msg = (
            f"reading {spec.name!r}[{key}] gave {part.dtype}{list(part.shape)}, "
            f"not the {target.dtype}{list(target.shape)} its layout implies"
        )
        raise ReadError(msg)
    np.copyto(target, part, casting="safe")


class _BlockGeometry:
    """Where the blocks of one array lie: a flat block number to its key and decoded bytes, in plain ints.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from terrapipe.chip.layout import ArraySpec
    >>> var = xr.Variable(("band", "y", "x"), np.zeros((3, 5, 4), dtype="uint16"))
    >>> spec = ArraySpec("a", var, False, (1, 2), (np.array([0, 2, 5]), np.array([0, 4])), "lazy", None)
    >>> _BlockGeometry(spec).block(1)
    ((slice(None, None, None), slice(2, 5, None), slice(0, 4, None)), 72)
    """

    def __init__(self, spec: ArraySpec) -> None:
        self.ndim = spec.variable.ndim
        self.grid = [int(e.size - 1) for e in spec.edges if e is not None]
        # (array axis, edges) of each grid axis that the block key sets, in grid order; None: skipped.
        self.axes: list[tuple[int, list[int]] | None] = [
            None if axis is None else (axis, edges.tolist())
            for axis, edges in zip(spec.axes, spec.edges, strict=True)
            if edges is not None
        ]
        cut = {
            axis
            for axis, edges in zip(spec.axes, spec.edges, strict=True)
            if axis is not None and edges is not None
        }
        whole = 1
        for axis, n_ax in enumerate(spec.variable.shape):
            if axis not in cut:
                whole *= int(n_ax)
        self.whole_bytes = spec.itemsize * whole  # bytes of one pixel of the sized axes, over the other axes

    def block(self, flat: int) -> tuple[tuple[slice, ...], int]:
        """Return ``(key, decoded bytes)`` of flat block number ``flat``."""
        multi = [0] * len(self.grid)
        for k in range(len(self.grid) - 1, -1, -1):
            flat, multi[k] = divmod(flat, self.grid[k])
        key: list[slice] = [slice(None)] * self.ndim
        nbytes = self.whole_bytes
        for b, where in zip(multi, self.axes, strict=True):
            if where is None:
                continue
            axis, edges = where
            lo, hi = edges[b], edges[b + 1]
            key[axis] = slice(lo, hi)
            nbytes *= hi - lo
        return tuple(key), nbytes


class _Joined:
    """A block read as several parts at once: a future of the block's buffer, full once every part is."""

    def __init__(self, futures: list[Any], buffer: np.ndarray) -> None:
        self._futures = futures
        self._buffer = buffer

    def result(self) -> np.ndarray:
        for future in self._futures:
            future.result()
        return self._buffer

    def cancel(self) -> bool:
        cancelled = [future.cancel() for future in self._futures]  # every one, no short cut
        return all(cancelled)


class BlockReader:
    """Serve an ordered list of regions from whole blocks read once (see the module doc).

    Parameters
    ----------
    arrays
        The arrays to read (from :func:`~terrapipe.chip.layout.describe_arrays`).
    workers
        Reader threads; 0 reads in the calling thread. ``None`` (default):
        chosen by the source (:func:`reader_threads`): :data:`DEFAULT_WORKERS`
        for local data, the storage's concurrency (16) for remote data.
    cache_bytes
        Budget for blocks read ahead or kept for a later region.
    read_ahead
        How many regions beyond the current one may have their blocks read
        (default ``2 * workers``, at least 1; for remote data with
        ``workers=None``: as many as keep ``2 * threads`` block reads queued).
    executor
        Threads to read on instead of ``workers`` threads lent to each
        :meth:`regions` call (a stage reading many small elements shares one
        lease across them); the reader does not give it back. Not used for
        remote data with ``workers=None``: the reader then reads on threads
        of its own lease, as many as requests it keeps in flight.
    max_inflight_bytes
        Most decoded bytes of blocks read ahead of the region being served
        (default ``min(DEFAULT_INFLIGHT_BYTES, cache_bytes)``); a single
        region larger than that is still read.
    budget
        A :class:`ReadBudget` shared with other readers (those of a stage's
        next elements, read ahead): the bytes and reads in flight and the
        blocks held are counted over all of them, and remote data with
        ``workers=None`` is read on the budget's pool instead of one of the
        reader's own. Default: a budget of this reader's own.

    Attributes
    ----------
    blocks_read
        Blocks read so far (all arrays).
    rereads
        Reads of a block that had been read before in this reader (dropped by
        the budget or by an error).
    bytes_read
        Decoded (in-memory) bytes of the blocks read.
    remote
        Whether any array is read from a remote source (:func:`remote_concurrency`).
    peak_inflight_bytes
        The most decoded bytes of blocks that were being read, or read and
        waiting for their first region, at any time so far (over every
        reader of a shared ``budget``).
    """

    def __init__(
        self,
        arrays: Sequence[ArraySpec],
        *,
        workers: int | None = None,
        cache_bytes: int = 512 * 2**20,
        read_ahead: int | None = None,
        executor: Executor | None = None,
        max_inflight_bytes: int | None = None,
        budget: ReadBudget | None = None,
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
            raise InvalidArgumentError(f"workers must be None or an int >= 0, got {workers!r}")
        if max_inflight_bytes is not None and (
            isinstance(max_inflight_bytes, bool)
            or not isinstance(max_inflight_bytes, int)
            or max_inflight_bytes < 0
        ):
            raise InvalidArgumentError(
                f"max_inflight_bytes must be None or an int >= 0, got {max_inflight_bytes!r}"
            )
        self.arrays = list(arrays)
        self.workers, self.remote = reader_threads(self.arrays, workers)
        # Remote data with the default settings: latency-bound reads, on threads of our own, as
        # many regions ahead as keep the pool busy (the bytes in flight bound them).
        self._latency_bound = workers is None and self.remote and self.workers > 0
        self.cache_bytes = cache_bytes
        if read_ahead is not None:
            self.read_ahead: int | None = max(0, read_ahead)
        else:
            self.read_ahead = None if self._latency_bound else max(1, 2 * self.workers)
        self.max_inflight_bytes = (
            min(DEFAULT_INFLIGHT_BYTES, cache_bytes) if max_inflight_bytes is None else max_inflight_bytes
        )
        self.executor = None if self._latency_bound else executor
        self.budget = ReadBudget() if budget is None else budget
        # Remote data, default settings, a shared budget: the budget's pool, reused from element to element.
        self._pool = self.budget.pool(self.workers) if budget is not None and self._latency_bound else None
        self.blocks_read = 0
        self.rereads = 0
        self.bytes_read = 0
        self.peak_inflight_bytes = 0

    # -- planning -------------------------------------------------------
    def _block_boxes(self, spec: ArraySpec, starts: IntArray, stops: IntArray) -> tuple[IntArray, IntArray]:
        los, his = [], []
        for k, edges in enumerate(spec.edges):
            if edges is None:
                continue
            los.append(np.searchsorted(edges, starts[:, k], side="right") - 1)
            his.append(np.searchsorted(edges, stops[:, k] - 1, side="right") - 1)
        return np.stack(los, axis=-1).astype(np.int64), np.stack(his, axis=-1).astype(np.int64)

    @staticmethod
    def _pairs(lo: IntArray, hi: IntArray, grid: tuple[int, ...]) -> tuple[IntArray, IntArray]:
        """Flat block numbers of every (region, block) pair, grouped by region, and region offsets."""
        counts = hi - lo + 1
        total = counts.prod(axis=1)
        offsets = np.concatenate([[0], np.cumsum(total)]).astype(np.int64)
        owner = np.repeat(np.arange(lo.shape[0]), total)
        rest = np.arange(offsets[-1], dtype=np.int64) - offsets[owner]
        multi = np.empty((offsets[-1], lo.shape[1]), dtype=np.int64)
        for k in range(lo.shape[1] - 1, -1, -1):
            c = counts[owner, k]
            multi[:, k] = lo[owner, k] + rest % c
            rest //= c
        flat = np.ravel_multi_index(tuple(multi.T), grid).astype(np.int64) if multi.size else rest
        return flat, offsets

    # -- reading --------------------------------------------------------
    def regions(self, starts: IntArray, stops: IntArray) -> RegionStream:
        """Return an iterator of ``(arrays, None)`` per region, in order, or ``(None, error)`` when a block failed.

        The blocks of the first region are read when it is asked for, and
        those of later regions within the read-ahead horizon with it (see the
        class doc); :meth:`RegionStream.fill` starts reads before that.

        Parameters
        ----------
        starts, stops
            ``[n_regions, n_axes]`` pixel bounds of each region along the plan axes.
        """
        return RegionStream(self, starts, stops)

    @property
    def crosses_elements(self) -> bool:
        """Whether a stage should start its next element's reads while this reader's last regions are served.

        True for remote data read on threads (:attr:`remote`, ``workers > 0``)
        unless ``read_ahead=0``: the link would otherwise go idle between
        elements (see :mod:`terrapipe.chip.chipper`).
        """
        return self.remote and self.workers > 0 and self.read_ahead != 0

    def room(self) -> bool:
        """Whether the shared budget allows a read ahead now, by this reader's limits."""
        budget = self.budget
        if budget.held >= self.cache_bytes or budget.inflight >= self.max_inflight_bytes:
            return False
        return not (self._latency_bound and budget.pending >= 2 * self.workers)

    @staticmethod
    def _nbytes(spec: ArraySpec, index: tuple[slice, ...]) -> int:
        return spec.itemsize * int(np.prod(_shape(spec, index), dtype=np.int64))

    @staticmethod
    def _split_axes(spec: ArraySpec) -> list[tuple[int, IntArray]]:
        """Return the axes the windows do not cut with several storage chunks, and their chunk edges."""
        if spec.mode == "memory":
            return []
        from terrapipe.chip.layout import storage_edges

        edges = storage_edges(spec.variable)
        out = []
        for axis, dim in enumerate(spec.variable.dims):
            if axis not in spec.axes and dim in edges and edges[dim].size > 2:
                out.append((axis, edges[dim]))
        return out

    def _assemble(
        self, i: int, start: list[int], stop: list[int], keys: list[BlockKey], stream: RegionStream
    ) -> tuple[np.ndarray, bool]:
        """Return array ``i`` of the region ``start:stop`` and whether its memory is the region's alone."""
        spec = self.arrays[i]
        region = spec.full_key()
        for k, axis in enumerate(spec.axes):
            if axis is not None:
                region[axis] = slice(start[k], stop[k])
        if spec.mode == "memory":  # a view of the user's array
            return np.asarray(spec.variable.values[tuple(region)]), False
        cache = stream.cache
        parts = [(stream.block_index(key), cache[key].result()) for key in keys]
        if len(parts) == 1:
            index, data = parts[0]
            local = tuple(
                slice(reg.start - blk.start, reg.stop - blk.start) if reg.stop is not None else slice(None)
                for reg, blk in zip(region, index, strict=True)
            )
            view = data[local]
            # the whole block, or a chip would keep more than its region alive
            return view, view.shape == data.shape and stream.alone(keys[0], data)
        shape = tuple(
            reg.stop - reg.start if reg.stop is not None else n_ax
            for reg, n_ax in zip(region, spec.variable.shape, strict=True)
        )
        out = np.empty(shape, dtype=parts[0][1].dtype)
        for index, data in parts:
            dst, src = [], []
            for reg, blk in zip(region, index, strict=True):
                if reg.stop is None:
                    dst.append(slice(None))
                    src.append(slice(None))
                    continue
                lo, hi = max(reg.start, blk.start), min(reg.stop, blk.stop)
                dst.append(slice(lo - reg.start, hi - reg.start))
                src.append(slice(lo - blk.start, hi - blk.start))
            out[tuple(dst)] = data[tuple(src)]
        return out, True  # copied together for this region alone


class ReadBudget:
    """What the block readers of one pass share: the blocks they hold and read ahead, and reader pools.

    A stage that reads ahead across its elements (the chipper over remote
    data) gives every element's :class:`BlockReader` the same budget, so the
    bytes and reads in flight are bounded over all of them together. All
    counting happens in the thread that asks for regions; the pools are
    shut down by :meth:`close`.

    Attributes
    ----------
    inflight
        Decoded bytes of blocks being read, or read and waiting for their first region.
    pending
        Blocks being read, or read and waiting for their first region.
    held
        Decoded bytes of the blocks the readers hold (in flight or kept).
    peak_inflight
        The most :attr:`inflight` bytes at any time so far.

    Examples
    --------
    >>> budget = ReadBudget()
    >>> budget.inflight, budget.pending, budget.held
    (0, 0, 0)
    >>> budget.pool(2) is budget.pool(2)
    True
    >>> budget.close()
    """

    def __init__(self) -> None:
        self.inflight = 0
        self.pending = 0
        self.held = 0
        self.peak_inflight = 0
        self._pools: dict[int, Lease] = {}

    def add_inflight(self, nbytes: int) -> int:
        """Count ``nbytes`` more in flight (one block); return the bytes in flight now."""
        self.inflight += nbytes
        self.pending += 1
        self.held += nbytes
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        return self.inflight

    def pool(self, threads: int) -> Lease:
        """Return the budget's ``threads`` reader threads (a :func:`~terrapipe.io.read_pool.lease`, made on first use)."""
        pool = self._pools.get(threads)
        if pool is None:
            pool = self._pools[threads] = lease(threads)
        return pool

    def close(self) -> None:
        """Give the reader threads back (waiting for reads already running; those not started are cancelled)."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)


class RegionStream:
    """The regions of one :meth:`BlockReader.regions` call, served in order (an iterator).

    Each ``next()`` first starts the reads that the read-ahead horizon and the
    budget allow (:meth:`fill`), then waits for the next region's blocks and
    yields ``(arrays, None)``, or ``(None, error)`` when one of its blocks
    failed. :meth:`fill` alone starts reads without serving anything (a stage
    reading its next element ahead); :meth:`close` cancels what is left.
    """

    def __init__(self, reader: BlockReader, starts: IntArray, stops: IntArray) -> None:
        self.reader = reader
        self.budget = reader.budget
        starts = np.asarray(starts, dtype=np.int64).reshape(
            -1, len(reader.arrays[0].axes) if reader.arrays else 0
        )
        self.starts = starts
        self.stops = np.asarray(stops, dtype=np.int64).reshape(starts.shape)
        self.n = n = starts.shape[0]
        self.start_rows: list[list[int]] = starts.tolist()
        self.stop_rows: list[list[int]] = self.stops.tolist()
        self.blocked = [i for i, a in enumerate(reader.arrays) if a.mode != "memory"]
        self.grids: dict[int, tuple[int, ...]] = {}
        # Per blocked array: its (region, block) pairs as Python ints (flat block numbers grouped
        # by region, and each region's offsets), read per region without numpy scalars.
        self.flat_of: dict[int, list[int]] = {}
        self.offsets_of: dict[int, list[int]] = {}
        self.uses: dict[BlockKey, IntArray] = {}  # the regions that need each block, in order
        for i in self.blocked:
            spec = reader.arrays[i]
            self.grids[i] = tuple(int(e.size - 1) for e in spec.edges if e is not None)
            lo, hi = reader._block_boxes(spec, starts, self.stops)
            flat, offsets = reader._pairs(lo, hi, self.grids[i])
            self.flat_of[i], self.offsets_of[i] = flat.tolist(), offsets.tolist()
            owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
            by_block = np.lexsort((owner, flat))
            ids, first = np.unique(flat[by_block], return_index=True)
            bounds = np.append(first, flat.size).tolist()
            owners = owner[by_block]
            self.uses.update(
                {(i, int(b)): owners[bounds[k] : bounds[k + 1]] for k, b in enumerate(ids.tolist())}
            )
        self.cache: dict[BlockKey, Any] = {}
        self.sizes: dict[BlockKey, int] = {}
        self.pins: dict[BlockKey, int] = {}
        self.served_uses: dict[BlockKey, int] = dict.fromkeys(self.uses, 0)
        self.kept: dict[BlockKey, int] = {}  # unpinned blocks kept for a later region: their next use
        self.farthest: list[tuple[int, BlockKey]] = []  # heap of (-next use, block); stale entries skipped
        self.seen: set[BlockKey] = set()
        self.held = 0  # this stream's share of budget.held
        self.pending: dict[BlockKey, int] = {}  # blocks read for a region not served yet: their bytes
        # The buffers this stream allocated for its blocks (a read into one of them is this stream's alone).
        self.buffers: dict[BlockKey, np.ndarray] = {}
        # What each block is, worked out once per pass (a block's key in its array and its
        # decoded bytes), and the blocks of each region from its first look until it is served.
        self.index_of: dict[BlockKey, tuple[slice, ...]] = {}
        self.nbytes_of: dict[BlockKey, int] = {}
        self.keys_of: dict[int, list[BlockKey]] = {}
        self.geometry = {i: _BlockGeometry(reader.arrays[i]) for i in self.blocked}
        self.splits = (
            {i: reader._split_axes(reader.arrays[i]) for i in self.blocked}
            if reader.remote and reader.workers > 0
            else {}
        )
        self._own_pool = reader.executor is None and reader.workers > 0 and reader._pool is None
        self.pool: Executor | None = (
            lease(reader.workers) if self._own_pool else (reader._pool or reader.executor)
        )
        self.submitted = 0
        self.served = 0
        self.closed = False

    @property
    def submitted_all(self) -> bool:
        """Whether every region's blocks have been asked for."""
        return self.submitted >= self.n

    def __iter__(self) -> RegionStream:
        return self

    def _blocks_of(self, r: int) -> list[BlockKey]:
        """Return the blocks region ``r`` needs, in order (kept from the first look until ``r`` is served)."""
        keys = self.keys_of.get(r)
        if keys is None:
            keys = self.keys_of[r] = [
                (i, b)
                for i in self.blocked
                for b in self.flat_of[i][self.offsets_of[i][r] : self.offsets_of[i][r + 1]]
            ]
        return keys

    def block_index(self, key: BlockKey) -> tuple[slice, ...]:
        """Return the key of block ``key`` in its array (slices on the sized axes, whole other axes)."""
        index = self.index_of.get(key)
        if index is None:
            index, self.nbytes_of[key] = self.geometry[key[0]].block(key[1])
            self.index_of[key] = index
        return index

    def _block_nbytes(self, key: BlockKey) -> int:
        nbytes = self.nbytes_of.get(key)
        if nbytes is None:
            self.block_index(key)
            nbytes = self.nbytes_of[key]
        return nbytes

    def _submit(self, r: int) -> None:
        reader, budget, cache, pool = self.reader, self.budget, self.cache, self.pool
        for key in self._blocks_of(r):
            self.pins[key] = self.pins.get(key, 0) + 1
            if key in cache:
                self.kept.pop(key, None)
                continue
            spec = reader.arrays[key[0]]
            index = self.block_index(key)
            if key in self.seen:
                reader.rereads += 1
            self.seen.add(key)
            reader.blocks_read += 1
            nbytes = self._block_nbytes(key)
            self.sizes[key] = nbytes
            self.held += nbytes
            reader.bytes_read += nbytes
            self.pending[key] = nbytes
            reader.peak_inflight_bytes = max(reader.peak_inflight_bytes, budget.add_inflight(nbytes))
            split = self.splits.get(key[0])
            parts = _parts(index, split) if split and pool is not None else ()
            if pool is not None and len(parts) > 1:
                buffer = np.empty(_shape(spec, index), dtype=spec.variable.dtype)
                futures = [pool.submit(_read_part, spec, part, buffer, dst) for part, dst in parts]
                cache[key] = _Joined(futures, buffer)
                self.buffers[key] = buffer
                continue
            out = block_buffer(spec, index)
            if out is not None:
                self.buffers[key] = out
            cache[key] = (
                pool.submit(read_block, spec, index, out) if pool else _Inline(read_block, spec, index, out)
            )

    def _ahead_ok(self, r: int) -> bool:
        """Whether region ``r`` (ahead of the one served) may have its blocks read now."""
        reader = self.reader
        if not reader.room():
            return False
        extra = sum(self._block_nbytes(key) for key in self._blocks_of(r) if key not in self.cache)
        return self.budget.inflight + extra <= reader.max_inflight_bytes

    def fill(self, *, serving: bool = False) -> None:
        """Start the reads the read-ahead horizon and the budget allow (with ``serving``: the next region's too)."""
        if self.closed:
            return
        r, n, horizon = self.served, self.n, self.reader.read_ahead
        while self.submitted < n and (
            (serving and self.submitted <= r)
            or ((horizon is None or self.submitted - r <= horizon) and self._ahead_ok(self.submitted))
        ):
            self._submit(self.submitted)
            self.submitted += 1

    def _release(self, r: int) -> None:
        budget, reader = self.budget, self.reader
        keys = self._blocks_of(r)
        del self.keys_of[r]
        for key in keys:
            nbytes = self.pending.pop(key, None)
            if nbytes is not None:
                budget.inflight -= nbytes
                budget.pending -= 1
            self.pins[key] -= 1
            done = self.served_uses[key] = self.served_uses[key] + 1
            if done == self.uses[key].size:
                self._drop(key)
            elif self.pins[key] == 0:
                next_use = int(self.uses[key][done])
                self.kept[key] = next_use
                heapq.heappush(self.farthest, (-next_use, key))
        # Over budget: drop the kept block needed last (Belady's rule, the order is known).
        while self.held > reader.cache_bytes and self.kept:
            negative, key = heapq.heappop(self.farthest)
            if self.kept.get(key) != -negative:
                continue  # stale: pinned again, or dropped already
            del self.kept[key]
            self.cache[key].cancel()
            self._drop(key)

    def _drop(self, key: BlockKey) -> None:
        del self.cache[key]
        self.buffers.pop(key, None)
        del self.pins[key]
        nbytes = self.sizes.pop(key)
        self.held -= nbytes
        self.budget.held -= nbytes

    def __next__(self) -> tuple[Region | None, BaseException | None]:
        if self.closed or self.served >= self.n:
            raise StopIteration
        self.fill(serving=True)
        r = self.served
        reader = self.reader
        start, stop = self.start_rows[r], self.stop_rows[r]
        keys = self._blocks_of(r)
        several = len(self.blocked) > 1
        out: list[np.ndarray] = []
        exclusive: list[bool] = []
        try:
            for i in range(len(reader.arrays)):
                array, alone = reader._assemble(
                    i, start, stop, [k for k in keys if k[0] == i] if several else keys, self
                )
                out.append(array)
                exclusive.append(alone)
        except Exception as err:  # a failed block fails every region that needs it
            self._release(r)
            self.served += 1
            return None, err
        self._release(r)
        self.served += 1
        return Region(out, exclusive), None

    def alone(self, key: BlockKey, data: np.ndarray) -> bool:
        """Whether block ``key``, read as ``data``, is this stream's alone and needed by one region only.

        True only for a buffer this stream allocated and the read filled (not
        an array a dask graph or a lazy backend handed back, which it may hand
        out again, nor a view of the user's array), read once (no re-read:
        one region needs it) and kept for no later region.
        """
        return self.buffers.get(key) is data and self.uses[key].size == 1

    def close(self) -> None:
        """Cancel the reads not started, and give this stream's share of the budget back."""
        if self.closed:
            return
        self.closed = True
        for future in self.cache.values():
            future.cancel()
        budget = self.budget
        budget.inflight -= sum(self.pending.values())
        budget.pending -= len(self.pending)
        budget.held -= self.held
        self.pending.clear()
        self.cache.clear()
        self.buffers.clear()
        self.keys_of.clear()
        self.held = 0
        if self._own_pool and self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __del__(self) -> None:
        # A stream dropped without close() (a generator-like iterator left unfinished).
        if not getattr(self, "closed", True):
            self.close()
