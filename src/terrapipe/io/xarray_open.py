"""``open_xarray``: any xarray engine for a path, URL or STAC asset (zen3geo's ``read_from_xpystac``).

:func:`open_xarray` picks the engine from the argument, the asset's media
type or the file extension, and routes to terrapipe's own readers where they
add something: ``"zarr"`` to :func:`~terrapipe.io.zarr_reader.open_zarr`
(HTTP store, CRS, chunk encoding), ``"rasterio"`` to
:func:`~terrapipe.io.raster.open_raster` (thread-safe lazy windows). Other
engines (``"netcdf"`` = the first of netcdf4 / h5netcdf / scipy installed,
``"kvikio"`` for GPU reads, any backend xarray knows) go to
``xarray.open_dataset``; an ``http(s)://`` file is then handed to the engine
as a seekable file object reading by HTTP ranges, and a file on a bucket
(``s3://``, ``gs://``, ``az://``, ``abfs://``, or ``http(s)://`` with
``storage=``) as one reading by ranges through the byte layer
(:class:`~terrapipe.io.object_file.ObjectFile`, configured by ``storage=``).
A netCDF-4/HDF5 file there is read by h5netcdf with the types netCDF4's
engine gives it on disk (:mod:`terrapipe.io.netcdf_c_types`: booleans,
compounds, variable-length arrays).

A ``pystac.Asset`` may carry the xarray-assets extension fields
``xarray:open_kwargs`` and ``xarray:storage_options``; explicit keywords win,
and ``storage=`` (:class:`terrapipe.Storage`) replaces the asset's fsspec
``storage_options``.

Examples
--------
>>> import numpy as np, xarray as xr
>>> xr.Dataset({"sst": ("x", np.arange(3.0))}).to_netcdf("sst.nc", engine="scipy")
>>> ds = open_xarray("sst.nc")
>>> ds.sst.values.tolist()
[0.0, 1.0, 2.0]
>>> guess_engine("https://h/cube.zarr"), guess_engine("a.tif"), guess_engine("x", "application/x-netcdf")
('zarr', 'rasterio', 'netcdf')
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import xarray as xr

from terrapipe.core.checks import check_storage
from terrapipe.core.errors import InvalidArgumentError, MissingDependencyError, TerrapipeError
from terrapipe.core.on_error import OnError
from terrapipe.core.pipe import IterDataPipe, register
from terrapipe.core.redact import redact_url
from terrapipe.io.cf_decoding import check_packing, decoding_error, name_decoding_failures
from terrapipe.io.finite_coords import check_coordinates_finite
from terrapipe.io.http_client import HTTPOptions
from terrapipe.io.netcdf_c_strings import strings_as_netcdf_c
from terrapipe.io.netcdf_c_types import NetCDFCBackend, netcdf_c_cannot_read, open_as_netcdf_c
from terrapipe.io.netcdf_classic import ClassicBackend, ClassicHeader, HeaderTooLongError, check_readable
from terrapipe.io.netcdf_header import local_header
from terrapipe.io.object_file import ObjectFile, open_http
from terrapipe.io.object_store import is_object_url
from terrapipe.io.paths import href_of, is_http
from terrapipe.io.raster import open_raster
from terrapipe.io.read_errors import read_error
from terrapipe.io.reader_stage import ReaderStage
from terrapipe.io.stamped_file import StampedBackend, file_stamp
from terrapipe.io.storage import Storage
from terrapipe.io.zarr_reader import open_zarr

__all__ = ["OpenXarray", "check_coordinates_finite", "guess_engine", "open_xarray"]

_NETCDF_ENGINES = ("netcdf4", "h5netcdf", "scipy")
#: The keywords that open times xarray cannot decode, as messages name them.
_RAW_TIMES = "decode_times=False (or use_cftime=True for a calendar numpy cannot hold)"
#: Keywords kept out of what the stage shows and describes (they may hold credentials).
_SECRET_KWARGS = ("storage", "storage_options", "backend_kwargs")
_INSTALL_HINT = {
    "netcdf4": "pip install netCDF4",
    "h5netcdf": "pip install h5netcdf h5py",
    "scipy": "pip install scipy",
    "kvikio": "pip install 'terrapipe[gpu]' cupy-xarray (needs a CUDA GPU)",
}
_EXTENSIONS = {
    ".zarr": "zarr",
    ".tif": "rasterio",
    ".tiff": "rasterio",
    ".jp2": "rasterio",
    ".vrt": "rasterio",
    ".nc": "netcdf",
    ".nc4": "netcdf",
    ".cdf": "netcdf",
    ".h5": "netcdf",
    ".hdf5": "netcdf",
}


def guess_engine(href: str, media_type: str | None = None) -> str | None:
    """Guess the engine from a media type or the file extension (``None`` if unknown)."""
    media = (media_type or "").lower()
    if "zarr" in media:
        return "zarr"
    if "tiff" in media or "jp2" in media:
        return "rasterio"
    if "netcdf" in media or "hdf" in media:
        return "netcdf"
    path = href.split("?", 1)[0].rstrip("/").lower()
    for ext, engine in _EXTENSIONS.items():
        if path.endswith(ext):
            return engine
    return None


def _usable_engines() -> set[str]:
    """Return xarray's engines that can open a file here.

    xarray lists ``h5netcdf`` whenever the h5netcdf package imports, but since
    h5netcdf 1.8 its HDF5 library, h5py, is optional: without it every open
    is a bare ``ImportError`` from inside h5netcdf. That engine counts only
    with h5py installed.
    """
    engines = set(xr.backends.list_engines())
    if "h5netcdf" in engines and importlib.util.find_spec("h5py") is None:
        engines.discard("h5netcdf")
    return engines


def _netcdf_engine() -> str:
    available = _usable_engines()
    for engine in _NETCDF_ENGINES:
        if engine in available:
            return engine
    msg = "open_xarray(engine='netcdf') needs netCDF4, h5netcdf (with h5py) or scipy; install one (pip install h5netcdf h5py)"
    raise MissingDependencyError(msg)


class _LocalClassic(NamedTuple):
    """What a local file's first bytes say: read once per open (engine choice and checks)."""

    version: int  # 1, 2, 5: netCDF-3 (by its first bytes); 0: another format (HDF5) or unread
    header: ClassicHeader | None  # None: not netCDF-3, or its header not read (longer than the cap)
    problem: str | None  # why it cannot be read whole and right (malformed, truncated, streamed), else None
    stamp: tuple[int, ...] | None = None  # the file's identity before its header was read


