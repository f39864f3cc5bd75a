"""Canonical descriptions of values: the same JSON in every process, for cache keys.

A cache key must not change between processes or runs when nothing changed,
and must change when anything that shapes the cached output changes. Python's
``hash()`` of a string is salted per process and ``id()`` is an address, so
neither can be used. :func:`canonical` turns a value into plain JSON instead:

- JSON scalars stay as they are (non-finite floats are tagged);
- a string or path naming an existing local file also carries the file's
  size, modification and status-change times (ns) and inode; one naming a
  folder (a Zarr store) carries a digest of every file in it (path, size,
  mtime, inode, ctime; symbolic links followed, each folder once), so
  rewriting one chunk changes the key; with ``check_remote=True`` an
  ``http(s)://`` URL carries its ``ETag``, ``Last-Modified`` and size (a
  ``HEAD`` request; a Zarr store over HTTP: its metadata documents'). What
  these cannot see is listed in :mod:`terrapipe.cache.keys`;
- arrays and tensors become dtype + shape + a BLAKE2b digest of their bytes;
- xarray objects become dims, coords, attrs and their data's digest (for a
  lazily loaded or dask-backed array on a local Zarr store: the store's files
  and the array's path, shape and slice; for one with ``encoding["source"]``:
  that file or folder, as above);
- functions become their qualified name, a digest of their bytecode and
  constants, their defaults, the values of their closure cells and the simple
  module globals they read (so editing a lambda's body or a constant it uses
  changes the key);
- containers, dataclasses, enums, dates, CRSs, affine transforms, GeoBoxes,
  shapely geometries, (Geo)DataFrames and STAC items have fixed forms;
- an object with a ``cache_config()`` method is described by what it returns.

Anything else raises :class:`UnkeyableValueError`, which says where the value
sits (``Chip.split``) and how to get past it (``version=`` or ``key=``).

Every dict is written as ``{"dict": ...}`` and every other tagged form as a
one-key object, so two different values never share a description.

Examples
--------
>>> from terrapipe.cache.canonical import canonical, digest_json
>>> canonical({"size": (256, 256), "scale": 0.5})
{'dict': [['scale', 0.5], ['size', {'tuple': [256, 256]}]]}
>>> digest_json(canonical(lambda x: x + 1)) == digest_json(canonical(lambda x: x + 1))
True
>>> digest_json(canonical(lambda x: x + 1)) == digest_json(canonical(lambda x: x + 2))
False
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import functools
import hashlib
import inspect
import json
import math
import os
import re
import stat
import time
import types
import urllib.parse
import urllib.request
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, TypeAlias

import numpy as np
import torch
import xarray as xr

from terrapipe._compat import variable_in_memory
from terrapipe.core.digests import digest_bytes, wkb_digest
from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.core.pipe import IterDataPipe

__all__ = ["Json", "UnkeyableValueError", "canonical", "digest_bytes", "digest_json", "wkb_digest"]

#: A plain JSON value (what :func:`canonical` returns).
Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None

_MAX_DEPTH = 64
_HEAD_TIMEOUT = 10.0
#: Seconds one change check of a remote URL may take in all (HEAD, first byte, Zarr documents).
_HEAD_DEADLINE = 20.0
#: Module globals a function reads are part of its description when they are of these types.
_SIMPLE_GLOBALS = (bool, int, float, str, bytes, type(None), tuple, frozenset, enum.Enum)
#: Callables implemented in C: described by their qualified name.
_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
    np.ufunc,
)


class UnkeyableValueError(InvalidArgumentError):
    """A value has no stable description, so it cannot be part of a cache key."""


@dataclass
class _Context:
    stat_files: bool = True
    check_remote: bool = False
    lenient: bool = False
    depth: int = 0
    active: set[int] = field(default_factory=set)
    #: Descriptions of the files and folders met so far in this description (each walked once).
    files: dict[str, Json] = field(default_factory=dict)
    #: Where given, the remote URLs checked with ``HEAD`` are added to it.
    urls: list[str] | None = None


def digest_json(value: Json, *, size: int = 32) -> str:
    """Return the BLAKE2b hex digest of a canonical JSON value (sorted keys, no spaces).

    Examples
    --------
    >>> digest_json({"b": 1, "a": [1, 2]}) == digest_json({"a": [1, 2], "b": 1})
    True
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return digest_bytes(text.encode(), size=size)


