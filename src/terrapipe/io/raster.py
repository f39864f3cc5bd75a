"""``read_raster``: COG/GeoTIFF (any GDAL raster) to a lazy ``(band, y, x)`` DataArray.

:func:`open_raster` opens one file or URL; the :class:`ReadRaster` stage
(functional name ``read_raster``, zen3geo's ``read_from_rioxarray``) does it
for each path of a pipe.

The array is lazy: ``da.isel(y=slice(0, 256), x=slice(0, 256)).values`` reads
that window only (for a COG over HTTP: the header once, then the tiles that
hold the window). It carries what later stages need:

- CRS and transform the rioxarray way (``da.rio.crs``, ``da.rio.transform()``,
  a ``spatial_ref`` coordinate);
- nodata in ``attrs["_FillValue"]`` (``encoding["_FillValue"]`` when
  ``masked=True``), also ``da.rio.nodata`` / ``da.rio.encoded_nodata``;
- the storage block layout in ``encoding["preferred_chunks"]``
  (``{"band": ..., "y": block height, "x": block width}``), the path in
  ``encoding["source"]``, the overview factors in ``encoding["overviews"]``.

Pixels are read through :class:`~terrapipe.io.raster_array.RasterArray`: per
thread handles, no global lock, reopened after fork, picklable.

A changed file: a local one is reopened when its mtime, size or inode
changes. A remote one is not asked again at each open: in one process, a
re-run of ``open_raster(url)`` after the server's file changed reads the old
file (this thread's open dataset and GDAL's ``/vsicurl/`` cache of its size
and blocks answer) until :func:`~terrapipe.io.raster_array.forget_remote` is
called for the URL, which the cache does when its change check (ETag,
Last-Modified, size) reports a change.

Examples
--------
>>> import numpy as np, rasterio
>>> from rasterio.transform import from_origin
>>> profile = dict(driver="GTiff", width=64, height=32, count=2, dtype="uint16", crs="EPSG:32631",
...                transform=from_origin(500000, 5000000, 10, 10), nodata=0, tiled=True,
...                blockxsize=16, blockysize=16)
>>> with rasterio.open("scene.tif", "w", **profile) as dst:
...     dst.write(np.arange(2 * 32 * 64, dtype="uint16").reshape(2, 32, 64))
>>> da = open_raster("scene.tif")
>>> da.dims, da.shape, da.dtype.name
(('band', 'y', 'x'), (2, 32, 64), 'uint16')
>>> da.rio.crs.to_epsg(), int(da.rio.nodata), da.encoding["preferred_chunks"]
(32631, 0, {'band': 2, 'y': 16, 'x': 16})
>>> int(da.isel(band=1, y=0, x=5))
2053
>>> import terrapipe as tp
>>> [a.shape for a in tp.from_items(["scene.tif", "scene.tif"]).read_raster(bands=[2])]
[(1, 32, 64), (1, 32, 64)]
"""

from __future__ import annotations

import concurrent.futures
import os
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeAlias

import numpy as np
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from rasterio.enums import Interleaving
from rasterio.windows import Window

from terrapipe._compat import xarray_indexing
from terrapipe.core.checks import check_bool, check_scalar_options, check_storage
from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.core.on_error import OnError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe, register
from terrapipe.core.redact import public_url
from terrapipe.core.warning_filters import ignore_once
from terrapipe.io.gdal_opener import current, current_soon, held_version, uses_opener
from terrapipe.io.paths import PathOrURL, gdal_path, href_of, is_remote, local_file_of, quote_url
from terrapipe.io.raster_array import RasterArray, RasterSource, acquire, attempt, file_stamp
from terrapipe.io.read_errors import read_error
from terrapipe.io.reader_stage import ReaderStage
from terrapipe.io.sidecars import reads_sidecars, start_probes
from terrapipe.io.storage import Storage

__all__ = ["BandsLike", "ChunksLike", "ReadRaster", "check_grid_finite", "open_raster"]

#: Bands to read: 1-based indexes or band descriptions (``"red"``), one or several.
BandsLike: TypeAlias = int | str | Sequence[int | str] | None
#: Dask chunks: ``None`` (no dask, lazily indexed), ``True`` (the storage
#: blocks), ``"auto"``, an int, a tuple or a ``{dim: size}`` dict.
ChunksLike: TypeAlias = bool | str | int | tuple[int, ...] | Mapping[str, int] | None
LockLike: TypeAlias = bool | AbstractContextManager[Any] | None


