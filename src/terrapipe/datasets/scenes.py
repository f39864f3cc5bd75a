"""The Sentinel-2-like acquisitions of the sample world (pure definitions, no I/O).

Three dates, two tiles each. Both tiles of a date belong to one datatake, so
they are a few seconds apart. Each date's swath edge is a slanted line (the
orbit's ground track runs south-south-west) that leaves part of one tile
without data, at a different place on each date, like the edge of a real
Sentinel-2 swath.

Examples
--------
>>> from terrapipe.datasets.scenes import acquisitions
>>> [a.item_id for a in acquisitions()][:2]
['S2B_31TGL_20240415_0_L2A', 'S2B_32TKR_20240415_0_L2A']
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import shapely

from terrapipe.datasets.grid import (
    ANCHOR_LAT,
    ANCHOR_LON,
    TILE_CRS,
    footprint_lonlat,
    mgrs_square,
    tile_geobox,
)

__all__ = [
    "BAND_FILES",
    "S2_BANDS",
    "S2_DATES",
    "S2_TILES",
    "SCL_CLASSES",
    "Acquisition",
    "Band",
    "acquisitions",
    "swath_polygon",
]


@dataclass(frozen=True)
class Band:
    """Spectral band of the Sentinel-2 MSI.

    Attributes
    ----------
    name
        ESA band name, also the COG's file stem (``"B04"``).
    common_name
        STAC ``eo`` common name, also the asset key (``"red"``).
    center_wavelength
        Centre wavelength in micrometres.
    full_width_half_max
        Band width in micrometres.
    """

    name: str
    common_name: str
    center_wavelength: float
    full_width_half_max: float


#: The four 10 m bands, in the order of the STAC assets.
S2_BANDS: tuple[Band, ...] = (
    Band("B02", "blue", 0.490, 0.098),
    Band("B03", "green", 0.560, 0.045),
    Band("B04", "red", 0.665, 0.038),
    Band("B08", "nir", 0.842, 0.145),
)
#: Asset key -> COG file name, like real Sentinel-2 L2A COGs on cloud storage.
BAND_FILES: Mapping[str, str] = MappingProxyType(
    {**{b.common_name: f"{b.name}.tif" for b in S2_BANDS}, "scl": "SCL.tif"}
)

#: Scene-classification codes of the ``scl`` band (ESA's Sen2Cor classes).
SCL_CLASSES: Mapping[int, str] = MappingProxyType(
    {
        0: "no_data",
        1: "saturated_or_defective",
        2: "dark_area_pixels",
        3: "cloud_shadows",
        4: "vegetation",
        5: "not_vegetated",
        6: "water",
        7: "unclassified",
        8: "cloud_medium_probability",
        9: "cloud_high_probability",
        10: "thin_cirrus",
        11: "snow",
    }
)

#: Acquisition dates (the same relative orbit, S2A and S2B alternating).
S2_DATES: tuple[dt.date, ...] = (dt.date(2024, 4, 15), dt.date(2024, 6, 19), dt.date(2024, 8, 13))
#: MGRS names of tile 0 and tile 1 (the 100 km squares at 6°E, 45.75°N in zones 31 and 32).
S2_TILES: tuple[str, str] = (mgrs_square(31, ANCHOR_LON, ANCHOR_LAT), mgrs_square(32, ANCHOR_LON, ANCHOR_LAT))

# Per date: platform, start of the datatake, (tile cut by the swath edge,
# where the edge crosses the tile's centre line as a fraction of its width,
# side of the edge with data), cloud fraction, sun elevation and azimuth.
_DATES = (
    ("sentinel-2b", dt.time(10, 30, 19, 24000), (0, 0.30, "east"), 0.18, 50.5, 155.0),
    ("sentinel-2a", dt.time(10, 30, 21, 511000), (1, 0.70, "west"), 0.06, 64.0, 147.0),
    ("sentinel-2b", dt.time(10, 30, 19, 268000), (0, 0.45, "east"), 0.12, 56.5, 152.0),
)
# Seconds between the two tiles of a datatake.
_TILE_DELAY = dt.timedelta(seconds=4, microseconds=208000)
# Degrees of longitude the swath edge moves west per degree of latitude southward.
_SWATH_SLANT = 0.3


@dataclass(frozen=True)
class Acquisition:
    """One Sentinel-2-like scene: one tile on one date.

    Attributes
    ----------
    date_index
        Index into :data:`S2_DATES`.
    tile
        0 (UTM zone 31) or 1 (zone 32).
    scale
        World scale.
    item_id
        STAC item id, e.g. ``"S2B_31TGL_20240415_0_L2A"``.
    datetime
        Acquisition time (UTC).
    platform
        ``"sentinel-2a"`` or ``"sentinel-2b"``.
    crs
        The tile's CRS, e.g. ``"EPSG:32631"``.
    swath_edge
        ``(lon, lat)`` where the swath edge crosses the tiles' centre line.
    valid_side
        ``"east"`` or ``"west"``: the side of the edge with data.
    cloud_fraction
        Target fraction of the region under clouds on this date.
    sun_elevation, sun_azimuth
        Sun position in degrees.
    """

    date_index: int
    tile: int
    scale: int
    item_id: str
    datetime: dt.datetime
    platform: str
    crs: str
    swath_edge: tuple[float, float]
    valid_side: str
    cloud_fraction: float
    sun_elevation: float
    sun_azimuth: float


def acquisitions(scale: int = 1) -> tuple[Acquisition, ...]:
    """All six scenes, ordered by date then tile.

    Parameters
    ----------
    scale
        World scale (moves the swath edges with the tiles).

    Returns
    -------
    tuple of Acquisition
        Six scenes.

    Examples
    --------
    >>> scenes = acquisitions()
    >>> len(scenes), scenes[0].crs, scenes[1].crs
    (6, 'EPSG:32631', 'EPSG:32632')
    >>> (scenes[1].datetime - scenes[0].datetime).total_seconds()
    4.208
    """
    footprints = [footprint_lonlat(tile_geobox(t, scale)).bounds for t in (0, 1)]
    out = []
    for index, (date, (platform, start, (cut, fraction, side), clouds, elevation, azimuth)) in enumerate(
        zip(S2_DATES, _DATES, strict=True)
    ):
        west, _, east, _ = footprints[cut]
        edge = (west + fraction * (east - west), ANCHOR_LAT)
        for tile in (0, 1):
            when = dt.datetime.combine(date, start, tzinfo=dt.UTC) + tile * _TILE_DELAY
            item_id = f"S2{platform[-1].upper()}_{S2_TILES[tile]}_{date:%Y%m%d}_0_L2A"
            out.append(
                Acquisition(
                    index,
                    tile,
                    scale,
                    item_id,
                    when,
                    platform,
                    TILE_CRS[tile],
                    edge,
                    side,
                    clouds,
                    elevation,
                    azimuth,
                )
            )
    return tuple(out)


def swath_polygon(acquisition: Acquisition) -> shapely.Polygon:
    """Polygon in EPSG:4326 of the side of the swath edge that has data.

    It spans ±1° of latitude and 3° of longitude, far more than the region.

    Parameters
    ----------
    acquisition
        The scene.

    Returns
    -------
    shapely.Polygon
        The imaged half-plane, clipped to a large box.

    Examples
    --------
    >>> scene = acquisitions()[0]
    >>> poly = swath_polygon(scene)
    >>> poly.contains(shapely.Point(6.0, 45.75)), poly.contains(shapely.Point(5.8, 45.75))
    (True, False)
    """
    lon, lat = acquisition.swath_edge
    south, north = lat - 1.0, lat + 1.0
    lon_south, lon_north = lon - _SWATH_SLANT, lon + _SWATH_SLANT
    far = 3.0 if acquisition.valid_side == "east" else -3.0
    poly = shapely.Polygon(
        [(lon_south, south), (lon_north, north), (lon_north + far, north), (lon_south + far, south)]
    )
    return shapely.orient_polygons(poly)
