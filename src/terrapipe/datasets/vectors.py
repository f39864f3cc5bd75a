"""Vector labels of the sample world: land-cover polygons, buildings and sample points.

All three are consistent with the imagery because the imagery is painted from
them: land-cover cells give each pixel its class, buildings are burnt into the
urban cells as bright roofs, and sample points take the class of the cell they
fall in. Generation (``generate_*``) is pure numpy/shapely; writing
(``write_*``) needs the ``vector`` extra (geopandas, pyogrio, pyarrow) and
imports it lazily. Every file is in EPSG:4326.

Examples
--------
>>> import shapely
>>> from terrapipe.datasets.vectors import rectangles
>>> rect = rectangles(np.zeros((1, 2)), np.array([20.0]), np.array([10.0]), np.array([0.0]))[0]
>>> rect.bounds, rect.area
((-10.0, -5.0, 10.0, 5.0), 200.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from terrapipe.core.optional import require
from terrapipe.datasets.grid import from_local_metres, to_local_metres
from terrapipe.datasets.landcover import CLASS_NAMES, URBAN, LandCover
from terrapipe.datasets.noise import rng_for

__all__ = [
    "BUILDINGS_LAYER",
    "ROOF_NAMES",
    "Buildings",
    "Points",
    "generate_buildings",
    "generate_points",
    "rectangles",
    "write_buildings",
    "write_landcover",
    "write_points",
]

#: Layer name of the buildings in the GeoPackage.
BUILDINGS_LAYER = "buildings"
#: Roof types of buildings: code -> name.
ROOF_NAMES = {1: "tile", 2: "flat"}

_LOT = 62.0  # metres between building lots; with the sizes below, buildings never overlap


@dataclass(frozen=True, eq=False)
class Buildings:
    """Building footprints: small rotated rectangles inside urban cells.

    Attributes
    ----------
    geometries
        Polygons in EPSG:4326.
    cell_ids
        Id of the land-cover cell holding each building.
    roofs
        Roof type code (see :data:`ROOF_NAMES`); it sets the roof's colour in the imagery.
    heights
        Height in metres.
    """

    geometries: NDArray[np.object_]
    cell_ids: NDArray[np.int32]
    roofs: NDArray[np.uint8]
    heights: NDArray[np.float32]

    def __len__(self) -> int:
        """Return the number of buildings."""
        return len(self.cell_ids)


@dataclass(frozen=True, eq=False)
class Points:
    """Sample points with the land-cover class under them.

    Attributes
    ----------
    geometries
        Points in EPSG:4326.
    classes
        Class code under each point.
    cell_ids
        Id of the land-cover cell under each point.
    """

    geometries: NDArray[np.object_]
    classes: NDArray[np.uint8]
    cell_ids: NDArray[np.int32]

    def __len__(self) -> int:
        """Return the number of points."""
        return len(self.cell_ids)


def _to_metres(geom: Any) -> Any:
    return shapely.transform(geom, lambda xy: np.column_stack(to_local_metres(xy[:, 0], xy[:, 1])))


def _to_lonlat(geom: Any) -> Any:
    return shapely.transform(geom, lambda xy: np.column_stack(from_local_metres(xy[:, 0], xy[:, 1])))


def rectangles(
    centres: NDArray[np.float64],
    lengths: NDArray[np.float64],
    widths: NDArray[np.float64],
    angles: NDArray[np.float64],
) -> NDArray[np.object_]:
    """Rotated rectangles as shapely polygons.

    Parameters
    ----------
    centres
        ``(n, 2)`` centre coordinates.
    lengths, widths
        Side lengths along and across the rotated axis.
    angles
        Rotation of the long side, in radians counter-clockwise from the x axis.

    Returns
    -------
    numpy.ndarray
        Object array of ``n`` polygons.
    """
    unit = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5]])
    local = unit[None] * np.stack([lengths, widths], axis=-1)[:, None, :]
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    x = local[..., 0] * cos - local[..., 1] * sin + centres[:, 0:1]
    y = local[..., 0] * sin + local[..., 1] * cos + centres[:, 1:2]
    return np.asarray(shapely.polygons(np.stack([x, y], axis=-1)), dtype=object)


def generate_buildings(landcover: LandCover, seed: int) -> Buildings:
    """Place building footprints on a jittered lot grid inside every urban cell.

    Buildings of a town share a street orientation; each is 18-40 m long and
    14-26 m wide (2-4 pixels at 10 m), lies entirely inside its cell and overlaps no other building.

    Parameters
    ----------
    landcover
        The land-cover cells.
    seed
        World seed.

    Returns
    -------
    Buildings
        The footprints, ordered by cell id.
    """
    rng = rng_for(seed, "buildings")
    street_angles = rng.uniform(0.0, np.pi / 2, max(len(landcover.towns), 1))
    parts: list[tuple[NDArray[np.object_], NDArray[np.int32]]] = []
    for index in np.flatnonzero(landcover.classes == URBAN):
        cell = _to_metres(landcover.geometries[index])
        x0, y0, x1, y1 = cell.bounds
        xs = np.arange(np.floor(x0 / _LOT), np.ceil(x1 / _LOT) + 1) * _LOT
        ys = np.arange(np.floor(y0 / _LOT), np.ceil(y1 / _LOT) + 1) * _LOT
        lots = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        n = len(lots)
        keep = rng.random(n) < 0.6
        centres = lots + rng.uniform(-6.0, 6.0, (n, 2))
        lengths = rng.uniform(18.0, 40.0, n)
        widths = rng.uniform(14.0, 26.0, n)
        town = 0
        if len(landcover.towns):
            centre = np.asarray(cell.centroid.coords[0])
            town = int(np.argmin(np.hypot(*(landcover.towns - centre).T)))
        angles = street_angles[town] + rng.integers(0, 2, n) * (np.pi / 2) + rng.normal(0.0, 0.06, n)
        rects = rectangles(centres, lengths, widths, angles)
        inside = keep & shapely.contains_properly(cell, rects)
        parts.append((rects[inside], np.full(int(inside.sum()), index + 1, dtype=np.int32)))
    if parts:
        metric = np.concatenate([p[0] for p in parts])
        cell_ids = np.concatenate([p[1] for p in parts])
    else:
        metric, cell_ids = np.empty(0, dtype=object), np.empty(0, dtype=np.int32)
    roofs = np.where(rng.random(len(cell_ids)) < 0.7, 1, 2).astype(np.uint8)
    heights = np.round(rng.uniform(4.0, 18.0, len(cell_ids)), 1).astype(np.float32)
    geometries = np.asarray(_to_lonlat(metric), dtype=object) if len(metric) else metric
    return Buildings(geometries, cell_ids, roofs, heights)


def generate_points(landcover: LandCover, area: shapely.Polygon, seed: int, *, count: int = 400) -> Points:
    """Draw sample points uniformly inside ``area`` and label them from the land cover.

    Parameters
    ----------
    landcover
        The land-cover cells.
    area
        Polygon in EPSG:4326 the points must fall in (e.g. the union of the
        image footprints).
    seed
        World seed.
    count
        Number of points.

    Returns
    -------
    Points
        ``count`` points with their class and cell id.
    """
    rng = rng_for(seed, "points")
    area_m = _to_metres(area)
    x0, y0, x1, y1 = area_m.bounds
    found: list[NDArray[np.float64]] = []
    total = 0
    while total < count:
        xy = np.column_stack([rng.uniform(x0, x1, 2 * count), rng.uniform(y0, y1, 2 * count)])
        xy = xy[shapely.contains_xy(area_m, xy[:, 0], xy[:, 1])]
        found.append(xy)
        total += len(xy)
    xy = np.concatenate(found)[:count]
    lon, lat = from_local_metres(xy[:, 0], xy[:, 1])
    points = shapely.points(lon, lat)
    tree = shapely.STRtree(landcover.geometries)
    point_index, cell_index = tree.query(points, predicate="intersects")
    first = np.full(count, -1, dtype=np.int64)
    # Keep, for each point, the first cell found (a point on a shared edge touches two).
    order = np.lexsort((cell_index, point_index))
    point_index, cell_index = point_index[order], cell_index[order]
    unique, starts = np.unique(point_index, return_index=True)
    first[unique] = cell_index[starts]
    valid = first >= 0
    return Points(
        np.asarray(points[valid], dtype=object),
        landcover.classes[first[valid]],
        (first[valid] + 1).astype(np.int32),
    )


def _geodataframe(columns: dict[str, Any], geometries: NDArray[np.object_]) -> Any:
    gpd = require("geopandas", extra="vector", feature="writing the sample world's vectors")
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(list(geometries), crs="EPSG:4326"))


def write_landcover(landcover: LandCover, flatgeobuf: str | Path, geoparquet: str | Path) -> None:
    """Write the land-cover polygons as FlatGeobuf and as GeoParquet with a bbox covering.

    Columns: ``id`` (int32), ``class`` (int32 class code) and ``class_name``.

    Parameters
    ----------
    landcover
        The land-cover cells.
    flatgeobuf
        Output ``.fgb`` path (with a spatial index).
    geoparquet
        Output ``.parquet`` path (GeoParquet 1.1 with a ``bbox`` covering column).
    """
    gdf = _geodataframe(
        {
            "id": landcover.ids,
            "class": landcover.classes.astype(np.int32),
            "class_name": [CLASS_NAMES[int(c)] for c in landcover.classes],
        },
        landcover.geometries,
    )
    gdf.to_file(flatgeobuf, driver="FlatGeobuf", engine="pyogrio")
    gdf.to_parquet(geoparquet, write_covering_bbox=True, schema_version="1.1.0")


def write_buildings(buildings: Buildings, geopackage: str | Path) -> None:
    """Write building footprints to a GeoPackage layer named :data:`BUILDINGS_LAYER`.

    Columns: ``id``, ``landcover_id``, ``roof`` (``"tile"``/``"flat"``) and ``height`` (m).

    Parameters
    ----------
    buildings
        The footprints.
    geopackage
        Output ``.gpkg`` path.
    """
    gdf = _geodataframe(
        {
            "id": np.arange(1, len(buildings) + 1, dtype=np.int32),
            "landcover_id": buildings.cell_ids,
            "roof": [ROOF_NAMES[int(r)] for r in buildings.roofs],
            "height": buildings.heights,
        },
        buildings.geometries,
    )
    gdf.to_file(geopackage, driver="GPKG", layer=BUILDINGS_LAYER, engine="pyogrio")


def write_points(points: Points, geojson: str | Path) -> None:
    """Write sample points as GeoJSON.

    Columns: ``id``, ``class``, ``class_name`` and ``landcover_id``.

    Parameters
    ----------
    points
        The points.
    geojson
        Output ``.geojson`` path.
    """
    gdf = _geodataframe(
        {
            "id": np.arange(1, len(points) + 1, dtype=np.int32),
            "class": points.classes.astype(np.int32),
            "class_name": [CLASS_NAMES[int(c)] for c in points.classes],
            "landcover_id": points.cell_ids,
        },
        points.geometries,
    )
    gdf.to_file(geojson, driver="GeoJSON", engine="pyogrio")