def _local_classic(path: str) -> _LocalClassic:
    """Read and parse a local file's netCDF-3 header once (:func:`~terrapipe.io.netcdf_header.local_header`).

    A header :func:`~terrapipe.io.netcdf_classic.parse_classic` finds malformed is refused as at a URL:
    the engines read some of those lies without a word (scipy the bytes a misplaced variable's offset
    names, both one of two variables of the same name).
    """
    try:
        stamp = file_stamp(path)
        with open(path, "rb") as file:
            magic = file.read(4)
        found = local_header(path)
    except HeaderTooLongError:  # not read: the engine reads it
        return _LocalClassic(magic[3], None, None)
    except OSError:  # unreadable: the engine's open names it
        return _LocalClassic(0, None, None)
    except ValueError as err:  # cut short, or malformed
        return _LocalClassic(magic[3], None, str(err))
    if found is None:
        return _LocalClassic(0, None, None, stamp)
    size, header = found
    try:
        check_readable(header, size)
    except ValueError as err:
        return _LocalClassic(header.version, header, str(err))
    return _LocalClassic(header.version, header, None, stamp)


def _local_netcdf_engine(local: _LocalClassic) -> str:
    """Return the engine for a local netCDF file: scipy for netCDF-3 where installed, else the first one.

    netCDF4's engine (libnetcdf) opens a truncated netCDF-3 file without an
    error and reads the missing values as zeros (a file cut at half its size
    gives a variable whose second half is 0); scipy refuses it. HDF5
    (netCDF-4) files stay with the first engine installed: HDF5 itself
    refuses a truncated file. CDF-5 too: scipy cannot read it.

    One netCDF-3 layout scipy misreads: a single record variable whose record
    is not a multiple of four bytes is stored unpadded (netCDF-C), and scipy
    strides it as padded ("cannot reshape"); such a file goes to the first
    engine (:func:`_check_local` still refuses it truncated). Names beyond
    ASCII, UTF-8 as netCDF says, scipy reads as latin1 ('tempÃ©rature'):
    such a file goes to netCDF4's engine where installed.
    """
    engines = _usable_engines()
    header = local.header
    utf8_names = header is not None and header.utf8_names and "netcdf4" in engines
    if (
        local.version in (1, 2)
        and "scipy" in engines
        and not _unpadded_single_record(header)
        and not utf8_names
    ):
        return "scipy"
    return _netcdf_engine()