def _check_bands(bands: BandsLike) -> tuple[int | str, ...] | None:
    if bands is None:
        return None
    if isinstance(bands, (int, str, np.integer)):
        items: list[Any] = [bands]
    elif isinstance(bands, (list, tuple, range, np.ndarray)) and np.ndim(bands) == 1:
        items = list(bands)
    else:
        raise InvalidArgumentError(
            f"bands must be a 1-based int, a band name, or a list of them (None: every band), got {bands!r}"
        )
    if not items:
        raise InvalidArgumentError("bands must not be empty; pass None to read every band")
    for band in items:
        if isinstance(band, bool) or not isinstance(band, (int, str, np.integer)):
            raise InvalidArgumentError(f"bands must be 1-based ints or band names, got {band!r}")
        if not isinstance(band, str) and band < 1:
            raise InvalidArgumentError(f"band indexes are 1-based (like rasterio), got {band!r}")
    return tuple(b if isinstance(b, str) else int(b) for b in items)


#: ``rasterio.open`` keywords terrapipe sets itself: not open options.
_RESERVED_OPEN_OPTIONS = ("fp", "mode", "sharing", "overview_level")


def _check_open_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    if options is None:
        return {}
    return check_scalar_options(options, "open_options", reserved=_RESERVED_OPEN_OPTIONS)


def _check_chunks(chunks: ChunksLike) -> ChunksLike:
    """Refuse chunks of a type dask never takes, before any file is opened (sizes are dask's to judge)."""

    def size(value: Any) -> bool:  # a chunk size: an int > 0, or -1 for the whole dimension
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            return False
        return bool(value > 0 or value == -1)

    if chunks is None or isinstance(chunks, bool) or (isinstance(chunks, str) and chunks == "auto"):
        return chunks
    if size(chunks):
        return int(chunks)  # type: ignore[arg-type]
    if isinstance(chunks, tuple) and chunks and all(size(c) for c in chunks):
        return chunks
    if isinstance(chunks, Mapping) and all(
        isinstance(k, str) and (v is None or (isinstance(v, str) and v == "auto") or size(v))
        for k, v in chunks.items()
    ):
        return chunks
    raise InvalidArgumentError(
        f"chunks must be None, True, 'auto', an int > 0, a tuple of them or a {{dim: size}} dict, got {chunks!r}"
    )


def storage_config(storage: Storage | None) -> dict[str, Any] | None:
    """Describe ``storage`` for a cache key: what says where data is, never a credential or a setting.

    The endpoints (``scheme://host/path``), region, Azure account and whether
    requests are anonymous. Credentials, time-outs and retries do not change
    what is read, so they are left out (a new key or token keeps the cache).
    """
    if storage is None:
        return None
    return {
        "endpoints": {
            c: public_url(e) if (e := storage.endpoint_for(c)) else None for c in ("s3", "azure", "gcs")
        },
        "region": storage.region,
        "account_name": storage.account_name,
        "anonymous": storage.anonymous,
        **({"sidecars": False} if storage.sidecars is False else {}),  # side-cars left unread: other values
    }


def _check_lock(lock: LockLike) -> LockLike:
    if lock is None or isinstance(lock, bool) or (hasattr(lock, "__enter__") and hasattr(lock, "__exit__")):
        return lock
    raise InvalidArgumentError(f"lock must be None, True, False or a lock (threading.Lock()), got {lock!r}")


def _check_overview_level(level: int | None) -> int | None:
    if level is None:
        return None
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 0:
        raise InvalidArgumentError(f"overview_level must be None or an int >= 0, got {level!r}")
    return int(level)


