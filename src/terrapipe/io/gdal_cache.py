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

Examples
--------
>>> forget_remote_file("/data/local.tif")  # local files have nothing to forget
0
"""

from __future__ import annotations

import ctypes

from terrapipe.io.gdal_fork import gdal_functions
from terrapipe.io.paths import gdal_path, is_remote, vsi_name

__all__ = ["forget_remote_file"]


def forget_remote_file(path: str) -> int:
    """Drop GDAL's cached size, existence and data of the remote file ``path``.

    Parameters
    ----------
    path
        The path or URL as the user gave it: an ``http(s)://`` URL or a remote
        GDAL path (``/vsicurl/...``, ``/vsis3/...``). Anything else (local
        paths, ``s3://`` URLs that rasterio maps itself) is ignored.

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
    for function in functions:
        function(name.encode())
    return len(functions)
