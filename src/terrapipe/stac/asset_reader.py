"""odc-stac's rasterio reader, with errors that name the STAC item and asset that failed.

odc-stac reads each chunk of a lazy cube when it is computed; a COG that
is missing (HTTP 404), truncated or unreachable then fails deep inside dask
with GDAL's message. :class:`NamingRioDriver` wraps odc-loader's rasterio
driver so that such a failure becomes a
:class:`~terrapipe.core.errors.ReadError` naming the item, the asset and the
(redacted) href, with what to do. It pickles (a dict of hrefs to names), so
it works with dask's distributed scheduler too.

Reads follow terrapipe's GDAL retry policy (:mod:`terrapipe.io.gdal_env`:
3 retries) where nothing else configured GDAL (odc-stac's own default, 10
retries with a doubling delay, waits 8 minutes on a server that is down).
Each read compares the file with what the cube declared (the cube was
built from the items' metadata, without opening files): a file whose band
type the declared type cannot hold (``float32`` stated as ``uint8``,
``int16`` as ``uint16``), that lacks the band asked for, or that marks
nodata pixels an integer cube without nodata would show as valid data,
raises :class:`~terrapipe.core.errors.ReadError` naming the item, the
asset, the href, the stated and the real values and what to do. An
explicit ``dtype=`` is an intentional cast: the file is read in its own
type, its nodata pixels become the cube's nodata and the values are cast
(rounded, saturating integer casts, as GDAL's).

A failed remote read also makes GDAL forget what it cached about that URL
(:func:`~terrapipe.io.gdal_cache.forget_remote_file`): GDAL remembers a
failure, and a second attempt on the same URL would otherwise fail at once
with "no such file" instead of the true cause.

:class:`BandsParser` tells odc-stac what each loaded band is: which band of
which asset, its data type and nodata, as :mod:`terrapipe.stac.bands` read
them from the items (odc-stac's own parsing reads band 1 of a multi-band
asset described only by ``eo:bands``, and cannot describe bands whose type
the items do not state).

Examples
--------
>>> names = {"http://h/a/B04.tif": ("S2A_1", "red")}
>>> str(asset_read_error("http://h/a/B04.tif", names, RuntimeError("HTTP response code: 404")))
"cannot read asset 'red' of STAC item 'S2A_1' at 'http://h/a/B04.tif': no such object (HTTP 404); check the URL"
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from terrapipe._compat import odc_loader_rio
from terrapipe.core.errors import ReadError
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url
from terrapipe.stac.hrefs import local_path

if TYPE_CHECKING:
    from terrapipe.io.storage import Storage

__all__ = [
    "BandsParser",
    "asset_read_error",
    "cast_pixels",
    "cast_read",
    "check_band",
    "href_of_gdal",
    "make_naming_driver",
    "naming_reader",
    "refused_credentials",
]

#: ``(asset key, band index from 1) -> (data type, nodata)`` for every band a load reads.
BandTable = Mapping[tuple[str, int], tuple[str | None, float | int | None]]


def asset_read_error(
    uri: str, names: Mapping[str, tuple[str, str]], err: BaseException, storage: Storage | None = None
) -> ReadError:
    """Build the :class:`ReadError` for a failed read of ``uri``.

    Parameters
    ----------
    uri
        The href odc-stac read.
    names
        ``href -> (item id, asset key)``.
    err
        The library's exception.
    storage
        The storage ``uri`` was read through (GDAL's cache of it is dropped in its environment).

    Returns
    -------
    ReadError
        Names the item, the asset and the redacted href, with cause and hint.
    """
    from terrapipe.io.gdal_cache import forget_remote_file
    from terrapipe.io.read_errors import explain

    forget_remote_file(uri, storage)  # GDAL cached the failure: the next try must ask the server again
    cause, hint = explain(refused_credentials(err) or err, uri)
    return ReadError(f"cannot read {_where(uri, names)}: {cause}; {hint}")


#: What S3, Azure and GCS answer (GDAL passes their text on) when the credentials or signature are refused.
_DENIED = (
    "signature we calculated does not match",
    "signaturedoesnotmatch",
    "invalidaccesskeyid",
    "accessdenied",
    "access denied",
    "authenticationfailed",
    "server failed to authenticate",
    "authorizationfailure",
    "authorizationpermissionmismatch",
    "expiredtoken",
    "request has expired",
)


def refused_credentials(err: BaseException) -> BaseException | None:
    """Return an HTTP 403 error for a refused credential, whose text GDAL passes on without the status (else ``None``).

    Examples
    --------
    >>> refused_credentials(RuntimeError("The request signature we calculated does not match the signature you provided"))
    PermissionError('HTTP response code: 403 (the credentials or the signature were refused)')
    >>> refused_credentials(RuntimeError("HTTP response code: 404")) is None
    True
    """
    text = str(err).lower()
    if any(words in text for words in _DENIED):
        return PermissionError("HTTP response code: 403 (the credentials or the signature were refused)")
    return None


def check_band(
    uri: str,
    names: Mapping[str, tuple[str, str]],
    band: int,
    dtypes: list[str],
    nodatas: list[Any],
    cfg: Any,
    *,
    cast: bool,
) -> tuple[Any, Any] | None:
    """Compare band ``band`` of a file (its ``dtypes``/``nodatas``) with the cube's load parameters ``cfg``.

    Returns
    -------
    tuple or None
        ``None`` when odc can read the band as declared; else (an explicit
        ``dtype=`` the file's type does not fit) the load parameters that
        read it in the file's own type, and the file's nodata, for
        :func:`cast_pixels`.

    Raises
    ------
    ReadError
        The file lacks the band; its type does not fit the declared one
        (without ``dtype=``); or it marks nodata pixels that an integer
        cube without nodata would show as valid data.
    """
    where = _where(uri, names)
    if not 1 <= band <= len(dtypes):
        msg = f"cannot read band {band} of {where}: the file has {len(dtypes)} band(s); fix the item's band list"
        raise ReadError(msg)
    real = np.dtype(dtypes[band - 1])
    out = np.dtype(cfg.dtype) if cfg.dtype is not None else real
    file_nodata = nodatas[band - 1]
    if file_nodata is not None and cfg.fill_value is None and out.kind in "iub":
        msg = (
            f"{where} marks nodata={_shown(file_nodata, real)} in band {band}, but the items state no "
            "nodata: its nodata pixels would look like valid data in the cube; fix the item's nodata "
            f"(raster:bands or bands) or pass nodata={_shown(file_nodata, real)}"
        )
        raise ReadError(msg)
    if np.can_cast(real, out, "safe"):
        return None
    stated = getattr(getattr(cfg, "meta", None), "data_type", None) or out.name
    if not cast:
        msg = (
            f"{where}: band {band} is {real.name} but the cube expects {stated} (from the items' metadata, "
            f"or the first item's file): a {out.name} cube cannot hold every {real.name} value; fix the "
            f"item's data_type, or pass dtype={real.name!r} (or dtype={out.name!r} to cast on purpose)"
        )
        raise ReadError(msg)
    raw_cfg = replace(cfg, dtype=real.name, fill_value=None)
    return raw_cfg, file_nodata


def cast_pixels(raw: np.ndarray, out: np.dtype, file_nodata: Any, fill_value: Any) -> np.ndarray:
    """Cast pixels read in their file's type to ``out``: nodata (and NaN) pixels become ``fill_value``.

    Integer targets round and saturate (as GDAL's casts); without a
    ``fill_value`` a float target marks missing pixels NaN (the reader
    refuses an integer target without nodata where pixels are missing).

    Examples
    --------
    >>> cast_pixels(np.array([-9999.0, 300.7, -3.0, np.nan, 7.4, 2.5], "float32"), np.dtype("uint8"), -9999.0, 255)
    array([255, 255,   0, 255,   7,   3], dtype=uint8)
    >>> cast_pixels(np.array([-2.5, 0.5, 40000.0], "float64"), np.dtype("int16"), None, None)
    array([   -3,     1, 32767], dtype=int16)
    """
    missing = np.isnan(raw) if raw.dtype.kind == "f" else np.zeros(raw.shape, dtype=bool)
    if file_nodata is not None and not (isinstance(file_nodata, float) and np.isnan(file_nodata)):
        missing |= raw == file_nodata
    values = raw
    if out.kind in "iu":
        info = np.iinfo(out)
        values = np.clip(np.where(missing, 0, raw), info.min, info.max)
        if raw.dtype.kind == "f":  # halves away from zero, as GDAL rounds (np.rint rounds them to even)
            values = np.sign(values) * np.floor(np.abs(values) + 0.5)
    pixels = values.astype(out)
    if fill_value is not None:
        pixels[missing] = out.type(fill_value)
    elif out.kind == "f":
        pixels[missing] = np.nan
    return pixels


def _where(uri: str, names: Mapping[str, tuple[str, str]]) -> str:
    """``asset 'red' of STAC item 'S2A_1' at 'http://h/a/B04.tif'`` (``scheme://host/path`` only).

    ``uri`` is the href, or the GDAL name it was opened by (``/vsis3/b/k``
    is shown as ``s3://b/k``, ``/vsicurl?...url=`` as the URL).
    """
    href = href_of_gdal(uri)
    found = names.get(uri) or names.get(href) or names.get(local_path(uri))
    what = f"asset {found[1]!r} of STAC item {found[0]!r}" if found else "the asset"
    return f"{what} at {public_url(href)!r}"


def href_of_gdal(uri: str) -> str:
    """Return the URL behind a GDAL name (``/vsis3/b/k`` -> ``s3://b/k``); anything else unchanged.

    Examples
    --------
    >>> href_of_gdal("/vsis3/bucket/a.tif"), href_of_gdal("/vsicurl?empty_dir=yes&url=https%3A%2F%2Fh%2Fa.tif")
    ('s3://bucket/a.tif', 'https://h/a.tif')
    """
    from terrapipe.io.paths import source_name
    from terrapipe.io.raster_array import _storage_url

    return _storage_url(source_name(uri))


def cast_read(
    raw: np.ndarray, cfg: Any, file_nodata: Any, uri: str, names: Mapping[str, tuple[str, str]], band: int
) -> np.ndarray:
    """Cast pixels read in their file's own type to the cube's (``dtype=`` given: see :func:`check_band`).

    Raises
    ------
    ReadError
        NaN (missing) pixels that an integer cube without nodata cannot hold.
    """
    out = np.dtype(cfg.dtype)
    if cfg.fill_value is None and out.kind in "iub" and raw.dtype.kind == "f" and np.isnan(raw).any():
        msg = (
            f"{_where(uri, names)}: band {band} has NaN (missing) pixels, which dtype={out.name!r} "
            "cannot hold, and the cube has no nodata; pass nodata= a value of that type"
        )
        raise ReadError(msg)
    return cast_pixels(raw, out, file_nodata, cfg.fill_value)


def _shown(value: Any, dtype: np.dtype) -> Any:
    """Return a header's nodata as the user would write it (``0`` for an integer band, not ``0.0``)."""
    if isinstance(value, float) and value.is_integer() and dtype.kind in "iu":
        return int(value)
    return value


class BandsParser:
    """odc-stac's STAC metadata parser for a load whose bands terrapipe has described.

    odc-stac's own parser is not asked about the items' bands at all: it
    reads ``eo:bands`` through pystac, which fails on the band lists of
    older items (STAC 1.0.0-beta.2 assets list *indices* into the item's
    ``eo:bands``), and it describes only band 1 of an asset whose bands
    only ``eo:bands`` lists.

    Parameters
    ----------
    inner
        odc-stac's ``StacMDParser`` (for the driver data of each band).
    bands
        ``(asset, index) -> (dtype, nodata)`` of each band the load reads.
    """

    def __init__(self, inner: Any, bands: BandTable) -> None:
        self.inner = inner
        self.bands = dict(bands)

    def extract(self, md: Any) -> Any:
        """Return the metadata of an item: exactly :attr:`bands`, no aliases (the load names them ``asset.N``)."""
        types = require("odc.loader.types", extra="stac", feature="stack_stac")
        bands = {
            (asset, index): types.RasterBandMetadata(data_type=dtype, nodata=nodata)
            for (asset, index), (dtype, nodata) in self.bands.items()
        }
        return types.RasterGroupMetadata(bands=bands, aliases={})

    def driver_data(self, md: Any, band_key: Any) -> Any:
        """Return odc's driver data (``None`` for raster bands)."""
        return self.inner.driver_data(md, band_key)


def make_naming_driver(
    names: Mapping[str, tuple[str, str]],
    md_parser: Any,
    aux_reader: Any,
    *,
    cast: bool = False,
    storage: Storage | None = None,
) -> Any:
    """Return an odc-loader rasterio driver whose reads raise :class:`ReadError` naming the asset.

    Parameters
    ----------
    names
        ``href -> (item id, asset key)`` for every asset of the load.
    md_parser, aux_reader
        odc-stac's STAC metadata parser and auxiliary reader (as odc-stac
        builds them for its default driver).
    cast
        Whether the user asked for the output type (``dtype=``): a file type
        the output cannot hold is then cast, not refused.
    storage
        Where the files live (:class:`terrapipe.Storage`): every open and read
        happens inside ``storage.rasterio_env(url)``, and GDAL's cache of a
        URL is dropped before it is read through another storage than last
        time. ``None``: GDAL's own configuration.

    Returns
    -------
    odc.loader.RioDriver
        The driver (pass it as ``driver=`` to ``odc.stac.load``).
    """
    rio = odc_loader_rio()
    return _driver_class(rio)(dict(names), cast, storage, md_parser=md_parser, aux_reader=aux_reader)


def naming_reader(
    source: Any,
    names: Mapping[str, tuple[str, str]],
    *,
    cast: bool,
    storage: Storage | None,
    cube: dict[str, Any] | None = None,
) -> Any:
    """Return odc's rasterio reader of one band (``source``: odc's ``RasterSource``) with terrapipe's checks.

    For files :mod:`terrapipe.stac.native_read` cannot paste (they need resampling). ``cube``: the
    remote files the cube has read so far (one dict per cube: each is refreshed once, see :func:`_fresh`).
    """
    rio = odc_loader_rio()
    _driver_class(rio)
    return _CLASSES["reader"](source, rio.LocalContext(), dict(names), cast, storage, cube)


_CLASSES: dict[str, type] = {}
_RETRY_KEYS = (  # with terrapipe's other per-open GDAL defaults (never in os.environ: terrapipe.io.gdal_env)
    "GDAL_HTTP_MAX_RETRY",
    "GDAL_HTTP_RETRY_DELAY",
    "GDAL_HTTP_TIMEOUT",
    "GDAL_HTTP_CONNECTTIMEOUT",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES",
    "GDAL_HTTP_MULTIPLEX",
)


def _driver_class(rio: Any) -> type:
    """Build the driver and reader classes once (odc-loader is an optional dependency)."""
    if "driver" in _CLASSES:
        return _CLASSES["driver"]

    class NamingRioReader(rio.RioReader):  # type: ignore[misc,name-defined]
        """odc's reader; a failure names the item and asset."""

        def __init__(
            self,
            src: Any,
            ctx: Any,
            names: Mapping[str, tuple[str, str]],
            cast: bool,
            storage: Storage | None = None,
            cube: dict[str, Any] | None = None,
        ) -> None:
            super().__init__(_gdal_named(src), ctx)
            self._names = names
            self._cast = cast
            self._storage = storage
            self._cube = cube if cube is not None else {}  # the remote files this cube has read (see _fresh)

        def _checked_read(
            self, uri: str, cfg: Any, dst_geobox: Any, *, dst: Any = None, selection: Any = None
        ) -> Any:
            """Read after comparing the file's band with the cube's declaration (see the module doc)."""
            from terrapipe.io.remote_sources import check_remote_sources

            band = int(self._src.band)
            rasterio = require("rasterio", feature="stack_stac")
            # A second open of the header: GDAL's caches serve it (no extra HTTP request for a remote COG).
            with rasterio.open(uri, "r", sharing=False) as header:
                check_remote_sources(href_of_gdal(uri), header)  # a remote VRT naming a local file: refused
                dtypes, nodatas = list(header.dtypes), list(header.nodatavals)
            if band < 1:  # odc's "every band" (extra dims): terrapipe's loads always name one band
                return super().read(cfg, dst_geobox, dst=dst, selection=selection)
            check = check_band(uri, self._names, band, dtypes, nodatas, cfg, cast=self._cast)
            if check is None:
                return super().read(cfg, dst_geobox, dst=dst, selection=selection)
            raw_cfg, file_nodata = check
            roi, raw = super().read(raw_cfg, dst_geobox, selection=selection)
            pixels = cast_read(raw, cfg, file_nodata, uri, self._names, band)
            if dst is None:
                return roi, pixels
            dst[(..., *roi)] = pixels
            return roi, dst[(..., *roi)]

        def read(self, *args: Any, **kwargs: Any) -> Any:
            from terrapipe.core.redact import secrets_of
            from terrapipe.io.gdal_setup import gdal_messages
            from terrapipe.io.raster_array import _reason  # GDAL's logged HTTP status behind "Read failed"
            from terrapipe.io.read_errors import scrub_chain

            uri = str(self._src.uri)
            _fresh(uri, self._storage, self._cube)
            with gdal_messages() as messages:
                try:
                    with _open_env(self._storage, uri):
                        return self._checked_read(uri, *args, **kwargs)
                except ReadError:
                    raise
                except Exception as err:
                    failure, reason = err, _reason(err, messages)
            if reason is failure:
                with _open_env(self._storage, uri):
                    reason = _diagnose(uri, failure)
            if secrets_of(uri):  # GDAL's messages in the chain name the URL
                scrub_chain(failure, uri)
            raise asset_read_error(uri, self._names, reason, self._storage) from failure

    class NamingRioDriver(rio.RioDriver):  # type: ignore[misc,name-defined]
        """odc's rasterio driver with :class:`NamingRioReader`."""

        def __init__(
            self, names: Mapping[str, tuple[str, str]], cast: bool, storage: Storage | None, **kwargs: Any
        ) -> None:
            super().__init__(**kwargs)
            self._names = names
            self._cast = cast
            self._storage = storage
            self._cube: dict[str, Any] = {}  # one per cube (a driver is made per stack_stac call)

        def open(self, src: Any, ctx: Any) -> Any:
            return NamingRioReader(src, ctx, self._names, self._cast, self._storage, self._cube)

        def capture_env(self) -> dict[str, Any]:
            env: dict[str, Any] = super().capture_env()
            if env == dict(getattr(rio, "GDAL_CLOUD_DEFAULTS", {})):
                # odc's defaults (10 retries, doubling from 0.5 s: 8 minutes on a dead server) where
                # nobody configured GDAL: terrapipe's retry policy instead (terrapipe.io.gdal_env).
                from terrapipe.io.gdal_env import gdal_options

                policy = gdal_options()
                env.update({key: policy[key] for key in _RETRY_KEYS})
            return env

        def __reduce__(self) -> Any:
            return (_rebuild, (self._names, self._md_parser, self._aux_reader, self._cast, self._storage))

    _CLASSES["driver"] = NamingRioDriver
    _CLASSES["reader"] = NamingRioReader
    return NamingRioDriver


def _diagnose(uri: str, err: BaseException) -> BaseException:
    """Return why a remote read failed: the error of opening ``uri`` afresh, else ``err``.

    A block read that fails on an HTTP error only says ``Read failed`` /
    ``TIFFReadEncodedTile() failed`` (GDAL logs the status at debug level),
    which reads as a corrupt file. After GDAL forgets the URL, one open asks
    the server again: a server that is failing says so (``HTTP response code:
    503``). Only on failure, and only for remote files.
    """
    from terrapipe.io.gdal_cache import forget_remote_file

    if not forget_remote_file(uri):
        return err
    rasterio = require("rasterio", feature="stack_stac")
    try:
        with rasterio.open(uri):
            return err
    except Exception as opened:  # the server's own answer
        return opened


def _rebuild(
    names: Mapping[str, tuple[str, str]], md_parser: Any, aux_reader: Any, cast: bool, storage: Storage | None
) -> Any:
    return make_naming_driver(names, md_parser, aux_reader, cast=cast, storage=storage)


def _storage_env(storage: Storage | None, uri: str) -> AbstractContextManager[Any]:
    """``storage.rasterio_env(url)`` for a read of ``uri`` (a GDAL name or URL); nothing without a storage.

    Before a remote file is read through another storage than last time,
    GDAL's cache of it is dropped (one storage's blocks never answer another's).
    """
    if storage is None:
        return nullcontext()
    from terrapipe.io.raster_array import RasterSource, _switch_storage

    href = href_of_gdal(uri)
    _switch_storage(RasterSource(path=href, gdal_path=uri, storage=storage))
    return storage.rasterio_env(href)


def _gdal_named(src: Any) -> Any:
    """Return odc's source of a band under the GDAL name terrapipe's readers give an HTTP(S) URL with a query.

    odc-stac opens an href as it is (rasterio makes ``/vsicurl/<URL>`` of a
    URL); a presigned or SAS URL then went to GDAL without what the other
    readers give it (:func:`terrapipe.io.paths.gdal_path`: no ``HEAD``, no
    side-car probes, a netCDF file named for GDAL's netCDF driver), so a
    netCDF-4 file at such a URL was refused. A plain URL is quoted as every
    reader sends it (:func:`terrapipe.io.paths.quote_url`: a space as
    ``%20``); any other href (a local path, a name a ``storage=`` load already
    gave) is left as it is.
    """
    import urllib.parse

    from terrapipe.io.paths import gdal_path, is_http, quote_url

    uri = str(src.uri)
    if not is_http(uri):
        return src
    if not urllib.parse.urlsplit(uri).query:  # a space or non-ASCII letter quoted, as every reader sends it
        quoted = quote_url(uri)
        return src if quoted == uri else replace(src, uri=quoted)
    return replace(src, uri=gdal_path(uri))


#: Remote files a cube read through odc-stac's reader, in this process (oldest first, at most
#: :data:`MAX_READ_BEFORE`): a later cube asks for them anew.
_READ_BEFORE: dict[str, None] = {}
MAX_READ_BEFORE = 65536
_FRESH_LOCK = threading.Lock()


def _fresh(uri: str, storage: Storage | None, cube: dict[str, Any]) -> None:
    """Before a cube's first read of a remote file that an earlier cube read, drop what the process kept of it.

    GDAL's ``/vsicurl/`` cache and the byte layer's kept blocks outlive a
    cube: a file replaced at its URL (an upload to the same key) was read
    by the next cube from the old bytes, silently. The first read of each
    file per cube refreshes them (the byte layer's
    :func:`~terrapipe.io.gdal_opener.current`: one request; GDAL's cache of
    that file dropped); a file no cube read before costs nothing more.
    """
    href = href_of_gdal(uri)
    from terrapipe.io.paths import is_remote

    if not is_remote(href):
        return
    with _FRESH_LOCK:
        if href in cube:
            return
        cube[href] = True
        again = href in _READ_BEFORE
        _READ_BEFORE[href] = None
        while len(_READ_BEFORE) > MAX_READ_BEFORE:  # the oldest go: GDAL's bounded cache dropped them too
            del _READ_BEFORE[next(iter(_READ_BEFORE))]
    if not again:
        return
    from terrapipe.io.gdal_cache import forget_remote_file
    from terrapipe.io.gdal_opener import current, uses_opener
    from terrapipe.io.paths import quote_url

    if uses_opener(href, uri, storage):
        try:
            current(quote_url(href), storage)  # replaces the kept bytes if the file changed
        except Exception:  # the read fails again and names the asset
            return
    else:
        forget_remote_file(href, storage)


def _open_env(storage: Storage | None, uri: str) -> AbstractContextManager[Any]:
    """Return the environment of an open and read of ``uri``: :func:`_storage_env`, plus a ``/vsicurl/<URL>`` name's options."""
    from terrapipe.io.gdal_env import plain_url_env

    return plain_url_env(uri, _storage_env(storage, uri))
