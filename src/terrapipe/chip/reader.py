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

Threads rather than ``asyncio``: GDAL (COG reads) and the Zarr stores we read
through are blocking libraries that release the GIL, and a thread per request
in flight kept the link as busy as a hand-written 16-thread reader in
``benchmarks/bench_latency.py`` (see ``docs/benchmarks/latency.md``). Zarr
arrays of the common layouts, local or remote, are read by
:mod:`terrapipe.chip.zarr_direct` on these threads (each fetches and decodes
its own chunks), not by zarr-python, which would schedule every chunk on its
one event-loop thread.

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
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from itertools import pairwise, product
from typing import Any

import numpy as np

from terrapipe.chip.layout import ArraySpec
from terrapipe.chip.plan import IntArray
from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError

__all__ = [
    "DEFAULT_INFLIGHT_BYTES",
    "DEFAULT_WORKERS",
    "BlockReader",
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
    data = getattr(variable, "_data", None)
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
    shifted = tuple(
        slice(o + (k.start or 0), o + (k.stop if k.stop is not None else n - o))
        for o, k, n in zip(offsets, key, array.shape, strict=True)
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
        Threads to read on instead of a pool of ``workers`` threads made for
        each :meth:`regions` call (a stage reading many small elements shares
        one pool across them); the reader does not shut it down. Not used
        for remote data with ``workers=None``: the reader then reads on a
        pool of its own, as many threads as requests it keeps in flight.
    max_inflight_bytes
        Most decoded bytes of blocks read ahead of the region being served
        (default ``min(DEFAULT_INFLIGHT_BYTES, cache_bytes)``); a single
        region larger than that is still read.

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
        waiting for their first region, at any time so far.
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
    def regions(
        self, starts: IntArray, stops: IntArray
    ) -> Generator[tuple[list[np.ndarray] | None, BaseException | None], None, None]:
        """Yield ``(arrays, None)`` per region, in order, or ``(None, error)`` when a block failed.

        Parameters
        ----------
        starts, stops
            ``[n_regions, n_axes]`` pixel bounds of each region along the plan axes.
        """
        starts = np.asarray(starts, dtype=np.int64).reshape(
            -1, len(self.arrays[0].axes) if self.arrays else 0
        )
        stops = np.asarray(stops, dtype=np.int64).reshape(starts.shape)
        n = starts.shape[0]
        blocked = [i for i, a in enumerate(self.arrays) if a.mode != "memory"]
        grids: dict[int, tuple[int, ...]] = {}
        pairs: dict[int, tuple[IntArray, IntArray]] = {}
        uses: dict[BlockKey, IntArray] = {}  # the regions that need each block, in order
        for i in blocked:
            spec = self.arrays[i]
            grids[i] = tuple(int(e.size - 1) for e in spec.edges if e is not None)
            lo, hi = self._block_boxes(spec, starts, stops)
            flat, offsets = self._pairs(lo, hi, grids[i])
            pairs[i] = (flat, offsets)
            owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
            by_block = np.lexsort((owner, flat))
            ids, first = np.unique(flat[by_block], return_index=True)
            bounds = np.append(first, flat.size).tolist()
            owners = owner[by_block]
            uses.update({(i, int(b)): owners[bounds[k] : bounds[k + 1]] for k, b in enumerate(ids.tolist())})

        cache: dict[BlockKey, Any] = {}
        sizes: dict[BlockKey, int] = {}
        pins: dict[BlockKey, int] = {}
        served_uses: dict[BlockKey, int] = dict.fromkeys(uses, 0)
        kept: dict[BlockKey, int] = {}  # unpinned blocks kept for a later region: their next use
        farthest: list[tuple[int, BlockKey]] = []  # heap of (-next use, block); stale entries skipped
        seen: set[BlockKey] = set()
        held = 0
        pending: dict[BlockKey, int] = {}  # blocks read for a region not served yet: their bytes
        inflight = 0
        nbytes_of: dict[BlockKey, int] = {}
        splits = (
            {i: self._split_axes(self.arrays[i]) for i in blocked} if self.remote and self.workers > 1 else {}
        )
        own = self.executor is None and self.workers > 0
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="terrapipe-chip") if own else self.executor
        submitted = 0

        def blocks_of(r: int) -> Iterator[BlockKey]:
            for i in blocked:
                flat, offsets = pairs[i]
                for b in flat[offsets[r] : offsets[r + 1]]:
                    yield (i, int(b))

        def block_nbytes(key: BlockKey) -> int:
            if key not in nbytes_of:
                spec = self.arrays[key[0]]
                nbytes_of[key] = self._nbytes(spec, self._block_slices(spec, grids[key[0]], key[1]))
            return nbytes_of[key]

        def submit(r: int) -> None:
            nonlocal held, inflight
            for key in blocks_of(r):
                pins[key] = pins.get(key, 0) + 1
                if key in cache:
                    kept.pop(key, None)
                    continue
                spec = self.arrays[key[0]]
                index = self._block_slices(spec, grids[key[0]], key[1])
                if key in seen:
                    self.rereads += 1
                seen.add(key)
                self.blocks_read += 1
                nbytes = block_nbytes(key)
                sizes[key] = nbytes
                held += nbytes
                self.bytes_read += nbytes
                pending[key] = nbytes
                inflight += nbytes
                self.peak_inflight_bytes = max(self.peak_inflight_bytes, inflight)
                parts = _parts(index, splits.get(key[0], ()))
                if pool is not None and len(parts) > 1:
                    buffer = np.empty(_shape(spec, index), dtype=spec.variable.dtype)
                    futures = [pool.submit(_read_part, spec, part, buffer, dst) for part, dst in parts]
                    cache[key] = _Joined(futures, buffer)
                    continue
                out = block_buffer(spec, index)
                cache[key] = (
                    pool.submit(read_block, spec, index, out)
                    if pool
                    else _Inline(read_block, spec, index, out)
                )

        def ahead_ok(r: int) -> bool:
            """Whether region ``r`` (ahead of the one served) may have its blocks read now."""
            if held >= self.cache_bytes:
                return False
            if self._latency_bound and len(pending) >= 2 * self.workers:
                return False
            extra = sum(block_nbytes(key) for key in blocks_of(r) if key not in cache)
            return inflight + extra <= self.max_inflight_bytes

        def release(r: int) -> None:
            nonlocal held, inflight
            for key in blocks_of(r):
                inflight -= pending.pop(key, 0)
                pins[key] -= 1
                done = served_uses[key] = served_uses[key] + 1
                if done == uses[key].size:
                    del cache[key]
                    del pins[key]
                    held -= sizes.pop(key)
                elif pins[key] == 0:
                    next_use = int(uses[key][done])
                    kept[key] = next_use
                    heapq.heappush(farthest, (-next_use, key))
            # Over budget: drop the kept block needed last (Belady's rule, the order is known).
            while held > self.cache_bytes and kept:
                negative, key = heapq.heappop(farthest)
                if kept.get(key) != -negative:
                    continue  # stale: pinned again, or dropped already
                del kept[key]
                cache.pop(key).cancel()
                del pins[key]
                held -= sizes.pop(key)

        try:
            for r in range(n):
                while submitted < n and (
                    submitted <= r
                    or ((self.read_ahead is None or submitted - r <= self.read_ahead) and ahead_ok(submitted))
                ):
                    submit(submitted)
                    submitted += 1
                try:
                    out = [
                        self._assemble(i, starts[r], stops[r], cache, grids, pairs, r)
                        for i in range(len(self.arrays))
                    ]
                except Exception as err:  # a failed block fails every region that needs it
                    release(r)
                    yield None, err
                    continue
                release(r)
                yield out, None
        finally:
            for future in cache.values():
                future.cancel()
            if own and pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

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

    @staticmethod
    def _block_slices(spec: ArraySpec, grid: tuple[int, ...], flat: int) -> tuple[slice, ...]:
        multi = np.unravel_index(flat, grid)
        key = spec.full_key()
        k = 0
        for axis, edges in zip(spec.axes, spec.edges, strict=True):
            if axis is None or edges is None:
                continue
            b = int(multi[k])
            key[axis] = slice(int(edges[b]), int(edges[b + 1]))
            k += 1
        return tuple(key)

    def _assemble(
        self,
        i: int,
        start: IntArray,
        stop: IntArray,
        cache: dict[BlockKey, Any],
        grids: dict[int, tuple[int, ...]],
        pairs: dict[int, tuple[IntArray, IntArray]],
        r: int,
    ) -> np.ndarray:
        spec = self.arrays[i]
        region = spec.full_key()
        for k, axis in enumerate(spec.axes):
            if axis is not None:
                region[axis] = slice(int(start[k]), int(stop[k]))
        if spec.mode == "memory":
            return np.asarray(spec.variable.values[tuple(region)])
        flat, offsets = pairs[i]
        blocks = flat[offsets[r] : offsets[r + 1]]
        parts: list[tuple[tuple[slice, ...], np.ndarray]] = []
        for b in blocks:
            key = (i, int(b))
            data = cache[key].result()
            parts.append((self._block_slices(spec, grids[i], int(b)), data))
        if len(parts) == 1:
            index, data = parts[0]
            local = tuple(
                slice(reg.start - blk.start, reg.stop - blk.start) if reg.stop is not None else slice(None)
                for reg, blk in zip(region, index, strict=True)
            )
            return data[local]  # type: ignore[no-any-return]
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
        return out
