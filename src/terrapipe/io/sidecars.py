"""Side-car files next to a remote raster: asked for only where the file leaves room for one.

GDAL reads ``<file>.aux.xml`` (nodata, scale/offset), ``<file>.msk`` (a mask)
and ``<file>.ovr`` (overviews) next to a local raster. A remote raster is
opened with ``empty_dir`` (:mod:`terrapipe.io.gdal_env`): GDAL would otherwise
ask for every side-car name it knows at every open (a COG window: 2 requests,
11 with GDAL's probes; measured with GDAL 3.10). ``Storage(sidecars=...)``
chooses:

- ``None`` (the default): :func:`found_sidecars` asks for the side-cars whose
  content the opened file lacks (:func:`room_for`): ``.aux.xml`` where a band
  has no nodata value or no scale/offset; ``.msk`` where the file has no
  internal mask (an external one wins over nodata, as GDAL reads it
  locally); ``.ovr`` where the file has no overviews. A COG with nodata and
  overviews costs two ``HEAD`` requests; a plain GeoTIFF three. Where one is found,
  the file is opened again as with ``sidecars=True``, so what a local read
  gives is what the remote read gives.
- ``True``: GDAL asks for each side-car itself at every open.
- ``False``: none is asked for (a side-car's nodata, mask or overviews are not read).

A URL with a query string (a presigned or SAS URL) signs the file, not its
side-cars: none is asked for there, nor next to a GeoPackage, MBTiles or
SQLite file (which keeps its metadata inside; over HTTP it is opened as
``/vsicurl/<URL>`` with ``empty_dir``: :func:`terrapipe.io.paths.plain_form_url`).
The check runs through GDAL itself
(``VSIStatExL`` of rasterio's GDAL, inside the file's environment: the same
endpoint and credentials as the read, and GDAL remembers the answer).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from terrapipe.io.gdal_cache import thread_local_options
from terrapipe.io.gdal_env import SQLITE_EXTENSIONS
from terrapipe.io.gdal_fork import loaded_gdal_libraries
from terrapipe.io.paths import gdal_path, is_http
from terrapipe.io.storage import CLOUD_OF_SCHEME, Storage

__all__ = ["PROBE_BUDGET", "SIDECAR_SUFFIXES", "found_sidecars", "reads_sidecars", "room_for"]

#: The side-cars asked for, and what each adds to a file.
SIDECAR_SUFFIXES = (".aux.xml", ".msk", ".ovr")
#: Seconds all side-car probes of one open may take together (less with a shorter Storage time-out or deadline).
PROBE_BUDGET = 6.0
#: GDAL's ``VSI_STAT_EXISTS_FLAG``: whether the file exists, nothing else asked.
_STAT_EXISTS = 0x1


def room_for(dataset: Any) -> tuple[str, ...]:
    """Return the side-car suffixes whose content ``dataset`` (an open rasterio dataset) lacks.

    Examples
    --------
    >>> from rasterio.io import MemoryFile
    >>> from rasterio.transform import from_origin
    >>> profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint8", "crs": "EPSG:32631"}
    >>> with MemoryFile() as memory, memory.open(transform=from_origin(0, 40, 10, 10), **profile) as dst:
    ...     room_for(dst)
    ('.aux.xml', '.msk', '.ovr')
    >>> with MemoryFile() as memory, memory.open(transform=from_origin(0, 40, 10, 10), nodata=0, **profile) as dst:
    ...     dst.scales, dst.offsets = (2.0,), (1.0,)
    ...     room_for(dst)  # nodata, scale and offset: nothing for an .aux.xml to add; a .msk may
    ('.msk', '.ovr')
    """
    from rasterio.enums import MaskFlags

    room = []
    bands = zip(dataset.nodatavals, dataset.scales, dataset.offsets, strict=True)
    if any(nodata is None or (scale == 1 and offset == 0) for nodata, scale, offset in bands):
        room.append(".aux.xml")  # a band without nodata, or without scale/offset: PAM may add it
    if not any(MaskFlags.per_dataset in flags for flags in dataset.mask_flag_enums):
        room.append(".msk")  # no internal mask: an external one wins over nodata, as locally
    if dataset.count and not dataset.overviews(1):
        room.append(".ovr")
    return tuple(room)


def _rasterio_stat() -> Any:
    """Return ``VSIStatExL`` of rasterio's GDAL (the one a ``rasterio.Env`` configures), or ``None``."""
    libraries = loaded_gdal_libraries()
    mine = [path for path in libraries if "rasterio" in path] or (libraries if len(libraries) == 1 else [])
    if not mine:
        return None
    try:
        stat = ctypes.CDLL(mine[0], mode=os.RTLD_NOLOAD | os.RTLD_LAZY).VSIStatExL
    except (OSError, AttributeError):
        return None
    stat.argtypes, stat.restype = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int], ctypes.c_int
    return stat


