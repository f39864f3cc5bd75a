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

:func:`longitude_period` says how far apart, in a lon/lat CRS's x units, two
spellings of one longitude are (360 degrees): a grid written 0..360 and a
layer or point written -180..180 meet there.

Examples
--------
>>> same_crs("EPSG:4326", "+proj=longlat +datum=WGS84 +no_defs")
True
>>> same_crs("EPSG:4326", "EPSG:4269"), same_crs("EPSG:32631", "EPSG:4326")
(False, False)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

__all__ = ["crs_input_text", "longitude_period", "no_operation", "same_crs"]


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


@lru_cache(maxsize=256)
def _period_of(text: str) -> float | None:
    from pyproj import CRS

    try:
        crs = CRS.from_user_input(text)
    except Exception:  # pyproj raises CRSError and friends: not a CRS, so no turn of the globe
        return None
    if not crs.is_geographic:
        return None
    for axis in crs.axis_info:
        if axis.direction in ("east", "west") and axis.unit_conversion_factor > 0:
            return round(2 * math.pi / axis.unit_conversion_factor, 9)
    return None


def longitude_period(crs: Any) -> float | None:
    """Return one turn of the globe in a lon/lat CRS's x units (360 for degrees), ``None`` if projected.

    The x of our grids is the longitude (odc-geo and rasterio put x east), so
    the same place is at ``x``, ``x + period`` and ``x - period``.

    Parameters
    ----------
    crs
        Anything pyproj understands; ``None``, ``""`` or an unreadable CRS give ``None``.

    Returns
    -------
    float or None
        ``360.0`` for a CRS in degrees, ``400.0`` in grads; ``None`` for a
        projected CRS (PROJ wraps longitudes itself when it projects).

    Examples
    --------
    >>> longitude_period("EPSG:4326"), longitude_period("OGC:CRS84"), longitude_period("EPSG:32631")
    (360.0, 360.0, None)
    >>> longitude_period("EPSG:4807"), longitude_period(None)
    (400.0, None)
    """
    if crs is None or crs == "":
        return None
    return _period_of(crs_input_text(crs))


def _named(crs: Any) -> str:
    text = crs_input_text(crs)
    try:
        from pyproj import CRS

        parsed = CRS.from_user_input(text)
        authority = parsed.to_authority()
        return ":".join(authority) if authority else str(parsed.name)
    except Exception:  # pyproj raises CRSError and friends: show the start of the text
        return text[:60]


@contextmanager
def no_operation(source: Any, target: Any, what: str) -> Iterator[None]:
    """Turn PROJ's failure to move coordinates from ``source`` to ``target`` into a named error.

    Between an engineering CRS (``LOCAL_CS``: CAD and survey exports) and a
    geographic or projected one there is no coordinate operation; pyproj
    says ``ProjError: Error creating Transformer from CRS.``, naming neither.

    Raises
    ------
    GridMismatchError
        Naming ``what``, both CRSs and what to do, from pyproj's error.

    Examples
    --------
    >>> from pyproj import Transformer
    >>> with no_operation('LOCAL_CS["arbitrary"]', "EPSG:32631", "rasterize"):
    ...     Transformer.from_crs('LOCAL_CS["arbitrary"]', "EPSG:32631")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.GridMismatchError: rasterize: no coordinate operation from CRS 'arbitrary' to CRS 'EPSG:32631' ...
    """
    from pyproj.exceptions import CRSError, ProjError

    from terrapipe.core.errors import GridMismatchError

    try:
        yield
    except (ProjError, CRSError) as err:
        msg = (
            f"{what}: no coordinate operation from CRS {_named(source)!r} to CRS {_named(target)!r} (an "
            "engineering or local CRS cannot be placed on the map); give the data its real CRS, or use it "
            "with chips in its own CRS"
        )
        raise GridMismatchError(msg) from err
