"""A small airborne-lidar point cloud over the sample world: :func:`sample_point_cloud`.

The points cover :data:`LIDAR_BOUNDS` (1280 m x 1280 m of tile 0, EPSG:32631,
aligned to the 10 m imagery grid) and are made from the world's own layers,
so that they agree with the imagery and the vectors:

- ground (ASPRS class 2): the DEM's height (bilinear) plus a few centimetres of noise;
- building roofs (class 6): inside the world's building footprints, the
  ground plus the building's ``height``;
- high vegetation (class 5): in forest land cover, seven points in ten hit a
  canopy 8-25 m above the ground (the rest reach the ground).

Points are spread uniformly at :data:`DENSITY` per square metre (seeded by
the world's seed) and written as LAZ 1.4, point format 6, scales 0.01 m, with
the CRS as a WKT VLR. The file lives in the world's folder (``lidar/tile0.laz``)
and is written once, atomically, on first call: it needs the ``pointcloud``
extra (laspy, lazrs), which building the rest of the world does not.

Examples
--------
>>> import terrapipe as tp
>>> path = sample_point_cloud(tp.datasets.sample_world())  # doctest: +SKIP
>>> tp.open_point_cloud(str(path)).crs.to_epsg()  # doctest: +SKIP
32631
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np

from terrapipe.core.optional import require
from terrapipe.datasets.layout import SampleWorld

__all__ = ["DENSITY", "LIDAR_BOUNDS", "LIDAR_CRS", "sample_point_cloud"]

#: ``(left, bottom, right, top)`` of the point cloud, in :data:`LIDAR_CRS`.
LIDAR_BOUNDS = (726800.0, 5072560.0, 728080.0, 5073840.0)
#: CRS of the point cloud (tile 0's).
LIDAR_CRS = "EPSG:32631"
#: Points per square metre.
DENSITY = 0.1
_GROUND, _VEGETATION, _BUILDING = 2, 5, 6
_FOREST = 2


def _ground_height(world: SampleWorld, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import rasterio
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(LIDAR_CRS, "EPSG:4326", always_xy=True).transform(x, y)
    with rasterio.open(world.dem) as dem:
        heights = dem.read(1).astype(np.float64)
        col, row = ~dem.transform * (np.asarray(lon), np.asarray(lat))
    col, row = np.asarray(col) - 0.5, np.asarray(row) - 0.5
    c0 = np.clip(np.floor(col).astype(int), 0, heights.shape[1] - 2)
    r0 = np.clip(np.floor(row).astype(int), 0, heights.shape[0] - 2)
    fc, fr = np.clip(col - c0, 0, 1), np.clip(row - r0, 0, 1)
    top = heights[r0, c0] * (1 - fc) + heights[r0, c0 + 1] * fc
    bottom = heights[r0 + 1, c0] * (1 - fc) + heights[r0 + 1, c0 + 1] * fc
    result: np.ndarray = top * (1 - fr) + bottom * fr
    return result


def _write(world: SampleWorld, path: Path) -> None:
    laspy = require("laspy", extra="pointcloud", feature="sample_point_cloud")
    require("lazrs", extra="pointcloud", feature="sample_point_cloud")
    import geopandas as gpd
    import shapely
    from pyproj import CRS

    rng = np.random.default_rng([world.seed, 22])
    left, bottom, right, top = LIDAR_BOUNDS
    n = int(DENSITY * (right - left) * (top - bottom))
    x = rng.uniform(left, right, n)
    y = rng.uniform(bottom, top, n)
    order = np.lexsort((x, np.floor((top - y) / 10.0)))  # in 10 m scan lines: LAZ compresses neighbours
    x, y = x[order], y[order]
    ground = _ground_height(world, x, y) + rng.normal(0.0, 0.05, n)
    z = ground.copy()
    classes = np.full(n, _GROUND, dtype=np.uint8)
    area = shapely.box(left, bottom, right, top)
    landcover = gpd.read_file(world.landcover_fgb).to_crs(LIDAR_CRS)
    forest = landcover[(landcover["class"] == _FOREST) & landcover.intersects(area)]
    if len(forest):
        in_forest = shapely.contains_xy(shapely.union_all(forest.geometry.values), x, y)
        canopy = in_forest & (rng.random(n) < 0.7)
        z[canopy] += rng.uniform(8.0, 25.0, int(canopy.sum()))
        classes[canopy] = _VEGETATION
    buildings = gpd.read_file(world.buildings_gpkg).to_crs(LIDAR_CRS)
    buildings = buildings[buildings.intersects(area)]
    for geometry, height in zip(buildings.geometry.values, buildings["height"].to_numpy(), strict=True):
        roof = shapely.contains_xy(geometry, x, y)
        z[roof] = ground[roof] + float(height)
        classes[roof] = _BUILDING
    intensity = np.select(
        [classes == _BUILDING, classes == _VEGETATION],
        [rng.normal(180, 20, n), rng.normal(60, 15, n)],
        rng.normal(120, 25, n),
    )
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([left, bottom, 0.0])
    header.add_crs(CRS.from_user_input(LIDAR_CRS))
    las = laspy.LasData(header)
    las.x, las.y, las.z = x, y, z
    las.intensity = np.clip(intensity, 0, 65535).astype(np.uint16)
    las.classification = classes
    las.return_number = np.ones(n, dtype=np.uint8)
    las.number_of_returns = np.ones(n, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{uuid.uuid4().hex}.partial.laz")  # laspy compresses by the suffix
    try:
        las.write(str(partial), laz_backend=laspy.LazBackend.Lazrs)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def sample_point_cloud(world: SampleWorld, *, copc: bool = False) -> Path:
    """Return the path of the world's lidar point cloud (LAZ or COPC), writing it on first call.

    Parameters
    ----------
    world
        A built sample world (:func:`~terrapipe.datasets.sample_world`).
    copc
        The same points as a COPC file (octree nodes of up to 4096 points,
        :func:`~terrapipe.datasets.copc_writer.write_copc`).

    Returns
    -------
    pathlib.Path
        ``<world root>/lidar/tile0-v1-s<seed>.laz`` (``.copc.laz`` with ``copc=True``).

    Raises
    ------
    MissingDependencyError
        Without laspy/lazrs (``pip install 'terrapipe[pointcloud]'``).
    """
    path = Path(world.root) / "lidar" / f"tile0-v1-s{world.seed}.laz"
    if not path.exists():
        _write(world, path)
    if not copc:
        return path
    target = path.with_name(f"tile0-v1-s{world.seed}.copc.laz")
    if not target.exists():
        laspy = require("laspy", extra="pointcloud", feature="sample_point_cloud")
        from terrapipe.datasets.copc_writer import write_copc

        write_copc(laspy.read(path), target, seed=world.seed)
    return target