def canonical(
    value: Any,
    *,
    where: str = "value",
    stat_files: bool = True,
    check_remote: bool = False,
    urls: list[str] | None = None,
    files: dict[str, Json] | None = None,
) -> Json:
    """Describe ``value`` as JSON that is the same in every process (see the module doc).

    Parameters
    ----------
    value
        What to describe.
    where
        Where the value comes from, for error messages (``"Chip.size"``).
    stat_files
        Add size and modification time of the local files that strings and
        paths name.
    check_remote
        Add ``ETag``/``Last-Modified``/``Content-Length`` of ``http(s)://`` URLs
        (one ``HEAD`` request each).
    urls
        A list the checked URLs are appended to (the cache stage tells GDAL
        to forget them before it recomputes an entry).
    files
        Descriptions of local files and folders already made, by path; the
        ones made here are added. The cache stage passes one per pass, so a
        Zarr store that many elements name (every chip of a scene) is walked
        once per epoch, not once per element. Remote URLs are never kept in
        it: they are checked each time.

    Returns
    -------
    Json
        The description.

    Raises
    ------
    UnkeyableValueError
        For a value with no stable description.
    ReadError
        When ``check_remote`` is set and a URL cannot be checked.

    Examples
    --------
    >>> import numpy as np
    >>> canonical(np.arange(3, dtype="int16"))["ndarray"][:2]
    ['<i2', [3]]
    >>> canonical(object())
    Traceback (most recent call last):
    ...
    terrapipe.cache.canonical.UnkeyableValueError: value: cannot describe a object for a cache key; give it a cache_config() method, or pass version=... (configuration) or key=... (element identity) to the cache
    """
    context = _Context(stat_files=stat_files, check_remote=check_remote, urls=urls)
    if files is not None:
        context.files = files
    return _canon(value, where, context)


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__qualname__
    return f"{module}.{name}"


def _unkeyable(value: Any, where: str) -> UnkeyableValueError:
    msg = (
        f"{where}: cannot describe a {type(value).__qualname__} for a cache key; give it a cache_config() "
        "method, or pass version=... (configuration) or key=... (element identity) to the cache"
    )
    return UnkeyableValueError(msg)


def _canon(value: Any, where: str, ctx: _Context) -> Json:
    if ctx.depth > _MAX_DEPTH:
        raise UnkeyableValueError(f"{where}: nested more than {_MAX_DEPTH} levels deep; pass version=...")
    if value is None or isinstance(value, bool | int):
        return value  # type: ignore[no-any-return]
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, str):
        return _canon_str(value, ctx)
    if isinstance(value, enum.Enum):
        return {"enum": [_qualname(type(value)), value.name]}
    if id(value) in ctx.active:
        return {"cycle": _qualname(type(value))}
    ctx.active.add(id(value))
    ctx.depth += 1
    try:
        return _canon_object(value, where, ctx)
    finally:
        ctx.depth -= 1
        ctx.active.discard(id(value))


def _canon_object(value: Any, where: str, ctx: _Context) -> Json:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": digest_bytes(value)}
    if isinstance(value, PurePath | os.PathLike):
        return {"path": _canon_str(os.fspath(value), ctx)}
    if isinstance(value, np.generic):
        return {"npscalar": [value.dtype.str, value.tobytes().hex()]}
    if isinstance(value, np.dtype):
        return {"dtype": value.str}
    if isinstance(value, np.ndarray):
        return _canon_ndarray(value, where, ctx)
    if isinstance(value, torch.Tensor):
        return _canon_tensor(value)
    if isinstance(value, torch.dtype):
        return {"torch_dtype": str(value)}
    if isinstance(value, xr.DataArray | xr.Dataset | xr.Variable):
        return _canon_xarray(value, where, ctx)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"timedelta": value.total_seconds()}
    if isinstance(value, IterDataPipe):
        raise UnkeyableValueError(f"{where}: a pipe inside a stage's options cannot be part of a cache key")
    special = _canon_geo(value, where, ctx)
    if special is not None:
        return special
    if isinstance(value, Mapping):
        pairs = [
            [_canon(k, f"{where} key", _names(ctx)), _canon(v, f"{where}[{k!r}]", ctx)]
            for k, v in value.items()
        ]
        return {"dict": sorted(pairs, key=_sort_key)}
    if isinstance(value, list):
        return [_canon(v, f"{where}[{i}]", ctx) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"tuple": [_canon(v, f"{where}[{i}]", ctx) for i, v in enumerate(value)]}
    if isinstance(value, Set):
        return {"set": sorted((_canon(v, f"{where} item", ctx) for v in value), key=_sort_key)}
    if isinstance(value, range):
        return {"range": [value.start, value.stop, value.step]}
    if isinstance(value, slice):
        return {"slice": [_canon(v, where, ctx) for v in (value.start, value.stop, value.step)]}
    if isinstance(value, type):
        return {"class": _qualname(value)}
    config = getattr(value, "cache_config", None)
    if callable(config) and not isinstance(value, type):
        return {"object": [_qualname(type(value)), _canon(config(), f"{where}.cache_config()", ctx)]}
    if dataclasses.is_dataclass(value):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"dataclass": [_qualname(type(value)), _canon(fields, where, ctx)]}
    if callable(value):
        return _canon_callable(value, where, ctx)
    raise _unkeyable(value, where)


