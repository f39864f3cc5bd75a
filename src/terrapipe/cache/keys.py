"""Cache keys: the identity of an element plus the digest of the stages' configuration.

:func:`element_identity` describes what an element *is* without computing
anything from it. The rule: **a key changes whenever the bytes it stands for
change** (caches are never stale by default); what a description cannot see
is listed below, with ``version=`` (or ``key=``) as the way out.

- a path or URL string, a ``pathlib`` path: the string, plus

  - a local **file**: its size, modification time (ns) and inode (a rewrite
    changes the time, a replacement by rename the inode);
  - a local **folder** (a Zarr store): every file in it, recursively, by
    relative path, size, modification time (ns) and inode (one ``stat`` per
    file: a few milliseconds for thousands of chunks), so a chunk
    rewritten by ``to_zarr(region=...)`` changes the key;
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
- a server that sends none of ``ETag``, ``Last-Modified`` and
  ``Content-Length``; a Zarr store over HTTP whose chunk is rewritten without
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
  by size, mtime and inode, a remote one by its URL only; a change during
  the life of the pipe is seen when the pipe is built again.

Keys also depend on where the data lives: a copy of a folder on another
machine (other inodes) gets its own entries; pass ``key=`` to share entries
across copies.

A user's ``key=`` callable replaces it; its result is described the same way.
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

from terrapipe.cache.canonical import Json, canonical, digest_json

__all__ = ["KEY_FORMAT", "element_identity", "entry_key"]

#: Version of the key derivation; bumping it invalidates every existing entry.
KEY_FORMAT = 2


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
