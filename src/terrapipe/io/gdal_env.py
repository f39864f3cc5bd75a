"""GDAL settings for cloud reads: given per open, never put into the process environment.

Importing terrapipe changes nothing in GDAL's configuration. The defaults of
:data:`GDAL_DEFAULTS` reach GDAL in two ways, both at the time of a read:

- **Per open and per read** (:data:`PER_OPEN_KEYS`: HTTP time-outs, retries,
  range merging, HTTP/2): every open and read of a *remote* raster runs inside
  ``rasterio.Env(**open_options())`` (:func:`gdal_env`, or
  ``storage.rasterio_env(url)``, which adds the same defaults), in whichever
  thread reads. A GDAL vector opened over HTTP by pyogrio (whose GDAL a
  ``rasterio.Env`` does not reach) gets the time-outs and retries in its
  ``/vsicurl?`` URL instead (:func:`with_http_settings`). Local files are
  opened without an environment: none of these settings concern them, and a
  ``rasterio.Env`` costs 40-80 µs a read.
- **Once per process** (:data:`PROCESS_KEYS`: the size of GDAL's block cache
  and of the ``/vsicurl/`` range cache, which GDAL has one of per process): set
  by :func:`apply_process_settings` as GDAL configuration (never
  ``os.environ``) the first time terrapipe opens a raster
  (:func:`terrapipe.io.gdal_setup.ensure_gdal_setup`).

Your own settings win: a variable set in the environment (``GDAL_HTTP_TIMEOUT=60``
in the shell, or ``os.environ`` before the first read) or a ``rasterio.Env(...)``
active around the read with another value is left alone, key by key.

Two settings are only right for remote files and are therefore passed per
file, in the ``/vsicurl?`` URL that :func:`~terrapipe.io.paths.gdal_path`
builds (:func:`remote_url_options`): ``empty_dir=yes`` (the per-file form of
``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``: no directory listing and no probing
of side-car files over HTTP; set globally it would also hide the side-car
files of *local* rasters: ``.tfw`` world files, ``.ovr`` overviews, ``.aux.xml``;
``Storage(sidecars=True)`` gives ``list_dir=no`` instead, and by default
:mod:`terrapipe.io.sidecars` asks for the side-cars a remote file lacks),
and, for a URL with a query string only, ``use_head=no`` (the per-file form of
``CPL_VSIL_CURL_USE_HEAD=NO``: a URL signed for ``GET`` refuses GDAL's ``HEAD``).
A GeoPackage, MBTiles, SQLite, netCDF or HDF file at a URL with a query string
(a GeoPackage, MBTiles or SQLite file at any URL) is given as ``/vsicurl/<URL>``
instead, and gets them as GDAL options for its open (:func:`plain_url_options`): GDAL derives side-car names by appending
to the name (SQLite's ``-journal``/``-wal``, ``.msk``, ``.aux.xml``), which in
the ``/vsicurl?`` form lands in the URL's query, where a server that ignores it
answers with the file itself (see :func:`~terrapipe.io.paths.plain_form_url`).
``use_head=no`` saves no request: GDAL then asks for the size with a ``GET``
whose body it drops (one request either way, the same time on a 30 ms link;
measured with GDAL 3.10), and over HTTP/1.1 that connection is closed, so a
plain URL keeps its ``HEAD``. That ``GET`` has no ``Range``: the server sends
the file until it sees the connection close, which bounds it by the network,
not by the file (on 127.0.0.1: 256 KiB more for a 256² window of a 77.7 MB
COG; for a 2.1 MB FlatGeobuf 256 KiB idle and all of it under CPU load). So a
FlatGeobuf ``bbox``/``mask`` read of such a URL goes by exact ranges through
the byte layer instead (:mod:`terrapipe.io.vector`); a raster at a signed URL
still pays this probe once per open (measured 2026-12-06, load 6-9, 127.0.0.1: a
256² window of a 22 MB COG, 1.3 MB in ranged GETs, plus 0.26-1.8 MB streamed to
the probe). GDAL 3.10 has no ``/vsicurl/`` option that makes the probe a ranged
``GET`` (only handlers such as ``/vsiaz/`` learn the size from ``Content-Range``).

Examples
--------
>>> from terrapipe.io.gdal_env import GDAL_DEFAULTS, gdal_options
>>> GDAL_DEFAULTS["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"]
'YES'
>>> set(gdal_options()) == set(GDAL_DEFAULTS)
True
>>> with_http_settings("/vsicurl?empty_dir=yes&url=https%3A%2F%2Fh%2Fa.fgb").startswith("/vsicurl?empty_dir=yes&")
True
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.http_headers import check_headers
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url

__all__ = [
    "GDAL_DEFAULTS",
    "NETCDF_EXTENSIONS",
    "NETCDF_HDF_EXTENSIONS",
    "ORIGIN_ONLY_HEADERS",
    "PER_OPEN_KEYS",
    "PLAIN_FORM_PREFIXES",
    "PROCESS_KEYS",
    "QUERY_URL_OPTIONS",
    "REMOTE_URL_OPTIONS",
    "SIDECAR_URL_OPTIONS",
    "SQLITE_EXTENSIONS",
    "apply_gdal_defaults",
    "apply_process_settings",
    "gdal_env",
    "gdal_options",
    "header_options",
    "open_options",
    "plain_url_env",
    "plain_url_options",
    "remote_url_options",
    "with_http_settings",
]

#: terrapipe's defaults (a value you set in the environment wins, key by key).
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

#: Settings GDAL keeps one of per process (set once, at the first raster open).
PROCESS_KEYS = ("GDAL_CACHEMAX", "CPL_VSIL_CURL_CACHE_SIZE")
#: Settings given with every open and read of a remote file.
PER_OPEN_KEYS = tuple(key for key in GDAL_DEFAULTS if key not in PROCESS_KEYS)

#: Options put in the ``/vsicurl?`` URL of every remote raster.
REMOTE_URL_OPTIONS: Mapping[str, str] = {"empty_dir": "yes"}
#: Added for a URL with a query string (a signed or token URL): GDAL asks for the file's size with a
#: ``GET`` (whose body it drops after the headers) instead of a ``HEAD``, which a URL signed for ``GET``
#: only refuses with 403 (GDAL does this by itself for AWS's ``X-Amz-Signature`` only).
QUERY_URL_OPTIONS: Mapping[str, str] = {"use_head": "no"}


#: Options put in the ``/vsicurl?`` URL of a remote raster read with its side-car files
#: (``Storage(sidecars=True)``): no listing of the "directory" (a web server's HTML index, maybe large),
#: each side-car name GDAL knows asked for by itself instead.
SIDECAR_URL_OPTIONS: Mapping[str, str] = {"list_dir": "no"}


def remote_url_options(url: str, *, sidecars: bool = False) -> dict[str, str]:
    """Return the ``/vsicurl?`` options for the HTTP(S) URL ``url`` (:func:`~terrapipe.io.paths.gdal_path` uses them).

    Every URL gets :data:`REMOTE_URL_OPTIONS`; a URL with a query string
    also gets :data:`QUERY_URL_OPTIONS`. ``CPL_VSIL_CURL_USE_HEAD=NO`` saves
    no request (measured with GDAL 3.10: the ``HEAD`` becomes a ``GET``), so
    a plain URL keeps its ``HEAD``, whose connection stays open for the reads.

    With ``sidecars`` (``Storage(sidecars=True)``) a URL without a query
    string gets :data:`SIDECAR_URL_OPTIONS` instead of ``empty_dir``: GDAL
    then asks for each side-car file (``.aux.xml``, ``.msk``, ``.ovr``, ...)
    next to it. A URL with a query string keeps ``empty_dir``: GDAL appends
    the side-car's suffix to the URL, which lands in the query (a signature
    that signs the file, not its side-cars), where a server that ignores it
    answers with the file itself.

    Examples
    --------
    >>> remote_url_options("https://h/a.tif")
    {'empty_dir': 'yes'}
    >>> remote_url_options("https://h/a.tif?X-Goog-Signature=abc")
    {'empty_dir': 'yes', 'use_head': 'no'}
    >>> remote_url_options("https://h/a.tif", sidecars=True), remote_url_options("https://h/a.tif?s=1", sidecars=True)
    ({'list_dir': 'no'}, {'empty_dir': 'yes', 'use_head': 'no'})
    """
    query = bool(urllib.parse.urlsplit(url).query)
    options = dict(SIDECAR_URL_OPTIONS if sidecars and not query else REMOTE_URL_OPTIONS)
    if query:
        options.update(QUERY_URL_OPTIONS)
    return options


#: The GDAL options standing for :data:`REMOTE_URL_OPTIONS` and :data:`QUERY_URL_OPTIONS` where a name
#: cannot carry them (a ``/vsicurl/<URL>`` name, see :func:`plain_url_options`).
_PLAIN_URL_CONFIG: Mapping[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_USE_HEAD": "NO",
}


#: Extensions GDAL's netCDF driver takes a netCDF-4 (HDF5-based) file by: it reads the extension off
#: the end of the name it is given, and leaves an HDF5 file with any other to the HDF5 driver (which
#: reads no georeferencing). At a URL with a query string that end is the query (``...&sig=abc``),
#: so :func:`~terrapipe.io.paths.gdal_path` names the driver: ``NETCDF:"/vsicurl/<URL>"``
#: (:func:`~terrapipe.io.paths.netcdf_name`).
NETCDF_EXTENSIONS = (".nc", ".nc2", ".nc3", ".nc4", ".cdf")
#: Extensions of netCDF and HDF files: GDAL's drivers probe ``<name>.msk`` and ``<name>.aux.xml``
#: without the (empty) directory listing, so in the ``/vsicurl?`` form each probe of a URL with a
#: query asks for the file itself (measured 2026-12-06, GDAL 3.10: a 7.7 kB netCDF-3 file read by
#: 136 requests, 1.04 MB; a netCDF-4 file lost its georeferencing).
NETCDF_HDF_EXTENSIONS = (*NETCDF_EXTENSIONS, ".netcdf", ".h5", ".hdf5", ".he5", ".hdf", ".h4", ".he4")


#: Extensions of files GDAL reads through SQLite (GeoPackage, MBTiles, SQLite/SpatiaLite).
SQLITE_EXTENSIONS = (".gpkg", ".gpkx", ".mbtiles", ".sqlite", ".sqlite3", ".db")


#: How the GDAL names of files at a URL with a query string given as ``/vsicurl/<URL>`` begin (the second:
#: a netCDF file, whose name names GDAL's netCDF driver: :func:`terrapipe.io.paths.netcdf_name`).
PLAIN_FORM_PREFIXES = ("/vsicurl/", 'NETCDF:"/vsicurl/')


def plain_url_options(name: str) -> dict[str, str]:
    """Return the per-open GDAL options of a ``/vsicurl/<URL>`` name :func:`~terrapipe.io.paths.gdal_path` gives.

    A URL with a query string gets both (empty for any name but those below).
    A GeoPackage, MBTiles or SQLite file at a URL without a query gets
    ``empty_dir`` only (:func:`~terrapipe.io.paths.plain_form_url`), and any
    of these ``GDAL_PAM_ENABLED=NO``: their metadata is inside, and GDAL's
    GeoPackage driver asks for ``<name>.aux.xml``, ``.aux`` and ``.AUX``
    whatever ``empty_dir`` says (5 ``HEAD`` requests, measured with GDAL
    3.10; at a URL with a query they ask for the file itself).

    :func:`~terrapipe.io.paths.gdal_path` gives a GeoPackage, MBTiles,
    SQLite, netCDF or HDF file at a URL with a query string as ``/vsicurl/<URL>``
    (a netCDF file as ``NETCDF:"/vsicurl/<URL>"``), the one form GDAL's SQLite
    layer reads (see :func:`~terrapipe.io.paths.is_sqlite_url`);
    such a name cannot carry ``empty_dir`` and ``use_head=no``, so its open
    gets them as the equivalent GDAL options, in the reading thread only. A
    variable you set in the environment wins.

    Examples
    --------
    >>> plain_url_options("/vsicurl/https://h/a.gpkg?sig=x")
    {'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR', 'CPL_VSIL_CURL_USE_HEAD': 'NO', 'GDAL_PAM_ENABLED': 'NO'}
    >>> plain_url_options('NETCDF:"/vsicurl/https://h/a.nc?sig=x"') == plain_url_options("/vsicurl/https://h/a.nc?s=1")
    True
    >>> plain_url_options("/vsicurl/https://h/a.gpkg")  # a GeoPackage at a URL without a query
    {'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR', 'GDAL_PAM_ENABLED': 'NO'}
    >>> plain_url_options("/vsicurl?empty_dir=yes&url=https%3A%2F%2Fh%2Fa.tif"), plain_url_options("a.gpkg")
    ({}, {})
    >>> plain_url_options("/vsicurl/https://h/a.tif")  # a name of yours: as you gave it
    {}
    """
    prefix = next((prefix for prefix in PLAIN_FORM_PREFIXES if name.startswith(prefix)), None)
    if prefix is None:
        return {}
    parts = urllib.parse.urlsplit(name[len(prefix) :])
    sqlite = parts.path.lower().endswith(SQLITE_EXTENSIONS)
    if parts.query:
        wanted = dict(_PLAIN_URL_CONFIG)
    elif sqlite:  # a HEAD is fine: no query to sign it
        wanted = {"GDAL_DISABLE_READDIR_ON_OPEN": _PLAIN_URL_CONFIG["GDAL_DISABLE_READDIR_ON_OPEN"]}
    else:
        return {}
    if sqlite:  # GPKG's PAM asked for <name>.aux.xml, .aux, .AUX... (5 HEADs; at a query URL: the file)
        wanted["GDAL_PAM_ENABLED"] = "NO"
    return {key: value for key, value in wanted.items() if key not in os.environ}


@contextlib.contextmanager
def plain_url_env(name: str, outer: contextlib.AbstractContextManager[Any]) -> Iterator[None]:
    """Enter ``outer`` (the open's environment), then :func:`plain_url_options` of ``name`` if it has any.

    A netCDF or HDF file is opened with HDF5's own error printing off
    (:func:`terrapipe.io.gdal_log.quiet_hdf5`: it printed the file's
    name, signature included, to stderr).
    """
    with outer:
        options = plain_url_options(name)
        if not options:
            yield
            return
        rasterio = require("rasterio", feature="reading rasters")
        from terrapipe.io.gdal_log import quiet_hdf5

        if urllib.parse.urlsplit(name.rstrip('"')).path.lower().endswith(NETCDF_HDF_EXTENSIONS):
            with rasterio.Env(**options), quiet_hdf5():
                yield
            return
        with rasterio.Env(**options):
            yield


#: ``/vsicurl?`` URL options (GDAL >= 3.x) standing for the HTTP settings pyogrio's GDAL cannot get otherwise.
_URL_OPTION_OF_KEY = {
    "GDAL_HTTP_TIMEOUT": "timeout",
    "GDAL_HTTP_CONNECTTIMEOUT": "connecttimeout",
    "GDAL_HTTP_MAX_RETRY": "max_retry",
    "GDAL_HTTP_RETRY_DELAY": "retry_delay",
}


#: Request headers libcurl (8.x, bundled with rasterio's GDAL) never sends on to another host, port or
#: scheme after a redirect (measured with GDAL 3.10.3 and libcurl 8.16: ``Authorization`` and ``Cookie``
#: given in ``GDAL_HTTP_HEADERS`` stay with the origin, ``X-Api-Key`` and any other header follow the
#: redirect); GDAL's own reuse of a redirect's URL keeps ``Authorization`` back too unless
#: ``CPL_VSIL_CURL_AUTHORIZATION_HEADER_ALLOWED_IF_REDIRECT=YES``, which :func:`header_options` sets to ``NO``.
ORIGIN_ONLY_HEADERS = ("Authorization", "Cookie")


def header_options(url: str, headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Return the GDAL options that send ``Storage(headers=...)`` with a ``/vsicurl/`` read of ``url``, or refuse.

    GDAL has no per-host header setting: ``GDAL_HTTP_HEADERS`` goes with
    every request of the read, redirects included, and libcurl drops only
    :data:`ORIGIN_ONLY_HEADERS` when a redirect leads to another host. So
    those are sent (as thread-local GDAL options, for this open and read
    only, after any ``GDAL_HTTP_HEADERS`` of yours), and any other header is
    an :class:`~terrapipe.core.errors.InvalidArgumentError` instead of a
    read that would hand it to whatever host a redirect names (or a read
    silently sent without it). Values are never shown.

    Parameters
    ----------
    url
        The ``http(s)://`` URL to be read (for messages: ``scheme://host/path``).
    headers
        ``(name, value)`` pairs.

    Returns
    -------
    dict
        ``GDAL_HTTP_HEADERS`` and ``CPL_VSIL_CURL_AUTHORIZATION_HEADER_ALLOWED_IF_REDIRECT``;
        empty without headers.

    Raises
    ------
    InvalidArgumentError
        A header other than ``Authorization`` or ``Cookie``, a name or value
        HTTP cannot carry (a control character: NUL, a line break; GDAL would
        cut the value there and send another credential), or a value outside
        ASCII.

    Examples
    --------
    >>> header_options("https://h/a.tif", [("Authorization", "Bearer t")])["GDAL_HTTP_HEADERS"]
    'Authorization: Bearer t'
    >>> header_options("https://h/a.tif", [("X-Api-Key", "k")])
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: cannot read 'https://h/a.tif' through GDAL with Storage(headers=...) naming ['X-Api-Key']: ...
    """
    if not headers:
        return {}
    allowed = {name.lower() for name in ORIGIN_ONLY_HEADERS}
    others = sorted({name for name, _ in headers if name.strip().lower() not in allowed})
    shown = public_url(url)
    if others:
        raise InvalidArgumentError(
            f"cannot read {shown!r} through GDAL with Storage(headers=...) naming {others}: GDAL (libcurl) "
            "sends such headers on to any host a redirect leads to, and only Authorization and Cookie stay "
            "with the origin; put the credential in an Authorization header, sign the URL instead (a "
            "presigned or SAS href), or read it as a bucket URL (s3://, az://, gs://) with the Storage's keys"
        )
    try:
        check_headers(dict(headers))
    except InvalidArgumentError as err:
        raise InvalidArgumentError(f"cannot read {shown!r}: {err}") from None
    if not all(value.isascii() for _, value in headers):  # GDAL sends UTF-8, the byte layer latin-1
        raise InvalidArgumentError(
            f"cannot read {shown!r} through GDAL with Storage(headers=...): a header value holds a character "
            "outside ASCII, which GDAL would send as other bytes than the other readers (values not shown); "
            "percent- or base64-encode it"
        )
    lines = [f"{name.strip()}: {value}" for name, value in headers]
    mine = _configured("GDAL_HTTP_HEADERS")
    if mine:  # yours come first (GDAL_HTTP_HEADERS is one option: ours would replace them)
        lines.insert(0, mine)
    return {
        "GDAL_HTTP_HEADERS": "\r\n".join(lines),
        "CPL_VSIL_CURL_AUTHORIZATION_HEADER_ALLOWED_IF_REDIRECT": "NO",
    }


def gdal_options() -> dict[str, str]:
    """Return the values in force for the keys of :data:`GDAL_DEFAULTS`: yours from the environment, else ours."""
    return {key: os.environ.get(key, value) for key, value in GDAL_DEFAULTS.items()}


def _configured(key: str) -> str | None:
    """GDAL's current value of ``key`` in this thread (``rasterio.Env``, global option, environment)."""
    rasterio_env = require("rasterio.env", feature="reading rasters")
    value: Any = rasterio_env.get_gdal_config(key, normalize=False)
    return None if value is None else str(value)


def open_options() -> dict[str, str]:
    """Return the :data:`PER_OPEN_KEYS` defaults nobody else has set in this thread (for ``rasterio.Env``).

    A key set in the environment, or whose current GDAL value (a
    ``rasterio.Env``) differs from terrapipe's default, is left out, so that
    value applies; a key already at the default otherwise is included, so the
    read keeps it even if an environment opened by another thread ends
    meanwhile. (An environment variable is never passed to ``rasterio.Env``:
    on leaving its outermost environment, rasterio sets the values it found
    as global GDAL options, which would then hide a later change of the variable.)

    Returns
    -------
    dict
        Option name to value.

    Examples
    --------
    >>> import rasterio
    >>> with rasterio.Env(GDAL_HTTP_TIMEOUT="5"):
    ...     "GDAL_HTTP_TIMEOUT" in open_options(), open_options()["GDAL_HTTP_MAX_RETRY"]
    (False, '3')
    """
    options = {}
    for key in PER_OPEN_KEYS:
        if key in os.environ:  # yours, read by GDAL as it is (rasterio.Env would pin it as a global option)
            continue
        default = GDAL_DEFAULTS[key]
        current = _configured(key)
        if current is None or current == default:
            options[key] = default
    return options


def gdal_env() -> Any:
    """Return ``rasterio.Env(**open_options())``: the environment to open or read a remote raster in.

    Examples
    --------
    >>> from rasterio.env import get_gdal_config
    >>> with gdal_env():
    ...     get_gdal_config("GDAL_HTTP_MERGE_CONSECUTIVE_RANGES", normalize=False)
    'YES'
    """
    rasterio = require("rasterio", feature="reading rasters")
    return rasterio.Env(**open_options())


def with_http_settings(name: str) -> str:
    """Add the HTTP time-outs and retries in force to a ``/vsicurl?`` GDAL name (for pyogrio).

    pyogrio's GDAL is not rasterio's: a ``rasterio.Env`` does not reach it, and
    pyogrio can only set GDAL options process-wide. GDAL reads
    ``timeout``, ``connecttimeout``, ``max_retry`` and ``retry_delay`` from
    the ``/vsicurl?`` URL itself, per file. The values are those of
    :func:`gdal_options` (your environment variables, else terrapipe's
    defaults); an option the name already has is kept. Any other name is
    returned as given.

    Parameters
    ----------
    name
        A GDAL name, as :func:`~terrapipe.io.paths.gdal_path` returns it.

    Returns
    -------
    str
        The name with the options added.
    """
    prefix = "/vsicurl?"
    if not name.startswith(prefix):
        return name
    pairs = urllib.parse.parse_qsl(name[len(prefix) :], keep_blank_values=True)
    present = {key for key, _ in pairs}
    values = gdal_options()
    extra = [(opt, values[key]) for key, opt in _URL_OPTION_OF_KEY.items() if opt not in present]
    url = [pair for pair in pairs if pair[0] == "url"]
    rest = [pair for pair in pairs if pair[0] != "url"]
    return prefix + urllib.parse.urlencode(rest + extra + url)


def apply_process_settings() -> dict[str, str]:
    """Set :data:`PROCESS_KEYS` as GDAL configuration where you have not set them (called once per process).

    ``GDAL_CACHEMAX`` (MB) becomes GDAL's block cache size unless the
    variable is in the environment; ``CPL_VSIL_CURL_CACHE_SIZE`` a global
    configuration option (GDAL reads it when it first reads over HTTP) unless
    it is set in the environment or GDAL's configuration. ``os.environ`` is
    never changed.

    Returns
    -------
    dict
        The keys this call set, with their values.
    """
    rasterio_env = require("rasterio.env", feature="reading rasters")
    done: dict[str, str] = {}
    for key in PROCESS_KEYS:
        if key in os.environ:
            continue
        if key != "GDAL_CACHEMAX" and _configured(key) is not None:  # rasterio reports the cache size itself
            continue
        value = GDAL_DEFAULTS[key]
        if key == "GDAL_CACHEMAX":
            rasterio_env.set_gdal_config(key, int(value) * 1024 * 1024)  # rasterio: GDALSetCacheMax64, bytes
        else:
            rasterio_env.set_gdal_config(key, value)
        done[key] = value
    return done


def apply_gdal_defaults(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Put :data:`GDAL_DEFAULTS` into ``os.environ`` where a variable is not set yet (your choice, never ours).

    terrapipe does not call this: its readers give GDAL the defaults per open
    (see the module doc). Call it yourself if other code of yours that reads
    through GDAL should use the same settings; it changes the whole process.

    Parameters
    ----------
    overrides
        Values that replace the defaults *and* any value already in the environment.

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