def _resolve_bands(dataset: Any, wanted: tuple[int | str, ...] | None, path: str) -> list[int]:
    count = int(dataset.count)
    if wanted is None:
        return list(range(1, count + 1))
    names = list(dataset.descriptions)
    indexes = []
    for band in wanted:
        if isinstance(band, str):
            if band not in names:
                known = [n for n in names if n]
                raise read_error(
                    path,
                    "cannot select bands of",
                    cause=f"no band is named {band!r} (band names: {known or 'none'})",
                    hint="pick a name listed, or 1-based band indexes",
                )
            shared = [i + 1 for i, name in enumerate(names) if name == band]
            if len(shared) > 1:  # e.g. two dates stacked: which one is meant cannot be told
                raise read_error(
                    path,
                    "cannot select bands of",
                    cause=f"bands {shared} are all named {band!r}",
                    hint=f"pick one of them by its 1-based index ({', '.join(map(str, shared))})",
                )
            indexes.append(shared[0])
        elif band > count:
            raise read_error(
                path,
                "cannot select bands of",
                cause=f"band {band} does not exist: the file has {count} band(s)",
                hint=f"use 1-based indexes from 1 to {count}",
            )
        else:
            indexes.append(band)
    return indexes


#: rasterio warns when it opens a file without geotransform; :func:`_check_georeferenced`
#: turns that case into a ``ReadError`` that says what to do, so the warning only repeats it.
#: A narrow filter installed once (``catch_warnings`` around the open is not thread-safe).
_NO_GEOTRANSFORM = r"Dataset has no geotransform, gcps, or rpcs"


def _open_checked(source: RasterSource) -> Any:
    def open_() -> Any:
        ignore_once(_NO_GEOTRANSFORM, rasterio.errors.NotGeoreferencedWarning, module=r"rasterio(\..*)?\Z")
        return acquire(source)

    return attempt(source, open_, lambda reason: read_error(source.path, "cannot open raster", reason))


def _check_georeferenced(dataset: Any, path: str) -> Affine:
    transform: Affine = dataset.transform
    check_grid_finite(transform, int(dataset.width), int(dataset.height), path)
    if dataset.crs is None or transform == Affine.identity():
        gcps, _ = dataset.gcps
        if gcps:
            cause = "it is georeferenced by ground control points only"
            hint = "warp it to a grid first (gdalwarp), then read the warped file"
        elif getattr(dataset, "rpcs", None):
            cause = "it is georeferenced by rational polynomial coefficients (RPCs) only"
            hint = "orthorectify it to a grid first (gdalwarp -rpc), then read the warped file"
        else:
            cause = "it has no georeferencing (no CRS or no geotransform)"
            hint = (
                "add them (e.g. gdal_edit.py -a_srs EPSG:XXXX -a_ullr ...) or read it with rasterio directly"
            )
        raise read_error(path, "cannot use raster", cause=cause, hint=hint)
    if transform.b != 0 or transform.d != 0:
        raise read_error(
            path,
            "cannot use raster",
            cause="its grid is rotated or sheared",
            hint="warp it to a north-up grid first (gdalwarp)",
        )
    return transform


def check_grid_finite(transform: Affine, width: int, height: int, path: str) -> None:
    """Refuse a geotransform that would give NaN, infinite or repeated pixel coordinates.

    A GeoTIFF may record NaN or infinity in its tie point or pixel size
    (GDAL reads them back as they are), a pixel size of zero, or numbers so
    large that the far edge of the grid overflows. Each would put NaN,
    infinite or identical coordinates on every chip cut from the raster.

    Raises
    ------
    ReadError
        Naming the file and the bad numbers.

    Examples
    --------
    >>> check_grid_finite(Affine(10, 0, 500000, 0, -10, 0), 4, 4, "a.tif")
    >>> check_grid_finite(Affine(10, 0, float("nan"), 0, -10, 0), 4, 4, "a.tif")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.ReadError: cannot use raster 'a.tif': its geotransform is not finite ...
    """
    numbers = tuple(float(v) for v in transform[:6])
    a, b, c, d, e, f = numbers
    far = (
        a * width + b * height + c,
        d * width + e * height + f,
    )  # affine 3 deprecates ``transform * (w, h)``
    hint = "fix its georeferencing (gdal_edit.py -a_ullr / -a_ulurll) or re-create the file"
    if not all(np.isfinite(numbers)):
        cause = f"its geotransform is not finite {numbers} (NaN or infinity in its tie point or pixel size)"
        raise read_error(path, "cannot use raster", cause=cause, hint=hint)
    if transform.determinant == 0:
        cause = f"its pixel size is zero {numbers}: its pixels would share coordinates"
        raise read_error(path, "cannot use raster", cause=cause, hint=hint)
    if not all(np.isfinite(far)):
        cause = f"its grid's far corner {tuple(far)} overflows (geotransform {numbers})"
        raise read_error(path, "cannot use raster", cause=cause, hint=hint)