def _sort_key(item: Json) -> str:
    return json.dumps(item, sort_keys=True, separators=(",", ":"))


# -- strings, paths, URLs ---------------------------------------------------
def _canon_str(text: str, ctx: _Context) -> Json:
    if not ctx.stat_files or not text or len(text) > 4096 or "\n" in text or "\0" in text:
        return text
    path = text
    if text[:5].lower() == "file:":  # file:///a/b.tif, file:/a/b.tif (pystac writes both)
        path = urllib.request.url2pathname(urllib.parse.urlsplit(text).path)
    elif _URL.match(text):
        if ctx.check_remote and text.split("://", 1)[0].lower() in ("http", "https"):
            if ctx.urls is not None:
                ctx.urls.append(text)
            return {"url": [text, _head(text)]}
        return text
    if path.startswith("~"):  # the readers expand it (gdal_path, the object store, xarray)
        path = os.path.expanduser(path)
    found = _stat_once(path, ctx)
    if (
        found is None
    ):  # a GDAL name: the file inside it (NETCDF:"a.nc":v, GTIFF_DIR:1:a.tif, /vsizip/a.zip/b.tif)
        inner = _file_in_gdal_name(path)
        found = None if inner is None else _stat_once(inner, ctx)
    return text if found is None else {"file": [text, found]}


#: GDAL handlers that read a local file inside another (an archive, a compressed file, a part of one).
_VSI_LOCAL = ("/vsizip/", "/vsigzip/", "/vsitar/", "/vsi7z/", "/vsirar/", "/vsisubfile/")
_DRIVER_NAME = re.compile(r"[A-Z][A-Z0-9_]*:(?!//)")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _file_in_gdal_name(name: str) -> str | None:
    """Return the local file or folder a GDAL dataset name reads, where it names one (``None``: none found).

    ``NETCDF:"/d/a.nc":temp``, ``HDF5:/d/a.h5://g/v``, ``GTIFF_DIR:1:/d/a.tif``,
    ``/vsizip//d/a.zip/b.tif``, ``/vsizip/{/d/a.zip}/b.tif``: readers open
    these, so the key must see their file change (``~`` expanded, as the
    readers do). A name is tried for an existing file part by part, at
    most a few ``stat`` calls.
    """
    for prefix in _VSI_LOCAL:
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            if prefix == "/vsisubfile/":  # /vsisubfile/offset_size,path
                rest = rest.partition(",")[2]
            if rest.startswith("{"):
                return os.path.expanduser(rest[1:].partition("}")[0]) or None
            parts = rest.split("/")
            for end in range(2, len(parts) + 1):  # the shortest leading part that is a file: the archive
                candidate = os.path.expanduser("/".join(parts[:end]))
                if os.path.isfile(candidate):
                    return candidate
            return None
    match = _DRIVER_NAME.match(name)
    if match is None:
        return None
    # a file; a folder only for GDAL's Zarr driver (any other word before a colon, "EPSG:4326",
    # "TAG:/", must not have a folder walked)
    usable = os.path.exists if match.group() == "ZARR:" else os.path.isfile
    rest = name[match.end() :]
    if '"' in rest:  # NETCDF:"a:b.nc":var
        quoted = rest.split('"')
        candidate = os.path.expanduser(quoted[1]) if len(quoted) > 2 else ""
        return candidate if candidate and usable(candidate) else None
    parts = rest.split(":")
    for start in range(len(parts)):  # GTIFF_DIR:1:/d/a.tif, GPKG:/d/a.gpkg:layer, HDF5:/d/a.h5://g/v
        for end in range(len(parts), start, -1):
            candidate = os.path.expanduser(":".join(parts[start:end]))
            if candidate and usable(candidate):
                return candidate
    return None