def _names(path: str, name: str, suffixes: Sequence[str]) -> dict[str, str]:
    """Return the GDAL names of the side-cars of ``path`` (GDAL name ``name``), each asked for by itself."""
    if is_http(path):  # list_dir=no: with empty_dir GDAL would answer 'no' from the (empty) listing
        return {suffix: gdal_path(path + suffix, sidecars=True) for suffix in suffixes}
    return {suffix: name + suffix for suffix in suffixes}


def found_sidecars(
    path: str,
    name: str,
    dataset: Any,
    env: Callable[[], contextlib.AbstractContextManager[Any]],
    storage: Storage | None = None,
) -> list[str]:
    """Return the side-car suffixes next to the remote raster ``path`` that its open ``dataset`` has room for.

    Parameters
    ----------
    path
        The URL as the user gave it (``http(s)://`` without a query string, or a bucket URL).
    name
        Its GDAL name (``/vsis3/...`` for a bucket).
    dataset
        The file, opened without side-cars.
    env
        Makes the file's GDAL environment (``RasterSource.env``): endpoint and credentials.
    storage
        Its time-out and deadline bound the probes: all of them together take
        at most ``min(timeout, deadline, PROBE_BUDGET)`` seconds, each without
        retries (a server that never answers side-car names costs that, once).

    Returns
    -------
    list
        The suffixes found (empty: none, or nothing to ask for).
    """
    parts = urllib.parse.urlsplit(path)
    if (is_http(path) and (parts.query or parts.fragment)) or parts.path.lower().endswith(SQLITE_EXTENSIONS):
        return []  # a signature signs the file only; a GeoPackage keeps its metadata inside
    suffixes = room_for(dataset)
    stat = _rasterio_stat() if suffixes else None
    if stat is None:
        return []
    found = []
    buffer = ctypes.create_string_buffer(1024)  # VSIStatBufL (struct stat64: 144 bytes on Linux x86-64)
    config = storage if storage is not None else Storage()
    budget = min(config.timeout, config.deadline or config.timeout, PROBE_BUDGET)  # all probes together
    each = {"GDAL_HTTP_TIMEOUT": str(max(1, int(budget / len(suffixes)))), "GDAL_HTTP_MAX_RETRY": "0"}
    end = time.monotonic() + budget
    with env(), thread_local_options(each):
        for suffix, sidecar in _names(path, name, suffixes).items():
            if time.monotonic() >= end:  # a server that does not answer side-car names: the rest not asked
                break
            if stat(sidecar.encode(), buffer, _STAT_EXISTS) == 0:
                found.append(suffix)
    return found


def reads_sidecars(
    path: str,
    storage: Storage | None,
    name: str,
    dataset: Any,
    env: Callable[[], contextlib.AbstractContextManager[Any]],
) -> bool:
    """Whether the remote raster ``path``, opened without side-cars, is to be opened again with them.

    Only for ``Storage(sidecars=None)`` (the default, or no storage) at an
    ``http(s)://`` URL, or at a bucket URL with a storage (without one, GDAL's
    own configuration applies: it lists the folder); ``True`` where
    :func:`found_sidecars` finds one.

    Examples
    --------
    >>> reads_sidecars("/data/a.tif", None, "/data/a.tif", None, contextlib.nullcontext)
    False
    >>> reads_sidecars("https://h/a.tif", Storage(sidecars=False), "", None, contextlib.nullcontext)
    False
    """
    if storage is not None and storage.sidecars is not None:
        return False
    scheme = path.split("://", 1)[0].lower() if "://" in path else ""
    if not is_http(path) and not (
        storage is not None and CLOUD_OF_SCHEME.get(scheme) in ("s3", "azure", "gcs")
    ):
        return False
    return bool(found_sidecars(path, name, dataset, env, storage))