def _unpadded_single_record(header: ClassicHeader | None) -> bool:
    """Whether a netCDF-3 header has one record variable whose records are stored unpadded (see above)."""
    if header is None:  # a malformed header: scipy says what it says
        return False
    records = [var for var in header.variables.values() if var.record]
    return header.records > 0 and len(records) == 1 and records[0].item_bytes % 4 != 0


def _check_local(path: str, engine: str, local: _LocalClassic) -> None:
    """Refuse a local netCDF-3 file shorter than its header says (netCDF4's engine reads it as zeros), or streamed."""
    if local.problem is not None:
        cut = "truncated" in local.problem
        hint = (
            "download or copy it again" if cut else "the file is malformed: ask its producer for a good copy"
        )
        raise read_error(path, f"cannot open ({engine})", cause=local.problem, hint=hint)


def _remote_netcdf_engine(target: Any, href: str) -> str:
    """Return the engine that reads a remote netCDF file from a file object, by its first bytes.

    netCDF-3 (``CDF``) is scipy's (read by :class:`~terrapipe.io.netcdf_classic.ClassicBackend`,
    lazily by ranges, as scipy reads it: scipy reads every value at the open from a file object, and
    needs not be installed; CDF-5, which scipy cannot read, as netCDF4 reads it on disk),
    netCDF-4/HDF5 h5netcdf's. netCDF4's engine
    is never chosen for a remote file, even where it is installed (it is the
    first choice locally): it takes only a path, and would read an
    ``https://`` one as an OPeNDAP endpoint, without terrapipe's time-outs
    and size caps, and a bucket URL not at all.
    """
    try:
        head = target.read(8)
        target.seek(0)
    except TerrapipeError:
        raise
    except (OSError, ValueError) as err:
        raise read_error(href, "cannot open (netcdf)", err) from err
    if bytes(head).lstrip().startswith(b"<"):  # no netCDF/HDF5 file starts so: a web page answered
        cause = (
            "the server answered with an HTML page, not a netCDF/HDF5 file (a sign-in or error page, or a page "
            "it serves for missing files)"
        )
        hint = "check the URL and the credentials; open the URL in a browser to see the page"
        raise read_error(href, "cannot open (netcdf)", cause=cause, hint=hint)
    engine = "scipy" if bytes(head[:3]) == b"CDF" else "h5netcdf"
    if engine == "h5netcdf" and engine not in _usable_engines():  # netCDF-3: netcdf_classic, no scipy needed
        msg = (
            f"open_xarray({redact_url(href)!r}): a netCDF-4/HDF5 file over the network is "
            f"read with xarray's {engine!r} engine (netCDF4's reads only paths); {_INSTALL_HINT[engine]}"
        )
        raise MissingDependencyError(msg)
    return engine


def _check_engine(engine: str) -> None:
    if engine not in _usable_engines():
        hint = _INSTALL_HINT.get(engine, f"install the package that provides the xarray engine {engine!r}")
        raise MissingDependencyError(f"open_xarray(engine={engine!r}): no such xarray engine here; {hint}")