def _stat_once(path: str, ctx: _Context) -> Json:
    if path not in ctx.files:
        ctx.files[path] = _stat(path)
    return ctx.files[path]


def _stat(path: str) -> list[Json] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISDIR(info.st_mode):
        return _file_stat(info)
    # A folder's own mtime does not change when a file inside is rewritten
    # (a Zarr chunk by to_zarr(region=...)): describe every file in it.
    return ["tree", *_tree(path)]


def _file_stat(info: os.stat_result) -> list[Json]:
    """Size, modification and status-change times (ns) and inode: a rewrite or a replacement changes one of them.

    The status-change time moves at every write even where the modification
    time is put back afterwards (``cp -p``, ``rsync --inplace -t``); it also
    moves at a ``chmod`` or a new hard link, which only costs a recompute.
    """
    return [info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns]


def _tree(root: str) -> list[Json]:
    """Describe every file under a folder: ``[files, bytes, digest of (path, size, mtime_ns, inode, ctime_ns)]``.

    One ``stat`` per file (about a microsecond each; a 4096-chunk Zarr store
    takes a few milliseconds). Symbolic links are followed, as a reader
    follows them: a store assembled from links to folders kept elsewhere has
    its chunks there, and one rewritten in place changes no entry of the
    link. Each folder is walked once (by device and inode, in name order,
    so the same tree gives the same rows); a link to a folder walked already
    (a cycle) is one row naming its target.
    """
    rows: list[tuple[str, int, int, int, int]] = []
    seen: set[tuple[int, int]] = set()
    with contextlib.suppress(OSError):
        top = os.stat(root)
        seen.add((top.st_dev, top.st_ino))
    pending = [""]
    while pending:
        rel = pending.pop()
        folders: list[tuple[str, os.stat_result]] = []
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as listing:
                for entry in listing:  # files as they come (a flat store may hold millions)
                    name = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        info = entry.stat(follow_symlinks=True)
                    except OSError:  # vanished, unreadable, a dangling link: still part of the listing
                        rows.append((name, -1, -1, -1, -1))
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        folders.append((name, info))
                    else:
                        rows.append((name, info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns))
        except OSError:
            rows.append((rel or ".", -1, -1, -1, -1))
            continue
        for name, info in sorted(folders, key=lambda item: item[0], reverse=True):  # walked in name order
            folder = (info.st_dev, info.st_ino)
            if folder in seen:  # a link back to a folder walked already
                rows.append((f"{name}/", -2, 0, info.st_ino, 0))
            else:
                seen.add(folder)
                pending.append(name)
    rows.sort()
    digest = hashlib.blake2b(digest_size=16)
    total = 0
    for name, size, mtime, inode, ctime in rows:
        digest.update(f"{name}\0{size}\0{mtime}\0{inode}\0{ctime}\n".encode("utf-8", "surrogateescape"))
        total += max(size, 0)
    return [len(rows), total, digest.hexdigest()]


