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
"cannot read asset 'red' of STAC item 'S2A_1' at 'http://h/a/B04.tif': HTTP 404 (not found); check the path or URL"
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from terrapipe.core.errors import ReadError
from terrapipe.core.optional import require
from terrapipe.stac.hrefs import local_path
from terrapipe.stac.redact import redact_url

__all__ = ["BandsParser", "asset_read_error", "make_naming_driver"]

#: ``(asset key, band index from 1) -> (data type, nodata)`` for every band a load reads.
BandTable = Mapping[tuple[str, int], tuple[str | None, float | int | None]]


def asset_read_error(uri: str, names: Mapping[str, tuple[str, str]], err: BaseException) -> ReadError:
    """Build the :class:`ReadError` for a failed read of ``uri``.

    Parameters
    ----------
    uri
        The href odc-stac read.
    names
        ``href -> (item id, asset key)``.
    err
        The library's exception.

    Returns
    -------
    ReadError
        Names the item, the asset and the redacted href, with cause and hint.
    """
    from terrapipe.io.gdal_cache import forget_remote_file
    from terrapipe.io.read_errors import explain

    forget_remote_file(uri)  # GDAL cached the failure: the next try must ask the server again
    found = names.get(uri) or names.get(local_path(uri))
    what = f"asset {found[1]!r} of STAC item {found[0]!r}" if found else "the asset"
    cause, hint = explain(err)
    return ReadError(f"cannot read {what} at {redact_url(uri)!r}: {cause}; {hint}")


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


def make_naming_driver(names: Mapping[str, tuple[str, str]], md_parser: Any, aux_reader: Any) -> Any:
    """Return an odc-loader rasterio driver whose reads raise :class:`ReadError` naming the asset.

    Parameters
    ----------
    names
        ``href -> (item id, asset key)`` for every asset of the load.
    md_parser, aux_reader
        odc-stac's STAC metadata parser and auxiliary reader (as odc-stac
        builds them for its default driver).

    Returns
    -------
    odc.loader.RioDriver
        The driver (pass it as ``driver=`` to ``odc.stac.load``).
    """
    rio = require("odc.loader._rio", extra="stac", feature="stack_stac")
    return _driver_class(rio)(dict(names), md_parser=md_parser, aux_reader=aux_reader)


_CLASSES: dict[str, type] = {}
_RETRY_KEYS = ("GDAL_HTTP_MAX_RETRY", "GDAL_HTTP_RETRY_DELAY")


def _driver_class(rio: Any) -> type:
    """Build the driver and reader classes once (odc-loader is an optional dependency)."""
    if "driver" in _CLASSES:
        return _CLASSES["driver"]

    class NamingRioReader(rio.RioReader):  # type: ignore[misc,name-defined]
        """odc's reader; a failure names the item and asset."""

        def __init__(self, src: Any, ctx: Any, names: Mapping[str, tuple[str, str]]) -> None:
            super().__init__(src, ctx)
            self._names = names

        def read(self, *args: Any, **kwargs: Any) -> Any:
            from terrapipe.io.gdal_log import gdal_messages
            from terrapipe.io.raster_array import _reason  # GDAL's logged HTTP status behind "Read failed"
            from terrapipe.io.read_errors import scrub_chain
            from terrapipe.io.redact import secrets_of

            uri = str(self._src.uri)
            with gdal_messages() as messages:
                try:
                    return super().read(*args, **kwargs)
                except ReadError:
                    raise
                except Exception as err:
                    failure, reason = err, _reason(err, messages)
            if reason is failure:
                reason = _diagnose(uri, failure)
            if secrets_of(uri):  # GDAL's messages in the chain name the URL
                scrub_chain(failure, uri)
            raise asset_read_error(uri, self._names, reason) from failure

    class NamingRioDriver(rio.RioDriver):  # type: ignore[misc,name-defined]
        """odc's rasterio driver with :class:`NamingRioReader`."""

        def __init__(self, names: Mapping[str, tuple[str, str]], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._names = names

        def open(self, src: Any, ctx: Any) -> Any:
            return NamingRioReader(src, ctx, self._names)

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
            return (_rebuild, (self._names, self._md_parser, self._aux_reader))

    _CLASSES["driver"] = NamingRioDriver
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


def _rebuild(names: Mapping[str, tuple[str, str]], md_parser: Any, aux_reader: Any) -> Any:
    return make_naming_driver(names, md_parser, aux_reader)
