"""GDAL's own messages: redacted before they are logged, and kept to explain a failed read.

rasterio passes every GDAL warning and error to Python's logging (loggers
``rasterio._err`` and ``rasterio._env``); urllib3 (under ``requests``, the
STAC client) logs every URL it requests at debug level. Two things follow:

- GDAL names the URL it failed on, query string included (``HTTP error
  code: 503 - https://host/a.tif?X-Amz-Signature=...``), so a signed URL's
  signature would end up in the logs of a training run. A filter on those
  loggers (:data:`REDACTED_LOGGERS`) redacts every URL in a record
  (:func:`~terrapipe.core.redact.redact_urls`). It is added the first time
  terrapipe reads through GDAL or opens a urllib3 pool
  (:func:`ensure_log_redaction`), never on import.
- GDAL's netCDF driver hands a file at ``/vsicurl/`` to libnetcdf under the
  last part of its name, and libnetcdf asks HDF5 whether a local file of that
  name exists; where HDF5 prints its errors (in every thread but those GDAL's
  HDF5 driver silenced), it wrote ``unable to open file: name =
  'a.nc?...&sig=<signature>'`` to stderr for each such open of a URL with a
  query string. :func:`quiet_hdf5` switches that printing off in the opening
  thread for the open only (GDAL's bundled HDF5; not h5py's), as GDAL's HDF5
  driver does for its own calls.
- When a block read fails, rasterio's exception only says ``Read failed``;
  the reason (``response_code=503``) was a log record just before.
  :func:`collecting_messages` keeps the records of the calling thread while a
  read runs, so the reader can say what really happened.

Examples
--------
>>> import logging
>>> with collecting_messages() as messages:
...     logging.getLogger("rasterio._err").warning("HTTP error code: 503 - https://h/a.tif?sig=abc")
>>> messages
['HTTP error code: 503 - https://h/a.tif?...***']
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from terrapipe.core.redact import redact_urls
from terrapipe.io.gdal_fork import loaded_gdal_libraries

__all__ = [
    "GDAL_LOGGERS",
    "REDACTED_LOGGERS",
    "collecting_messages",
    "ensure_log_redaction",
    "install_log_redaction",
    "log_redaction_installed",
    "quiet_hdf5",
]

#: The loggers rasterio sends GDAL's messages to.
GDAL_LOGGERS = ("rasterio._err", "rasterio._env")
#: Every logger whose records are redacted: rasterio's (GDAL's messages, dataset names at
#: debug level) and urllib3's request lines.
REDACTED_LOGGERS = (
    "rasterio",
    *GDAL_LOGGERS,
    "rasterio._base",
    "rasterio._io",
    "rasterio._filepath",
    "rasterio._vsiopener",
    "rasterio.env",
    "rasterio.io",
    "rasterio.session",
    "urllib3.connectionpool",
    "odc.loader._rio",  # odc-stac logs each failed read with its URL ("Failed to load https://...?sig=...")
)
#: Most messages kept per read (the last ones matter).
MAX_MESSAGES = 50


class _Local(threading.local):
    def __init__(self) -> None:
        self.messages: list[str] | None = None


_LOCAL = _Local()


class _RedactAndKeep(logging.Filter):
    """Redact URLs in a record; keep its text for :func:`gdal_messages` of this thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact_urls(text)
        if clean != text:
            record.msg, record.args = clean, None
        kept = _LOCAL.messages
        if kept is not None:
            kept.append(clean)
            del kept[:-MAX_MESSAGES]
        return True


_FILTER = _RedactAndKeep()
_LOCK = threading.Lock()
_INSTALLED = False


def install_log_redaction() -> None:
    """Add the filter to every logger of :data:`REDACTED_LOGGERS` that lacks it (thread-safe).

    Also after a ``logging.config.dictConfig`` that replaced the loggers' filters.
    """
    global _INSTALLED
    with _LOCK:
        for name in REDACTED_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
        _INSTALLED = True


def ensure_log_redaction() -> None:
    """:func:`install_log_redaction` once per process (the first read or urllib3 pool); cheap afterwards."""
    if not _INSTALLED:
        install_log_redaction()


def log_redaction_installed() -> bool:
    """Whether the filter was added in this process (or the parent it was forked from)."""
    return _INSTALLED


@contextmanager
def collecting_messages() -> Iterator[list[str]]:
    """Collect the (redacted) GDAL messages the calling thread logs inside the block.

    Debug messages are collected too when the logger lets them through; a
    logger set above a message's level drops it before it reaches the filter.
    The filter must be installed (:func:`ensure_log_redaction`); readers use
    :func:`terrapipe.io.gdal_setup.gdal_messages`, which also sets GDAL up.
    """
    ensure_log_redaction()
    previous = _LOCAL.messages
    collected: list[str] = []
    _LOCAL.messages = collected
    try:
        yield collected
    finally:
        _LOCAL.messages = previous


#: ``H5Eget_auto2``/``H5Eset_auto2`` of each HDF5 library loaded beside a GDAL library, by its path.
_HDF5_FUNCTIONS: dict[str, tuple[Any, Any] | None] = {}
_H5E_DEFAULT = 0  # the calling thread's default error stack (hid_t)


def _hdf5_error_functions() -> list[tuple[Any, Any]]:
    """Return the error-printing switches of the HDF5 libraries GDAL bundles (none found: ``[]``; Linux only)."""
    folders = {os.path.dirname(path) for path in loaded_gdal_libraries()}
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "libhdf5" in line}
    except OSError:
        return []
    found = []
    for path in sorted(paths):
        name = os.path.basename(path)
        if (
            os.path.dirname(path) not in folders
            or not name.startswith("libhdf5")
            or name.startswith("libhdf5_")
        ):
            continue
        with _LOCK:
            if path not in _HDF5_FUNCTIONS:
                _HDF5_FUNCTIONS[path] = _lookup_hdf5(path)
            functions = _HDF5_FUNCTIONS[path]
        if functions is not None:
            found.append(functions)
    return found


def _lookup_hdf5(path: str) -> tuple[Any, Any] | None:
    try:
        library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        get, put = library.H5Eget_auto2, library.H5Eset_auto2
    except (OSError, AttributeError):
        return None
    pointer = ctypes.POINTER(ctypes.c_void_p)
    get.argtypes, get.restype = [ctypes.c_int64, pointer, pointer], ctypes.c_int
    put.argtypes, put.restype = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p], ctypes.c_int
    return get, put


@contextmanager
def quiet_hdf5() -> Iterator[None]:
    """Switch off the error printing of GDAL's HDF5 in the calling thread inside the block (then restore it).

    HDF5 prints its error stack to stderr by itself, bypassing GDAL's
    messages (and so terrapipe's redaction); see the module doc. Only HDF5
    libraries loaded from the folder of a GDAL library are touched (h5py's
    own HDF5 is another library). Where none is found, nothing changes.
    """
    restore = []
    for get, put in _hdf5_error_functions():
        function, data = ctypes.c_void_p(), ctypes.c_void_p()
        if (
            get(_H5E_DEFAULT, ctypes.byref(function), ctypes.byref(data)) >= 0
            and put(_H5E_DEFAULT, None, None) >= 0
        ):
            restore.append((put, function, data))
    try:
        yield
    finally:
        for put, function, data in restore:
            put(_H5E_DEFAULT, function, data)
