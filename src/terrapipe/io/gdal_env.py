"""GDAL settings for cloud reads, set in one place.

Why environment variables, set once at import
---------------------------------------------
terrapipe reads rasters lazily: a window is read when a later stage (a
chipper, a loader thread, a DataLoader worker) touches the pixels, long after
:func:`~terrapipe.io.raster.open_raster` returned, and in whichever thread
does it. ``rasterio.Env`` cannot follow the data there: it sets GDAL *global*
config options while its ``with`` block runs and removes them when the block
ends, so a block in one thread changes (and on exit removes) the settings that
every other thread is reading with at that moment.

GDAL falls back to the process environment for every config option that was
not set with ``CPLSetConfigOption`` (``rasterio.Env``). So this module puts its
defaults into ``os.environ`` with ``setdefault`` when it is first imported
(``import terrapipe.io`` does it), before any reader thread starts:

- they apply in every thread and at the moment each read happens;
- forked DataLoader workers inherit them, and spawned workers set them again
  when they import terrapipe;
- a value that is already in the environment is kept: set
  ``GDAL_HTTP_TIMEOUT=60`` in your shell (or ``os.environ`` before importing
  terrapipe) to override a default; a ``rasterio.Env(...)`` you open around
  your own code still takes precedence while it is active.

Two settings are only right for remote files and are therefore passed per
file, in the ``/vsicurl?`` URL that :func:`~terrapipe.io.paths.gdal_path`
builds, instead of through the environment: ``empty_dir=yes`` (the per-file
form of ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``: no directory listing and
no probing of side-car files over HTTP). Set globally it would also hide the
side-car files of *local* rasters (``.tfw`` world files, ``.ovr`` overviews,
``.aux.xml``).

Examples
--------
>>> from terrapipe.io.gdal_env import GDAL_DEFAULTS, gdal_options
>>> GDAL_DEFAULTS["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"]
'YES'
>>> set(gdal_options()) == set(GDAL_DEFAULTS)
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["GDAL_DEFAULTS", "REMOTE_URL_OPTIONS", "apply_gdal_defaults", "gdal_options"]

#: Process-wide defaults (environment variables, kept when already set).
GDAL_DEFAULTS: Mapping[str, str] = {
    # Fetch consecutive tiles of one read in one HTTP range request.
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    # Reuse one connection for parallel range requests where the server speaks HTTP/2.
    "GDAL_HTTP_MULTIPLEX": "YES",
    # Never hang: give up on a silent server, retry the transient failures
    # (429, 500, 502, 503, 504) a few times with back-off.
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_TIMEOUT": "30",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    # Bounded block cache per process (MB): DataLoader workers each have one.
    "GDAL_CACHEMAX": "256",
    # Cache of downloaded ranges shared by all /vsicurl/ files of the process (bytes).
    "CPL_VSIL_CURL_CACHE_SIZE": str(64 * 1024 * 1024),
}

#: Options put in the ``/vsicurl?`` URL of every remote raster.
REMOTE_URL_OPTIONS: Mapping[str, str] = {"empty_dir": "yes"}


def apply_gdal_defaults(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Put :data:`GDAL_DEFAULTS` into ``os.environ`` where a variable is not set yet.

    Called once when this module is imported; calling it again is harmless.

    Parameters
    ----------
    overrides
        Values that replace the defaults *and* any value already in the
        environment (use sparingly: it changes the whole process).

    Returns
    -------
    dict
        The values now in force for every key of :data:`GDAL_DEFAULTS`.
    """
    for key, value in GDAL_DEFAULTS.items():
        os.environ.setdefault(key, value)
    for key, value in (overrides or {}).items():
        os.environ[key] = str(value)
    return gdal_options()


def gdal_options() -> dict[str, str]:
    """Return the environment values in force for the keys of :data:`GDAL_DEFAULTS`."""
    return {key: os.environ.get(key, value) for key, value in GDAL_DEFAULTS.items()}


apply_gdal_defaults()
