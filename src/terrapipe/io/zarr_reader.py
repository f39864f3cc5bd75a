"""``read_zarr``: a Zarr store (v3 or v2), local or over HTTP, to a lazy Dataset.

:func:`open_zarr` opens one store; the :class:`ReadZarr` stage (functional
name ``read_zarr``) does it for each element of a pipe. Without ``chunks`` the
variables are lazily indexed (no dask): indexing reads the chunks that hold
the selection. Each variable keeps its storage chunks in
``encoding["preferred_chunks"]`` (``{dim: size}``) and ``encoding["chunks"]``,
and the store in ``encoding["source"]``. The CRS, where the store records one
(a CF ``grid_mapping`` variable or a ``spatial_ref`` coordinate), is set the
rioxarray way (``ds.rio.crs``).

Where the store lives decides how it is read:

* ``s3://``, ``gs://``, ``az://``/``abfs://`` URLs, ``http(s)://`` URLs given
  with ``storage=`` and Azure SAS URLs: zarr 3's ``zarr.storage.ObjectStore``
  on an obstore store made by :meth:`tp.Storage.store_for
  <terrapipe.io.storage.Storage.store_for>` (:mod:`terrapipe.io.zarr_object_store`),
  configured by ``storage=`` (default ``tp.Storage.from_env()``). This is the
  preferred way: the byte layer of every other reader, one configuration, no
  s3fs/adlfs/gcsfs needed. Zarr v2 and v3, consolidated or not (listing a
  bucket replaces consolidated metadata; an HTTP server cannot list, so over
  HTTP the store must be consolidated). Failures are
  :class:`~terrapipe.core.errors.ReadError` naming ``scheme://host/path``
  (access denied, no such bucket, a time-out), never the credentials.
* ``storage_options=`` (fsspec's own options) or a URL obstore has no store
  for (``memory://``, ``zip::...``, ``reference://``): zarr's
  ``FsspecStore``, for what obstore cannot serve. Not with ``storage=``.
* ``http(s)://`` URLs without ``storage=``: :class:`~terrapipe.io.http_store.HTTPStore`
  (consolidated metadata only). Each HTTP request has an overall ``deadline``
  (default 120 s: connection, retries and the whole answer, so a server
  trickling bytes cannot hold a read) and a ``max_body`` cap on its answer
  (default 256 MiB, counted after decompression).
* A presigned S3 or GCS URL signs one object, and a Zarr store is many: it
  is refused with an :class:`~terrapipe.core.errors.InvalidArgumentError`
  saying to pass credentials with ``storage=`` instead.

Neither ``storage`` nor ``storage_options`` ever appears in the stage's
``repr`` or in the message torch adds to an error raised through it
("This exception is thrown by __iter__ of ReadZarr(...)"): the stage keeps
them under private names and shows ``storage`` through
:class:`~terrapipe.io.storage.Storage`'s own ``repr`` (endpoints and which
kinds of credential are set, never their values).

The spatial coordinates of what is opened (``x``/``y``, ``lon``/``lat``, and
a ``spatial_ref`` ``GeoTransform``) must be finite: NaN or infinity there is a
:class:`~terrapipe.core.errors.ReadError` naming the store (they are in
memory once opened; no data is read for the check).

Needs the ``zarr`` extra (``pip install 'terrapipe[zarr]'``).

Examples
--------
>>> import numpy as np, xarray as xr
>>> cube = xr.Dataset(
...     {"t2m": (("time", "y", "x"), np.arange(24, dtype="float32").reshape(2, 3, 4))},
...     coords={"time": [0, 1], "y": [30.0, 20.0, 10.0], "x": [0.0, 10.0, 20.0, 30.0]},
... )
>>> _ = cube.to_zarr("cube.zarr", zarr_format=3, encoding={"t2m": {"chunks": (1, 3, 2)}})
>>> t2m = open_zarr("cube.zarr", variables="t2m")
>>> t2m.dims, t2m.encoding["preferred_chunks"]
(('time', 'y', 'x'), {'time': 1, 'y': 3, 'x': 2})
>>> float(t2m.isel(time=1, y=0, x=3))
15.0
>>> import terrapipe as tp
>>> [sorted(ds.data_vars) for ds in tp.from_items(["cube.zarr"]).read_zarr()]
[['t2m']]
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import threading
from collections.abc import Callable, Hashable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import xarray as xr

from terrapipe.core.checks import check_storage
from terrapipe.core.crs import same_crs
from terrapipe.core.errors import InvalidArgumentError, MissingDependencyError, TerrapipeError
from terrapipe.core.on_error import OnError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe, register
from terrapipe.core.redact import public_url
from terrapipe.core.warning_filters import ignore_once
from terrapipe.io.cf_decoding import check_packing, decoding_error, name_decoding_failures
from terrapipe.io.finite_coords import check_coordinates_finite
from terrapipe.io.http_reads import DEFAULT_DEADLINE, DEFAULT_MAX_BODY
from terrapipe.io.paths import as_path_string, is_http
from terrapipe.io.read_errors import read_error
from terrapipe.io.reader_stage import ReaderStage
from terrapipe.io.storage import Storage

__all__ = ["DeviceReader", "ReadZarr", "open_zarr", "register_device_reader", "zarr_store_for"]

#: xarray's warning when ``consolidated=None`` falls back to listing the store
#: (a narrow filter installed once: ``catch_warnings`` is not thread-safe).
_NOT_CONSOLIDATED = r"Failed to open Zarr store with consolidated metadata"


@dataclass(frozen=True)
class DeviceReader:
    """How ``read_zarr(device=...)`` reads onto a device (:func:`register_device_reader`).

    Attributes
    ----------
    check
        ``check(device)``: the device to read into, ``None`` for an ordinary
        host read; raises for a device that cannot be read into.
    open
        ``open(source, device=..., group=..., variables=..., consolidated=...,
        decode_times=..., storage_options=..., timeout=..., retries=...,
        deadline=..., max_body=...)``: the store opened with its data
        variables reading into ``device``.
    """

    check: Callable[[Any], Any]
    open: Callable[..., xr.Dataset | xr.DataArray]


#: The device reader, registered by the GPU layer (``terrapipe.gpu.zarr_gpu``) when it loads; ``io``
#: never imports ``gpu`` (a layer above it).
_DEVICE_READER: dict[str, DeviceReader] = {}


def register_device_reader(reader: DeviceReader) -> None:
    """Make ``reader`` the way ``read_zarr(device=...)`` reads onto a device.

    :mod:`terrapipe.gpu.zarr_gpu` registers its reader when it is imported
    (``import terrapipe`` does); a later call replaces it.

    Examples
    --------
    >>> import terrapipe as tp
    >>> _DEVICE_READER["reader"].check(None) is None  # terrapipe.gpu's, registered by importing terrapipe
    True
    """
    _DEVICE_READER["reader"] = reader


def _device_reader() -> DeviceReader:
    found = _DEVICE_READER.get("reader")
    if found is None:
        raise MissingDependencyError(
            "read_zarr(device=...) reads through terrapipe.gpu, which is not loaded: import terrapipe.gpu "
            "(import terrapipe does), or leave device=None"
        )
    return found


def _check_variables(variables: str | Sequence[str] | None) -> str | tuple[str, ...] | None:
    if variables is None or isinstance(variables, str):
        return variables
    if not isinstance(variables, Sequence | set | frozenset):
        raise InvalidArgumentError(
            f"variables must be a name or a non-empty list of names, got {type(variables).__name__}: {variables!r}"
        )
    items = tuple(variables)
    if not items or not all(isinstance(v, str) for v in items):
        raise InvalidArgumentError(
            f"variables must be a name or a non-empty list of names, got {variables!r}"
        )
    return items


def _check_storage_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):  # the value is not shown: it may hold a secret
        msg = f"storage_options must be a mapping (fsspec options) or None, got a {type(options).__name__}"
        raise InvalidArgumentError(msg)
    return dict(options)


def _check_storage(storage: Storage | None, storage_options: Mapping[str, Any] | None) -> Storage | None:
    storage = check_storage(storage)
    if storage is not None and storage_options:
        raise InvalidArgumentError(
            "pass storage= (tp.Storage, read through obstore) or storage_options= (fsspec's options), not both"
        )
    return storage


def _check_http_limits(deadline: Any, max_body: Any) -> tuple[float, int]:
    """Return ``(deadline, max_body)`` as numbers, or refuse what is not a positive finite number."""

    def positive(name: str, value: Any) -> float:
        number = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
        if not (math.isfinite(number) and number > 0):
            msg = f"{name} must be a positive finite number, got {type(value).__name__}: {value!r}"
            raise InvalidArgumentError(msg)
        return number

    checked_deadline = positive("deadline (seconds)", deadline)
    checked_body = positive("max_body (bytes)", max_body)
    if not checked_body.is_integer():
        raise InvalidArgumentError(f"max_body (bytes) must be a whole number, got {max_body!r}")
    return checked_deadline, int(checked_body)


def zarr_store_for(
    source: Any,
    timeout: float,
    retries: int,
    *,
    deadline: float = DEFAULT_DEADLINE,
    max_body: int = DEFAULT_MAX_BODY,
    storage: Storage | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[Any, str]:
    """Return ``(what xarray opens, the name to show)`` for a Zarr source.

    An object-store URL (``s3://``, ``gs://``, ``az://``, ``abfs://``), an
    HTTP(S) URL with ``storage`` or an Azure SAS URL becomes a zarr
    ``ObjectStore`` on obstore (:func:`~terrapipe.io.zarr_object_store.zarr_object_store`,
    each request under ``storage.deadline`` or else ``deadline`` seconds, a
    whole object under ``storage.max_bytes`` or else ``max_body`` bytes),
    unless ``storage_options`` (fsspec) are given. Another HTTP(S) URL
    becomes an :class:`~terrapipe.io.http_store.HTTPStore` (bounded retries,
    each request under ``deadline`` seconds in all and its answer under
    ``max_body`` bytes, credentials kept out of its ``str``/``repr``); a local
    path or another URL is passed on as text; a zarr ``Store`` or a mapping
    as it is.

    Raises
    ------
    ReadError
        For a local path that does not exist.
    InvalidArgumentError
        For anything else.
    """
    if isinstance(source, (str, os.PathLike)):
        text = as_path_string(source)
        from terrapipe.io.zarr_object_store import served_by_obstore, zarr_object_store

        if not storage_options and served_by_obstore(text, storage):
            config = storage if storage is not None else Storage.from_env()
            store = zarr_object_store(
                text,
                config,
                deadline=config.deadline if config.deadline is not None else deadline,
                max_bytes=config.max_bytes if config.max_bytes is not None else max_body,
            )
            return store, text
        if is_http(text):
            from terrapipe.io.http_store import HTTPStore

            store = HTTPStore(text, timeout=timeout, retries=retries, deadline=deadline, max_body=max_body)
            return store, text
        if "://" not in text and not os.path.exists(text):
            raise read_error(text, "cannot open Zarr store", FileNotFoundError(text))
        return text, text
    store_type = require("zarr.abc.store", extra="zarr", feature="read_zarr").Store
    if isinstance(source, (store_type, MutableMapping)):
        return source, str(source)
    msg = f"read_zarr takes a path, URL, zarr Store or mapping, got {type(source).__name__}: {source!r}"
    raise InvalidArgumentError(msg)


def _cannot_list(store: Any, source: Any) -> bool:
    """Whether the store is an HTTP server (it cannot list a folder: consolidated metadata is needed)."""
    if not is_http(as_path_string(source)):
        return False
    inner = getattr(store, "store", None)  # a zarr ObjectStore: over Azure (a SAS URL) it can list
    return inner is None or type(inner).__name__ == "HTTPStore"


def _open(
    store: Any,
    name: str,
    *,
    group: str | None,
    consolidated: bool | None,
    chunks: Any,
    cache: bool,
    decode_times: bool,
    storage_options: Mapping[str, Any] | None,
) -> xr.Dataset:
    kwargs: dict[str, Any] = {}
    if storage_options:
        kwargs["storage_options"] = dict(storage_options)
    # consolidated=None on a store without consolidated metadata: the fallback to
    # listing is what the caller asked for. xarray attributes the warning to its
    # caller (this module), so the filter leaves other callers' warning alone.
    ignore_once(_NOT_CONSOLIDATED, RuntimeWarning, module=r"terrapipe\.io\.zarr_reader\Z")
    if isinstance(store, str) and group is None and not storage_options:
        from terrapipe.io.zarr_local_group import local_zarr_store

        given = local_zarr_store(store, consolidated=consolidated)
        if given is not None:  # a local folder: its metadata read here, not through zarr's event loop
            kwargs["store"] = given
    try:
        return xr.open_dataset(
            store,
            engine=_checked_backend(name),
            group=group,
            consolidated=consolidated,
            chunks=chunks,
            cache=cache,
            decode_times=decode_times,
            decode_coords="all",
            **kwargs,
        )
    except TerrapipeError:
        raise
    except ImportError as err:  # fsspec names the package its protocol needs ("Install s3fs to access S3")
        msg = (
            f"cannot open Zarr store {public_url(name)!r}: {err}; install the package it names "
            "(s3fs for s3://, adlfs for az://, gcsfs for gs://), or read the store through a zarr "
            "ObjectStore made with terrapipe's byte layer (pip install 'terrapipe[cloud]')"
        )
        raise MissingDependencyError(msg) from err
    except NotImplementedError as err:
        raise read_error(
            name,
            "cannot open Zarr store",
            cause="it has no consolidated metadata, and HTTP cannot list its folders",
            hint="consolidate it (zarr.consolidate_metadata(store)) where it is written",
        ) from err
    except (OSError, KeyError, ValueError, TypeError, LookupError, ArithmeticError) as err:
        text = str(err)
        decoding = decoding_error(name, "cannot open Zarr store", err, time_keywords="decode_times=False")
        if decoding is not None:  # the store is fine: its attributes cannot be decoded
            raise decoding from err
        if isinstance(err, ValueError) and text.startswith("zip() argument"):  # xarray zips names with shape
            cause = (
                f"an array's dimension names (_ARRAY_DIMENSIONS) are not as many as its dimensions ({text})"
            )
            hint = "fix the _ARRAY_DIMENSIONS attribute of the array in the store (one name per dimension)"
            raise read_error(name, "cannot open Zarr store", err, cause=cause, hint=hint) from err
        if "consolidated" in text.lower() and consolidated:
            cause = "it has no consolidated metadata"
            hint = (
                "consolidate it (zarr.consolidate_metadata(store)), or consolidated=False for a local store"
            )
            raise read_error(name, "cannot open Zarr store", err, cause=cause, hint=hint) from err
        if group is not None and ("group" in text.lower() or isinstance(err, (FileNotFoundError, KeyError))):
            cause = f"group {group!r} not found ({text})"
            raise read_error(
                name, "cannot open Zarr store", err, cause=cause, hint="check the group name"
            ) from err
        if isinstance(err, FileNotFoundError) or "not found" in text.lower() or "no such" in text.lower():
            cause = f"no Zarr group or array found there ({text})"
            raise read_error(
                name, "cannot open Zarr store", err, cause=cause, hint="check the path or URL"
            ) from err
        raise read_error(name, "cannot open Zarr store", err) from err


def _prefetched(
    store: Any,
    group: str | None,
    consolidated: bool | None,
    read_ahead: bool,
    variables: Sequence[str] | None,
) -> Any:
    """Return a store serving what opening reads, fetched in a few concurrent rounds; ``None`` if local.

    For the remote stores :func:`zarr_store_for` makes (HTTP, buckets): the
    format probes, metadata and index coordinates are requests one after
    another otherwise (:mod:`terrapipe.io.zarr_prefetch`). With
    ``read_ahead``, the first chunks of ``variables`` are read meanwhile
    (:mod:`terrapipe.io.zarr_read_ahead`).
    """
    if isinstance(store, str):
        return None
    from terrapipe.io.zarr_prefetch import prefetched_store

    return prefetched_store(store, group, consolidated, read_ahead=read_ahead, variables=variables)


#: The name errors show for the store being opened on this thread (:func:`_checked_backend`'s backend reads it).
_OPENING = threading.local()


def _checked_backend(name: str) -> type:
    """Return xarray's Zarr backend, with every variable reading through :class:`~terrapipe.io.zarr_chunks.CheckedZarrArrayWrapper`.

    Installed before xarray adds dask or memory caching, so each of those reads
    through the check too; ``name`` is the store as errors show it (kept for
    this thread until the next open: xarray makes the backend itself, with no
    arguments).
    """
    _OPENING.name = name
    return _checked_backend_class()


@functools.cache
def _checked_backend_class() -> type:
    """Build the backend class once per process (a class and its signature per open cost ~0.2 ms)."""
    import inspect

    from xarray.backends.zarr import ZarrBackendEntrypoint

    from terrapipe.io.zarr_chunks import install_checks

    class CheckedZarrBackend(ZarrBackendEntrypoint):  # type: ignore[misc]
        open_dataset_parameters = tuple(
            p for p in inspect.signature(ZarrBackendEntrypoint.open_dataset).parameters if p != "self"
        )

        def open_dataset(self, filename_or_obj: Any, *args: Any, **kwargs: Any) -> xr.Dataset:
            name = _OPENING.name
            ds = super().open_dataset(filename_or_obj, *args, **kwargs)
            install_checks(ds, name)
            _read_index_coordinates(ds)
            return _with_default_indexes(ds)

    return CheckedZarrBackend


def _read_index_coordinates(ds: xr.Dataset) -> None:
    """Read the dimension coordinates of a local store (what xarray loads next, to index them) chunk by chunk.

    xarray reads each through zarr-python, a round trip to zarr's event-loop
    thread per coordinate (about 1 ms of a small scene's open, and a hand-off
    of the GIL each way). A coordinate of a local store that
    :func:`~terrapipe.io.zarr_direct.direct_zarr` reads (a plain layout, no
    CF decoding in between) is decoded here instead, checked as every direct
    read is; anything else is left to xarray.
    """
    from terrapipe.io.zarr_direct import direct_zarr

    for name, var in ds.variables.items():
        if var.ndim != 1 or var.dims[0] != name:
            continue
        direct = direct_zarr(var)
        if direct is None or direct.fetch is not None:  # a remote store: zarr's reads, errors and checks
            continue
        var.values = direct.read((slice(None),))


def _with_default_indexes(ds: xr.Dataset) -> xr.Dataset:
    """Return ``ds`` with the default index of each dimension coordinate, as xarray adds them after opening.

    xarray adds them with ``assign_coords`` (a merge and an alignment: about
    1 ms of a small scene's open); here each is built as xarray builds a
    default index (``PandasIndex.from_variables``, ``create_variables``) and
    the Dataset put together directly, so xarray finds them there and adds none.
    """
    from xarray.indexes import PandasIndex

    from terrapipe._compat import (
        coord_names_of,
        dataset_from,
        direct_construction_ok,
        own_attrs,
        own_encoding,
        variables_of,
    )

    variables = variables_of(ds)
    coord_names = coord_names_of(ds)
    missing = [n for n in coord_names if variables[n].dims == (n,) and n not in ds.xindexes]
    if not missing or not direct_construction_ok():
        return ds
    variables = dict(variables)
    indexes = dict(ds.xindexes)
    for name in missing:
        index = PandasIndex.from_variables({name: variables[name]}, options={})
        variables.update(index.create_variables({name: variables[name]}))
        indexes[name] = index
    out: xr.Dataset = dataset_from(
        variables, set(coord_names), dict(ds.sizes), own_attrs(ds), indexes, own_encoding(ds)
    )
    out.set_close(ds.close)
    return out


def _select(ds: xr.Dataset, variables: str | tuple[str, ...] | None, name: str) -> xr.Dataset | xr.DataArray:
    if variables is None:
        return ds
    wanted = (variables,) if isinstance(variables, str) else variables
    missing = [v for v in wanted if v not in ds.variables]
    if missing:
        raise read_error(
            name,
            "cannot select variables of Zarr store",
            cause=f"no variable named {missing} (variables: {sorted(map(str, ds.data_vars))})",
            hint="pick names listed",
        )
    if isinstance(variables, str):
        return ds[variables]
    return ds[list(variables)]


def _record_encoding(ds: xr.Dataset, name: str) -> None:
    for var in ds.variables.values():
        enc = var.encoding
        if "preferred_chunks" not in enc and isinstance(enc.get("chunks"), tuple):
            enc["preferred_chunks"] = dict(zip(var.dims, enc["chunks"], strict=False))
        enc["source"] = name
    ds.encoding["source"] = name


#: fsspec options that say where data is (shown in cache descriptions); every other key may be a secret.
_LOCATION_KEYS = ("anon", "endpoint_url", "region_name", "account_name", "requester_pays", "project")


def _storage_location(storage: Storage | None, fsspec_options: Mapping[str, Any]) -> dict[str, Any]:
    """Describe where a stage reads from, for cache keys: endpoints, region, account; no credential."""
    from terrapipe.io.raster import storage_config

    if storage is not None:
        return {"storage": storage_config(storage)}
    found: dict[str, Any] = {}
    for scope in (fsspec_options, fsspec_options.get("client_kwargs") or {}):
        if isinstance(scope, Mapping):
            for key in _LOCATION_KEYS:
                value = scope.get(key)
                if isinstance(value, str | bool | int | float):
                    found[key] = public_url(value) if isinstance(value, str) and "://" in value else value
    return {"fsspec": dict(sorted(found.items()))}


_GRID_MAPPING_KEYS = ("crs_wkt", "spatial_ref", "grid_mapping_name")


#: Attribute names by which a CRS can be found: CF grid mappings, rioxarray's, GDAL's, GeoZarr's (``proj:*``).
_CRS_ATTRS = frozenset({"grid_mapping", "crs", "crs_wkt", "spatial_ref", "grid_mapping_name", "_CRS"})


def _names_no_crs(ds: xr.Dataset) -> bool:
    """Whether nothing in ``ds`` can name a CRS, so :func:`_write_crs` would return it unchanged.

    rioxarray looks in the grid-mapping variable an array names (``spatial_ref``
    by default) and in ``crs`` attributes; :func:`_declarations` in ``_CRS`` and
    ``proj:*``. A scan of the names is far cheaper than asking rioxarray (which
    builds a DataArray per variable, about 1.4 ms of a small scene's open).
    """
    if "spatial_ref" in ds.variables:
        return False
    for scope in (ds.attrs, *(v.attrs for v in ds.variables.values())):
        if any(k in _CRS_ATTRS or str(k).startswith("proj:") for k in scope):
            return False
    return not any("grid_mapping" in v.encoding for v in ds.variables.values())


def _mapping_for_grid(text: str, dims: Sequence[Hashable]) -> str | None:
    """Return the grid mapping a ``grid_mapping`` attribute names for an array of ``dims``; ``None``: none.

    CF's plain form names one (``"crs"``); its extended form (CF 1.7) names
    each mapping with the coordinates it applies to (``"crsOSGB: x y
    crsWGS84: lat lon"``): the array's grid is the one whose coordinates are
    among the array's dimensions, where exactly one is.

    Examples
    --------
    >>> _mapping_for_grid("crs", ("y", "x")), _mapping_for_grid("wgs: lat lon osgb: x y", ("time", "y", "x"))
    ('crs', 'osgb')
    >>> _mapping_for_grid("wgs: lat lon", ("y", "x")) is None
    True
    """
    tokens = text.split()
    if len(tokens) == 1 and not tokens[0].endswith(":"):
        return tokens[0]
    listed: dict[str, list[str]] = {}
    current = None
    for token in tokens:
        if token.endswith(":"):
            current = token[:-1]
            listed[current] = []
        elif current is None:
            return None  # neither form: no mapping can be told
        else:
            listed[current].append(token)
    names = {str(d) for d in dims}
    grids = [m for m, coords in listed.items() if coords and set(coords) <= names]
    return grids[0] if len(grids) == 1 else None


def _resolve_grid_mappings(ds: xr.Dataset) -> set[Hashable]:
    """Point each array's ``grid_mapping`` at the one variable that is its grid's mapping; return those with none.

    An extended-form attribute is replaced (where it is kept: encoding or
    attributes) by the name of its grid's mapping, which rioxarray reads. An
    array whose attribute names no mapping the store has (a missing variable,
    or an extended form that does not say which is the grid's) is returned:
    it gets no other array's CRS.
    """
    from terrapipe.io.zarr_chunks import zarr_under

    without: set[Hashable] = set()
    for name, var in ds.data_vars.items():
        where = var.encoding if "grid_mapping" in var.encoding else var.attrs
        text = where.get("grid_mapping")
        if text is None:  # xarray drops a grid_mapping naming a missing variable (a warning): the store's own
            found = zarr_under(var.variable)
            text = None if found is None else found[0].attrs.get("grid_mapping")
            if isinstance(text, str) and text.strip():
                without.add(name)  # no variable of that name: else xarray would have kept it
            continue
        if not isinstance(text, str) or not text.strip():
            continue
        chosen = _mapping_for_grid(text, var.dims)
        if chosen is None or chosen not in ds.variables:
            without.add(name)
        elif chosen != text:
            where["grid_mapping"] = chosen
    return without


def _write_crs(ds: xr.Dataset) -> xr.Dataset:
    """Make grid-mapping variables coordinates and record their CRS the rioxarray way."""
    if _names_no_crs(ds):
        return ds
    unmapped = _resolve_grid_mappings(ds)
    mapping_names = {
        str(v.attrs.get("grid_mapping", v.encoding.get("grid_mapping", ""))) for v in ds.data_vars.values()
    }
    promote = [
        name
        for name, var in ds.data_vars.items()
        if var.ndim == 0 and (name in mapping_names or any(key in var.attrs for key in _GRID_MAPPING_KEYS))
    ]
    if promote:
        ds = ds.set_coords(promote)
    own: dict[Hashable, tuple[bool, Any]] = {}  # each array's own declaration: (declared, its CRS or None)
    for name, var in ds.data_vars.items():
        mapping = var.attrs.get("grid_mapping", var.encoding.get("grid_mapping"))
        if mapping and mapping in ds.coords:
            continue  # its own grid-mapping variable: rioxarray reads it
        declared = _declarations(var.attrs)
        if declared:
            # the same CRS by meaning, not by WKT text: pyproj's text of one CRS varies with process state
            readable: list[Any] = []
            for crs in declared:
                if crs is not None and not any(same_crs(crs, seen) for seen in readable):
                    readable.append(crs)
            own[name] = (True, readable[0] if len(readable) == 1 else None)
        elif name in unmapped:  # it names a grid mapping the store lacks: none, never another array's
            own[name] = (True, None)
    if not own:  # no array says its own: one CRS for all, rioxarray's first
        crs = None
        try:
            crs = ds.rio.crs
            if crs is None:
                for var in ds.data_vars.values():
                    crs = var.rio.crs
                    if crs is not None:
                        break
        except Exception:
            crs = None
        if crs is not None:
            return ds.rio.write_crs(crs)  # type: ignore[no-any-return]
        group = _declared_crs(ds.attrs)
        return ds if group is None else ds.rio.write_crs(group)  # type: ignore[no-any-return]
    # Each array its own: its grid mapping, its declaration (none where unreadable or two disagree), else the
    # group's declaration; its grid-mapping variable is named after it, so no other array's applies to it.
    group = _declared_crs(ds.attrs)
    for name, var in ds.data_vars.items():
        mapping = var.attrs.get("grid_mapping", var.encoding.get("grid_mapping"))
        if mapping and mapping in ds.coords:
            continue
        crs = own[name][1] if name in own else group
        if crs is not None:
            ds[name] = ds[name].rio.write_crs(crs, grid_mapping_name=f"spatial_ref_{name}")
        elif "spatial_ref" in ds.coords:  # rioxarray's default name: another array's, not this one's
            ds[name] = ds[name].assign_attrs(grid_mapping=f"spatial_ref_{name}")
    return ds


def _declarations(attrs: Mapping[str, Any]) -> list[Any]:
    """Each CRS form the attributes hold (GDAL's ``_CRS``, GeoZarr's ``proj:*``): a pyproj CRS, or None if unreadable."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    gdal = attrs.get("_CRS")
    forms = [gdal.get(k) for k in ("wkt", "projjson", "url")] if isinstance(gdal, Mapping) else []
    found: list[Any] = []
    for value in [*forms, *(attrs.get(k) for k in ("proj:wkt2", "proj:projjson", "proj:code"))]:
        if isinstance(value, str | Mapping) and value:
            try:
                found.append(CRS.from_user_input(dict(value) if isinstance(value, Mapping) else value))
            except CRSError:
                found.append(None)
    return found


def _declared_crs(attrs: Mapping[str, Any]) -> Any:
    """Return the CRS that attributes declare in a form rioxarray does not read, if one can be read.

    GDAL's ``_CRS`` (``wkt``, ``projjson`` or ``url``, on an array), GeoZarr's
    ``proj:wkt2``/``proj:projjson``/``proj:code`` (on the group or an array:
    an array's own is first).
    """
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    gdal = attrs.get("_CRS")
    forms = [gdal.get(k) for k in ("wkt", "projjson", "url")] if isinstance(gdal, Mapping) else []
    for value in [*forms, *(attrs.get(k) for k in ("proj:wkt2", "proj:projjson", "proj:code"))]:
        if isinstance(value, str | Mapping) and value:
            try:
                return CRS.from_user_input(dict(value) if isinstance(value, Mapping) else value)
            except CRSError:
                continue  # another form may be readable; none: no CRS (stages that need one refuse)
    return None


def open_zarr(
    source: Any,
    *,
    group: str | None = None,
    variables: str | Sequence[str] | None = None,
    consolidated: bool | None = None,
    chunks: Any = None,
    cache: bool = False,
    decode_times: bool = True,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    deadline: float = DEFAULT_DEADLINE,
    max_body: int = DEFAULT_MAX_BODY,
    storage: Storage | None = None,
) -> xr.Dataset | xr.DataArray:
    """Open one Zarr store lazily.

    Parameters
    ----------
    source
        Local path, ``s3://``, ``gs://``, ``az://``/``abfs://`` or
        ``http(s)://`` URL (public, or an Azure SAS URL), another fsspec URL,
        a zarr ``Store`` or a mapping.
    group
        The group to open (``None``: the root).
    variables
        One name: return that variable as a DataArray; a list: a Dataset of
        those; ``None``: the whole Dataset.
    consolidated
        Use consolidated metadata: ``None`` (default) uses it where present
        (always over HTTP, which cannot list).
    chunks
        ``None`` (default): no dask, lazily indexed; else as in
        ``xarray.open_dataset`` (``{}`` = the storage chunks, needs dask).
    cache
        Keep values in memory once loaded (off: a Dataset held by a pipe
        does not grow).
    decode_times
        Decode CF times.
    storage_options
        fsspec's options: the store is then read with zarr's ``FsspecStore``
        (s3fs, adlfs or gcsfs must be installed). Not with ``storage``.
    timeout
        Seconds an HTTP request may wait for a connection or for data (each
        wait, not the whole request: see ``deadline``).
    retries
        How many times an HTTP request that failed with 429/5xx, a time-out,
        a dropped connection or an answer cut short is retried (with
        back-off from 0.5 s).
    deadline
        Seconds one HTTP request may take in all: connection, redirects,
        retries, back-off and the whole answer (default
        :data:`~terrapipe.io.http_reads.DEFAULT_DEADLINE`, 120 s). On expiry
        a ``ReadError`` naming the deadline. Raise it for large chunks over a
        slow link.
    max_body
        Largest HTTP answer in bytes, counted after decompression (default
        :data:`~terrapipe.io.http_reads.DEFAULT_MAX_BODY`, 256 MiB); a larger
        one is a ``ReadError``. A ranged read is capped at the range's length.
    storage
        How to reach object storage and HTTP servers (:class:`terrapipe.Storage`:
        endpoints, credentials or anonymous, time-outs, retries); default
        ``tp.Storage.from_env()`` for bucket URLs. Its ``deadline`` and
        ``max_bytes``, where set, replace ``deadline`` and ``max_body``.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Lazy; ``encoding["preferred_chunks"]`` and ``encoding["source"]`` on
        every variable; ``.rio.crs`` where the store records a CRS.

    Raises
    ------
    ReadError
        Missing store or group, a variable it does not have, no consolidated
        metadata over HTTP, HTTP errors, time-outs, an expired ``deadline``,
        an answer over ``max_body``, and NaN or infinite spatial coordinates.

    Examples
    --------
    >>> open_zarr("missing.zarr")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.ReadError: cannot open Zarr store 'missing.zarr': no such file or directory; ...
    """
    return _open_zarr(
        source,
        group=group,
        variables=variables,
        consolidated=consolidated,
        chunks=chunks,
        cache=cache,
        decode_times=decode_times,
        storage_options=storage_options,
        timeout=timeout,
        retries=retries,
        deadline=deadline,
        max_body=max_body,
        storage=storage,
        read_ahead=False,
    )


def _open_zarr(
    source: Any,
    *,
    group: str | None,
    variables: str | Sequence[str] | None,
    consolidated: bool | None,
    chunks: Any,
    cache: bool,
    decode_times: bool,
    storage_options: Mapping[str, Any] | None,
    timeout: float,
    retries: int,
    deadline: float,
    max_body: int,
    storage: Storage | None,
    read_ahead: bool,
) -> xr.Dataset | xr.DataArray:
    """Open as :func:`open_zarr` does; with ``read_ahead`` (the ``read_zarr`` stage), read ahead too.

    A remote store's first chunks of ``variables`` are then read while it
    opens (:mod:`terrapipe.io.zarr_read_ahead`).
    """
    require("zarr", feature="read_zarr")
    wanted = _check_variables(variables)
    storage_options = _check_storage_options(storage_options)
    storage = _check_storage(storage, storage_options)
    deadline, max_body = _check_http_limits(deadline, max_body)
    store, name = zarr_store_for(
        source,
        timeout,
        retries,
        deadline=deadline,
        max_body=max_body,
        storage=storage,
        storage_options=storage_options,
    )
    if consolidated is None and isinstance(source, (str, os.PathLike)) and _cannot_list(store, source):
        consolidated = True
    # Messages show an HTTP(S) URL as scheme://host/path: a SAS or signed query stays out of them
    # (masking its short values in the text garbled the message); the encoding keeps the URL to reopen.
    shown = public_url(name) if is_http(name) else name
    names = None if wanted is None else ([wanted] if isinstance(wanted, str) else list(wanted))
    ahead = (
        _prefetched(store, group, consolidated, read_ahead, names)
        if isinstance(source, (str, os.PathLike))
        else None
    )
    try:
        try:
            ds = _open(
                store if ahead is None else ahead,
                shown,
                group=group,
                consolidated=consolidated,
                chunks=chunks,
                cache=cache,
                decode_times=decode_times,
                storage_options=storage_options if isinstance(store, str) else None,
            )
        finally:
            if ahead is not None:
                ahead.release()  # from now on it passes every request to the store (but chunks read ahead)
        _record_encoding(ds, name)
        check_packing(ds, shown, "cannot open Zarr store")
        name_decoding_failures(ds, shown, time_keywords="decode_times=False")
        ds = _write_crs(ds)
        # Coordinates only: dimension coordinates are in memory once opened.
        check_coordinates_finite(ds, shown)
        return _select(ds, wanted, shown)
    except BaseException:
        if ahead is not None and ahead.ahead is not None:
            ahead.ahead.settle()  # a failed open leaves nothing reading
        raise


@register("read_zarr")
class ReadZarr(ReaderStage[xr.Dataset | xr.DataArray]):
    """Open each Zarr store of ``source`` lazily (see :func:`open_zarr`).

    Parameters
    ----------
    source
        A pipe of paths, URLs or stores.
    group, variables, consolidated, chunks, cache, decode_times, storage_options, timeout, retries, storage
        As in :func:`open_zarr`, the same for every store. ``storage`` and
        ``storage_options`` are kept out of the stage's ``repr`` and of the
        text torch adds to errors raised through it (``storage`` shows as
        :class:`~terrapipe.io.storage.Storage`'s ``repr``: no credential),
        and out of cache keys (``storage_location`` stands for them: the
        endpoints, region, account and anonymity, no credential).
    deadline, max_body
        As in :func:`open_zarr`: the overall seconds one HTTP request may take
        (default 120) and the largest answer in bytes (default 256 MiB).
    on_error
        ``"raise"``, ``"skip"`` or ``"warn"`` (skips are counted in ``stats.skipped``).
    device
        ``None``/``"cpu"``: host arrays. A CUDA device (``"cuda"``): numeric data
        variables read their chunks straight into GPU memory as CuPy arrays
        (:func:`terrapipe.gpu.zarr_gpu.open_zarr_on_device`, the
        :class:`DeviceReader` the GPU layer registers; needs the ``gpu``
        extra); ``chunks`` must then be ``None``.

    Examples
    --------
    >>> import terrapipe as tp
    >>> pipe = tp.from_items(["nothing-here.zarr"]).read_zarr(on_error="skip")
    >>> list(pipe), pipe.stats.skipped
    ([], 1)
    """

    def __init__(
        self,
        source: IterDataPipe[Any],
        *,
        group: str | None = None,
        variables: str | Sequence[str] | None = None,
        consolidated: bool | None = None,
        chunks: Any = None,
        cache: bool = False,
        decode_times: bool = True,
        storage_options: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        deadline: float = DEFAULT_DEADLINE,
        max_body: int = DEFAULT_MAX_BODY,
        on_error: OnError = "raise",
        device: Any = None,
        storage: Storage | None = None,
    ) -> None:
        super().__init__(source, on_error=on_error)
        # Not named after the parameter: where chunks land does not change the
        # values, so it stays out of cache keys and pipeline fingerprints.
        self._read_device = None if device is None else _device_reader().check(device)
        # the next store opens while this one is read
        self._opens_ahead = 1 if self._read_device is None else 0
        if self._read_device is not None and chunks is not None:
            raise InvalidArgumentError(
                f"read_zarr device={device!r} reads without dask: leave chunks=None, got {chunks!r}"
            )
        self.group = group
        self.variables = _check_variables(variables)
        self.consolidated = consolidated
        self.chunks = chunks
        self.cache = cache
        self.decode_times = decode_times
        # Private names: torch shows the attributes named after parameters in the text it adds to
        # every error ("thrown by __iter__ of ReadZarr(...)"), and the cache describes them.
        self._fsspec_options = _check_storage_options(storage_options)
        self._storage_obj = _check_storage(storage, self._fsspec_options)
        if self._storage_obj is not None or self._fsspec_options:
            self.storage_location = _storage_location(self._storage_obj, self._fsspec_options)
        self.timeout = timeout
        self.retries = retries
        # Limits of each HTTP request: they bound the wait, never the values, so
        # (like timeout) they stay out of cache keys and pipeline fingerprints.
        self._http_limits = _check_http_limits(deadline, max_body)

    @property
    def storage(self) -> Storage | None:
        """The :class:`~terrapipe.io.storage.Storage` stores are read through (``None``: from the environment)."""
        return self._storage_obj

    def open_one(self, element: Any) -> xr.Dataset | xr.DataArray:
        """Open one store with this stage's options."""
        if self._read_device is not None:
            if isinstance(element, (str, os.PathLike)) and self._storage_obj is not None:
                # the device reader takes a zarr store: hand it the one storage= configures
                element, _ = zarr_store_for(
                    element,
                    self.timeout,
                    self.retries,
                    deadline=self._http_limits[0],
                    max_body=self._http_limits[1],
                    storage=self._storage_obj,
                )
            return _device_reader().open(
                element,
                device=self._read_device,
                group=self.group,
                variables=self.variables,
                consolidated=self.consolidated,
                decode_times=self.decode_times,
                storage_options=self._fsspec_options,
                timeout=self.timeout,
                retries=self.retries,
                deadline=self._http_limits[0],
                max_body=self._http_limits[1],
            )
        return _open_zarr(
            element,
            read_ahead=True,
            group=self.group,
            variables=self.variables,
            consolidated=self.consolidated,
            chunks=self.chunks,
            cache=self.cache,
            decode_times=self.decode_times,
            storage_options=self._fsspec_options,
            timeout=self.timeout,
            retries=self.retries,
            deadline=self._http_limits[0],
            max_body=self._http_limits[1],
            storage=self._storage_obj,
        )
