"""Cache keys: the identity of an element plus the digest of the stages' configuration.

:func:`element_identity` describes what an element *is* without computing
anything from it:

- a path or URL string, a ``pathlib`` path: the string, plus size and
  modification time when it names a local file (``ETag``, ``Last-Modified``,
  ``Content-Length`` of ``http(s)`` URLs with ``check_remote=True``);
- a ``pystac.Item``: its JSON without links (id, collection, geometry,
  datetime and every property) and each asset's absolute href, with the same
  file checks;
- an ``xr.DataArray``/``xr.Dataset``: dims, coordinates (the window's bounds
  and time), attributes and CRS, and its data: a digest of the values when
  they are in memory, the dask graph name for a dask array, or the source file
  (``encoding["source"]``, checked as above) and encoding for a lazily read one;
- a tensor or numpy array: dtype, shape and a digest of the values;
- a :class:`~terrapipe.core.sample.Sample` or any dict, list, tuple: the
  same for each item (``meta`` fields as plain values);
- plain values: themselves.

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
KEY_FORMAT = 1


def element_identity(element: Any, *, check_remote: bool = False) -> Json:
    """Describe an element's identity (see the module doc).

    Parameters
    ----------
    element
        The element at the cache point.
    check_remote
        Ask ``http(s)`` servers for ``ETag``/``Last-Modified``/size (one
        ``HEAD`` request per URL).

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
