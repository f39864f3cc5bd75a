"""Cache keys: the identity of an element plus the digest of the stages' configuration.

:func:`element_identity` describes what an element *is* without computing
anything from it. The rule: **a key changes whenever the bytes it stands for
change** (caches are never stale by default); what a description cannot see
is listed below, with ``version=`` (or ``key=``) as the way out.

- a path or URL string, a ``pathlib`` path: the string, plus (``~``
  expanded, and for a GDAL name such as ``NETCDF:"/d/a.nc":v``,
  ``GTIFF_DIR:1:/d/a.tif`` or ``/vsizip//d/a.zip/b.tif``, of the file it
  reads)

  - a local **file**: its size, modification and status-change times (ns)
    and inode (a rewrite changes the times, even where the mtime is put
    back; a replacement by rename the inode);
  - a local **folder** (a Zarr store): every file in it, recursively, by
    relative path, size, modification and status-change times (ns) and
    inode (one ``stat`` per file: a few milliseconds for thousands of
    chunks), so a chunk rewritten by ``to_zarr(region=...)`` changes the
    key; symbolic links to files and folders are followed (a store
    assembled from links to arrays kept elsewhere), each folder walked once;
  - the cache stage describes each file or folder **once per pass** (epoch):
    the elements of one pass that name it (every chip of a scene, through
    ``encoding["source"]``) share that description, so a store is not walked
    once per chip; a change made during a pass is seen from the next pass on;
  - an ``http(s)`` URL with ``check_remote=True`` (the cache's default): the
    server's ``ETag``, ``Last-Modified`` and size (one ``HEAD`` request per
    URL per key); for a Zarr store over HTTP, those of its metadata
    documents (``zarr.json``, ``.zmetadata``);

- a ``pystac.Item``: its JSON without links (id, collection, geometry,
  datetime and every property) and each asset's absolute href, with the same
  file checks;
- an ``xr.DataArray``/``xr.Dataset``: dims, coordinates (the window's bounds
  and time), attributes and CRS, and its data: a digest of the values when
  they are in memory; for a lazily read or dask-backed one, the local Zarr
  store it reads (its files, as for a folder, plus the array's path, shape and
  slice) and the source file or folder (``encoding["source"]``, checked as
  above), with the dask graph's name for a dask array; other lazy arrays are
  read and digested;
- a tensor or numpy array: dtype, shape and a digest of the values (so an
  array changed in place changes the key);
- a :class:`~terrapipe.core.sample.Sample` or any dict, list, tuple: the
  same for each item (``meta`` fields as plain values);
- plain values: themselves.

**Not seen** (pass ``version=`` and change it when the data changes, or a
``key=`` that captures the version):

- remote files with ``check_remote=False``, and URLs other than
  ``http(s)`` (``s3://``, ``gs://``, ...): only the URL is keyed;
- a server that sends neither ``ETag`` nor ``Last-Modified`` (a dynamic
  one): only its ``Content-Length`` is seen, so a change that keeps the
  size is not; a Zarr store over HTTP whose chunk is rewritten without
  its metadata documents changing (HTTP cannot list chunks);
- a local file rewritten in place with the same size within the
  filesystem's timestamp resolution (a clock tick, 1 to 10 ms, on Linux
  before 6.13's multigrain timestamps; 2 s on FAT) while keeping its inode;
- dask arrays built from anything other than a local Zarr store or an
  ``encoding["source"]``: keyed by the graph name dask gives them;
- anything a covered stage reads that the element does not name (a file
  opened inside a ``map`` function): describe it with ``version=``;
- files named in a covered stage's options (a vector layer for
  ``clip_vector``) are described once, when the cache is built: a local one
  by size, mtime, ctime and inode, a remote one by its URL only; a change during
  the life of the pipe is seen when the pipe is built again.

Keys also depend on where the data lives: a copy of a folder on another
machine (other inodes) gets its own entries; pass ``key=`` to share entries
across copies.

A user's ``key=`` callable replaces it; its result is described the same way.
:func:`source_window_key` is one for chips that come straight from a reader
and ``chip()``: the source store or file (its files, once per pass) and the
window's coordinates, instead of a digest of every pixel.
:func:`entry_key` mixes the identity with the configuration digest into the
64-hex-digit key the stores use.

Examples
--------
>>> a = entry_key(element_identity({"path": "no-such.tif", "window": (0, 0, 256, 256)}), "cfg-1")
>>> b = entry_key(element_identity({"path": "no-such.tif", "window": (0, 0, 256, 256)}), "cfg-2")
>>> len(a), a != b
(64, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from terrapipe.cache.canonical import Json, UnkeyableValueError, canonical, digest_bytes, digest_json

__all__ = ["KEY_FORMAT", "element_identity", "entry_key", "source_window_key"]

#: Version of the key derivation; bumping it invalidates every existing entry. 3: entries written
#: before it lost a Dataset's encoding and the type of numpy scalars (np.float64 came back a float),
#: so they are never served again. 4: ZarrStore and RedisStore store entries Blosc-compressed by
#: default (another layout of the stored bytes); entries of the old layouts are never looked up.
KEY_FORMAT = 4


def element_identity(element: Any, *, check_remote: bool = False) -> Json:
    """Describe an element's identity (see the module doc).

    Parameters
    ----------
    element
        The element at the cache point.
    check_remote
        Ask ``http(s)`` servers for ``ETag``/``Last-Modified``/size (one
        ``HEAD`` request per URL; the cache stage does by default).

    Returns
    -------
    Json
        The description.

    Raises
    ------
    UnkeyableValueError
        For an element with no stable description (pass ``key=`` to the cache).
    """
    return canonical(element, where="element", check_remote=check_remote)


def entry_key(identity: Json, config_digest: str) -> str:
    """Return the store key of an entry: a BLAKE2b-256 hex digest of identity and configuration."""
    return digest_json({"format": KEY_FORMAT, "config": config_digest, "element": identity}, size=32)


def source_window_key(element: Any) -> dict[str, Any]:
    """Identify an xarray chip by its source and its window, not by its pixels (a cache's ``key=``).

    The default identity of an in-memory chip digests every value (about
    1 ms per 512 KiB chip, more than decoding it again from a local Zarr
    store). A chip cut by ``read_zarr``/``read_raster``/``stack_stac`` and
    ``chip()`` is fixed by what it was read from and where: this key holds the
    source named in ``encoding["source"]`` (described as any path: a
    folder's files, a file's size, mtime, ctime and inode, walked once per pass of
    the cache), the name, dims, shape and dtype, a digest of every
    coordinate (the window's position; a few hundred values), the
    attributes and the CRS.

    Use it only where nothing between the reader and the cache point changes
    the values (a ``map`` that scales pixels in place would be served stale:
    put such stages after the cache point, where the cache's configuration
    digest covers them), and give the reader's options as ``version=``: the
    stages before the point are not part of the key.

    Parameters
    ----------
    element
        An ``xr.DataArray`` or ``xr.Dataset`` chip.

    Returns
    -------
    dict
        ``{"source": path or URL, "window": digest of the rest}`` (the cache
        describes it as any ``key=`` result: the source's files are checked).

    Raises
    ------
    UnkeyableValueError
        For an element that is not an xarray object or names no source.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> chip = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), coords={"y": [1.0, 0.0], "x": [0.0, 1.0]})
    >>> chip.encoding["source"] = "scene.zarr"
    >>> key = source_window_key(chip)
    >>> key["source"], len(key["window"])
    ('scene.zarr', 64)
    """
    if not isinstance(element, xr.DataArray | xr.Dataset):
        raise UnkeyableValueError(
            f"source_window_key keys xarray chips, got a {type(element).__qualname__}; "
            "leave key= out to key the element by its contents"
        )
    source = element.encoding.get("source")
    if source is None and isinstance(element, xr.Dataset):
        sources = {
            str(v.encoding.get("source")) for v in element.data_vars.values() if v.encoding.get("source")
        }
        source = sources.pop() if len(sources) == 1 else None
    if not isinstance(source, str) or not source:
        raise UnkeyableValueError(
            "source_window_key needs encoding['source'] (what terrapipe's readers record) on the chip; "
            "leave key= out to key it by its contents"
        )
    arrays = (
        [(element.name, element.variable)]
        if isinstance(element, xr.DataArray)
        else [(name, var.variable) for name, var in element.data_vars.items()]
    )
    coords: list[Json] = []
    for name in sorted(element.coords, key=str):
        values = np.ascontiguousarray(element.coords[name].values)
        if values.dtype.hasobject:
            digest: Json = canonical(values.tolist(), stat_files=False)
        else:
            digest = [
                values.dtype.str,
                list(values.shape),
                digest_bytes(values.reshape(-1).view(np.uint8).data),
            ]
        coord = element.coords[name]
        coord_attrs = canonical(dict(coord.attrs), stat_files=False)  # the CRS of spatial_ref
        coords.append([str(name), list(map(str, coord.dims)), digest, coord_attrs])
    window: Json = {
        "kind": type(element).__name__,
        "names": [None if n is None else str(n) for n, _ in arrays],
        "dims": [list(map(str, var.dims)) for _, var in arrays],
        "shape": [list(var.shape) for _, var in arrays],
        "dtype": [var.dtype.str for _, var in arrays],
        "coords": coords,
        "attrs": canonical(dict(element.attrs), stat_files=False),
        "var_attrs": [canonical(dict(var.attrs), stat_files=False) for _, var in arrays],
    }
    # Only the source is described as a path (its files walked); the rest is one digest, so no name,
    # dimension or attribute string is looked up as a file.
    return {"source": source, "window": digest_json(window)}
