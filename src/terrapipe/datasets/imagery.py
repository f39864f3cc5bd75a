"""Sentinel-2-like imagery painted from the land-cover map.

Each pixel's surface reflectance is its land-cover class's spectral signature
on that date (cropland follows one of three crop calendars per field), scaled
by a per-field brightness, modulated by terrain illumination, ground texture
and speckle; buildings are burnt in as roofs, peaks carry snow in April. Then
the atmosphere and the sensor: cloud blobs and their shadows (displaced away
from the sun), sensor noise, and no data (0) outside the swath edge. Values
are L2A-style digital numbers: reflectance x 10000 in uint16.

The scene-classification band (``scl``, 20 m) is derived from the same
layers with Sen2Cor's codes, so it agrees with the pixels.

Examples
--------
>>> from terrapipe.datasets.imagery import signature
>>> from terrapipe.datasets.landcover import FOREST, WATER
>>> signature(FOREST, 1)["nir"] > 5 * signature(WATER, 1)["nir"]
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio.warp
import shapely
from affine import Affine
from numpy.typing import NDArray
from odc.geo.geobox import GeoBox

from terrapipe.datasets.cog import write_cog
from terrapipe.datasets.dem import shading
from terrapipe.datasets.grid import S2_RESOLUTION, coarsen, footprint_lonlat
from terrapipe.datasets.landcover import (
    BARE,
    CROPLAND,
    FOREST,
    GRASSLAND,
    URBAN,
    WATER,
    LandCover,
    rasterize_cells,
)
from terrapipe.datasets.noise import rng_for
from terrapipe.datasets.scenes import BAND_FILES, S2_BANDS, Acquisition, swath_polygon
from terrapipe.datasets.vectors import Buildings

__all__ = [
    "CLOUD_HEIGHT",
    "Scene",
    "TileLayers",
    "cloud_opacity",
    "render_scene",
    "signature",
    "tile_layers",
    "write_scene",
]

#: Height of the cloud layer, in metres (sets how far shadows fall from clouds).
CLOUD_HEIGHT = 1500.0

_BANDS = tuple(b.common_name for b in S2_BANDS)

# Surface reflectance x 10000 (blue, green, red, nir) per class, for the April, June and August dates.
_SIGNATURES: dict[int, tuple[tuple[int, int, int, int], ...]] = {
    WATER: ((550, 600, 400, 250), (500, 650, 350, 200), (520, 700, 420, 220)),
    FOREST: ((300, 500, 350, 2300), (250, 480, 260, 3100), (260, 470, 270, 2900)),
    GRASSLAND: ((420, 750, 560, 2700), (380, 720, 450, 3400), (520, 820, 760, 2500)),
    URBAN: ((950, 1050, 1100, 1600), (950, 1050, 1100, 1750), (960, 1060, 1120, 1700)),
    BARE: ((1500, 1700, 1900, 2250), (1550, 1750, 1950, 2300), (1600, 1800, 2000, 2350)),
}
# Three crop calendars: winter cereal, maize, fodder meadow.
_CROPS: tuple[tuple[tuple[int, int, int, int], ...], ...] = (
    ((330, 680, 420, 3600), (600, 900, 1050, 2600), (1150, 1350, 1600, 2200)),
    ((1000, 1250, 1500, 1900), (650, 900, 900, 2600), (300, 620, 330, 4200)),
    ((420, 760, 520, 3000), (800, 1000, 1100, 2300), (400, 740, 500, 3100)),
)
_ROOFS = {1: (800, 1000, 2000, 2500), 2: (1600, 1650, 1700, 1800)}
_SNOW = (9000, 8900, 8700, 7800)
_CLOUD = (7600, 7400, 7300, 7000)
# Relative amplitude of the 30 m ground texture and of the 10 m speckle, per class (index = class code).
_TEXTURE = np.array([0, 0.03, 0.10, 0.05, 0.07, 0.10, 0.12], dtype=np.float32)
_SPECKLE = np.array([0, 0.02, 0.08, 0.03, 0.04, 0.10, 0.08], dtype=np.float32)
# Sen2Cor scene classes for each land-cover class.
_SCL_OF_CLASS = np.array([7, 6, 4, 4, 4, 5, 5], dtype=np.uint8)
_SNOW_LINE = (1650.0, 1850.0)  # metres: snow starts, snow is complete (April only)


def signature(land_class: int, date_index: int, crop_type: int = 0) -> dict[str, int]:
    """Mean surface reflectance (x 10000) of a land-cover class on a date.

    Parameters
    ----------
    land_class
        Class code (see :data:`terrapipe.datasets.landcover.CLASS_NAMES`).
    date_index
        0, 1 or 2 (April, June, August).
    crop_type
        Crop calendar (0-2), for cropland only.

    Returns
    -------
    dict
        Band common name -> reflectance x 10000.

    Examples
    --------
    >>> signature(CROPLAND, 0, crop_type=1)
    {'blue': 1000, 'green': 1250, 'red': 1500, 'nir': 1900}
    """
    values = _CROPS[crop_type][date_index] if land_class == CROPLAND else _SIGNATURES[land_class][date_index]
    return dict(zip(_BANDS, values, strict=True))


@dataclass(frozen=True, eq=False)
class TileLayers:
    """Everything about a tile that does not change with the date.

    Attributes
    ----------
    geobox
        10 m grid of the tile.
    cell_ids
        Land-cover cell id of each pixel.
    classes
        Land-cover class of each pixel.
    roofs
        Roof type of each pixel (0: no building).
    texture
        30 m ground texture resampled to 10 m (unit variance).
    speckle
        10 m speckle (unit variance).
    elevation
        Terrain elevation (m) resampled to 10 m.
    """

    geobox: GeoBox
    cell_ids: NDArray[np.int32]
    classes: NDArray[np.uint8]
    roofs: NDArray[np.uint8]
    texture: NDArray[np.float32]
    speckle: NDArray[np.float32]
    elevation: NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class Scene:
    """The rendered pixels of one acquisition.

    Attributes
    ----------
    acquisition
        What was imaged.
    bands
        ``(4, rows, cols)`` uint16 digital numbers (blue, green, red, nir), 0 = no data.
    scl
        ``(rows / 2, cols / 2)`` uint8 scene classification at 20 m.
    cloud_cover
        Percentage of valid 20 m pixels classed as cloud (8, 9 or 10), like ``eo:cloud_cover``.
    footprint
        Polygon in EPSG:4326 of the part of the tile with data.
    """

    acquisition: Acquisition
    bands: NDArray[np.uint16]
    scl: NDArray[np.uint8]
    cloud_cover: float
    footprint: shapely.Polygon


def _warp(
    source: NDArray[np.float32],
    source_geobox: GeoBox,
    geobox: GeoBox,
    *,
    shift: tuple[float, float] = (0.0, 0.0),
) -> NDArray[np.float32]:
    destination = np.zeros(tuple(geobox.shape.yx), dtype=np.float32)
    a, b, c, d, e, f = source_geobox.affine[:6]
    rasterio.warp.reproject(
        source,
        destination,
        src_transform=Affine(a, b, c + shift[0], d, e, f + shift[1]),
        src_crs=str(source_geobox.crs),
        dst_transform=geobox.affine,
        dst_crs=str(geobox.crs),
        resampling=rasterio.warp.Resampling.bilinear,
    )
    return destination


def tile_layers(
    geobox: GeoBox,
    landcover: LandCover,
    buildings: Buildings,
    dem: NDArray[np.float32],
    texture: NDArray[np.float32],
    world_geobox: GeoBox,
    rng: np.random.Generator,
) -> TileLayers:
    """Rasterize and resample the static world onto one tile's grid.

    Parameters
    ----------
    geobox
        The tile's 10 m grid.
    landcover
        Land-cover cells.
    buildings
        Building footprints.
    dem, texture
        Elevation and ground texture on ``world_geobox``.
    world_geobox
        The geographic grid of ``dem`` and ``texture``.
    rng
        Source of the speckle.

    Returns
    -------
    TileLayers
        The tile's static layers.
    """
    cell_ids = rasterize_cells(landcover.geometries, landcover.ids, geobox)
    classes = np.concatenate([[0], landcover.classes]).astype(np.uint8)[cell_ids]
    roofs = rasterize_cells(buildings.geometries, buildings.roofs, geobox).astype(np.uint8)
    return TileLayers(
        geobox=geobox,
        cell_ids=cell_ids,
        classes=classes,
        roofs=roofs,
        texture=_warp(texture, world_geobox, geobox),
        speckle=rng.standard_normal(tuple(geobox.shape.yx), dtype=np.float32),
        elevation=_warp(dem, world_geobox, geobox),
    )


def cloud_opacity(field: NDArray[np.float32], fraction: float) -> NDArray[np.float32]:
    """Turn a random field into cloud opacity covering about ``fraction`` of the area.

    Parameters
    ----------
    field
        Smooth random field (e.g. :func:`~terrapipe.datasets.noise.fractal_noise`).
    fraction
        Share of the area with non-zero opacity.

    Returns
    -------
    numpy.ndarray
        float32 opacity in [0, 1]: 0 in clear sky, 1 in thick cloud.

    Examples
    --------
    >>> from terrapipe.datasets.noise import fractal_noise, rng_for
    >>> alpha = cloud_opacity(fractal_noise((200, 200), rng_for(0, "c"), beta=3.6), 0.2)
    >>> round(float((alpha > 0).mean()), 2)
    0.2
    """
    threshold = np.quantile(field, 1.0 - fraction)
    out: NDArray[np.float32] = np.clip((field - threshold) / 0.8, 0.0, 1.0).astype(np.float32)
    return out


def _shadow_shift(acquisition: Acquisition, geobox: GeoBox) -> tuple[float, float]:
    """Displacement of cloud shadows in the units of ``geobox`` (degrees), away from the sun."""
    distance = CLOUD_HEIGHT / np.tan(np.radians(acquisition.sun_elevation))
    azimuth = np.radians(acquisition.sun_azimuth)
    east, north = -distance * np.sin(azimuth), -distance * np.cos(azimuth)
    lat = np.radians(geobox.extent.centroid.points[0][1])
    return (float(east / (111_320.0 * np.cos(lat))), float(north / 111_132.0))


def render_scene(
    layers: TileLayers,
    landcover: LandCover,
    acquisition: Acquisition,
    clouds: NDArray[np.float32],
    world_geobox: GeoBox,
    seed: int,
) -> Scene:
    """Render one acquisition of one tile.

    Parameters
    ----------
    layers
        The tile's static layers (see :func:`tile_layers`).
    landcover
        Land-cover cells (for per-field brightness and crop calendars).
    acquisition
        Date, sun and swath of the scene.
    clouds
        Cloud opacity of the date on ``world_geobox`` (see :func:`cloud_opacity`).
    world_geobox
        Geographic grid of ``clouds``.
    seed
        World seed (for sensor noise).

    Returns
    -------
    Scene
        uint16 bands, 20 m scene classification, cloud cover and footprint.
    """
    geobox = layers.geobox
    date = acquisition.date_index
    classes = layers.classes

    # Per-cell reflectance table for this date, brightness included; row 0 = outside every cell.
    table = np.zeros((len(landcover) + 1, 4), dtype=np.float32)
    for code in (WATER, FOREST, GRASSLAND, URBAN, BARE):
        table[1:][landcover.classes == code] = _SIGNATURES[code][date]
    for crop, calendar in enumerate(_CROPS):
        table[1:][(landcover.classes == CROPLAND) & (landcover.crop_types == crop)] = calendar[date]
    table[1:] *= landcover.brightness[:, None]
    roof_table = np.zeros((3, 4), dtype=np.float32)
    for code, values in _ROOFS.items():
        roof_table[code] = values

    relief = shading(
        layers.elevation,
        S2_RESOLUTION,
        sun_elevation=acquisition.sun_elevation,
        sun_azimuth=acquisition.sun_azimuth,
    )
    relief = np.where(classes == WATER, 1.0, 0.7 + 0.3 * relief).astype(np.float32)
    grain = (1.0 + _TEXTURE[classes] * layers.texture + _SPECKLE[classes] * layers.speckle) * relief
    snow = np.zeros_like(grain)
    if date == 0:
        low, high = _SNOW_LINE
        snow = np.clip((layers.elevation - low) / (high - low), 0.0, 1.0)
    alpha = _warp(clouds, world_geobox, geobox)
    shadow = _warp(clouds, world_geobox, geobox, shift=_shadow_shift(acquisition, world_geobox))
    shadow = np.where(alpha > 0.05, 0.0, shadow).astype(np.float32)

    swath = swath_polygon(acquisition)
    valid = rasterize_cells(np.array([swath], dtype=object), np.array([1]), geobox).astype(bool)
    rng = rng_for(seed, "sensor", date, acquisition.tile)
    has_roof = layers.roofs > 0
    bands = np.zeros((4, *classes.shape), dtype=np.uint16)
    for index in range(4):
        surface = table[layers.cell_ids, index]
        surface = np.where(has_roof, roof_table[layers.roofs, index], surface) * grain
        surface = surface + snow * (_SNOW[index] - surface)
        surface *= 1.0 - 0.65 * shadow
        toa = surface + alpha * (_CLOUD[index] * (1.0 + 0.05 * layers.texture) - surface)
        toa += rng.standard_normal(toa.shape, dtype=np.float32) * (8.0 + 0.008 * toa)
        bands[index] = np.where(valid, np.clip(np.rint(toa), 1, 65535), 0).astype(np.uint16)

    scl = _SCL_OF_CLASS[classes]
    scl = np.where(snow > 0.5, 11, scl)
    scl = np.where(shadow > 0.4, 3, scl)
    scl = np.where(alpha > 0.05, 10, scl)
    scl = np.where(alpha > 0.25, 8, scl)
    scl = np.where(alpha > 0.55, 9, scl)
    scl = np.where(valid, scl, 0).astype(np.uint8)[::2, ::2]
    n_valid = int(np.count_nonzero(scl))
    n_cloud = int(np.isin(scl, (8, 9, 10)).sum())
    cloud_cover = round(100.0 * n_cloud / n_valid, 2) if n_valid else 0.0
    footprint = shapely.orient_polygons(shapely.intersection(footprint_lonlat(geobox), swath))
    return Scene(acquisition, bands, scl, cloud_cover, footprint)


def write_scene(scene: Scene, layers: TileLayers, folder: str | Path) -> dict[str, Path]:
    """Write a scene as one COG per band plus the 20 m ``SCL.tif``.

    Parameters
    ----------
    scene
        The rendered scene.
    layers
        The tile's static layers (for the grid).
    folder
        Output folder; created if missing.

    Returns
    -------
    dict
        Asset key (``"blue"``, ..., ``"scl"``) -> path.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for index, band in enumerate(S2_BANDS):
        paths[band.common_name] = write_cog(
            out / BAND_FILES[band.common_name],
            scene.bands[index],
            layers.geobox,
            nodata=0,
            resampling="average",
            descriptions=[band.common_name],
        )
    paths["scl"] = write_cog(
        out / BAND_FILES["scl"],
        scene.scl,
        coarsen(layers.geobox, 2),
        nodata=0,
        resampling="nearest",
        descriptions=["scl"],
    )
    return paths
