"""Reading a cube on its items' own pixel grid: one dask task per chunk, each file read straight into it.

When ``stack_stac`` puts the cube on the items' native grid (see
:mod:`terrapipe.stac.grid`), a chunk's pixels are, for almost every file, a
window of that file: nothing to resample. odc-stac reads such a chunk by
opening the file (twice, with terrapipe's header check), reading into a new
array, filling the chunk with nodata and copying the read pixels over it,
and builds the cube through xarray once per band. Measured with cProfile on
the sample world (3 scenes x 4 bands of 1024², ``benchmarks/bench_stac.py``):
decoding took 0.078 s of 0.146 s; the opens 0.023 s, the fill and fuse
copies 0.011 s, building the cube 0.020 s. Here:

- the cube is one dask array over a plain graph (one task per
  ``(time, band, y, x)`` chunk), built without going through xarray per band;
- a task reads each file of its time slot with this thread's cached handle
  (:func:`terrapipe.io.raster_array.acquire`: opened once per thread, not per
  chunk), straight into the chunk (no temporary, no fill where the file
  covers the chunk), inside the storage's GDAL environment
  (``storage.rasterio_env(url)``, per open and read, never ``os.environ``;
  the handle's key holds the storage, and GDAL's cache of a URL is dropped
  when another storage opens it);
- a file whose grid is not a whole-pixel shift of the cube's (another
  resolution, CRS or a fraction of a pixel off, whatever its item said) is
  read for that chunk by odc-stac's own reader (resampled as odc-stac does).

The pixels are odc-stac's: the items of a time slot in odc-stac's order,
the first valid pixel kept (a pixel is missing where it equals the fill
value, or is NaN), nodata of the file remapped to the cube's, the same
file checks (:func:`terrapipe.stac.asset_reader.check_band`) and casts.
A failed read is a :class:`~terrapipe.core.errors.ReadError` naming the
item, the asset and the file as ``scheme://host/path``; a remote file's
network faults are retried (:func:`terrapipe.io.raster_array.attempt`).

Examples
--------
>>> _overlap(0, 100, 50, 30)  # a 30-pixel file at row 50 of a 0..100 chunk
(slice(0, 30, None), slice(50, 80, None))
>>> _overlap(0, 100, 120, 30) is None
True
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from terrapipe.core.errors import ReadError
from terrapipe.core.optional import require
from terrapipe.core.per_process import PerProcess
from terrapipe.io.paths import gdal_path, is_remote
from terrapipe.io.raster_array import RasterSource, acquire, attempt
from terrapipe.io.storage import Storage
from terrapipe.stac.asset_reader import asset_read_error, cast_read, check_band, refused_credentials

__all__ = [
    "LOCAL_READ_THREADS",
    "READ_THREADS",
    "SHARED_BAND_BLOCKS",
    "AssetBand",
    "BandLoad",
    "BandMeta",
    "NativeArray",
    "NativePlan",
    "asset_band",
    "chunk_sources",
    "native_array",
    "on_read_pool",
    "read_chunk",
    "settled",
]

#: A file is pasted (read without resampling) when its pixel size equals the cube's and its origin is a
#: whole number of pixels away, to this many pixels; anything else goes to odc-stac's reader.
_WHOLE_PIXEL = 1e-6


@dataclass(frozen=True)
class BandMeta:
    """What the items state about a band (odc-loader's ``RasterBandMetadata`` fields this module reads)."""

    data_type: str | None = None
    nodata: Any = None


@dataclass(frozen=True)
class BandLoad:
    """How a band of the cube is loaded (the fields of odc-loader's ``RasterLoadParams`` used here).

    A plain dataclass, so that a native cube needs no odc-loader import
    (~20 ms of a fresh process); a file that must be resampled is read with
    odc-loader's own parameters (:meth:`odc`).

    Attributes
    ----------
    dtype
        The cube's dtype.
    fill_value
        The cube's nodata (``None``: none).
    resampling
        The resampling of files not on the cube's pixel lattice.
    meta
        What the items state about the band.
    """

    dtype: str
    fill_value: Any = None
    resampling: str = "nearest"
    meta: BandMeta | None = None

    def odc(self) -> Any:
        """Return odc-loader's ``RasterLoadParams`` with these values (what its reader reads with)."""
        odc_loader = require("odc.loader", extra="stac", feature="stack_stac")
        meta = None
        if self.meta is not None:
            meta = odc_loader.RasterBandMetadata(data_type=self.meta.data_type, nodata=self.meta.nodata)
        return odc_loader.RasterLoadParams(
            dtype=self.dtype,
            fill_value=self.fill_value,
            resampling=self.resampling,
            fail_on_error=True,
            meta=meta,
        )


@dataclass(frozen=True)
class AssetBand:
    """One band of one item's asset, as a chunk task reads it.

    Attributes
    ----------
    source
        How to open the file (path, GDAL name, storage): the key of the
        per-thread handle cache.
    band
        Band index in the file, from 1.
    rect
        ``(row0, row1, col0, col1)`` of the file on the load grid, from the
        item's projection fields (``None``: not known, read it everywhere).
        Chunks outside it are not read for this file, as odc-stac bins items
        by their footprints.
    """

    source: RasterSource
    band: int
    rect: tuple[int, int, int, int] | None


def asset_band(
    href: str, band: int, storage: Storage | None, rect: tuple[int, int, int, int] | None
) -> AssetBand:
    """Return the :class:`AssetBand` of band ``band`` of the file at ``href`` (a path or a URL).

    A local file carries its stamp (mtime, size, inode): a file rewritten
    since gets a new handle, not this thread's cached one.

    Examples
    --------
    >>> asset_band("https://h/a.tif", 2, None, None).source.gdal_path
    '/vsicurl?empty_dir=yes&url=https%3A%2F%2Fh%2Fa.tif'
    """
    name = gdal_path(href, sidecars=storage is not None and storage.sidecars is True)
    stamp = None
    if not is_remote(href) and not name.startswith("/vsi"):
        try:
            info = os.stat(name)
        except OSError:  # missing: the read says so, naming the asset
            pass
        else:
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
    return AssetBand(RasterSource(path=href, gdal_path=name, stamp=stamp, storage=storage), band, rect)


@dataclass(frozen=True, eq=False)
class NativePlan:
    """What every chunk task of a native cube shares (pickles: plain data, no open file).

    Attributes
    ----------
    geobox
        The load grid (odc-geo ``GeoBox``).
    cfgs
        Per band, its :class:`BandLoad` (dtype, fill value, resampling, the
        band's stated type and nodata).
    slots
        ``slots[time][band]``: the files of that time slot and band, in
        odc-stac's order (the first valid pixel wins).
    names
        ``href -> (item id, asset key)``, for messages.
    cast
        Whether ``dtype=`` was given (a file type the cube cannot hold is cast).
    remote
        Whether files are read over HTTP(S) (their bands are read at once).
    bands
        The cube's band names, in order.
    """

    geobox: Any
    cfgs: tuple[Any, ...]
    slots: tuple[tuple[tuple[AssetBand, ...], ...], ...]
    names: Mapping[str, tuple[str, str]]
    cast: bool
    remote: bool = False
    bands: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the fields only: the per-process caches (``_shifts``: weak references) stay behind."""
        return {key: value for key, value in self.__dict__.items() if not key.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)


def fill_value(cfg: Any) -> Any:
    """Return the value of a pixel no file covers: the cube's nodata, else NaN (floats) or 0 (as odc-stac).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> fill_value(NS(dtype="uint16", fill_value=None)), fill_value(NS(dtype="float32", fill_value=None))
    (np.uint16(0), np.float32(nan))
    """
    dtype = np.dtype(cfg.dtype)
    if cfg.fill_value is not None:
        return dtype.type(cfg.fill_value)
    if dtype.kind == "f":
        return dtype.type(np.nan)
    return dtype.type(0)


def _missing(pixels: np.ndarray, nodata: Any) -> np.ndarray:
    """Return the pixels that count as missing (odc-loader's rule: NaN, or equal to ``nodata``)."""
    if pixels.dtype.kind == "f":
        if nodata is None or math.isnan(nodata):
            return np.asarray(np.isnan(pixels))
        return np.asarray(np.isnan(pixels) | (pixels == nodata))
    if nodata is None:
        return np.zeros(pixels.shape, dtype=bool)
    return pixels == nodata  # type: ignore[no-any-return]


def _dst_nodata(dtype: np.dtype, cfg: Any, src_nodata: Any) -> Any:
    """Return the nodata of read pixels: the cube's, NaN for floats, else the file's (odc-loader's rule)."""
    if cfg.fill_value is not None:
        return dtype.type(cfg.fill_value)
    if dtype.kind == "f":
        return np.nan
    if src_nodata is not None:
        return dtype.type(src_nodata)
    return None


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return bool(a == b)


def _overlap(start: int, stop: int, origin: int, size: int) -> tuple[slice, slice] | None:
    """``(file slice, chunk slice)`` of a file of ``size`` pixels at ``origin`` in the chunk ``start:stop``."""
    lo, hi = max(start, origin), min(stop, origin + size)
    if lo >= hi:
        return None
    return slice(lo - origin, hi - origin), slice(lo - start, hi - start)


def _shift(handle: Any, geobox: Any, grid_crs: Any) -> tuple[int, int] | None:
    """Return the file's origin in pixels of the load grid, if it is a whole-pixel shift of it (else ``None``)."""
    t = handle.transform
    g = geobox.transform
    if (
        t.b != 0
        or t.d != 0
        or not math.isclose(t.a, g.a, rel_tol=1e-9)
        or not math.isclose(t.e, g.e, rel_tol=1e-9)
    ):
        return None
    col = (t.c - g.c) / g.a
    row = (t.f - g.f) / g.e
    if abs(col - round(col)) > _WHOLE_PIXEL or abs(row - round(row)) > _WHOLE_PIXEL:
        return None
    if handle.crs != grid_crs:
        return None
    return round(row), round(col)


def _read_one(
    plan: NativePlan,
    asset: AssetBand,
    cfg: Any,
    rows: tuple[int, int],
    cols: tuple[int, int],
    dst: np.ndarray,
    empty: bool,
) -> tuple[tuple[slice, slice], np.ndarray, bool] | None:
    """Read one file's part of a chunk.

    Returns ``None`` (no overlap), or ``(roi, pixels, direct)``: ``direct``
    when the pixels were read into ``dst[roi]`` itself (only when ``empty``:
    nothing was in ``dst`` yet; the rest of ``dst`` is then filled).
    """
    href = asset.source.path
    given = asset
    source, pending = current_source(plan, asset.source)
    asset = AssetBand(source, asset.band, asset.rect)

    def read() -> Any:
        handle = acquire(asset.source)
        try:
            check = check_band(
                href,
                plan.names,
                asset.band,
                list(handle.dtypes),
                list(handle.nodatavals),
                cfg,
                cast=plan.cast,
            )
        except ReadError as err:  # not a read failure: handed back, raised below (no retry)
            return err
        shift = _handle_shift(plan, handle)
        if shift is None:
            return "resample"
        src_nodata = handle.nodatavals[asset.band - 1]
        y = _overlap(rows[0], rows[1], shift[0], int(handle.height))
        x = _overlap(cols[0], cols[1], shift[1], int(handle.width))
        if y is None or x is None:
            return None
        window = ((y[0].start, y[0].stop), (x[0].start, x[0].stop))
        roi = (y[1], x[1])
        read_cfg = cfg if check is None else check[0]
        dtype = np.dtype(read_cfg.dtype)
        direct = empty and check is None
        if direct:
            whole = roi[0].stop - roi[0].start == dst.shape[0] and roi[1].stop - roi[1].start == dst.shape[1]
            if not whole:
                dst[...] = fill_value(cfg)
            target = dst[roi]
        else:
            target = np.empty((roi[0].stop - roi[0].start, roi[1].stop - roi[1].start), dtype=dtype)
        handle.read(asset.band, out=target, window=window)
        nodata = _dst_nodata(dtype, read_cfg, src_nodata)
        if nodata is not None and not _same(src_nodata, nodata):
            np.copyto(target, nodata, where=_missing(target, src_nodata))
        if check is not None:
            target = cast_read(target, cfg, check[1], href, plan.names, asset.band)
        return roi, target, direct

    try:
        result = attempt(
            asset.source,
            lambda: settled(read, href, plan.names),
            lambda reason: asset_read_error(href, plan.names, _why(asset, reason)),
        )
    except Exception:
        if pending is not None and _replaced(plan, href, pending, source.version):
            return _read_one(plan, given, cfg, rows, cols, dst, empty)  # the file now there
        raise
    if pending is not None and _replaced(plan, href, pending, source.version):
        return _read_one(plan, given, cfg, rows, cols, dst, empty)  # replaced since the process kept it
    if isinstance(result, ReadError):
        raise result
    if isinstance(result, str):  # not a whole-pixel shift: odc-stac's reader resamples it
        return _resampled(plan, asset, cfg, rows, cols)
    return result  # type: ignore[no-any-return]


def current_source(plan: NativePlan, source: RasterSource) -> tuple[RasterSource, Future[Any] | None]:
    """Return ``source`` with the version of the file now at its URL, asked once per cube (plan) and process.

    The byte layer keeps a remote file's first blocks per process and each
    thread caches handles per source: without a version, a cube built after
    the file was replaced at the server (an upload to the same key) read the
    old blocks and handles, silently. A file not held yet has its first block
    read here (:func:`~terrapipe.io.gdal_opener.current`: what the open does
    anyway). A file the process holds is read at once with the version it
    keeps, while :func:`~terrapipe.io.gdal_opener.current_soon` asks for its
    first block again (one request per asset and cube, beside the read): the
    future is returned, and :func:`_replaced` settles it after the read, which
    is done again where the file changed. Local files carry their stamp
    instead; a failure leaves the source as it was (the read names it).
    """
    if source.stamp is not None or source.version is not None or not is_remote(source.path):
        return source, None
    from dataclasses import replace

    from terrapipe.io.gdal_opener import current, current_soon, held_version, uses_opener
    from terrapipe.io.paths import quote_url

    if not uses_opener(source.path, source.gdal_path, source.storage):
        return source, None
    entry = _entry(plan, source.path)
    with entry.lock:  # one request per file and cube, whichever thread reads it first
        if not entry.known and entry.pending is None:
            url = quote_url(source.path)
            held = held_version(url, source.storage)
            if held is not None:
                entry.version, entry.pending = held, current_soon(url, source.storage)
            else:
                try:
                    entry.version = current(url, source.storage).version
                except Exception:  # the read fails again and names the asset
                    entry.version = None
                entry.known = True
        version, pending = entry.version, (None if entry.known else entry.pending)
    return (replace(source, version=version) if version is not None else source), pending


class _Version:
    """What a cube knows of one remote file's version: the version, whether settled, the check under way."""

    __slots__ = ("known", "lock", "pending", "version")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: Any = None
        self.known = False
        self.pending: Future[Any] | None = None


def _entry(plan: NativePlan, href: str) -> _Version:
    with _VERSIONS_LOCK:
        versions: dict[str, _Version] | None = plan.__dict__.get("_versions")
        if versions is None:
            versions = {}
            object.__setattr__(plan, "_versions", versions)
        return versions.setdefault(href, _Version())


def _replaced(plan: NativePlan, href: str, pending: Future[Any], read_as: Any) -> bool:
    """Settle a held file's check (:func:`current_source`); whether the file is another than the one read.

    Raises the asset's ``ReadError`` where the check failed (the file gone or
    unreachable since: what the process kept is no answer).
    """
    entry = _entry(plan, href)
    try:
        now = pending.result()
    except Exception as err:
        raise asset_read_error(href, plan.names, err) from err
    with entry.lock:
        if entry.pending is pending:
            entry.version, entry.known, entry.pending = now.version, True, None
    return bool(now.version != read_as)


_VERSIONS_LOCK = threading.Lock()


def settled(operation: Callable[[], Any], href: str, names: Mapping[str, tuple[str, str]]) -> Any:
    """Run ``operation`` (inside :func:`attempt`), handing back as values the failures no retry mends.

    A :class:`ReadError` (the file is not what the cube declared) and a
    refused key or signature come back as a ``ReadError`` value for the
    caller to raise: :func:`attempt` would retry them (with back-off) as
    network faults.
    """
    try:
        return operation()
    except ReadError as err:
        return err
    except Exception as err:
        if refused_credentials(err) is None:
            raise
        return asset_read_error(href, names, err)


def _why(asset: AssetBand, reason: BaseException) -> BaseException:
    """Return why a read of a remote file failed: the error of opening it afresh, else ``reason``.

    A block read that fails on an HTTP error only says ``TIFFReadEncodedTile()
    failed`` (GDAL logs the status at debug level), which reads as a corrupt
    file; GDAL has forgotten the URL by now (:func:`attempt`), so one open asks
    the server again and a failing server says so (``HTTP response code: 503``).
    """
    if not is_remote(asset.source.path) or not type(reason).__module__.startswith("rasterio"):
        return reason
    if refused_credentials(reason) is not None:
        return reason
    rasterio = require("rasterio", feature="stack_stac")
    try:
        with asset.source.env(), rasterio.open(asset.source.gdal_path, "r", sharing=False):
            return reason
    except Exception as opened:  # the server's own answer
        return opened


def _handle_shift(plan: NativePlan, handle: Any) -> tuple[int, int] | None:
    """:func:`_shift` of a handle, worked out once per open handle (comparing two CRSs costs ~80 us)."""
    shifts: dict[int, tuple[Any, tuple[int, int] | None]] | None = plan.__dict__.get("_shifts")
    if shifts is None:
        shifts = {}
        object.__setattr__(plan, "_shifts", shifts)
    held = shifts.get(id(handle))
    if held is not None and held[0]() is handle:
        return held[1]  # type: ignore[no-any-return]
    shift = _shift(handle, plan.geobox, _grid_crs(plan))
    if len(shifts) > 4096:  # handles come and go (closed, other threads): keep the map small
        shifts.clear()
    shifts[id(handle)] = (weakref.ref(handle), shift)
    return shift


def _grid_crs(plan: NativePlan) -> Any:
    """Return the load grid's CRS as rasterio's ``CRS`` (what a handle's ``crs`` compares with), made once per plan."""
    found = plan.__dict__.get("_rio_crs")
    if found is None:
        rasterio_crs = require("rasterio.crs", feature="stack_stac")
        epsg = plan.geobox.crs.epsg  # from_epsg: ~0.03 ms; from_wkt: ~1.2 ms (GDAL parses the WKT)
        found = (
            rasterio_crs.CRS.from_epsg(epsg)
            if epsg is not None
            else rasterio_crs.CRS.from_wkt(plan.geobox.crs.to_wkt())
        )
        object.__setattr__(plan, "_rio_crs", found)
    return found


def _resampled(
    plan: NativePlan, asset: AssetBand, cfg: Any, rows: tuple[int, int], cols: tuple[int, int]
) -> tuple[tuple[slice, slice], np.ndarray, bool] | None:
    """Read a file that is not on the cube's pixel lattice with odc-stac's reader (resampling as it does)."""
    from odc.loader import RasterSource as OdcSource

    from terrapipe.stac.asset_reader import naming_reader

    params = cfg.odc() if isinstance(cfg, BandLoad) else cfg
    source = OdcSource(uri=asset.source.gdal_path, band=asset.band, meta=params.meta)
    with _VERSIONS_LOCK:  # the remote files this cube read through odc's reader (refreshed once per cube)
        cube: dict[str, Any] = plan.__dict__.setdefault("_odc_read", {})
    reader = naming_reader(source, plan.names, cast=plan.cast, storage=asset.source.storage, cube=cube)
    box = plan.geobox[rows[0] : rows[1], cols[0] : cols[1]]
    roi, pixels = reader.read(params, box)
    if pixels.size == 0:
        return None
    return roi, pixels, False


def chunk_sources(
    assets: Sequence[AssetBand], rows: tuple[int, int], cols: tuple[int, int]
) -> list[AssetBand]:
    """Return the files of a time slot whose footprint meets the chunk ``rows`` x ``cols`` (odc-stac's binning).

    Examples
    --------
    >>> a, b = AssetBand(None, 1, (0, 10, 0, 10)), AssetBand(None, 2, (10, 20, 0, 10))  # type: ignore[arg-type]
    >>> [s.band for s in chunk_sources([a, b], (5, 10), (0, 4))], [s.band for s in chunk_sources([a, b], (5, 15), (0, 4))]
    ([1], [1, 2])
    """
    return [
        asset
        for asset in assets
        if asset.rect is None
        or not (
            asset.rect[0] >= rows[1]
            or asset.rect[1] <= rows[0]
            or asset.rect[2] >= cols[1]
            or asset.rect[3] <= cols[0]
        )
    ]


def _fill_slot(
    plan: NativePlan,
    assets: Sequence[AssetBand],
    cfg: Any,
    dst: np.ndarray,
    rows: tuple[int, int],
    cols: tuple[int, int],
) -> None:
    """Fill ``dst`` (one time slot and band of a chunk) from the files of the slot, first valid pixel kept."""
    fill = fill_value(cfg)
    empty = True
    for asset in chunk_sources(assets, rows, cols):
        found = _read_one(plan, asset, cfg, rows, cols, dst, empty)
        if found is None:
            continue
        roi, pixels, direct = found
        if direct:
            empty = False
            continue
        if empty:
            dst[...] = fill
            empty = False
        part = dst[roi]
        np.copyto(part, pixels.astype(dst.dtype, copy=False), where=_missing(part, fill))
    if empty:
        dst[...] = fill


def read_chunk(
    plan: NativePlan, times: tuple[int, int], band: int, rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """Read ``[times, band, rows, cols]`` of a native cube: shape ``(times, 1, rows, cols)``, the cube's dtype."""
    return NativeArray(plan)[slice(*times), slice(band, band + 1), slice(*rows), slice(*cols)]


#: Threads that read the bands and time slots of one remote read at once (latency, not decoding).
READ_THREADS = 16
#: Threads that decode local files handed over by other threads (decoding, not latency): as many as
#: cores (at least 2). Each thread pays ~8 ms of PROJ set-up on its first open, and more threads than
#: cores only contend: on 2 cores at load ~11, one pass of 256 chips over 4 local COGs took 549 against
#: 603 ms of CPU and 1.8 against 2.4 s with the 4 threads the chip stage's readers kept busy (4 pairs of
#: fresh processes).
LOCAL_READ_THREADS = max(2, min(READ_THREADS, os.cpu_count() or 2))

_IN_POOL = threading.local()


def _mark_pool_thread() -> None:
    _IN_POOL.flag = True


def _new_pool(local: bool) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        LOCAL_READ_THREADS if local else READ_THREADS,
        thread_name_prefix="stack_stac-read-local" if local else "stack_stac-read",
        initializer=_mark_pool_thread,
    )


#: This process's read pools (remote, local), made on first use; a forked child makes its own.
_POOLS = (PerProcess(partial(_new_pool, False)), PerProcess(partial(_new_pool, True)))


def _pool(local: bool = False) -> ThreadPoolExecutor:
    """Return this process's read pool (a forked child makes its own: the parent's threads are not in it).

    ``local``: the pool of :data:`LOCAL_READ_THREADS` threads that decode local files.
    """
    return _POOLS[local].get()


def _all_local(plan: NativePlan) -> bool:
    """Whether every file of ``plan`` is a local file (stamped: see :func:`asset_band`), worked out once per plan."""
    found = plan.__dict__.get("_local")
    if found is None:
        found = all(a.source.stamp is not None for slot in plan.slots for band in slot for a in band)
        object.__setattr__(plan, "_local", found)
    return bool(found)


def _hop() -> bool:
    """Whether a read from this thread runs on the read pool's long-lived threads instead.

    A thread's first GDAL open costs about 9 ms of CPU (PROJ's per-thread
    context, read with the file's CRS), and its cached handles
    (:func:`terrapipe.io.raster_array.acquire`) end with it: threads started
    for one pass (as a chip stage's were) paid about 40 ms per pass of a
    4 x 4096² cube before reading a tile. The main thread (a synchronous
    compute, ``chip(workers=0)``, where a ``rasterio.Env`` of yours applies)
    and the pool's own threads read where they are. The chip stages' reader
    threads are long-lived too now (:mod:`terrapipe.io.read_pool`), but
    reading a native cube right in them instead of here cost 3-8% more CPU
    per chip (8192², one pass, paired fresh processes: more of the freed
    block memory went back to the kernel and was faulted in again, perf's
    ``clear_page_erms``), so they still hand the read over.
    """
    return threading.current_thread() is not threading.main_thread() and not getattr(_IN_POOL, "flag", False)


def on_read_pool(operation: Callable[[], Any]) -> Any:
    """Run ``operation`` on the local-file read pool's long-lived threads (in place when this thread is one of them).

    For opening local files whose handles the cube's reads will use (see
    :func:`terrapipe.stac.stack._probe`): a pool thread keeps the handle
    and its PROJ context for the reads that follow. Its result or error
    comes back as if it had run here.

    Examples
    --------
    >>> on_read_pool(lambda: threading.current_thread().name.startswith("stack_stac-read"))
    True
    """
    if getattr(_IN_POOL, "flag", False):
        return operation()
    return _pool(local=True).submit(operation).result()


def _fill_all(
    fill: Callable[[tuple[int, int, int, int]], None], jobs: Sequence[tuple[int, int, int, int]]
) -> None:
    for job in jobs:
        fill(job)


class NativeArray:
    """The ``(time, band, y, x)`` pixels of a native cube, read by slices (what ``da.from_array`` wraps).

    Dask fuses a slice of the cube into the read of its chunk (``getter``),
    so ``cube.isel(band=0, y=slice(0, 256))`` or a chip stage's block reads
    just those pixels, not the whole chunk. A read of several bands or time
    slots of files over HTTP(S) fetches them at once on a small pool
    (:data:`READ_THREADS`): a chunk of such a cube holds every band, so a
    chip's block is one read with its bands in flight together.

    Parameters
    ----------
    plan
        What to read (:class:`NativePlan`).
    """

    def __init__(self, plan: NativePlan) -> None:
        self.plan = plan
        height, width = plan.geobox.shape
        self.shape = (len(plan.slots), len(plan.cfgs), int(height), int(width))
        self.dtype = np.result_type(*[np.dtype(cfg.dtype) for cfg in plan.cfgs])
        self.ndim = 4

    def __repr__(self) -> str:
        return f"NativeArray(shape={self.shape}, dtype={self.dtype.name})"

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (4 - len(key))
        picks = [
            _axis(k, n, listed=axis < 2) for axis, (k, n) in enumerate(zip(key, self.shape, strict=True))
        ]
        (ts, t_drop), (bs, b_drop) = picks[0], picks[1]
        ys, xs = picks[2][0], picks[3][0]
        r0, r1, r_step = ys.start, ys.start + max(0, (len(ys) - 1) * ys.step + 1), ys.step
        c0, c1, c_step = xs.start, xs.start + max(0, (len(xs) - 1) * xs.step + 1), xs.step
        out = np.empty((len(ts), len(bs), r1 - r0, c1 - c0), dtype=self.dtype)
        jobs = [(i, t, j, b) for i, t in enumerate(ts) for j, b in enumerate(bs)]
        plan = self.plan

        def fill(job: tuple[int, int, int, int]) -> None:
            i, t, j, b = job
            _fill_slot(plan, plan.slots[t][b], plan.cfgs[b], out[i, j], (r0, r1), (c0, c1))

        if len(jobs) > 1 and plan.remote and out.size:
            for _ in _pool().map(fill, jobs):
                pass
        elif out.size and _hop():
            _pool(local=_all_local(plan)).submit(_fill_all, fill, jobs).result()
        else:
            _fill_all(fill, jobs)
        result = out[:, :, ::r_step, ::c_step] if r_step != 1 or c_step != 1 else out
        drop = tuple(0 if flag else slice(None) for flag in (t_drop, b_drop, picks[2][1], picks[3][1]))
        return result[drop] if any(isinstance(d, int) for d in drop) else result


def _axis(key: Any, size: int, listed: bool = False) -> tuple[Any, bool]:
    """Normalise one index to ``(indices as a range or list, whether the axis is dropped)``.

    ``listed``: a list of ints is taken too (the time and band axes, read slot by slot).

    Examples
    --------
    >>> _axis(slice(2, None), 5), _axis(-1, 5), _axis([3, -5], 5, listed=True)
    ((range(2, 5), False), (range(4, 5), True), ([3, 0], False))
    """
    if isinstance(key, slice):
        start, stop, step = key.indices(size)
        if step < 1:
            raise IndexError(f"a native cube is read with forward slices, got {key!r}")
        return range(start, max(start, stop), step), False
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return range(_position(key, size), _position(key, size) + 1), True
    if listed and isinstance(key, list) and all(isinstance(k, (int, np.integer)) for k in key):
        return [_position(k, size) for k in key], False
    raise IndexError(f"a native cube is read with ints and slices (and lists of times or bands), got {key!r}")


def _position(key: Any, size: int) -> int:
    index = int(key) + size if int(key) < 0 else int(key)
    if not 0 <= index < size or isinstance(key, (bool, np.bool_)):
        raise IndexError(f"index {int(key)} is out of bounds for an axis of {size}")
    return index


def native_array(plan: NativePlan, chunks: tuple[int, int, int], token: str) -> Any:
    """Return the ``(time, band, y, x)`` dask array of ``plan``, chunked ``(time, y, x)`` by ``chunks``.

    One chunk holds every band (a chip stage's block is then one task's
    array, used as it is: no copy into a block of all bands), except on a
    cube of local files with fewer than :data:`SHARED_BAND_BLOCKS` blocks
    of ``(time, y, x)``, where each band is a chunk of its own, so that
    computing a small cube still decodes its bands in parallel. Files over
    HTTP(S) always share a chunk (their bands are read at once: see
    :class:`NativeArray`). ``token`` names the graph (the same cube, the same name).

    Examples
    --------
    >>> _band_chunks(4, blocks=1, remote=False), _band_chunks(4, blocks=4, remote=False)
    ((1, 1, 1, 1), (4,))
    """
    da = require("dask.array", extra="dask", feature="stack_stac")
    array = NativeArray(plan)
    n_time, n_band, height, width = array.shape
    step_t, step_y, step_x = chunks
    times, rows, cols = _edges(n_time, step_t), _edges(height, step_y), _edges(width, step_x)
    sizes = (
        tuple(e[1] - e[0] for e in times),
        _band_chunks(n_band, len(times) * len(rows) * len(cols), plan.remote),
        tuple(e[1] - e[0] for e in rows),
        tuple(e[1] - e[0] for e in cols),
    )
    meta = np.empty((0, 0, 0, 0), dtype=array.dtype)
    return da.from_array(
        array,
        chunks=sizes,
        name=f"stack_stac-{token}",
        lock=False,
        asarray=False,
        meta=meta,
        inline_array=False,
    )


#: A cube of local files with at least this many ``(time, y, x)`` blocks reads all bands of a block in
#: one chunk. Measured (``chip`` over a 4 x 4096² cube of local 512²-tiled COGs, 16 blocks, perf samples
#: per pass): 12% less CPU than one chunk per band, whose chunks a chip stage copies into a block of all
#: bands. Below it, one chunk per band keeps the bands of a small cube decoding in parallel.
SHARED_BAND_BLOCKS = 4


def _band_chunks(n_band: int, blocks: int, remote: bool) -> tuple[int, ...]:
    """Return the chunks of the band axis: every band in one chunk, or one chunk per band (see :func:`native_array`)."""
    if remote or blocks >= SHARED_BAND_BLOCKS or n_band <= 1:
        return (n_band,)
    return (1,) * n_band


def _edges(size: int, step: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of blocks of ``step`` over ``size`` (``step <= 0``: one block)."""
    if step <= 0 or step >= size:
        return [(0, size)]
    return [(start, min(size, start + step)) for start in range(0, size, step)]
