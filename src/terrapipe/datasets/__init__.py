"""The sample world: a small, deterministic, generated dataset that works offline.

terrapipe's demo, tests, tutorials and benchmarks all run on it.
:func:`sample_world` builds it once into a cache folder (a few seconds, no
network) and returns a :class:`SampleWorld` holding the paths of its files:

* ``demo-s2``: Sentinel-2-like L2A scenes, 3 dates x 2 tiles in EPSG:32631
  and EPSG:32632, one COG per band (blue, green, red, nir at 10 m; ``scl``
  scene classification at 20 m), painted from the land-cover map, with
  clouds, shadows and no data beyond a slanted swath edge;
* ``demo-dem``: a float32 DEM COG at 1 arc-second in EPSG:4326;
* vector labels in EPSG:4326: the land-cover polygons the imagery was painted
  from (FlatGeobuf and GeoParquet), building footprints (GeoPackage) and
  labelled sample points (GeoJSON);
* a Zarr v3 monthly climate datacube (``t2m``, ``u10``, ``v10``);
* STAC metadata for the rasters: a static catalog, ndjson per collection
  (for ``rustac serve``) and stac-geoparquet.

Building needs the ``stac``, ``vector`` and ``zarr`` extras; they are imported
only when a world is built, never when this package is imported.

Examples
--------
>>> from terrapipe.datasets import CLASS_NAMES, SampleWorld
>>> CLASS_NAMES[1], SampleWorld.BANDS
('water', ('blue', 'green', 'red', 'nir'))
"""

from __future__ import annotations

from terrapipe.datasets.climate import CLIMATE_VARIABLES
from terrapipe.datasets.grid import TILE_CRS, dem_geobox, region_bbox, scl_geobox, tile_geobox
from terrapipe.datasets.landcover import CLASS_NAMES
from terrapipe.datasets.layout import SEED, SampleWorld
from terrapipe.datasets.lidar import LIDAR_BOUNDS, LIDAR_CRS, sample_point_cloud
from terrapipe.datasets.scenes import S2_BANDS, S2_DATES, S2_TILES, SCL_CLASSES, acquisitions
from terrapipe.datasets.vectors import BUILDINGS_LAYER
from terrapipe.datasets.world import VERSION, build_sample_world, default_root, sample_world

__all__ = [
    "BUILDINGS_LAYER",
    "CLASS_NAMES",
    "CLIMATE_VARIABLES",
    "LIDAR_BOUNDS",
    "LIDAR_CRS",
    "S2_BANDS",
    "S2_DATES",
    "S2_TILES",
    "SCL_CLASSES",
    "SEED",
    "TILE_CRS",
    "VERSION",
    "SampleWorld",
    "acquisitions",
    "build_sample_world",
    "default_root",
    "dem_geobox",
    "region_bbox",
    "sample_point_cloud",
    "sample_world",
    "scl_geobox",
    "tile_geobox",
]
