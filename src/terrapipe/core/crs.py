"""Whether two CRSs are the same for our grids: :func:`same_crs`.

Our arrays are ``(y, x)`` and every transform maps a pixel to ``(x, y)`` with
x east (odc-geo, rasterio and GDAL's traditional GIS order), whatever axis
order a CRS's definition states. So two CRSs that differ only in axis order
place every pixel at the same spot: ``EPSG:4326`` (latitude first) and
``OGC:CRS84`` (longitude first; what ``+proj=longlat +datum=WGS84`` resolves
to), ``EPSG:4269`` and ``OGC:CRS83``. Those are one CRS here. Everything
else that differs stays different: another datum (WGS 84 and NAD83, ETRS89),
other units (metres and feet, degrees and grads), a prime meridian, a
geographic against a projected CRS, 2-D against 3-D.

The comparison is pyproj's ``CRS.equals(other, ignore_axis_order=True)``; two
inputs whose :func:`terrapipe.fuse.grid.crs_text` reads the same (one
authority code) are the same too, as they always were.

Examples
--------
>>> same_crs("EPSG:4326", "+proj=longlat +datum=WGS84 +no_defs")
True
>>> same_crs("EPSG:4326", "EPSG:4269"), same_crs("EPSG:32631", "EPSG:4326")
(False, False)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["crs_input_text", "same_crs"]


def crs_input_text(crs: Any) -> str:
    """Return the text pyproj reads a CRS from: ``EPSG:<n>`` for an int, a string as is, else its WKT.

    Examples
    --------
    >>> crs_input_text(32631), crs_input_text("OGC:CRS84")
    ('EPSG:32631', 'OGC:CRS84')
    """
    if isinstance(crs, int) and not isinstance(crs, bool):
        return f"EPSG:{crs}"
    if isinstance(crs, str):
        return crs
    if hasattr(crs, "to_wkt"):
        return str(crs.to_wkt())
    return str(crs)


@lru_cache(maxsize=256)
def _same(a: str, b: str) -> bool:
    from pyproj import CRS

    try:
        first, second = CRS.from_user_input(a), CRS.from_user_input(b)
    except Exception:  # pyproj raises CRSError and friends: an unreadable CRS cannot be shown to match
        return False
    if first.equals(second, ignore_axis_order=True):
        return True
    one, other = first.to_authority(), second.to_authority()
    return one is not None and one == other


def same_crs(a: Any, b: Any) -> bool:
    """Whether two CRSs place every ``(x, y)`` at the same spot on Earth (see the module notes).

    Parameters
    ----------
    a, b
        Anything pyproj understands (a pyproj, rasterio or odc-geo CRS, a
        string, an EPSG int). ``None`` is the same only as ``None``.

    Returns
    -------
    bool
        ``True`` for the same CRS spelt or axis-ordered differently;
        ``False`` for different ones and for input that is not a CRS.

    Examples
    --------
    >>> same_crs("OGC:CRS84", 4326), same_crs("EPSG:4326", "EPSG:4979")
    (True, False)
    >>> same_crs(None, None), same_crs(None, 4326)
    (True, False)
    """
    if a is None or b is None:
        return a is None and b is None
    first, second = crs_input_text(a), crs_input_text(b)
    if first == second:
        return True
    return _same(*sorted((first, second)))
