"""Content digests: BLAKE2b of bytes and of geometries' WKB.

The lowest layer that needs them: cache keys (:mod:`terrapipe.cache.canonical`)
and the vector layers of ``fuse`` (:class:`~terrapipe.fuse.vector_index.VectorIndex`,
``rasterize``) describe content with them, so they live here and no layer
imports one above it to reach them.

Examples
--------
>>> digest_bytes(b"terrapipe", size=4)
'6ad6fa37'
>>> from shapely.geometry import Point
>>> len(wkb_digest([Point(0, 0)]))
16
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["digest_bytes", "wkb_digest"]

#: Geometries serialised per block by :func:`wkb_digest` (bounds the memory its WKB takes).
WKB_BLOCK = 65536


def digest_bytes(data: bytes | bytearray | memoryview, *, size: int = 16) -> str:
    """Return the BLAKE2b hex digest of ``data`` (``size`` bytes long).

    Examples
    --------
    >>> digest_bytes(b"terrapipe", size=4)
    '6ad6fa37'
    """
    return hashlib.blake2b(data, digest_size=size).hexdigest()


def wkb_digest(geometries: Any) -> bytes:
    """Return the 16-byte BLAKE2b digest of the geometries' WKB, concatenated in their order.

    The WKB is shapely's default (:func:`shapely.to_wkb`, the same bytes as
    each geometry's ``.wkb``), serialised in blocks with one vectorised call
    each, so memory stays bounded for large layers. A missing geometry
    (``None``) adds nothing; an empty one adds its WKB. Row order counts.

    Parameters
    ----------
    geometries
        Shapely geometries: a GeoSeries, a GeometryArray, a sequence or an
        object array.

    Returns
    -------
    bytes
        The raw digest (``.hex()`` for text).

    Examples
    --------
    >>> from shapely.geometry import Point
    >>> a, b = Point(0, 0), Point(1, 1)
    >>> wkb_digest([a, b]) == wkb_digest([a, None, b]) != wkb_digest([b, a])
    True
    >>> len(wkb_digest([]))
    16
    """
    import shapely

    array = np.asarray(geometries, dtype=object).reshape(-1)
    digest = hashlib.blake2b(digest_size=16)
    for start in range(0, len(array), WKB_BLOCK):
        block = array[start : start + WKB_BLOCK]
        block = block[~shapely.is_missing(block)]
        digest.update(b"".join(shapely.to_wkb(block)))
    return digest.digest()
