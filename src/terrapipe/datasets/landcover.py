"""Land cover of the sample world: Voronoi cells, each with one class.

The land-cover map is the ground truth everything else is generated from:
the imagery paints each cell with its class's spectral signature, buildings
are placed inside urban cells, sample points take the class of the cell they
fall in. The very same polygons are written as the vector labels.

Cells are the Voronoi polygons of jittered seeds ~450 m apart, built in a
local metric frame that is an affine function of lon/lat, so their edges are
straight lines in EPSG:4326 too. A cell's class follows the terrain and two
smooth random fields: the lowest cells are water, the highest bare rock,
high ground and a random patchwork are forest, a few towns on low ground are
urban, and the rest is cropland or grassland.

Examples
--------
>>> from terrapipe.datasets.landcover import CLASS_NAMES
>>> [CLASS_NAMES[code] for code in sorted(CLASS_NAMES)]
['water', 'forest', 'cropland', 'grassland', 'urban', 'bare']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import rasterio.features
import shapely
from numpy.typing import NDArray
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from terrapipe.datasets.grid import from_local_metres, to_local_metres
from terrapipe.datasets.noise import rng_for, smooth_field

__all__ = [
    "BARE",
    "CELL_SPACING",
    "CLASS_NAMES",
    "CROPLAND",
    "FOREST",
    "GRASSLAND",
    "URBAN",
    "WATER",
    "LandCover",
    "generate_landcover",
    "geometries_in_crs",
    "rasterize_cells",
]

WATER = 1
FOREST = 2
CROPLAND = 3
GRASSLAND = 4
URBAN = 5
BARE = 6

#: Land-cover class codes and names; 0 is left for "no label" in masks.
CLASS_NAMES: Mapping[int, str] = MappingProxyType(
    {
        WATER: "water",
        FOREST: "forest",
        CROPLAND: "cropland",
        GRASSLAND: "grassland",
        URBAN: "urban",
        BARE: "bare",
    }
)

#: Mean distance between neighbouring cell seeds, in metres.
CELL_SPACING = 450.0


@dataclass(frozen=True, eq=False)
class LandCover:
    """Land-cover cells of the sample world.

    Cell ``i`` has id ``i + 1`` (0 means "no cell" in rasters).

    Attributes
    ----------
    geometries
        Polygons in EPSG:4326, one per cell (object array of shapely polygons).
    classes
        Class code of each cell (see :data:`CLASS_NAMES`).
    crop_types
        Crop calendar of each cell, 0 to 2; only used for cropland cells.
    brightness
        Per-cell brightness factor around 1, so that fields of a class differ.
    towns
        ``(n, 2)`` town centres in local metres.
    """

    geometries: NDArray[np.object_]
    classes: NDArray[np.uint8]
    crop_types: NDArray[np.uint8]
    brightness: NDArray[np.float32]
    towns: NDArray[np.float64]

    def __len__(self) -> int:
        """Return the number of cells."""
        return len(self.classes)

    @property
    def ids(self) -> NDArray[np.int32]:
        """Cell ids, 1 to ``len(self)``."""
        return np.arange(1, len(self) + 1, dtype=np.int32)


def _seeds(bounds: tuple[float, float, float, float], rng: np.random.Generator) -> NDArray[np.float64]:
    x0, y0, x1, y1 = bounds
    xs = np.arange(x0 + CELL_SPACING / 2, x1, CELL_SPACING)
    ys = np.arange(y0 + CELL_SPACING / 2, y1, CELL_SPACING)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    jitter = rng.uniform(-0.4, 0.4, grid.shape) * CELL_SPACING
    return grid + jitter


def _sample(
    raster: NDArray[np.float32], geobox: GeoBox, lon: NDArray[np.float64], lat: NDArray[np.float64]
) -> NDArray[np.float32]:
    affine = geobox.affine
    cols = np.clip(((lon - affine.c) / affine.a).astype(int), 0, raster.shape[1] - 1)
    rows = np.clip(((lat - affine.f) / affine.e).astype(int), 0, raster.shape[0] - 1)
    out: NDArray[np.float32] = raster[rows, cols]
    return out


def _pick_towns(
    seeds: NDArray[np.float64],
    eligible: NDArray[np.bool_],
    tiles_metric: Sequence[shapely.Polygon],
    count: int,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    towns: list[NDArray[np.float64]] = []
    points = shapely.points(seeds)

    def far_enough(p: NDArray[np.float64]) -> bool:
        return all(np.hypot(*(p - t)) >= 4_000.0 for t in towns)

    # One town well inside each tile, so that each tile shows a town.
    for tile in tiles_metric:
        inside = eligible & shapely.contains(tile.buffer(-1_500.0), points)
        for index in rng.permutation(np.flatnonzero(inside)):
            if far_enough(seeds[index]):
                towns.append(seeds[index])
                break
    inside_any = eligible & shapely.contains(shapely.union_all(tiles_metric).buffer(-500.0), points)
    for index in rng.permutation(np.flatnonzero(inside_any)):
        if len(towns) >= count:
            break
        if far_enough(seeds[index]):
            towns.append(seeds[index])
    return np.array(towns, dtype=np.float64).reshape(-1, 2)


def generate_landcover(
    bbox: tuple[float, float, float, float],
    dem: NDArray[np.float32],
    dem_geobox: GeoBox,
    tiles: Sequence[shapely.Polygon],
    seed: int,
) -> LandCover:
    """Generate the land-cover cells of a region.

    Parameters
    ----------
    bbox
        Region ``(west, south, east, north)`` in degrees; cells tile it exactly.
    dem
        Elevations on ``dem_geobox`` (drives water, forest and bare rock).
    dem_geobox
        Grid of ``dem``, EPSG:4326.
    tiles
        Footprints of the image tiles in EPSG:4326; each gets at least one town.
    seed
        World seed.

    Returns
    -------
    LandCover
        The cells, their classes and per-cell attributes.
    """
    west, south, east, north = bbox
    x0, y0 = to_local_metres(west, south)
    x1, y1 = to_local_metres(east, north)
    box = shapely.box(float(x0), float(y0), float(x1), float(y1))
    rng = rng_for(seed, "landcover")
    seeds = _seeds((float(x0), float(y0), float(x1), float(y1)), rng)
    cells = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=box, ordered=True)
    metric = shapely.intersection(np.asarray(cells.geoms, dtype=object), box)

    lon, lat = from_local_metres(seeds[:, 0], seeds[:, 1])
    elevation = _sample(dem, dem_geobox, lon, lat)
    rank = np.argsort(np.argsort(elevation, kind="stable"), kind="stable") / (len(seeds) - 1)
    forest_field = smooth_field(
        seeds[:, 0], seeds[:, 1], rng_for(seed, "landcover", "forest"), wavelengths=(1_500.0, 6_000.0)
    )
    agri_field = smooth_field(
        seeds[:, 0], seeds[:, 1], rng_for(seed, "landcover", "agri"), wavelengths=(1_000.0, 4_000.0)
    )

    classes = np.full(len(seeds), GRASSLAND, dtype=np.uint8)
    classes[agri_field > -0.2] = CROPLAND
    classes[rank + 0.2 * forest_field > 0.72] = FOREST
    water = rank < 0.05
    bare = rank > 0.96

    to_metric = shapely.transform  # local frame is affine in lon/lat
    tiles_metric = [
        to_metric(t, lambda xy: np.column_stack(to_local_metres(xy[:, 0], xy[:, 1]))) for t in tiles
    ]
    n_towns = 2 + round(len(seeds) / 1_400)
    towns = _pick_towns(seeds, ~water & (rank < 0.5), tiles_metric, n_towns, rng)
    radii = rng.uniform(900.0, 1_500.0, len(towns))
    for centre, radius in zip(towns, radii, strict=True):
        near = np.hypot(*(seeds - centre).T) < radius
        classes[near & (rank < 0.8)] = URBAN
    classes[water] = WATER
    classes[bare] = BARE

    geometries = shapely.transform(metric, lambda xy: np.column_stack(from_local_metres(xy[:, 0], xy[:, 1])))
    crop_types = rng.integers(0, 3, len(seeds)).astype(np.uint8)
    brightness = np.clip(rng.normal(1.0, 0.06, len(seeds)), 0.85, 1.15).astype(np.float32)
    return LandCover(np.asarray(geometries, dtype=object), classes, crop_types, brightness, towns)


def geometries_in_crs(
    geometries: NDArray[np.object_], crs: str, *, max_segment: float = 0.002
) -> NDArray[np.object_]:
    """Reproject EPSG:4326 geometries to ``crs``, densifying edges first.

    Parameters
    ----------
    geometries
        Shapely geometries in lon/lat.
    crs
        Target CRS, e.g. ``"EPSG:32631"``.
    max_segment
        Longest edge, in degrees, before reprojecting.

    Returns
    -------
    numpy.ndarray
        Object array of reprojected geometries.

    Examples
    --------
    >>> square = np.array([shapely.box(6.0, 45.7, 6.01, 45.71)], dtype=object)
    >>> utm = geometries_in_crs(square, "EPSG:32632")[0]
    >>> round(utm.area / 1e6, 2)  # km²
    0.87
    """
    if crs in ("EPSG:4326", "epsg:4326"):
        return np.asarray(geometries, dtype=object)
    transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    dense = shapely.segmentize(geometries, max_segment)

    def project(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(dense, project), dtype=object)


def rasterize_cells(
    geometries: NDArray[np.object_],
    values: NDArray[np.integer],
    geobox: GeoBox,
    *,
    fill: int = 0,
    all_touched: bool = False,
) -> NDArray[np.int32]:
    """Burn EPSG:4326 polygons into ``geobox`` (pixel-centre rule).

    Parameters
    ----------
    geometries
        Shapely geometries in lon/lat.
    values
        Integer burnt for each geometry (e.g. cell ids).
    geobox
        Target grid, any CRS.
    fill
        Value of pixels no geometry covers.
    all_touched
        Burn every pixel a geometry touches, not only those whose centre it covers.

    Returns
    -------
    numpy.ndarray
        int32 raster of ``geobox``'s shape.

    Examples
    --------
    >>> from affine import Affine
    >>> from odc.geo.geobox import GeoBox
    >>> gbox = GeoBox((4, 4), Affine(0.0025, 0, 6.0, 0, -0.0025, 45.01), "EPSG:4326")
    >>> half = np.array([shapely.box(6.0, 45.0, 6.005, 45.01)], dtype=object)
    >>> rasterize_cells(half, np.array([7]), gbox)[0].tolist()
    [7, 7, 0, 0]
    """
    projected = geometries_in_crs(geometries, str(geobox.crs))
    shapes = [(geom, int(value)) for geom, value in zip(projected, values, strict=True) if not geom.is_empty]
    out: NDArray[np.int32] = rasterio.features.rasterize(
        shapes,
        out_shape=tuple(geobox.shape.yx),
        transform=geobox.affine,
        fill=fill,
        dtype="int32",
        all_touched=all_touched,
    )
    return out