def _head(url: str) -> Json:
    """Describe the version of a remote file: ``[ETag, Last-Modified, size]`` from a ``HEAD`` request.

    A server that refuses ``HEAD`` (405, 501, a URL signed for ``GET`` only) is
    asked for its first byte instead. A URL that names no file (404/403) but
    is a Zarr store over HTTP is described by its metadata documents
    (``zarr.json``, ``.zmetadata``): HTTP cannot list a store's chunks, so a
    chunk rewritten in place without a metadata change is not seen there
    (pass ``version=``). The requests go through the readers' HTTP client, so
    they are bounded like every read: an overall deadline
    (:data:`_HEAD_DEADLINE`), a size cap, checked ranges, no credentials
    carried to another host on a redirect.
    """
    from terrapipe.core.redact import redact_url

    until = time.monotonic() + _HEAD_DEADLINE
    try:
        version = _version_of(url, until)
    except (ReadError, _MissingError) as err:
        documents = _zarr_documents(url, until)
        if documents:
            return documents
        failure: Exception = err
    else:
        if version[0] is None and version[1] is None:  # no ETag, no date: a folder listing, maybe
            return _zarr_documents(url, until) or version
        return version
    msg = (
        f"cannot check {redact_url(url)} for changes (HEAD request failed: {failure}); "
        "check the URL, or pass check_remote=False (then a file changed on the server is not seen: "
        "change version= when it does)"
    )
    raise ReadError(msg) from failure


class _MissingError(Exception):
    """The server says the URL names no file (HTTP 404)."""


def _zarr_documents(url: str, until: float) -> Json:
    """Describe a Zarr store over HTTP by its metadata documents (``None`` when it has none)."""
    documents: list[Json] = []
    for name in ("zarr.json", ".zmetadata"):
        try:
            documents.append([name, _version_of(_child_url(url, name), until)])
        except (ReadError, _MissingError):
            continue
    return {"zarr_documents": documents} if documents else None


def _child_url(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + name))


def _version_of(url: str, until: float) -> list[Json]:
    """``[ETag, Last-Modified, size]`` of one URL; every request within the one deadline ``until``."""
    from terrapipe.io.http_client import ByteRange, fetch
    from terrapipe.io.storage import Storage

    def options() -> Storage:
        left = until - time.monotonic()
        if left <= 0:
            raise ReadError(
                f"no answer within the change check's deadline of {_HEAD_DEADLINE:g} s "
                "(terrapipe.cache.canonical._HEAD_DEADLINE)"
            )
        return Storage(timeout=min(_HEAD_TIMEOUT, left), retries=1, deadline=left)

    try:
        response = fetch(url, options(), method="HEAD")
        size = response.headers.get("content-length")
    except ReadError as err:  # HEAD refused (405/501, a GET-only signed URL): ask for the first byte
        if "deadline" in str(err):
            raise
        response = fetch(url, options(), byte_range=ByteRange(0, 1))
        size = None if response.total is None else str(response.total)
    if response.status == 404:
        raise _MissingError("HTTP 404: no such file")
    return [response.headers.get("etag"), response.headers.get("last-modified"), size]


# -- arrays -----------------------------------------------------------------
def _canon_ndarray(array: np.ndarray[Any, Any], where: str, ctx: _Context) -> Json:
    if array.dtype.hasobject:
        return {"objarray": [list(array.shape), [_canon(v, where, ctx) for v in array.ravel().tolist()]]}
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return {"ndarray": [array.dtype.str, list(array.shape), digest_bytes(raw.data)]}


def _canon_tensor(tensor: torch.Tensor) -> Json:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy() if flat.numel() else np.empty(0, np.uint8)
    return {"tensor": [str(tensor.dtype), list(tensor.shape), digest_bytes(raw.data)]}


def _tagged(mapping: Mapping[str, Json]) -> Json:
    """Write a dict of descriptions (already JSON) in the ``{"dict": ...}`` form, without describing it again."""
    return {"dict": sorted(([key, value] for key, value in mapping.items()), key=_sort_key)}


def _names(ctx: _Context) -> _Context:
    """Return the context for names (dict keys, variable names): plain strings, never files."""
    return ctx if not ctx.stat_files else dataclasses.replace(ctx, stat_files=False, check_remote=False)


def _canon_xarray(obj: xr.DataArray | xr.Dataset | xr.Variable, where: str, ctx: _Context) -> Json:
    if isinstance(obj, xr.Variable):
        return {"variable": [list(map(str, obj.dims)), _canon_variable_data(obj, None, where, ctx)]}
    coords = _tagged({str(name): _canon_coord(obj, str(name), where, ctx) for name in obj.coords})
    attrs = _canon(dict(obj.attrs), f"{where}.attrs", ctx)
    if isinstance(obj, xr.Dataset):
        data_vars = _tagged(
            {
                str(name): _canon_dataarray(var, f"{where}[{name!r}]", ctx)
                for name, var in obj.data_vars.items()
            }
        )
        return {"dataset": _tagged({"vars": data_vars, "coords": coords, "attrs": attrs})}
    body = _canon_dataarray(obj, where, ctx)
    return {"dataarray": _tagged({"var": body, "coords": coords, "attrs": attrs})}