def _check_keywords(reader: Any, engine: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse keywords ``reader`` does not take (else a bare ``TypeError`` from inside the call)."""
    parameters = inspect.signature(reader).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        known = sorted(name for name in parameters if name not in ("path", "source", "chunks"))
        msg = f"open_xarray(engine={engine!r}) does not take {unknown}; it takes {known}"
        raise InvalidArgumentError(msg)


def _asset_fields(element: Any) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    media_type = getattr(element, "media_type", None)
    extra = getattr(element, "extra_fields", None) or {}
    open_kwargs = dict(extra.get("xarray:open_kwargs") or {})
    storage_options = dict(extra.get("xarray:storage_options") or {})
    return media_type, open_kwargs, storage_options


def open_xarray(
    source: Any,
    *,
    engine: str | None = None,
    chunks: Any = None,
    http_options: HTTPOptions | None = None,
    **open_kwargs: Any,
) -> xr.Dataset | xr.DataArray:
    """Open a path, URL or STAC asset with an xarray engine.

    Parameters
    ----------
    source
        Local path, URL, or a ``pystac.Asset`` (anything with ``href``).
    engine
        ``"zarr"``, ``"rasterio"``, ``"netcdf"``, ``"kvikio"``, or any engine
        in ``xarray.backends.list_engines()``; ``None``: guessed from the
        asset's media type or the extension.
    chunks
        Passed on (``None``: lazily indexed, no dask).
    http_options
        Time-out and retries for netCDF/HDF5 files over HTTP.
    **open_kwargs
        Passed to the reader (``open_zarr``, ``open_raster`` or
        ``xarray.open_dataset``).

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        A DataArray for ``"rasterio"`` (see :func:`~terrapipe.io.raster.open_raster`)
        or a single Zarr variable; a Dataset otherwise.

    Raises
    ------
    ReadError
        When the file cannot be read, or its spatial coordinates or
        geotransform hold NaN or infinity; at a later read, when a local
        netCDF/HDF5 file was changed, replaced or removed since the open
        (:mod:`terrapipe.io.stamped_file`: never its new bytes, nor SIGBUS).
    InvalidArgumentError
        When no engine is given and none can be guessed.
    MissingDependencyError
        When the engine's package is not installed.
    """
    href = href_of(source)
    media_type, asset_kwargs, storage_options = _asset_fields(source)
    kwargs = {**asset_kwargs, **open_kwargs}
    engine = engine or kwargs.pop("engine", None) or guess_engine(href, media_type)
    if engine is None:
        msg = f"open_xarray cannot guess the engine of {href!r} (media type {media_type!r}); pass engine=..."
        raise InvalidArgumentError(msg)
    if engine == "zarr":
        # the asset's fsspec options, unless the caller chose how to reach the store (storage=)
        if storage_options and "storage_options" not in kwargs and kwargs.get("storage") is None:
            kwargs["storage_options"] = storage_options
        _check_keywords(open_zarr, engine, kwargs)
        opened: xr.Dataset | xr.DataArray = open_zarr(href, chunks=chunks, **kwargs)
        if isinstance(opened, xr.DataArray):
            return check_coordinates_finite(opened, href)
        return check_coordinates_finite(opened, href)
    if engine == "rasterio":
        _check_keywords(open_raster, engine, kwargs)
        return open_raster(href, chunks=chunks, **kwargs)  # checks its geotransform itself
    storage = check_storage(kwargs.pop("storage", None))  # not an xarray keyword: how to reach the file
    through_byte_layer = is_object_url(href) or (storage is not None and is_http(href))
    remote = through_byte_layer or is_http(href)
    asked_netcdf = engine == "netcdf"
    local = None
    if not remote and engine in ("netcdf", *_NETCDF_ENGINES) and os.path.isfile(href):
        local = _local_classic(href)  # the header, read once: the engine's choice and the checks
    if engine == "netcdf" and not remote:
        engine = _local_netcdf_engine(local or _LocalClassic(0, None, None))
    if engine != "netcdf":
        _check_engine(engine)
    inner: str | type = engine  # what reads a local file under the stamp
    if local is not None and local.version == 0 and engine == "netcdf4":
        cannot = netcdf_c_cannot_read(href)
        # netCDF-C fails or crashes on it: read as at a URL (h5netcdf, netCDF-C's types)
        if cannot is not None:
            if not asked_netcdf or "h5netcdf" not in _usable_engines():
                cause = f"its dataset {cannot[0]!r} is {cannot[1]}"
                hint = "open it with engine='h5netcdf' (pip install h5netcdf h5py)"
                raise read_error(href, "cannot open (netcdf4)", cause=cause, hint=hint)
            engine, inner = "h5netcdf", NetCDFCBackend
            kwargs.setdefault("phony_dims", "sort")
    target: Any = href
    if remote and engine in ("netcdf", "scipy", "h5netcdf"):
        # ranged reads through the byte layer (configured by storage), or terrapipe's HTTP file
        target = ObjectFile(href, storage) if through_byte_layer else open_http(href, http_options)
        if engine == "netcdf":
            engine = _remote_netcdf_engine(target, href)
    elif "://" not in href and not os.path.exists(href):
        raise read_error(href, f"cannot open ({engine})", FileNotFoundError(href))
    elif local is not None:
        _check_local(href, engine, local)
    if remote and asked_netcdf and engine == "h5netcdf":
        # netCDF-C's names for the dimensions of plain HDF5 datasets (h5netcdf's default, "access", differs)
        kwargs.setdefault("phony_dims", "sort")
    stamped = "://" not in href and engine in _NETCDF_ENGINES  # its values read only while it is unchanged
    try:
        if stamped:
            checked = None if local is None else local.stamp  # the file whose header was checked
            ds = xr.open_dataset(
                target,
                engine=StampedBackend,
                chunks=chunks,
                inner_engine=inner,
                checked_stamp=checked,
                **kwargs,
            )
        elif remote and engine == "scipy":  # netCDF-3 read lazily by ranges: scipy reads it all at the open
            ds = xr.open_dataset(target, engine=ClassicBackend, chunks=chunks, **kwargs)
        elif remote and engine == "h5netcdf":  # netCDF-C's types where netCDF4's engine reads it on disk
            as_c = asked_netcdf and "netcdf4" in _usable_engines()
            ds = open_as_netcdf_c(target, chunks=chunks, netcdf_c=as_c, **kwargs)
        else:
            ds = xr.open_dataset(target, engine=engine, chunks=chunks, **kwargs)
    except TerrapipeError:
        raise
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, ArithmeticError) as err:
        decoding = decoding_error(
            href,
            f"cannot open ({engine})",
            err,
            time_keywords=_RAW_TIMES,
            value_keywords="mask_and_scale=False (or decode_cf=False)",
        )
        raise (decoding or read_error(href, f"cannot open ({engine})", err)) from err
    if (
        (remote or inner is NetCDFCBackend)
        and asked_netcdf
        and engine == "h5netcdf"
        and "netcdf4" in _usable_engines()
    ):
        ds = strings_as_netcdf_c(ds, href)
    check_packing(ds, href, f"cannot open ({engine})", value_keywords="mask_and_scale=False")
    name_decoding_failures(ds, href, time_keywords=_RAW_TIMES, value_keywords="mask_and_scale=False")
    check_coordinates_finite(ds, href)
    ds.encoding["source"] = href
    for var in ds.variables.values():
        var.encoding["source"] = href
        chunk_sizes = var.encoding.get("chunksizes") or var.encoding.get("chunks")
        if "preferred_chunks" not in var.encoding and isinstance(chunk_sizes, tuple):
            var.encoding["preferred_chunks"] = dict(zip(var.dims, chunk_sizes, strict=False))
    return ds


@register("open_xarray")
class OpenXarray(ReaderStage[xr.Dataset | xr.DataArray]):
    """Open each path, URL or STAC asset of ``source`` with xarray (see :func:`open_xarray`).

    Parameters
    ----------
    source
        A pipe of paths, URLs or ``pystac.Asset`` objects.
    engine, chunks, http_options, **open_kwargs
        As in :func:`open_xarray` (``storage=`` reaches ``open_zarr`` and
        ``open_raster``). ``storage``, ``storage_options`` and
        ``backend_kwargs`` never show in the stage's ``repr`` or in the text
        torch adds to errors raised through it.
    on_error
        ``"raise"``, ``"skip"`` or ``"warn"`` (skips are counted in ``stats.skipped``).

    Examples
    --------
    >>> import numpy as np, xarray as xr, terrapipe as tp
    >>> xr.Dataset({"v": ("t", np.arange(2.0))}).to_netcdf("v.nc", engine="scipy")
    >>> [ds.v.size for ds in tp.from_items(["v.nc", "gone.nc"]).open_xarray(on_error="skip")]
    [2]
    """

    def __init__(
        self,
        source: IterDataPipe[Any],
        *,
        engine: str | None = None,
        chunks: Any = None,
        http_options: HTTPOptions | None = None,
        on_error: OnError = "raise",
        **open_kwargs: Any,
    ) -> None:
        super().__init__(source, on_error=on_error)
        if engine is not None and not isinstance(engine, str):
            raise InvalidArgumentError(f"engine must be a name or None, got {engine!r}")
        self.engine = engine
        self.chunks = chunks
        self.http_options = http_options
        # Not named after the parameter: torch shows attributes named after parameters in the text it
        # adds to every error, and storage_options/storage may hold secrets. ``reader_options`` (what
        # cache keys describe) holds the rest, and where ``storage`` points.
        self._reader_kwargs: Mapping[str, Any] = dict(open_kwargs)
        self.reader_options = {k: v for k, v in open_kwargs.items() if k not in _SECRET_KWARGS}
        storage = open_kwargs.get("storage")
        if isinstance(storage, Storage):
            from terrapipe.io.raster import storage_config

            self.reader_options["storage"] = storage_config(storage)

    def open_one(self, element: Any) -> xr.Dataset | xr.DataArray:
        """Open one element with this stage's options."""
        return open_xarray(
            element,
            engine=self.engine,
            chunks=self.chunks,
            http_options=self.http_options,
            **self._reader_kwargs,
        )
