"""Grids of the sample world: tile, DEM and climate geoboxes (pure math, no I/O).

The sample world sits in the French/Swiss pre-Alps, where the UTM zones 31
and 32 meet at 6°E. Two Sentinel-2-like tiles straddle that meridian: tile 0
in EPSG:32631, tile 1 in EPSG:32632, overlapping by about a tenth of their
width like real Sentinel-2 tiles do. Everything else (DEM, land cover,
vectors) covers the *region*: the union of both tile footprints plus a small
margin, snapped to whole arc-seconds.

All functions here are pure: they compute :class:`odc.geo.geobox.GeoBox`
objects and shapely geometries from numbers alone.

Examples
--------
>>> from terrapipe.datasets.grid import tile_geobox
>>> gbox = tile_geobox(0)
>>> str(gbox.crs), gbox.shape.yx, gbox.resolution.xy
('EPSG:32631', (1024, 1024), (10.0, -10.0))
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from affine import Affine
from numpy.typing import ArrayLike, NDArray
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from terrapipe.core.errors import InvalidArgumentError

__all__ = [
    "ANCHOR_LAT",
    "ANCHOR_LON",
    "CLIMATE_CELLS",
    "CLIMATE_RESOLUTION",
    "DEM_RESOLUTION",
    "MAX_SCALE",
    "S2_RESOLUTION",
    "SCL_RESOLUTION",
    "TILE_CRS",
    "TILE_PIXELS",
    "check_scale",
    "climate_geobox",
    "coarsen",
    "dem_geobox",
    "footprint_lonlat",
    "from_local_metres",
    "mgrs_square",
    "region_bbox",
    "scl_geobox",
    "tile_geobox",
    "to_local_metres",
]

#: Longitude (°E) of the meridian between UTM zones 31 and 32, where the tiles meet.
ANCHOR_LON = 6.0
#: Latitude (°N) of the tiles' centre line.
ANCHOR_LAT = 45.75
#: CRS of tile 0 and tile 1.
TILE_CRS: tuple[str, str] = ("EPSG:32631", "EPSG:32632")
#: Side of a tile in pixels at 10 m, at ``scale=1``.
TILE_PIXELS = 1024
#: Pixel size of the 10 m bands, in metres.
S2_RESOLUTION = 10.0
#: Pixel size of the scene-classification band, in metres.
SCL_RESOLUTION = 20.0
#: Tile origins are snapped to multiples of this many metres (like real S2 tiles).
ORIGIN_SNAP = 60.0
#: Fraction of a tile's width shared with the neighbouring tile.
OVERLAP_FRACTION = 0.1
#: DEM pixel size in degrees (1 arc-second, ~30 m).
DEM_RESOLUTION = 1.0 / 3600.0
#: Margin around the tiles' footprints, in arc-seconds (36" = 0.01°).
REGION_MARGIN_ARCSEC = 36
#: Climate grid pixel size in degrees.
CLIMATE_RESOLUTION = 0.25
#: Climate grid side in cells at ``scale=1``.
CLIMATE_CELLS = 32
#: Largest supported ``scale`` (a scale-8 tile is 8192 x 8192 pixels).
MAX_SCALE = 8

_M_PER_DEG_LAT = 111_132.0
_M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(ANCHOR_LAT))


def check_scale(scale: int) -> int:
    """Return ``scale`` if it is a valid sample-world scale, else raise.

    Parameters
    ----------
    scale
        Integer from 1 to :data:`MAX_SCALE`; the tile side grows linearly with it.

    Returns
    -------
    int
        ``scale`` unchanged.

    Raises
    ------
    InvalidArgumentError
        When ``scale`` is not an integer in ``1..MAX_SCALE``.

    Examples
    --------
    >>> check_scale(2)
    2
    """
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or not 1 <= scale <= MAX_SCALE:
        msg = f"invalid scale: {scale!r}; use an integer from 1 to {MAX_SCALE}"
        raise InvalidArgumentError(msg)
    return int(scale)


def _snap(value: float) -> float:
    return float(round(value / ORIGIN_SNAP) * ORIGIN_SNAP)


def tile_geobox(tile: int, scale: int = 1) -> GeoBox:
    """Grid of one Sentinel-2-like tile (10 m pixels, origin on a 60 m multiple).

    Parameters
    ----------
    tile
        0 for the western tile (UTM zone 31), 1 for the eastern one (zone 32).
    scale
        World scale; the tile side is ``1024 * scale`` pixels.

    Returns
    -------
    odc.geo.geobox.GeoBox
        North-up grid in the tile's UTM CRS.

    Raises
    ------
    InvalidArgumentError
        For a tile other than 0 or 1, or an invalid scale.

    Examples
    --------
    >>> gbox = tile_geobox(1, scale=2)
    >>> str(gbox.crs), gbox.shape.yx
    ('EPSG:32632', (2048, 2048))
    >>> gbox.affine.c % 10, gbox.affine.f % 10
    (0.0, 0.0)
    """
    scale = check_scale(scale)
    if tile not in (0, 1):
        msg = f"invalid tile: {tile!r}; the sample world has tiles 0 and 1"
        raise InvalidArgumentError(msg)
    pixels = TILE_PIXELS * scale
    side = pixels * S2_RESOLUTION
    overlap = side * OVERLAP_FRACTION
    to_utm = Transformer.from_crs("EPSG:4326", TILE_CRS[tile], always_xy=True)
    x, y = to_utm.transform(ANCHOR_LON, ANCHOR_LAT)
    left = x + overlap / 2 - side if tile == 0 else x - overlap / 2
    top = y + side / 2
    affine = Affine(S2_RESOLUTION, 0.0, _snap(left), 0.0, -S2_RESOLUTION, _snap(top))
    return GeoBox((pixels, pixels), affine, TILE_CRS[tile])


def scl_geobox(tile: int, scale: int = 1) -> GeoBox:
    """Grid of a tile's 20 m scene-classification band.

    Parameters
    ----------
    tile
        0 or 1, as in :func:`tile_geobox`.
    scale
        World scale.

    Returns
    -------
    odc.geo.geobox.GeoBox
        Same footprint as the 10 m grid, half as many pixels per side.

    Examples
    --------
    >>> scl_geobox(0).shape.yx, scl_geobox(0).resolution.x
    ((512, 512), 20.0)
    """
    return coarsen(tile_geobox(tile, scale), round(SCL_RESOLUTION / S2_RESOLUTION))


def coarsen(geobox: GeoBox, factor: int) -> GeoBox:
    """Make a grid with the same footprint and pixels ``factor`` times larger.

    The shape must be a multiple of ``factor``.

    Parameters
    ----------
    geobox
        North-up grid.
    factor
        Integer zoom-out factor.

    Returns
    -------
    odc.geo.geobox.GeoBox
        The coarser grid.

    Raises
    ------
    InvalidArgumentError
        When the shape is not a multiple of ``factor``.

    Examples
    --------
    >>> coarsen(tile_geobox(0), 4).shape.yx
    (256, 256)
    """
    rows, cols = geobox.shape.yx
    if factor < 1 or rows % factor or cols % factor:
        msg = f"cannot coarsen a grid of shape {(rows, cols)} by {factor!r}; use a divisor of both sides"
        raise InvalidArgumentError(msg)
    a, b, c, d, e, f = geobox.affine[:6]
    affine = Affine(a * factor, b * factor, c, d * factor, e * factor, f)
    return GeoBox((rows // factor, cols // factor), affine, geobox.crs)


def footprint_lonlat(geobox: GeoBox, *, points_per_side: int = 32) -> shapely.Polygon:
    """Footprint of ``geobox`` in EPSG:4326, its edges densified before reprojecting.

    Parameters
    ----------
    geobox
        Any grid.
    points_per_side
        How many vertices each edge gets before it is reprojected.

    Returns
    -------
    shapely.Polygon
        Longitude/latitude polygon, counter-clockwise.

    Examples
    --------
    >>> poly = footprint_lonlat(tile_geobox(0))
    >>> round(poly.bounds[2], 3) > 6.0  # tile 0 reaches past 6°E into zone 32
    True
    """
    left, bottom, right, top = geobox.extent.boundingbox[:4]
    ring = shapely.box(left, bottom, right, top).exterior
    ring = shapely.segmentize(ring, max(right - left, top - bottom) / points_per_side)
    coords = np.asarray(ring.coords)
    if geobox.crs is not None and geobox.crs.epsg != 4326:
        to_ll = Transformer.from_crs(str(geobox.crs), "EPSG:4326", always_xy=True)
        lon, lat = to_ll.transform(coords[:, 0], coords[:, 1])
        coords = np.column_stack([lon, lat])
    return shapely.orient_polygons(shapely.Polygon(coords))


def _region_arcsec(scale: int) -> tuple[int, int, int, int]:
    bounds = np.array([footprint_lonlat(tile_geobox(t, scale)).bounds for t in (0, 1)])
    west, south = bounds[:, 0].min(), bounds[:, 1].min()
    east, north = bounds[:, 2].max(), bounds[:, 3].max()
    m = REGION_MARGIN_ARCSEC
    return (
        math.floor(west * 3600) - m,
        math.floor(south * 3600) - m,
        math.ceil(east * 3600) + m,
        math.ceil(north * 3600) + m,
    )


def region_bbox(scale: int = 1) -> tuple[float, float, float, float]:
    """Bounding box (west, south, east, north) of the sample world, in degrees.

    It holds both tiles plus a 0.01° margin, snapped outward to whole arc-seconds.

    Parameters
    ----------
    scale
        World scale.

    Returns
    -------
    tuple of float
        ``(west, south, east, north)`` in EPSG:4326.

    Examples
    --------
    >>> west, south, east, north = region_bbox()
    >>> west < 6.0 < east and south < 45.75 < north
    True
    """
    w, s, e, n = _region_arcsec(check_scale(scale))
    return (w / 3600, s / 3600, e / 3600, n / 3600)


def dem_geobox(scale: int = 1) -> GeoBox:
    """Grid of the DEM: 1 arc-second pixels in EPSG:4326 covering the region.

    Parameters
    ----------
    scale
        World scale.

    Returns
    -------
    odc.geo.geobox.GeoBox
        North-up geographic grid, origin on whole arc-seconds.

    Examples
    --------
    >>> gbox = dem_geobox()
    >>> str(gbox.crs), round(gbox.resolution.x * 3600, 6)
    ('EPSG:4326', 1.0)
    """
    w, s, e, n = _region_arcsec(check_scale(scale))
    affine = Affine(DEM_RESOLUTION, 0.0, w / 3600, 0.0, -DEM_RESOLUTION, n / 3600)
    return GeoBox((n - s, e - w), affine, "EPSG:4326")


def climate_geobox(scale: int = 1) -> GeoBox:
    """Grid of the climate datacube: 0.25° cells centred on the region.

    Parameters
    ----------
    scale
        World scale; the grid side is ``32 * scale`` cells.

    Returns
    -------
    odc.geo.geobox.GeoBox
        North-up geographic grid with edges on multiples of 0.25°.

    Examples
    --------
    >>> gbox = climate_geobox()
    >>> gbox.shape.yx, gbox.boundingbox[:4]
    ((32, 32), (2.0, 41.75, 10.0, 49.75))
    """
    cells = CLIMATE_CELLS * check_scale(scale)
    half = cells * CLIMATE_RESOLUTION / 2
    west = round(ANCHOR_LON / CLIMATE_RESOLUTION) * CLIMATE_RESOLUTION - half
    north = round(ANCHOR_LAT / CLIMATE_RESOLUTION) * CLIMATE_RESOLUTION + half
    affine = Affine(CLIMATE_RESOLUTION, 0.0, west, 0.0, -CLIMATE_RESOLUTION, north)
    return GeoBox((cells, cells), affine, "EPSG:4326")


def to_local_metres(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Project lon/lat to a local equirectangular frame in metres around the anchor.

    The frame is an affine function of lon/lat, so straight lines stay
    straight both ways; it is used to lay out land-cover cells and buildings
    with distances in metres.

    Parameters
    ----------
    lon, lat
        Coordinates in degrees.

    Returns
    -------
    tuple of numpy.ndarray
        ``(x, y)`` in metres east and north of (6°E, 45.75°N).

    Examples
    --------
    >>> x, y = to_local_metres(6.0, 45.76)
    >>> float(x), round(float(y))
    (0.0, 1111)
    """
    x = (np.asarray(lon, dtype=np.float64) - ANCHOR_LON) * _M_PER_DEG_LON
    y = (np.asarray(lat, dtype=np.float64) - ANCHOR_LAT) * _M_PER_DEG_LAT
    return x, y


