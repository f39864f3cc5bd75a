"""Generate every file of the sample world into a folder (no caching, no locking).

:func:`generate_world` runs the whole recipe: terrain, land cover, vectors,
imagery, climate and STAC metadata. It writes into ``out`` but gives the
STAC assets hrefs under ``final``, so that a world can be generated in a
temporary folder and then renamed into place (see
:func:`terrapipe.datasets.sample_world`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import shapely

from terrapipe.datasets.climate import generate_climate, write_climate
from terrapipe.datasets.dem import flatten, generate_dem, pixel_centres_metres, write_dem
from terrapipe.datasets.grid import dem_geobox, footprint_lonlat, region_bbox, scl_geobox, tile_geobox
from terrapipe.datasets.imagery import cloud_opacity, render_scene, tile_layers, write_scene
from terrapipe.datasets.landcover import WATER, generate_landcover, rasterize_cells
from terrapipe.datasets.layout import DEM_ITEM_ID, SampleWorld
from terrapipe.datasets.noise import fractal_noise, rng_for
from terrapipe.datasets.scenes import acquisitions
from terrapipe.datasets.stac_metadata import (
    DEM_COLLECTION,
    S2_COLLECTION,
    DemItemInfo,
    S2ItemInfo,
    build_catalog,
    dem_item,
    s2_item,
    write_api_collection,
    write_catalog,
    write_geoparquet,
    write_ndjson,
)
from terrapipe.datasets.vectors import (
    generate_buildings,
    generate_points,
    write_buildings,
    write_landcover,
    write_points,
)

__all__ = ["generate_world"]

logger = logging.getLogger(__name__)

_POINTS_PER_SCALE2 = 400


def generate_world(out: str | Path, final: str | Path, *, scale: int, seed: int) -> SampleWorld:
    """Write a complete sample world (all but its manifest) into ``out``.

    Parameters
    ----------
    out
        Folder to write into; created if missing.
    final
        Folder the world will live in; STAC asset hrefs point there.
    scale
        World scale.
    seed
        World seed; the same seed and scale give the same arrays.

    Returns
    -------
    SampleWorld
        Paths of the world under ``out``.
    """
    start = time.perf_counter()
    world = SampleWorld.at(out, scale, seed)
    final_world = SampleWorld.at(final, scale, seed)
    for folder in ("stac", "s2", "dem", "vectors", "climate"):
        (world.root / folder).mkdir(parents=True, exist_ok=True)

    def log(step: str) -> None:
        logger.info("sample world: %s done after %.1f s", step, time.perf_counter() - start)

    # Terrain and land cover.
    world_grid = dem_geobox(scale)
    tiles = [tile_geobox(t, scale) for t in (0, 1)]
    footprints = [footprint_lonlat(g) for g in tiles]
    dem = generate_dem(world_grid, seed)
    landcover = generate_landcover(region_bbox(scale), dem, world_grid, footprints, seed)
    water = landcover.classes == WATER
    ones = np.ones(int(water.sum()), dtype=np.int32)
    lakes = rasterize_cells(landcover.geometries[water], ones, world_grid) > 0
    if lakes.any():
        dem = flatten(dem, lakes, float(np.quantile(dem[lakes], 0.1)))
    write_dem(world.dem, dem, world_grid)
    log("terrain")

    # Vectors.
    buildings = generate_buildings(landcover, seed)
    points = generate_points(
        landcover, shapely.union_all(footprints), seed, count=_POINTS_PER_SCALE2 * scale**2
    )
    write_landcover(landcover, world.landcover_fgb, world.landcover_parquet)
    write_buildings(buildings, world.buildings_gpkg)
    write_points(points, world.points_geojson)
    log("vectors")

    # Imagery: static ground texture, one cloud field per date, then tile by tile.
    x, y = pixel_centres_metres(world_grid)
    spacing = (abs(float(y[1] - y[0])), abs(float(x[1] - x[0])))
    shape = tuple(world_grid.shape.yx)
    texture = fractal_noise((shape[0], shape[1]), rng_for(seed, "texture"), beta=2.5, spacing=spacing)
    scenes = acquisitions(scale)
    clouds = {
        a.date_index: cloud_opacity(
            fractal_noise(
                (shape[0], shape[1]), rng_for(seed, "clouds", a.date_index), beta=3.0, spacing=spacing
            ),
            a.cloud_fraction,
        )
        for a in scenes
        if a.tile == 0  # one cloud field per date, shared by both tiles of the datatake
    }
    infos: dict[str, S2ItemInfo] = {}
    for tile, geobox in enumerate(tiles):
        layers = tile_layers(
            geobox, landcover, buildings, dem, texture, world_grid, rng_for(seed, "speckle", tile)
        )
        for acquisition in (a for a in scenes if a.tile == tile):
            scene = render_scene(
                layers, landcover, acquisition, clouds[acquisition.date_index], world_grid, seed
            )
            write_scene(scene, layers, world.root / "s2" / acquisition.item_id)
            hrefs = {
                key: final_world.cog(key, date=acquisition.date_index, tile=tile)
                for key in (*SampleWorld.BANDS, "scl")
            }
            infos[acquisition.item_id] = S2ItemInfo(
                acquisition, geobox, scl_geobox(tile, scale), scene.cloud_cover, scene.footprint, hrefs
            )
            log(f"scene {acquisition.item_id}")
        del layers

    # Climate.
    write_climate(generate_climate(scale, seed), world.climate_zarr)
    log("climate")

    # STAC.
    s2_items = [s2_item(infos[item_id]) for item_id in world.s2_item_ids]
    dem_footprint = footprint_lonlat(world_grid)
    dem_items = [dem_item(DemItemInfo(DEM_ITEM_ID, world_grid, dem_footprint, final_world.dem))]
    catalog = build_catalog(s2_items, dem_items)
    write_catalog(catalog, world.root / "stac")
    write_api_collection(catalog.get_child(S2_COLLECTION), world.s2_api_collection)
    write_api_collection(catalog.get_child(DEM_COLLECTION), world.dem_api_collection)
    collections = {S2_COLLECTION: final_world.s2_collection, DEM_COLLECTION: final_world.dem_collection}
    write_ndjson(s2_items, world.s2_items_ndjson)
    write_ndjson(dem_items, world.dem_items_ndjson)
    write_geoparquet([*s2_items, *dem_items], collections, world.items_parquet)
    log("STAC metadata")
    return world
