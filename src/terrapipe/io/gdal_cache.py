"""Forget what GDAL's ``/vsicurl/`` cached about one URL after it failed.

GDAL caches, per process, what it learnt about a remote file: its size, its
existence, the byte ranges it downloaded. It also caches a *failure*: once an
open has failed with an HTTP 500 (after GDAL's own retries), a dropped
connection or a truncated answer, every later open of the same URL in that
process fails at once, without a request, even after the server has
recovered. In a run of several days with ``on_error="skip"``, one short outage
would then drop those files from every later epoch.

:func:`forget_remote_file` removes that URL's entries with GDAL's
``VSICurlPartialClearCache`` (called through ``ctypes`` in each GDAL library
the process has loaded, as :mod:`terrapipe.io.gdal_fork` does for
``VSICurlClearCache``), so the next open or read asks the server again. The
readers call it whenever a remote open or read fails; the rest of the cache
(other files) is kept.

For a bucket path (``/vsis3/``, ``/vsigs/``, ``/vsiaz/``...) GDAL works out
the URL to forget as it would for a read (so inside the storage's
environment, whose endpoint is part of it), credentials included; where the
calling thread has none configured (pyogrio's GDAL never has; rasterio's has
them only inside a storage's environment) it went through its credential
chain and asked the cloud's instance-metadata server at 169.254.169.254 for
a role (a request off the machine on every failed read, and on EC2 the
instance's own credentials), and printed ``ERROR 1: URL rejected: Malformed
input to a URL function`` to stderr where that server answered oddly. The
clear is therefore made with the clouds' ``*_NO_SIGN_REQUEST=YES`` as
thread-local options of each library for the call only: the URL is the same
(no signature is part of it), no credential is looked for. (Before, the URL
could not be worked out and GDAL dropped its whole cache of the bucket
handler, every time a bucket file was first opened with a storage.)

Examples
--------
>>> forget_remote_file("/data/local.tif")  # local files have nothing to forget
0
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from terrapipe.io.gdal_fork import gdal_functions, loaded_gdal_libraries
from terrapipe.io.paths import bucket_url, gdal_path, is_remote, vsi_name

if TYPE_CHECKING:
    from terrapipe.io.storage import Storage

__all__ = ["forget_remote_file", "thread_local_options"]


def forget_remote_file(path: str, storage: Storage | None = None) -> int:
    """Drop GDAL's cached size, existence and data of the remote file ``path``.

    Parameters
    ----------
    path
        The path or URL as the user gave it: an ``http(s)://`` URL or a remote
        GDAL path (``/vsicurl/...``, ``/vsis3/...``). Anything else (local
        paths, ``s3://`` URLs that rasterio maps itself) is ignored.
    storage
        The storage the file is read through: a bucket path's URL (which
        names the storage's endpoint) is worked out inside its
        ``rasterio_env``, as for the read; ``None``: GDAL's process-wide
        configuration.

    Returns
    -------
    int
        How many GDAL libraries were told (0 for a local path, or where the
        function cannot be found).
    """
    name = vsi_name(gdal_path(path))
    if not is_remote(path) or not name.startswith("/vsi"):
        return 0
    functions = gdal_functions("VSICurlPartialClearCache", (ctypes.c_char_p,))
    if name.startswith(("/vsicurl/", "/vsicurl?")):
        for function in functions:
            function(name.encode())
        return len(functions)
    env: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if storage is not None:
        env = storage.rasterio_env(bucket_url(name))
    with env, _no_credential_lookup():
        for function in functions:
            function(name.encode())
    return len(functions)


#: The options that make GDAL's bucket handlers sign nothing (so look for no credential).
_NO_SIGN_OPTIONS = {"AWS_NO_SIGN_REQUEST": "YES", "GS_NO_SIGN_REQUEST": "YES", "AZURE_NO_SIGN_REQUEST": "YES"}


def _no_credential_lookup() -> contextlib.AbstractContextManager[bool]:
    """Set :data:`_NO_SIGN_OPTIONS` as thread-local options of every loaded GDAL inside the block, then restore them."""
    return thread_local_options(_NO_SIGN_OPTIONS)


@contextlib.contextmanager
def thread_local_options(options: Mapping[str, str | None]) -> Iterator[bool]:
    """Set ``options`` as GDAL configuration of the calling thread only, in every loaded GDAL, for the block.

    ``rasterio.Env`` sets its options for the calling thread only in any
    thread but the main one: there it sets GDAL's process-wide options, which
    every other thread reads while the block runs (and a ``rasterio.Env``
    entered meanwhile in another thread takes them for values of its own and
    puts them back, thread-locally, when it ends). A credential must never be
    given that way: here it is set with ``CPLSetThreadLocalConfigOption``
    whatever the thread, and the values the thread had before are put back
    when the block ends. A value of ``None`` removes the thread's own value
    for the block (GDAL then reads the process's option or variable, if any).

    Yields
    ------
    bool
        Whether a GDAL library was found to set them in (``False``: nothing
        was set; on a platform without ``/proc/self/maps``).

    Examples
    --------
    >>> import rasterio
    >>> from rasterio.env import get_gdal_config
    >>> with rasterio.Env(), thread_local_options({"GDAL_HTTP_USERAGENT": "tp-doc"}) as done:
    ...     done, get_gdal_config("GDAL_HTTP_USERAGENT")
    (True, 'tp-doc')
    >>> get_gdal_config("GDAL_HTTP_USERAGENT") is None
    True
    """
    restore = []
    for path in loaded_gdal_libraries():
        try:
            library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
            get, put = library.CPLGetThreadLocalConfigOption, library.CPLSetThreadLocalConfigOption
        except (OSError, AttributeError):
            continue
        get.argtypes, get.restype = [ctypes.c_char_p, ctypes.c_char_p], ctypes.c_char_p
        put.argtypes, put.restype = [ctypes.c_char_p, ctypes.c_char_p], None
        for key, value in options.items():
            name = key.encode()
            restore.append((put, name, get(name, None)))  # (bytes copied by ctypes, or None)
            put(name, None if value is None else str(value).encode())  # None: this thread's value removed
    try:
        yield bool(restore) or not options
    finally:
        for put, name, value in reversed(restore):
            put(name, value)
