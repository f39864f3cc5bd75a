"""``read_vector``: vector files to GeoDataFrames, with spatial and attribute filters.

:func:`open_vector` reads one file or URL; the :class:`ReadVector` stage
(functional name ``read_vector``) does it for each path of a pipe.

- FlatGeobuf, GeoPackage, GeoJSON, Shapefile and every other GDAL vector
  format go through pyogrio with Arrow. ``bbox`` and ``mask`` use the
  format's spatial index where it has one (FlatGeobuf's packed R-tree,
  GeoPackage's R*Tree), so a small query on a remote FlatGeobuf reads a
  fraction of the file. Zipped shapefiles work as ``a.zip`` or
  ``/vsizip/a.zip/a.shp``; remote ones as ``/vsizip//vsicurl/https://.../a.zip``.
- GeoParquet (``.parquet``, ``.geoparquet``) goes through pyarrow with bbox
  pushdown on the bbox covering column (see :mod:`terrapipe.io.geoparquet`).
- Files on buckets (``s3://``, ``gs://``, ``az://``/``abfs://``) and, with
  ``storage=``, presigned or SAS ``https://`` URLs are read through the byte
  layer, configured per call by ``storage=`` (:class:`terrapipe.Storage`).
  pyogrio's GDAL is not rasterio's, so a ``rasterio.Env`` does not configure
  it, and pyogrio can only set GDAL options process-wide; so GDAL formats are
  read by GDAL from a private local copy fetched through the byte layer (a
  FlatGeobuf with ``bbox``/``mask``: only its header, the index nodes the box
  reaches and the features they point at, by ranged reads), and no GDAL
  configuration is ever set (:mod:`terrapipe.io.vector_objects`).
- A FlatGeobuf read with ``bbox``/``mask`` at an ``http(s)://`` URL goes the
  same way, by ranged reads only, each answer checked to be the range asked
  for: GDAL opens a URL with a query string (signed, token) without a
  ``HEAD`` and learns its size from a ``GET`` without a ``Range``, whose body
  the server streams until it sees the connection close (up to the whole
  file); and GDAL (libcurl) takes an answer a server sent unasked on a
  kept-alive connection for the answer to its next range (a FlatGeobuf's
  index read from such bytes matched nothing: an empty layer, silently).
  Other GDAL formats at URLs with a query string still pay that probe once
  per open (GDAL's size request; its body is dropped), except a GeoPackage
  (or other SQLite file): GDAL's SQLite layer reads such a URL only as
  ``/vsicurl/<URL>``, which cannot carry pyogrio's time-outs, so it is
  fetched through the byte layer. A CSV at such a URL is opened as
  ``CSV:<name>`` (GDAL would take the query for its extension).

Every result has its CRS; a file without one is a ``ReadError`` unless
``crs=`` says what to assume.

A file cut short is a ``ReadError``, never a shorter layer: GDAL returns what
it parsed before the first bad byte of FlatGeobuf, Shapefile, GeoPackage and
GeoJSON-sequence files, so their structure is checked first
(:mod:`terrapipe.io.vector_integrity`). GeoJSON sequences (one feature per
line, or RFC 8142) open with GDAL's GeoJSONSeq driver: its GeoJSON driver
reads only their first record.

Examples
--------
>>> import geopandas as gpd
>>> from shapely.geometry import Point
>>> gdf = gpd.GeoDataFrame({"kind": ["a", "b", "c"]}, geometry=[Point(0, 0), Point(5, 5), Point(9, 9)],
...                        crs="EPSG:32631")
>>> gdf.to_file("pts.fgb")
>>> out = open_vector("pts.fgb", bbox=(4, 4, 10, 10), columns=["kind"])
>>> sorted(out["kind"]), out.crs.to_epsg()
(['b', 'c'], 32631)
>>> import terrapipe as tp
>>> [len(g) for g in tp.from_items(["pts.fgb"]).read_vector(where="kind = 'a'")]
[1]
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import threading
import urllib.parse
import warnings
from collections.abc import Sequence
from typing import Any

from terrapipe._compat import register_pyogrio_error_handler
from terrapipe.core.checks import check_column_names, check_int, check_storage
from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError
from terrapipe.core.on_error import OnError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe, register
from terrapipe.core.redact import MASK, public_url, redact_urls
from terrapipe.core.warning_filters import ignore_once
from terrapipe.io.gdal_cache import forget_remote_file
from terrapipe.io.gdal_env import remote_url_options, with_http_settings
from terrapipe.io.gdal_setup import ensure_gdal_setup
from terrapipe.io.geoparquet import read_geoparquet
from terrapipe.io.http_client import HTTPOptions
from terrapipe.io.object_file import HTTPFile
from terrapipe.io.object_store import is_object_url
from terrapipe.io.paths import gdal_path, href_of, is_http, is_remote, is_sqlite_url
from terrapipe.io.read_errors import read_error
from terrapipe.io.reader_stage import ReaderStage
from terrapipe.io.storage import Storage
from terrapipe.io.vector_integrity import (
    FlatGeobufLayout,
    check_sequence,
    check_vector_file,
    is_geojson_sequence,
)
from terrapipe.io.vector_objects import fetch_vector

__all__ = ["ReadVector", "check_crs", "is_geoparquet", "open_vector"]

_PARQUET_EXTENSIONS = (".parquet", ".geoparquet", ".pq")


def is_geoparquet(path: str) -> bool:
    """Whether ``path`` names a (Geo)Parquet file, by its extension.

    Examples
    --------
    >>> is_geoparquet("https://h/landcover.parquet?x=1"), is_geoparquet("roads.fgb")
    (True, False)
    """
    return path.split("?", 1)[0].lower().endswith(_PARQUET_EXTENSIONS)


def _check_bbox(bbox: Sequence[float] | None) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    try:
        values = tuple(float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(f"bbox must be (xmin, ymin, xmax, ymax) numbers, got {bbox!r}") from err
    if len(values) != 4 or values[0] > values[2] or values[1] > values[3]:
        raise InvalidArgumentError(f"bbox must be (xmin, ymin, xmax, ymax) with min <= max, got {bbox!r}")
    return values[0], values[1], values[2], values[3]


def check_crs(crs: Any) -> Any:
    """Return ``crs`` as a pyproj CRS (``None`` stays ``None``); a CRS pyproj cannot parse is an error.

    It is checked whether or not the file has a CRS of its own, so that a
    mistyped ``crs=`` fails on the first file rather than on the first one
    without a CRS.

    Examples
    --------
    >>> check_crs("EPSG:32631").to_epsg(), check_crs(None)
    (32631, None)
    >>> check_crs("EPSG:326310")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: crs='EPSG:326310' is not a CRS pyproj knows ...
    """
    if crs is None:
        return None
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input(crs)
    except (CRSError, TypeError, ValueError) as err:
        msg = (
            f"crs={crs!r} is not a CRS pyproj knows ({err}); pass an authority code ('EPSG:4326'), "
            "WKT, PROJJSON or a pyproj.CRS"
        )
        raise InvalidArgumentError(msg) from err


def _check_columns(columns: Sequence[str] | None) -> list[str] | None:
    return None if columns is None else check_column_names(columns, "columns")


def _check_where(where: str | None) -> str | None:
    if where is None:
        return None
    if not isinstance(where, str) or not where.strip():
        raise InvalidArgumentError(
            f"where must be an OGR SQL WHERE clause (a str such as \"kind = 'road'\") or None, got {where!r}"
        )
    return where


def _check_layer(layer: str | int | None) -> str | int | None:
    if layer is None:
        return None
    if isinstance(layer, str) and layer:
        return layer
    return check_int(layer, "layer (a layer name or 0-based index)", minimum=0)


def _check_http_options(options: HTTPOptions | None) -> HTTPOptions | None:
    if options is not None and not isinstance(options, HTTPOptions):
        raise InvalidArgumentError(
            f"http_options must be a terrapipe.io.HTTPOptions or None, got {type(options).__name__} {options!r}"
        )
    return options


def _read_ogr(
    path: str,
    *,
    bbox: tuple[float, float, float, float] | None,
    mask: Any,
    columns: list[str] | None,
    where: str | None,
    layer: str | int | None,
    http_options: HTTPOptions | None = None,
) -> Any:
    pyogrio = require("pyogrio", feature="read_vector")
    errors = require("pyogrio.errors", extra="vector", feature="read_vector")
    shapely_errors = require("shapely.errors", feature="read_vector")
    _redact_pyogrio_warnings()
    if "://" not in path and not path.startswith("/vsi") and not os.path.exists(path):
        raise read_error(path, "cannot open vector file", FileNotFoundError(path))
    unfiltered = bbox is None and mask is None and where is None
    layout, sequence = _check_structure(path, http_options, filtered=not unfiltered)
    use_arrow = True
    try:
        require("pyarrow", feature="read_vector")
    except TerrapipeError:
        use_arrow = False
    name = _ogr_name(path)
    if sequence:  # GDAL's GeoJSON driver would read the first record only
        name = "GeoJSONSeq:" + name
    try:
        read = functools.partial(
            pyogrio.read_dataframe,
            name,
            layer=layer,
            columns=columns,
            where=where,
            bbox=bbox,
            mask=mask,
            **_open_options(path),
        )
        try:
            gdf = read(use_arrow=use_arrow)
        except (NotImplementedError, shapely_errors.GEOSException):
            if not use_arrow:
                raise
            # GDAL's Arrow stream has no curved geometries and sends a null geometry as broken
            # WKB; pyogrio's feature-by-feature reader handles both (linearised curves, None).
            gdf = read(use_arrow=False)
    except errors.DataLayerError as err:
        forget_remote_file(path)
        if layer is not None:
            cause = f"no layer {layer!r} ({err})"
            with contextlib.suppress(errors.DataSourceError, OSError):
                cause += f"; layers: {[str(name) for name, _ in pyogrio.list_layers(_ogr_name(path))]}"
            raise read_error(
                path, "cannot read vector file", err, cause=cause, hint="pick a layer listed"
            ) from err
        raise read_error(path, "cannot read vector file", err, **_where_hint(where, err)) from err
    except errors.FieldError as err:
        raise read_error(
            path,
            "cannot read vector file",
            err,
            cause=f"bad column or where clause ({err})",
            hint="check the names",
        ) from err
    except (
        errors.DataSourceError,
        errors.GeometryError,
        OSError,
        ValueError,
        RuntimeError,
        IndexError,
        KeyError,
        TypeError,
        OverflowError,
        UnicodeError,
        NotImplementedError,
        shapely_errors.GEOSException,
    ) as err:
        forget_remote_file(path)  # else GDAL repeats a failure of this URL without asking again
        raise read_error(path, "cannot read vector file", err, **_where_hint(where, err)) from err
    if layout is not None and layout.features_count > 0 and unfiltered and len(gdf) != layout.features_count:
        forget_remote_file(path)
        raise read_error(
            path,
            "cannot read vector file",
            cause=(
                f"truncated or damaged FlatGeobuf: its header declares {layout.features_count} features, "
                f"{len(gdf)} were read"
            ),
            hint="re-create or re-download the file",
        )
    return gdf


def _check_structure(
    path: str, http_options: HTTPOptions | None, *, filtered: bool
) -> tuple[FlatGeobufLayout | None, bool]:
    """Check what GDAL would read short without an error (see :mod:`terrapipe.io.vector_integrity`).

    Returns the layout of a FlatGeobuf (``None`` for other formats) and
    whether the file is a GeoJSON sequence.
    """

    def open_remote() -> Any:
        return HTTPFile(path, http_options)  # a few exact ranges: the preamble, header, one node, one prefix

    opener = open_remote if is_http(path) else None
    try:
        layout = check_vector_file(path, opener=opener, filtered=filtered)
        sequence = layout is None and is_geojson_sequence(path, opener)
        if sequence and opener is not None:
            check_sequence(path, opener)  # a local one was checked by check_vector_file
        return layout, sequence
    except TerrapipeError:
        forget_remote_file(path)
        raise
    except OSError as err:
        raise read_error(path, "cannot read vector file", err) from err


class _RedactingWarnings:
    """Stands in for the ``warnings`` module inside pyogrio's modules.

    pyogrio issues GDAL's warnings, and some of its own, with the file's path
    in the text (``More than one layer found in '/vsicurl?...url=...'``); for
    a signed URL that path carries credentials. This ``warn`` redacts them
    before handing the warning on, in whichever thread it is issued; a text
    without credentials is passed on unchanged. Everything else is the real
    module. (It replaces a ``catch_warnings(record=True)`` block around the
    read, which is not thread-safe: it swapped the process-wide filters and
    ``showwarning``, and caught other threads' warnings.)
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(warnings, name)

    def warn(
        self,
        message: Any,
        category: type[Warning] | None = None,
        stacklevel: int = 1,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        text = str(message)
        cleaned = redact_urls(text)
        if cleaned.count(MASK) > text.count(MASK):  # something was hidden: issue the redacted text
            if isinstance(message, Warning):
                category = type(message)
            message = cleaned
        # one frame more: the warning points where pyogrio's warning would have pointed
        warnings.warn(message, category, stacklevel + 1, *args, **kwargs)


_REDACTION_LOCK = threading.Lock()
_REDACTION_INSTALLED = threading.Event()


_THREAD = threading.local()


def _redact_pyogrio_warnings() -> None:
    """Make pyogrio's warnings redact credentials (once per process, thread-safe).

    GDAL's error handlers are per thread and pyogrio installs its own (which
    turns GDAL's warnings into Python warnings) only in the thread that
    imported it; elsewhere GDAL prints them to stderr itself, unredacted.
    So each thread that reads installs pyogrio's handler once too.
    """
    if not getattr(_THREAD, "handler", False):
        register_pyogrio_error_handler()  # pyogrio's own set-up (private; absent: stderr as before)
        _THREAD.handler = True
    if _REDACTION_INSTALLED.is_set():
        return
    with _REDACTION_LOCK:
        if _REDACTION_INSTALLED.is_set():
            return
        for name, module in list(sys.modules.items()):
            in_pyogrio = name == "pyogrio" or name.startswith("pyogrio.")
            if in_pyogrio and getattr(module, "warnings", None) is warnings:
                module.warnings = _RedactingWarnings()  # type: ignore[attr-defined]
        _REDACTION_INSTALLED.set()


def _ogr_name(path: str) -> str:
    """Return the name pyogrio opens: :func:`gdal_path`, HTTP time-outs and retries in a ``/vsicurl?`` URL.

    Also the first GDAL use of the process: installs terrapipe's fork hook and log filter once.
    """
    ensure_gdal_setup()
    name = gdal_path(path)
    if is_http(path) and name.startswith("/vsicurl/"):  # a GeoPackage at a plain URL (paths.plain_form_url):
        url = name[len("/vsicurl/") :]  # the ?-form carries pyogrio's time-outs; pyogrio closes it at once
        name = "/vsicurl?" + urllib.parse.urlencode({**remote_url_options(url), "url": url})
    name = with_http_settings(name)
    parts = urllib.parse.urlsplit(path) if is_http(path) else None
    # GDAL's CSV driver knows a file by its extension, which GDAL reads off the end of the name: at a
    # URL with a query string that is the query ('not recognized as being in a supported file format')
    if parts is not None and parts.query and parts.path.lower().endswith(_CSV_EXTENSIONS):
        return "CSV:" + name
    return name


#: Extensions GDAL's CSV driver reads (it recognises a file by its extension only).
_CSV_EXTENSIONS = (".csv", ".tsv", ".psv")


def _open_options(path: str) -> dict[str, str]:
    """GDAL open options a file needs: a GeoPackage over HTTP opens as immutable.

    Remote files are read-only anyway. Not at a plain ``http(s)://`` URL:
    there GDAL hands SQLite a ``file:`` URI, which SQLite percent-decodes, so a
    URL holding an escape (``my%20file.gpkg``, a quoted space) was read at
    another URL (``my file.gpkg``: "HTTP response code on ...: 0", curl's
    refusal); opened plainly, SQLite asks for ``-journal``/``-wal`` next to
    it (404s). (A GeoPackage at a URL with a query
    string is not opened by GDAL over HTTP at all: ``IMMUTABLE`` makes GDAL
    hand SQLite a ``file:`` URI, SQLite decodes the ``%26`` of the
    ``/vsicurl?...&url=`` name and GDAL read the URL up to its first ``&``,
    without its signature; see :func:`_through_byte_layer`.)
    """
    parts = urllib.parse.urlsplit(path)
    if is_remote(path) and parts.path.lower().endswith(".gpkg") and not (is_http(path) and not parts.query):
        ignore_once(r"File .* has GPKG application_id, but non conformant file extension", RuntimeWarning)
        return {"IMMUTABLE": "YES"}
    return {}


def _where_hint(where: str | None, err: BaseException) -> dict[str, str]:
    """Return the explanation of an error about the ``where=`` clause (none for other errors)."""
    if where is None or "sql" not in str(err).lower():
        return {}
    return {"cause": f"where={where!r} is not a valid OGR SQL clause", "hint": "fix the where= expression"}


def _geometry_layers(path: str) -> list[str]:
    """Return the layers of a GDAL vector file that have geometries (empty if they cannot be listed)."""
    pyogrio = require("pyogrio", feature="read_vector")
    try:
        return [str(name) for name, kind in pyogrio.list_layers(_ogr_name(path)) if kind is not None]
    except Exception:  # only used to improve a message
        return []


def _check_mask(mask: Any) -> Any:
    if mask is None:
        return None
    shapely = require("shapely", feature="read_vector")
    if not isinstance(mask, shapely.Geometry) or mask.is_empty:
        raise InvalidArgumentError(f"mask must be a non-empty shapely geometry, got {type(mask).__name__}")
    return mask


def _ogr_columns(path: str, layer: str | int | None) -> list[str]:
    """Return the attribute columns of a GDAL vector file (empty if they cannot be listed)."""
    pyogrio = require("pyogrio", feature="read_vector")
    _redact_pyogrio_warnings()
    try:
        info = pyogrio.read_info(_ogr_name(path), layer=layer, **_open_options(path))
        return [str(name) for name in info["fields"]]
    except Exception:  # only used to improve a message
        return []


def _check_frame(gdf: Any, path: str, cols: list[str] | None, layer: str | int | None) -> None:
    """Refuse a layer without geometry, or without a column asked for (naming what there is)."""
    if not isinstance(gdf, require("geopandas", feature="read_vector").GeoDataFrame):
        raise read_error(
            path,
            "cannot read vector file",
            cause=f"layer {layer if layer is not None else 'read by default'!r} has no geometry column",
            hint=f"pick a layer with geometries (layers: {_geometry_layers(path)})",
        )
    missing = [c for c in cols or () if c not in gdf.columns]
    if missing:
        raise read_error(
            path,
            "cannot read vector file",
            cause=f"no column named {missing} (columns: {_ogr_columns(path, layer)})",
            hint="pick names listed",
        )


def _through_byte_layer(path: str, storage: Storage | None) -> bool:
    """Whether a GDAL vector file is fetched through the byte layer.

    Buckets, HTTP(S) with ``storage=``, and a GeoPackage (or other SQLite
    file) at a URL with a query string: GDAL's SQLite layer reads such a URL
    only as ``/vsicurl/<URL>`` (:func:`~terrapipe.io.paths.is_sqlite_url`),
    a name that cannot carry pyogrio's per-file time-outs and ``use_head=no``.

    Examples
    --------
    >>> _through_byte_layer("https://h/a.gpkg?sig=x", None), _through_byte_layer("https://h/a.gpkg", None)
    (True, False)
    """
    return is_object_url(path) or (is_http(path) and (storage is not None or is_sqlite_url(path)))


def _head_less_flatgeobuf(path: str, filtered: bool) -> bool:
    """Whether a filtered read of a FlatGeobuf URL goes by exact ranges through the byte layer, not GDAL.

    GDAL opens a URL with a query string (signed, token) without a ``HEAD``
    (``use_head=no``, :func:`~terrapipe.io.gdal_env.remote_url_options`)
    and learns its size from a ``GET`` without a ``Range``, whose body it
    drops after the headers. The server sends the file until it sees the
    connection close: 256 KiB of a 2 MiB file on an idle machine, all of it
    under load (a bbox read that served more than the whole file). The byte
    layer learns the size from a ranged ``GET`` of the last 64 KiB and reads
    the header, the index nodes the box reaches and their features
    (:func:`~terrapipe.io.vector_objects.flatgeobuf_subset`), each answer
    checked to be the range asked for: GDAL (libcurl) took an answer a
    server sent unasked on a kept-alive connection for its next range, and an
    index read from it matched nothing (an empty layer, silently). So every
    filtered FlatGeobuf read over HTTP goes this way, signed or not.

    Examples
    --------
    >>> _head_less_flatgeobuf("https://h/a.fgb?sig=x", True), _head_less_flatgeobuf("https://h/a.fgb", True)
    (True, True)
    >>> _head_less_flatgeobuf("https://h/a.fgb?sig=x", False), _head_less_flatgeobuf("https://h/a.gpkg?sig=x", True)
    (False, False)
    """
    if not filtered or not is_http(path):
        return False
    return urllib.parse.urlsplit(path).path.lower().endswith(".fgb")


def _read_ogr_from_store(
    url: str,
    storage: Storage | None,
    *,
    bbox: tuple[float, float, float, float] | None,
    mask: Any,
    columns: list[str] | None,
    where: str | None,
    layer: str | int | None,
) -> Any:
    """Read a GDAL vector file on a bucket from a private local copy (see :mod:`terrapipe.io.vector_objects`).

    Errors of the local read name ``scheme://host/path`` of ``url``, never the copy.
    """
    shown = public_url(url)
    query_box = bbox if bbox is not None else (tuple(mask.bounds) if mask is not None else None)
    with tempfile.TemporaryDirectory(prefix="terrapipe-vector-") as folder:
        local = fetch_vector(url, storage, folder=folder, bbox=query_box)
        try:
            gdf = _read_ogr(local, bbox=bbox, mask=mask, columns=columns, where=where, layer=layer)
            _check_frame(gdf, local, columns, layer)
        except ReadError as err:
            raise ReadError(str(err).replace(local, shown)) from err
    return gdf


def open_vector(
    path: Any,
    *,
    bbox: Sequence[float] | None = None,
    mask: Any = None,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    layer: str | int | None = None,
    crs: Any = None,
    http_options: HTTPOptions | None = None,
    storage: Storage | None = None,
) -> Any:
    """Read one vector file or URL into a GeoDataFrame.

    Parameters
    ----------
    path
        Local path, URL, GDAL ``/vsi...`` path, or a STAC asset.
    bbox
        ``(xmin, ymin, xmax, ymax)`` in the file's CRS: keep the features
        that intersect it (read through the spatial index where there is one).
    mask
        A shapely geometry in the file's CRS, used like ``bbox``; not with ``bbox``.
    columns
        Attribute columns to read (the geometry is always read).
    where
        An SQL ``WHERE`` clause (OGR SQL) on attributes; not for GeoParquet.
    layer
        Layer name or index for multi-layer formats (GeoPackage).
    crs
        The CRS to assume when the file has none (otherwise that is an
        error); ignored for a file that has one, but always checked.
    http_options
        Time-out and retries for GeoParquet over HTTP (other formats use the
        GDAL settings of :mod:`terrapipe.io.gdal_env`).
    storage
        How to reach ``s3://``, ``gs://``, ``az://``/``abfs://`` and presigned
        or SAS ``https://`` URLs (:class:`terrapipe.Storage`; default
        ``tp.Storage.from_env()`` for bucket URLs): they are read through the
        byte layer, GeoParquet by ranged reads
        (:func:`~terrapipe.io.geoparquet.read_geoparquet`), GDAL formats from a
        private local copy, a FlatGeobuf with ``bbox``/``mask`` by ranged reads
        of its index and the features it points at
        (:mod:`terrapipe.io.vector_objects`). No GDAL configuration is set.

    Returns
    -------
    geopandas.GeoDataFrame
        With ``crs`` set and ``attrs["source"]`` the path.

    Raises
    ------
    ReadError
        Missing or unreadable file, unknown layer or column, a file without
        CRS (and no ``crs=``), HTTP errors.
    InvalidArgumentError
        For malformed arguments (a bbox with min > max, bbox with mask, a
        ``crs=`` pyproj cannot parse, ...).
    """
    text = href_of(path)
    box = _check_bbox(bbox)
    cols = _check_columns(columns)
    crs = check_crs(crs)
    mask = _check_mask(mask)
    where = _check_where(where)
    layer = _check_layer(layer)
    http_options = _check_http_options(http_options)
    storage = check_storage(storage)
    if box is not None and mask is not None:
        raise InvalidArgumentError("pass bbox or mask, not both")
    if is_geoparquet(text):
        if where is not None or layer is not None:
            msg = f"where= and layer= are for GDAL formats; GeoParquet {text!r} takes bbox, mask and columns"
            raise InvalidArgumentError(msg)
        gdf = read_geoparquet(
            text, bbox=box, mask=mask, columns=cols, crs=crs, http_options=http_options, storage=storage
        )
        _check_frame(gdf, text, cols, layer)
    elif _through_byte_layer(text, storage):
        gdf = _read_ogr_from_store(text, storage, bbox=box, mask=mask, columns=cols, where=where, layer=layer)
    elif _head_less_flatgeobuf(text, filtered=box is not None or mask is not None):
        # http_options is a Storage (HTTPOptions is its deprecated alias): the same time-outs and retries
        gdf = _read_ogr_from_store(
            text, http_options, bbox=box, mask=mask, columns=cols, where=where, layer=layer
        )
    else:
        gdf = _read_ogr(
            text, bbox=box, mask=mask, columns=cols, where=where, layer=layer, http_options=http_options
        )
        _check_frame(gdf, text, cols, layer)
    if gdf.crs is None:
        if crs is None:
            raise read_error(
                text,
                "cannot use vector file",
                cause="it has no CRS",
                hint="add one (a .prj file, or set_crs before writing) or pass crs= to say what to assume",
            )
        gdf = gdf.set_crs(crs)
    _check_latitudes(gdf, text)
    gdf.attrs["source"] = text
    if is_remote(text):
        gdf.attrs["remote"] = True
    return gdf


def _check_latitudes(gdf: Any, path: str) -> None:
    """Refuse a layer in a lon/lat CRS whose y coordinates are no latitudes (beyond +-90 degrees).

    Such a layer's CRS is wrong, and everything placed by it lands elsewhere
    on the globe, silently: a GeoJSON file of projected coordinates without a
    ``crs`` member (RFC 7946: WGS 84; older writers left it out), one whose
    ``crs`` member GDAL does not know (it falls back to WGS 84 without a
    word), a Shapefile with the wrong ``.prj``, or latitude and longitude
    swapped. Longitudes may run past 180 (layers written 0..360); latitudes
    never pass 90.
    """
    if len(gdf) == 0 or gdf.crs is None or not gdf.crs.is_geographic:
        return
    import numpy as np

    bounds = gdf.geometry.bounds
    ys = np.concatenate(
        [bounds["miny"].to_numpy(dtype=np.float64), bounds["maxy"].to_numpy(dtype=np.float64)]
    )
    ys = ys[np.isfinite(ys)]
    if ys.size and float(np.abs(ys).max()) > 90.0 + 1e-6:
        raise read_error(
            path,
            "cannot use vector file",
            cause=(
                f"its CRS is lon/lat ({_crs_name(gdf.crs)}) but its y coordinates reach {float(ys.min()):.6g}.."
                f"{float(ys.max()):.6g}, beyond +-90 degrees of latitude: the CRS the file states is not the "
                "one its coordinates are in (a GeoJSON without or with an unknown 'crs' member is taken as "
                "WGS 84; or latitude and longitude are swapped)"
            ),
            hint="give the file its true CRS (e.g. ogr2ogr -a_srs EPSG:<code>), or swap the axes",
        )


def _crs_name(crs: Any) -> str:
    """``AUTHORITY:CODE`` where the CRS has one, else its name (never a page of WKT)."""
    authority = crs.to_authority()
    return f"{authority[0]}:{authority[1]}" if authority else str(crs.name)


@register("read_vector")
class ReadVector(ReaderStage[Any]):
    """Read each vector file of ``source`` into a GeoDataFrame (see :func:`open_vector`).

    Parameters
    ----------
    source
        A pipe of paths, URLs or STAC assets.
    bbox, mask, columns, where, layer, crs, http_options, storage
        As in :func:`open_vector`, the same for every file.
    on_error
        ``"raise"``, ``"skip"`` or ``"warn"`` (skips are counted in ``stats.skipped``).

    Notes
    -----
    ``stats.bytes_read`` adds the compressed bytes of the GeoParquet row
    groups read (other formats do not report it).
    """

    def __init__(
        self,
        source: IterDataPipe[Any],
        *,
        bbox: Sequence[float] | None = None,
        mask: Any = None,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        layer: str | int | None = None,
        crs: Any = None,
        http_options: HTTPOptions | None = None,
        storage: Storage | None = None,
        on_error: OnError = "raise",
    ) -> None:
        super().__init__(source, on_error=on_error)
        self.bbox = _check_bbox(bbox)
        if self.bbox is not None and mask is not None:
            raise InvalidArgumentError("pass bbox or mask, not both")
        self.mask = _check_mask(mask)
        self.columns = _check_columns(columns)
        self.where = _check_where(where)
        self.layer = _check_layer(layer)
        self.crs = check_crs(crs)
        self.http_options = _check_http_options(http_options)
        # Kept out of the cache description (it holds credentials): ``storage_location`` stands for it.
        self._storage_obj = check_storage(storage)
        if self._storage_obj is not None:
            from terrapipe.io.raster import storage_config

            self.storage_location = storage_config(self._storage_obj)

    @property
    def storage(self) -> Storage | None:
        """The :class:`~terrapipe.io.storage.Storage` files are read through (``None``: from the environment)."""
        return self._storage_obj

    def open_one(self, element: Any) -> Any:
        """Read one file with this stage's options."""
        gdf = open_vector(
            element,
            bbox=self.bbox,
            mask=self.mask,
            columns=self.columns,
            where=self.where,
            layer=self.layer,
            crs=self.crs,
            http_options=self.http_options,
            storage=self.storage,
        )
        self.stats.bytes_read += int(gdf.attrs.get("bytes_read", 0))
        return gdf