def _canon_coord(obj: xr.DataArray | xr.Dataset, name: str, where: str, ctx: _Context) -> Json:
    coord = obj.coords[name].variable
    return _tagged(
        {
            "dims": list[Json](map(str, coord.dims)),
            "data": _canon_variable_data(coord, None, f"{where}.coords[{name!r}]", ctx),
            "attrs": _canon(dict(coord.attrs), where, ctx),
        }
    )


def _canon_dataarray(da: xr.DataArray, where: str, ctx: _Context) -> Json:
    var = da.variable
    return _tagged(
        {
            "name": _canon(da.name, where, _names(ctx)),
            "dims": list[Json](map(str, var.dims)),
            "dtype": var.dtype.str,
            "shape": list[Json](var.shape),
            "attrs": _canon(dict(var.attrs), where, ctx),
            "data": _canon_variable_data(var, da.encoding, where, ctx),
        }
    )


def _canon_variable_data(
    var: xr.Variable, encoding: Mapping[str, Any] | None, where: str, ctx: _Context
) -> Json:
    """Digest an in-memory variable; describe a lazy or dask one by what it reads.

    - a Zarr array on a local store (``xr.open_zarr``, lazily or through its
      dask graph): the store's files (:func:`_tree`), the array's path, shape
      and the offsets of a lazy slice;
    - ``encoding["source"]`` (what terrapipe's readers record): that file or
      folder, checked like any path, with the encoding;
    - a dask array: its graph name (dask's token) as well;
    - anything else lazy: a digest of its values (read once per key).
    """
    store = _zarr_identity(var, ctx)
    source = None
    if encoding is not None and encoding.get("source"):
        lenient = dataclasses.replace(ctx, lenient=True)
        source = _canon_lenient(dict(encoding), where, lenient)
    if var.chunks is not None:
        name = getattr(var.data, "name", None)
        if name is not None:
            return {"dask": [str(name), store, source]}
    if not variable_in_memory(var) and (store is not None or source is not None):
        return {"lazy": [store, source]}
    return _canon_ndarray(np.asarray(var.values), where, ctx)


def _zarr_identity(var: xr.Variable, ctx: _Context) -> Json:
    """Describe the local Zarr array a lazy or dask variable reads (``None``: not one)."""
    if variable_in_memory(var):
        return None
    try:
        from terrapipe.io.zarr_chunks import zarr_under

        found = zarr_under(var)
    except Exception:  # no zarr installed, or wrappers we do not know
        return None
    if found is None:
        return None
    array, offsets = found
    root = getattr(array.store, "root", None)
    if root is None:
        return None  # not a local folder: described by its values or its source
    root = os.fspath(root)
    # The whole store's files (its metadata documents included), walked once per description
    # however many of its variables the element holds (read_zarr's encoding["source"] is the same folder).
    return {"zarr": [root, str(array.path), list(array.shape), list[Json](offsets), _stat_once(root, ctx)]}


def _canon_lenient(mapping: Mapping[str, Any], where: str, ctx: _Context) -> Json:
    out: list[Json] = []
    for key in sorted(mapping, key=str):
        try:
            out.append([str(key), _canon(mapping[key], f"{where}.encoding[{key!r}]", ctx)])
        except UnkeyableValueError:
            continue  # codec objects and the like: they do not change the values
    return out


# -- geo types ----------------------------------------------------------------
def _canon_geo(value: Any, where: str, ctx: _Context) -> Json | None:
    module = type(value).__module__ or ""
    name = type(value).__name__
    if name == "Affine" and module.startswith("affine"):
        return {"affine": [float(v) for v in tuple(value)[:6]]}
    if name == "CRS" and module.startswith(("rasterio", "pyproj")):
        return {"crs": value.to_wkt()}
    if name == "GeoBox" and module.startswith("odc.geo"):
        crs = None if value.crs is None else str(value.crs.to_wkt())
        return {"geobox": [crs, [float(v) for v in tuple(value.affine)[:6]], list(value.shape)]}
    if module.startswith("shapely") and hasattr(value, "wkb"):
        return {"geometry": digest_bytes(value.wkb)}
    if name == "Item" and module.startswith("pystac"):
        return _canon_stac_item(value, where, ctx)
    if module.startswith(("pandas", "geopandas")) and name in (
        "DataFrame",
        "GeoDataFrame",
        "Series",
        "GeoSeries",
    ):
        return _canon_frame(value, where)
    return None