def from_local_metres(x: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Inverse of :func:`to_local_metres`.

    Parameters
    ----------
    x, y
        Metres east and north of the anchor.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lon, lat)`` in degrees.

    Examples
    --------
    >>> lon, lat = from_local_metres(*to_local_metres(6.1, 45.8))
    >>> round(float(lon), 9), round(float(lat), 9)
    (6.1, 45.8)
    """
    lon = np.asarray(x, dtype=np.float64) / _M_PER_DEG_LON + ANCHOR_LON
    lat = np.asarray(y, dtype=np.float64) / _M_PER_DEG_LAT + ANCHOR_LAT
    return lon, lat


_MGRS_BANDS = "CDEFGHJKLMNPQRSTUVWX"
_MGRS_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_MGRS_ROWS = "ABCDEFGHJKLMNPQRSTUV"


def mgrs_square(zone: int, lon: float, lat: float) -> str:
    """MGRS 100 km square (the Sentinel-2 tile name) of a point, forced into ``zone``.

    Sentinel-2 tiles near a zone boundary extend into the neighbouring zone,
    so the zone is given rather than derived from the longitude.

    Parameters
    ----------
    zone
        UTM zone number (northern hemisphere).
    lon, lat
        Point in degrees.

    Returns
    -------
    str
        E.g. ``"31TGL"``.

    Examples
    --------
    >>> mgrs_square(31, 6.0, 45.75), mgrs_square(32, 6.0, 45.75)
    ('31TGL', '32TKR')
    """
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{32600 + zone}", always_xy=True)
    easting, northing = to_utm.transform(lon, lat)
    band = _MGRS_BANDS[int((lat + 80) // 8)]
    column = _MGRS_COLUMNS[(zone - 1) % 3][int(easting // 100_000) - 1]
    row = _MGRS_ROWS[(int(northing // 100_000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone}{band}{column}{row}"