def _verify_last_block(source: RasterSource) -> Any:
    """Read the file's last block: a truncated file fails here rather than mid-epoch.

    Returns the dataset (opened again if a remote read had to be retried).
    """

    def read_last_block() -> Any:
        dataset = acquire(source)
        block_h, block_w = dataset.block_shapes[dataset.count - 1]
        row = ((dataset.height - 1) // block_h) * block_h
        col = ((dataset.width - 1) // block_w) * block_w
        window = Window(col, row, min(block_w, dataset.width - col), min(block_h, dataset.height - row))  # type: ignore[no-untyped-call]
        dataset.read(dataset.count, window=window)
        return dataset

    def fail(reason: BaseException) -> ReadError:
        if not reason.__class__.__module__.startswith("rasterio"):  # a network failure GDAL logged
            return read_error(source.path, "cannot read the last block of raster", reason)
        cause = "its last block cannot be read: truncated or corrupt file"
        if is_remote(source.path):  # GDAL cannot tell a cut-short answer from a truncated file
            cause += " (or the server's answers are cut short)"
        return read_error(
            source.path, "cannot read raster", reason, cause=cause, hint="re-create or re-download the file"
        )

    return attempt(source, read_last_block, fail)


def _resolve_chunks(chunks: ChunksLike, preferred: dict[str, int], shape: tuple[int, ...], dtype: Any) -> Any:
    if chunks is True:
        return dict(preferred)
    if chunks == "auto":
        dask_array = require("dask.array", extra="dask", feature="read_raster(chunks='auto')")
        sizes = dask_array.core.normalize_chunks(
            "auto", shape, dtype=dtype, previous_chunks=tuple(preferred[d] for d in ("band", "y", "x"))
        )
        return {dim: size[0] for dim, size in zip(("band", "y", "x"), sizes, strict=True)}
    return chunks


def open_raster(
    path: PathOrURL,
    *,
    bands: BandsLike = None,
    overview_level: int | None = None,
    chunks: ChunksLike = None,
    masked: bool = False,
    lock: LockLike = None,
    cache: bool = False,
    verify: bool = True,
    open_options: Mapping[str, Any] | None = None,
    storage: Storage | None = None,
) -> xr.DataArray:
    """Open one raster lazily as a ``(band, y, x)`` DataArray.

    Parameters
    ----------
    path
        Local path, ``http(s)://`` URL (read with GDAL's ``/vsicurl/`` and the
        settings of :mod:`terrapipe.io.gdal_env`), another URL rasterio knows
        (``s3://``, ``zip://``), a GDAL ``/vsi...`` path, or a STAC asset.
        ``s3://``, ``gs://``, ``az://`` and ``abfs://`` URLs are read with
        GDAL's ``/vsis3/``, ``/vsigs/`` and ``/vsiaz/``.
    bands
        1-based band indexes or band descriptions (``"red"``); ``None``: all.
    overview_level
        Read this overview instead of the full resolution (0 = the largest
        overview); the transform and block size are the overview's.
    chunks
        ``None`` (default): no dask; indexing reads the window asked for.
        ``True``: a dask array chunked by storage block; ``"auto"``: dask's
        sizes, aligned to blocks; an int, tuple or ``{dim: size}``: those.
        Anything but ``None`` needs dask (``pip install 'terrapipe[dask]'``).
    masked
        Return floats with NaN where the file's mask (nodata, mask band,
        alpha) says the pixel is invalid; nodata moves to ``encoding``.
    lock
        ``None`` (default): no lock, each thread reads with its own handle;
        ``True``: serialise every read in the process; or a lock object.
    cache
        Keep values in memory once loaded (xarray's ``cache``); off by default
        so that a DataArray held by a pipe does not grow.
    verify
        Read the file's last storage block at open, so that a truncated file
        fails here with a ``ReadError`` (one small read; ``False`` skips it).
    open_options
        Extra keywords for ``rasterio.open`` (GDAL open options).
    storage
        Where the file lives and how to reach it (:class:`terrapipe.Storage`:
        endpoint, credentials, time-outs, retries). Every open and read, in
        every thread, happens inside ``storage.rasterio_env(url)`` (GDAL
        options for that open only, never ``os.environ``). ``None``: GDAL's
        process-wide configuration (its environment variables).

    Returns
    -------
    xarray.DataArray
        Lazy, dims ``("band", "y", "x")``; coords ``band`` (1-based indexes),
        ``y``, ``x`` (pixel centres, under pandas indexes), ``spatial_ref``.

    Raises
    ------
    ReadError
        Missing file, HTTP error or time-out, corrupt or truncated file, a
        file without georeferencing, a band it does not have.
    InvalidArgumentError
        For arguments of the wrong type or range.

    Examples
    --------
    >>> import numpy as np, rasterio
    >>> from rasterio.transform import from_origin
    >>> with rasterio.open("dem.tif", "w", driver="GTiff", width=8, height=8, count=1, dtype="float32",
    ...                    crs="EPSG:4326", transform=from_origin(5, 45, 0.1, 0.1), nodata=-9999) as dst:
    ...     dst.write(np.full((1, 8, 8), -9999, dtype="float32"))
    >>> dem = open_raster("dem.tif", masked=True)
    >>> bool(dem.isnull().all()), dem.encoding["_FillValue"]
    (True, np.float32(-9999.0))
    >>> open_raster("missing.tif")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.ReadError: cannot open raster 'missing.tif': no such file or directory; ...
    """
    try:
        return _open_raster(
            path,
            bands=bands,
            overview_level=overview_level,
            chunks=chunks,
            masked=masked,
            lock=lock,
            cache=cache,
            verify=verify,
            open_options=open_options,
            storage=storage,
        )
    except (
        UnicodeError
    ) as err:  # GDAL hands rasterio bytes that are not text (CRS, GCPs, tags): a damaged file
        cause = f"its metadata (CRS, GCPs, tags, band descriptions) is not valid text ({err})"
        hint = "re-create or re-download the file"
        raise read_error(href_of(path), "cannot read raster", err, cause=cause, hint=hint) from err


#: How many subdataset names a "no bands" error lists.
_SUBDATASETS_SHOWN = 12


def _check_has_bands(dataset: Any, path: str) -> None:
    """Refuse a file without raster bands of its own, naming its subdatasets (netCDF/HDF5/Zarr variables).

    A netCDF file of several variables (ERA5's ``t2m`` and ``u10``), an HDF5
    file or a Zarr store of several arrays opens in GDAL with ``count == 0``
    and one subdataset per variable; the error lists GDAL's names for them,
    which :func:`open_raster` opens. Band 1 was asked of it anyway,
    and rasterio's bare ``IndexError`` reached the user.

    Examples
    --------
    >>> class Opened:
    ...     count = 0
    ...     def tags(self, ns):
    ...         return {f"SUBDATASET_{i}_NAME": f'NETCDF:"/data/era5.nc":{v}' for i, v in ((1, "t2m"), (2, "u10"))}
    >>> _check_has_bands(Opened(), "/data/era5.nc")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.ReadError: cannot read raster '/data/era5.nc': it has no raster bands of its own but 2 subdatasets (variables or arrays): NETCDF:"/data/era5.nc":t2m, NETCDF:"/data/era5.nc":u10; open one of them by that name (open_raster('NETCDF:"/data/era5.nc":t2m'), as rasterio does), or open the whole file with xarray (xr.open_dataset, open_zarr)
    """
    if int(dataset.count) > 0:
        return
    names = _subdataset_names(dataset)
    if not names:
        raise read_error(
            path,
            "cannot read raster",
            cause="it has no raster bands (GDAL opens it, but there are no pixels to read)",
            hint="check that it is a raster file; vector layers are read with read_vector",
        )
    shown = ", ".join(names[:_SUBDATASETS_SHOWN])
    if len(names) > _SUBDATASETS_SHOWN:
        shown += f" and {len(names) - _SUBDATASETS_SHOWN} more"
    raise read_error(
        path,
        "cannot read raster",
        cause=f"it has no raster bands of its own but {len(names)} subdatasets (variables or arrays): {shown}",
        hint=(
            f"open one of them by that name (open_raster({_example(names)!r}), as rasterio does), "
            "or open the whole file with xarray (xr.open_dataset, open_zarr)"
        ),
    )


#: Subdataset names that are coordinates, never what a user would open (GDAL's Zarr driver lists them).
_COORDINATE_NAMES = frozenset(
    {"x", "y", "lat", "lon", "latitude", "longitude", "time", "band", "spatial_ref", "crs"}
)


def _subdataset_names(dataset: Any) -> list[str]:
    """Return GDAL's own subdataset names, in its order (``NETCDF:"<file>":<var>``).

    rasterio's ``subdatasets`` rewrites some (``netcdf:<file>:<var>``);
    GDAL's are the names every GDAL tool, and :func:`open_raster`, opens.
    """
    tags = dataset.tags(ns="SUBDATASETS") or {}
    numbered = []
    for key, value in tags.items():
        found = re.fullmatch(r"SUBDATASET_(\d+)_NAME", key)
        if found:
            numbered.append((int(found.group(1)), str(value)))
    return [name for _, name in sorted(numbered)]


def _example(names: list[str]) -> str:
    """Return the first subdataset name that is not a coordinate's (the first name where all are).

    Examples
    --------
    >>> _example(['ZARR:"/d/s.zarr":/x', 'ZARR:"/d/s.zarr":/y', 'ZARR:"/d/s.zarr":/a'])
    'ZARR:"/d/s.zarr":/a'
    """
    for name in names:
        if re.split(r"[:/]", name)[-1].lower() not in _COORDINATE_NAMES:
            return name
    return names[0]


def _open_raster(
    path: PathOrURL,
    *,
    bands: BandsLike = None,
    overview_level: int | None = None,
    chunks: ChunksLike = None,
    masked: bool = False,
    lock: LockLike = None,
    cache: bool = False,
    verify: bool = True,
    open_options: Mapping[str, Any] | None = None,
    storage: Storage | None = None,
    fresh: bool = False,
) -> xr.DataArray:
    """:func:`open_raster`; ``fresh``: ask for a remote file's first block first (it was replaced since kept)."""
    again: dict[str, Any] = {
        "bands": bands,
        "overview_level": overview_level,
        "chunks": chunks,
        "masked": masked,
        "lock": lock,
        "cache": cache,
        "verify": verify,
        "open_options": open_options,
        "storage": storage,
    }
    path_text = href_of(path)
    storage = check_storage(storage)
    wanted = _check_bands(bands)
    level = _check_overview_level(overview_level)
    chunks = _check_chunks(chunks)
    lock = _check_lock(lock)
    masked = check_bool(masked, "masked")
    cache = check_bool(cache, "cache")
    verify = check_bool(verify, "verify")
    if chunks is False:
        chunks = None
    options = tuple(sorted(_check_open_options(open_options).items()))
    local = gdal_path(path_text, sidecars=storage is not None and storage.sidecars is True)
    stamp = None
    if not is_remote(path_text) and os.path.exists(local):
        stamp = file_stamp(local)  # a replacement keeping size and mtime: inode; every later open checks it
    elif not is_remote(path_text) and (named := local_file_of(local)) is not None:
        stamp = file_stamp(named)  # GTIFF_DIR:1:/d/a.tif, NETCDF:"/d/a.nc":v, /vsizip/: the file it reads
    version = None
    check: concurrent.futures.Future[Any] | None = None
    if uses_opener(path_text, local, storage):
        # the side-cars reads_sidecars looks for, asked while the file opens
        start_probes(path_text, local, storage)
        url = quote_url(path_text)
        version = held_version(url, storage)
        if version is not None and not fresh:
            # the process holds the file from an earlier open: open from what it kept, and meanwhile ask
            # whether the file at the URL is still that one (one request, in parallel: no round trip more)
            check = current_soon(url, storage)
        else:
            try:  # its first block: what the open reads first anyway
                version = current(url, storage).version
            except Exception:  # the open below fails, naming the file
                version = None
    try:
        da = _open_known(
            path_text,
            local,
            options,
            stamp,
            storage,
            version,
            level,
            wanted,
            masked,
            lock,
            cache,
            chunks,
            verify,
        )
    except Exception:
        if check is not None and _replaced(check, version, path_text):
            return _open_raster(path_text, **again, fresh=True)
        raise
    if check is not None and _replaced(check, version, path_text):  # replaced at the server since kept
        return _open_raster(path_text, **again, fresh=True)
    return da


def _replaced(check: concurrent.futures.Future[Any], version: Any, path: str) -> bool:
    """Whether the file at the URL is another than the one opened (``check``: :func:`current_soon`'s answer)."""
    try:
        now = check.result()
    except Exception as err:  # gone or unreachable since: the open from what the process kept is no answer
        raise read_error(path, "cannot open raster", err) from err
    return bool(now.version != version)


def _open_known(
    path_text: str,
    local: str,
    options: tuple[tuple[str, Any], ...],
    stamp: tuple[int, ...] | None,
    storage: Storage | None,
    version: tuple[int, str, str] | None,
    level: int | None,
    wanted: Any,
    masked: bool,
    lock: Any,
    cache: bool,
    chunks: Any,
    verify: bool,
) -> xr.DataArray:
    """Open the raster as :func:`_open_raster` does, once the file's version is known."""
    base = RasterSource(
        path=path_text, gdal_path=local, options=options, stamp=stamp, storage=storage, version=version
    )
    dataset = _open_checked(base)
    if reads_sidecars(path_text, storage, local, dataset, base.env):  # a side-car it lacks is there
        storage = storage.with_options(sidecars=True) if storage is not None else None
        local = gdal_path(path_text, sidecars=True)
        base = RasterSource(
            path=path_text, gdal_path=local, options=options, stamp=stamp, storage=storage, version=version
        )
        dataset = _open_checked(base)
    _check_has_bands(dataset, path_text)
    if level is not None:
        available = len(dataset.overviews(1))
        if level >= available:
            raise read_error(
                path_text,
                "cannot open overview of",
                cause=f"overview_level={level} asked, but the file has {available} overview(s)",
                hint=f"use 0 to {available - 1}"
                if available
                else "read the full resolution (overview_level=None)",
            )
        overviews = list(dataset.overviews(1))
        source = RasterSource(
            path=path_text,
            gdal_path=base.gdal_path,
            overview_level=level,
            options=options,
            stamp=stamp,
            storage=storage,
            version=version,
        )
        dataset = _open_checked(source)
    else:
        overviews = list(dataset.overviews(1))
        source = base
    transform = _check_georeferenced(dataset, path_text)
    indexes = _resolve_bands(dataset, wanted, path_text)
    if verify:
        dataset = _verify_last_block(source)

    file_dtype = np.result_type(*[np.dtype(dataset.dtypes[i - 1]) for i in indexes])
    dtype = np.result_type(file_dtype, np.float32) if masked else file_dtype
    height, width = int(dataset.height), int(dataset.width)
    shape = (len(indexes), height, width)
    block_h, block_w = dataset.block_shapes[indexes[0] - 1]
    pixel_interleaved = dataset.interleaving == Interleaving.pixel and dataset.count > 1
    preferred = {"band": len(indexes) if pixel_interleaved else 1, "y": int(block_h), "x": int(block_w)}

    backend = RasterArray(
        source, shape=shape, dtype=np.dtype(dtype), bands=tuple(indexes), masked=masked, lock=lock
    )
    indexing = xarray_indexing()
    lazy: Any = indexing.LazilyIndexedArray(backend)
    data: Any = indexing.CopyOnWriteArray(lazy)
    if cache and chunks is None:
        data = indexing.MemoryCachedArray(data)
    coords = {
        "band": np.asarray(indexes, dtype=np.int64),
        "y": transform.f + (np.arange(height) + 0.5) * transform.e,
        "x": transform.c + (np.arange(width) + 0.5) * transform.a,
    }
    da = xr.DataArray(data, dims=("band", "y", "x"), coords=coords, attrs=_attrs(dataset, indexes))
    da.rio.write_crs(dataset.crs, inplace=True)
    da.rio.write_transform(transform, inplace=True)
    nodata = dataset.nodata
    if nodata is not None:
        da.rio.write_nodata(nodata, encoded=masked, inplace=True)
    if chunks is not None:
        require("dask.array", extra="dask", feature="read_raster(chunks=...)")
        try:
            da = da.chunk(_resolve_chunks(chunks, preferred, shape, dtype))
        except (ValueError, TypeError, KeyError) as err:
            msg = f"chunks={chunks!r} cannot chunk {path_text!r} ({err}); pass True, 'auto', an int or {{dim: size}}"
            raise InvalidArgumentError(msg) from err
    da.encoding.update(
        {
            "source": path_text,
            "preferred_chunks": preferred,
            "dtype": str(file_dtype),
            "overviews": overviews,
            "overview_level": level,
        }
    )
    if masked and nodata is not None:
        da.encoding["_FillValue"] = np.asarray(nodata, dtype=file_dtype)[()]
    return da


def _attrs(dataset: Any, indexes: list[int]) -> dict[str, Any]:
    attrs: dict[str, Any] = {str(k): v for k, v in dataset.tags().items()}
    descriptions = [dataset.descriptions[i - 1] for i in indexes]
    if any(descriptions):
        attrs["long_name"] = (
            descriptions[0] if len(descriptions) == 1 else tuple(d or "" for d in descriptions)
        )
    units = [dataset.units[i - 1] for i in indexes]
    if any(units):
        attrs["units"] = units[0] if len(set(units)) == 1 else tuple(u or "" for u in units)
    # rioxarray's convention: one scale_factor / add_offset, or per-band scales / offsets when
    # the bands read differ (one value for all would silently mis-scale the others).
    scales = [float(dataset.scales[i - 1]) for i in indexes]
    offsets = [float(dataset.offsets[i - 1]) for i in indexes]
    if set(scales) != {1.0} or set(offsets) != {0.0}:
        if len(set(scales)) > 1:
            attrs["scales"] = tuple(scales)
        else:
            attrs["scale_factor"] = scales[0]
        if len(set(offsets)) > 1:
            attrs["offsets"] = tuple(offsets)
        else:
            attrs["add_offset"] = offsets[0]
    return attrs


@register("read_raster")
class ReadRaster(ReaderStage[xr.DataArray]):
    """Open each path or URL of ``source`` as a lazy DataArray (see :func:`open_raster`).

    Parameters
    ----------
    source
        A pipe of paths, URLs or STAC assets.
    bands, overview_level, chunks, masked, lock, cache, verify, open_options, storage
        As in :func:`open_raster`, the same for every file.
    on_error
        ``"raise"``, ``"skip"`` or ``"warn"``: what a ``ReadError`` does
        (skipped files are counted in ``stats.skipped``).

    Examples
    --------
    >>> import terrapipe as tp
    >>> pipe = tp.from_items(["missing-1.tif", "missing-2.tif"]).read_raster(on_error="skip")
    >>> list(pipe), pipe.stats.skipped
    ([], 2)
    """

    def __init__(
        self,
        source: IterDataPipe[Any],
        *,
        bands: BandsLike = None,
        overview_level: int | None = None,
        chunks: ChunksLike = None,
        masked: bool = False,
        lock: LockLike = None,
        cache: bool = False,
        verify: bool = True,
        open_options: Mapping[str, Any] | None = None,
        storage: Storage | None = None,
        on_error: OnError = "raise",
    ) -> None:
        super().__init__(source, on_error=on_error)
        self.bands = _check_bands(bands)
        self.overview_level = _check_overview_level(overview_level)
        self.chunks = _check_chunks(chunks)
        self.masked = check_bool(masked, "masked")
        self.lock = _check_lock(lock)
        self.cache = check_bool(cache, "cache")
        self.verify = check_bool(verify, "verify")
        self.open_options = _check_open_options(open_options)
        # Kept out of the cache description (it holds credentials): ``storage_location`` stands for it.
        self._storage_obj = check_storage(storage)
        if self._storage_obj is not None:  # no storage: the description is what it was before
            self.storage_location = storage_config(self._storage_obj)

    @property
    def storage(self) -> Storage | None:
        """The :class:`~terrapipe.io.storage.Storage` files are read through (``None``: GDAL's environment)."""
        return self._storage_obj

    def open_one(self, element: Any) -> xr.DataArray:
        """Open one raster with this stage's options."""
        return open_raster(
            element,
            bands=self.bands,
            overview_level=self.overview_level,
            chunks=self.chunks,
            masked=self.masked,
            lock=self.lock,
            cache=self.cache,
            verify=self.verify,
            open_options=self.open_options,
            storage=self.storage,
        )