def _canon_stac_item(item: Any, where: str, ctx: _Context) -> Json:
    body = item.to_dict(include_self_link=False, transform_hrefs=False)
    body.pop("links", None)
    assets = {key: asset.get_absolute_href() or asset.href for key, asset in item.assets.items()}
    # URLs in the item's JSON (extension schemas, asset hrefs again) are metadata: only the assets' files
    # are checked on their servers.
    metadata = dataclasses.replace(ctx, check_remote=False)
    return {"stac_item": [_canon(body, where, metadata), _canon(assets, f"{where}.assets", ctx)]}


def _canon_frame(frame: Any, where: str) -> Json:
    import pandas as pd  # type: ignore[import-untyped]

    kind = type(frame).__name__
    parts: list[Json] = [kind]
    if kind in ("GeoDataFrame", "GeoSeries"):
        geoms = frame.geometry if kind == "GeoDataFrame" else frame
        crs = frame.crs
        parts.append(None if crs is None else crs.to_wkt())
        parts.append(wkb_digest(geoms).hex())
        if kind == "GeoSeries":
            return {"frame": parts}
        frame = pd.DataFrame(frame.drop(columns=[frame.geometry.name]))
    is_frame = hasattr(frame, "columns")
    parts.append([str(c) for c in frame.columns] if is_frame else [str(frame.name)])
    parts.append([str(t) for t in frame.dtypes] if is_frame else [str(frame.dtype)])
    try:
        hashed = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    except TypeError as err:
        raise UnkeyableValueError(f"{where}: cannot hash this table ({err}); pass version=...") from err
    parts.append(digest_bytes(hashed.tobytes()))
    return {"frame": parts}


# -- functions ----------------------------------------------------------------
def _canon_callable(fn: Any, where: str, ctx: _Context) -> Json:
    if isinstance(fn, functools.partial):
        return {
            "partial": [
                _canon(fn.func, where, ctx),
                _canon(fn.args, f"{where} args", ctx),
                _canon(fn.keywords, f"{where} keywords", ctx),
            ]
        }
    if inspect.ismethod(fn):
        return {"method": [_canon(fn.__func__, where, ctx), _canon(fn.__self__, f"{where}.__self__", ctx)]}
    code = getattr(fn, "__code__", None)
    if isinstance(fn, types.FunctionType) and code is not None:
        closure = [_canon(cell.cell_contents, f"{where} closure", ctx) for cell in fn.__closure__ or ()]
        return {
            "function": [
                _qualname(fn),
                _code_digest(code, ctx),
                _canon(fn.__defaults__, f"{where} defaults", ctx),
                _canon(fn.__kwdefaults__, f"{where} defaults", ctx),
                closure,
                _canon(_simple_globals(fn, code), f"{where} globals", ctx),
            ]
        }
    if isinstance(fn, _BUILTIN_CALLABLES):
        return {"builtin": f"{type(fn).__module__}.{getattr(fn, '__qualname__', fn.__name__)}"}
    raise _unkeyable(fn, where)


def _code_digest(code: types.CodeType, ctx: _Context) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    h.update(repr(code.co_varnames).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            h.update(_code_digest(const, ctx).encode())
        else:
            h.update(_sort_key(_canon(const, "constant", ctx)).encode())
    return h.hexdigest()


def _simple_globals(fn: types.FunctionType, code: types.CodeType) -> dict[str, Any]:
    names: set[str] = set()

    def collect(c: types.CodeType) -> None:
        names.update(c.co_names)
        for const in c.co_consts:
            if isinstance(const, types.CodeType):
                collect(const)

    collect(code)
    found = {}
    for name in sorted(names):
        if name in fn.__globals__:
            value = fn.__globals__[name]
            if isinstance(value, _SIMPLE_GLOBALS):
                found[name] = value
    return found
