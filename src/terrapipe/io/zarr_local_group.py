"""Open a local Zarr group's metadata without zarr-python's event loop: the small-scene open of ``read_zarr``.

``xarray.open_zarr`` of a folder on disk opens the group through zarr-python's
synchronous API: ``open_consolidated`` (and, without consolidated metadata,
``open_group``), then ``members()``, each a hand-off to zarr's event-loop
thread and back (three round trips, each waking the loop, waiting for it and
taking the GIL back from it). For a catalog of thousands of small scenes read
one after another, that is a large part of each open (about 3 of 9 ms of a
4 x 1024² scene under load), and the open-ahead thread's GIL hand-offs stall
the chipper between scenes.

:func:`local_zarr_store` reads the same metadata documents from the folder
itself and builds the same zarr objects from them with zarr-python's own
parsers (:func:`terrapipe._compat.zarr_group_from_documents`,
``AsyncArray.from_dict``: no I/O), and gives xarray a ``ZarrStore`` whose
members are those arrays (:func:`terrapipe._compat.xarray_zarr_store`). Everything after that (variables, CF decoding,
indexes) is xarray's own code, as for any store. The rules are zarr's and
xarray's for ``consolidated``:

- ``None``: the consolidated metadata where the group has some (Zarr v3:
  in its ``zarr.json``; v2: ``.zmetadata``), else the arrays found in the
  folder (v3 only here; a v2 group without ``.zmetadata`` is left to zarr);
- ``True``: the consolidated metadata, or (none there) left to xarray, which
  raises;
- ``False``: the arrays found in the folder, whatever was consolidated.

Anything else — a group path, a URL, a store object, a document that does not
parse, a folder that is not a Zarr group — returns ``None`` and is opened by
xarray as before (with its errors). Consolidated members come in their
recorded order; a folder's are sorted by name (zarr lists them in the order
their reads complete).

Examples
--------
>>> import numpy as np, xarray as xr
>>> _ = xr.Dataset({"v": (("y", "x"), np.ones((2, 3)))}).to_zarr("g.zarr", zarr_format=3)
>>> store = local_zarr_store("g.zarr", consolidated=None)
>>> sorted(store.members)
['v']
>>> local_zarr_store("no-such.zarr", consolidated=None) is None
True
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

__all__ = ["local_zarr_store"]


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


#: Metadata documents parsed, by their bytes: a catalog's scenes repeat the same documents (same shape,
#: chunks, codecs, attributes), and zarr's parsed metadata is immutable, so one parse serves every copy.
_PARSED_DOCUMENTS = 256


@functools.lru_cache(maxsize=_PARSED_DOCUMENTS)
def _array_metadata(data: bytes) -> Any:
    """Return zarr's parsed metadata of an array's ``zarr.json`` (``None``: not an array's document)."""
    import zarr
    from zarr.storage import MemoryStore, StorePath

    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("node_type") != "array":
        return None
    return zarr.AsyncArray.from_dict(StorePath(MemoryStore(), ""), doc).metadata


@functools.lru_cache(maxsize=_PARSED_DOCUMENTS)
def _group_metadata(zarr_json: bytes, use_consolidated: bool | None) -> Any:
    """Return zarr's parsed metadata of a v3 group's ``zarr.json`` (its consolidated metadata included)."""
    from zarr.storage import MemoryStore, StorePath

    from terrapipe._compat import zarr_group_from_documents

    path = StorePath(MemoryStore(), "")
    return zarr_group_from_documents(path, zarr_json=zarr_json, use_consolidated=use_consolidated).metadata


def _is_array(metadata: Any) -> bool:
    """Whether a member's metadata is an array's (zarr's array metadata has a shape, a group's none)."""
    return hasattr(metadata, "shape")


def _listed_arrays(root: str, store: Any) -> dict[str, Any] | None:
    """Return the arrays in a v3 group's folder (sub-folders whose ``zarr.json`` is an array) by name; ``None``: unsure."""
    import zarr
    from zarr.storage import StorePath

    found: dict[str, Any] = {}
    with os.scandir(root) as entries:
        names = sorted(e.name for e in entries if e.is_dir())
    for name in names:
        data = _read(os.path.join(root, name, "zarr.json"))
        if data is None:
            continue  # not a node (zarr warns and skips it)
        metadata = _array_metadata(data)
        if metadata is not None:
            found[name] = zarr.AsyncArray(metadata=metadata, store_path=StorePath(store, name))
        elif json.loads(data).get("node_type") != "group":
            return None
    return found


def _group(root: str, store: Any, consolidated: bool | None) -> tuple[Any, int] | None:
    """Return zarr's ``AsyncGroup`` for the folder, as ``open_group`` builds it, and its Zarr format."""
    import zarr
    from zarr.storage import StorePath

    from terrapipe._compat import zarr_group_from_documents

    path = StorePath(store, "")
    v3 = _read(os.path.join(root, "zarr.json"))
    if v3 is not None:
        if os.path.exists(os.path.join(root, ".zgroup")):
            return None  # both formats: zarr warns and picks v3; leave that to zarr
        use = False if consolidated is False else None
        return zarr.AsyncGroup(metadata=_group_metadata(v3, use), store_path=path), 3
    zgroup = _read(os.path.join(root, ".zgroup"))
    meta = None if consolidated is False else _read(os.path.join(root, ".zmetadata"))
    if zgroup is None or meta is None:
        return None
    zattrs = _read(os.path.join(root, ".zattrs"))
    return zarr_group_from_documents(path, zgroup=zgroup, zattrs=zattrs, zmetadata=meta), 2


def local_zarr_store(source: str, *, consolidated: bool | None) -> Any:
    """Return an xarray ``ZarrStore`` for the local Zarr group at ``source``, or ``None`` to open it as usual.

    Parameters
    ----------
    source
        A folder on this machine (no URL).
    consolidated
        As ``xarray.open_zarr``'s (see the module doc).

    Returns
    -------
    xarray.backends.zarr.ZarrStore or None
        Read-only, its members the group's arrays; ``use_zarr_fill_value_as_mask``
        as xarray's default (v2: yes, v3: no).
    """
    if "://" in source or not os.path.isdir(source):
        return None
    try:
        import zarr
        from zarr.storage import LocalStore, StorePath

        from terrapipe._compat import xarray_zarr_store

        store = LocalStore(source, read_only=True)
        opened = _group(source, store, consolidated)
        if opened is None:
            return None
        group, zarr_format = opened
        inline = group.metadata.consolidated_metadata
        if inline is not None:
            arrays = {
                name: zarr.AsyncArray(metadata=meta, store_path=StorePath(store, name))
                for name, meta in inline.metadata.items()
                if "/" not in name and _is_array(meta)
            }
        elif consolidated is True or zarr_format == 2:
            return None  # xarray raises (no consolidated metadata) or zarr lists a v2 folder
        else:
            listed = _listed_arrays(source, store)
            if listed is None:
                return None
            arrays = listed
        members = {name: zarr.Array(array) for name, array in arrays.items()}
        return xarray_zarr_store(zarr.Group(group), members, use_zarr_fill_value_as_mask=zarr_format == 2)
    except Exception:  # anything unexpected: xarray opens it, with its errors
        return None
