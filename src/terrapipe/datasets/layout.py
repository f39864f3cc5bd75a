"""Where each file of the sample world lives: :class:`SampleWorld` (pure paths, no I/O).

::

    <root>/
      manifest.json                    version, scale, seed, root, file list
      stac/catalog.json                static catalog (self-contained)
      stac/demo-s2/collection.json     + one folder per item
      stac/demo-dem/collection.json    + one folder per item
      stac/api/demo-s2/collection.json collection without links, for a STAC API server
      stac/api/demo-s2/items.ndjson    its items, one per line
      stac/api/demo-dem/...            the same for the DEM
      stac/items.parquet               all items as stac-geoparquet
      s2/<item-id>/B02.tif ... SCL.tif one COG per band per scene
      dem/dem.tif                      float32 DEM COG, EPSG:4326
      vectors/landcover.fgb            land-cover polygons (FlatGeobuf)
      vectors/landcover.parquet        the same, GeoParquet with bbox covering
      vectors/buildings.gpkg           building footprints, layer "buildings"
      vectors/points.geojson           labelled sample points
      climate/climate.zarr             Zarr v3 monthly datacube

Examples
--------
>>> from terrapipe.datasets.layout import SampleWorld
>>> world = SampleWorld.at("/data/world")
>>> world.catalog.as_posix(), world.cog("red", date=1, tile=0).as_posix()
('/data/world/stac/catalog.json', '/data/world/s2/S2A_31TGL_20240619_0_L2A/B04.tif')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.datasets.climate import CLIMATE_VARIABLES
from terrapipe.datasets.grid import TILE_CRS, check_scale, region_bbox
from terrapipe.datasets.landcover import CLASS_NAMES
from terrapipe.datasets.scenes import BAND_FILES, S2_BANDS, S2_DATES, S2_TILES, SCL_CLASSES, acquisitions
from terrapipe.datasets.stac_metadata import DEM_COLLECTION, S2_COLLECTION
from terrapipe.datasets.vectors import BUILDINGS_LAYER

__all__ = ["DEM_ITEM_ID", "SEED", "SampleWorld"]

#: Seed of the sample world that :func:`~terrapipe.datasets.sample_world` builds.
SEED = 20240619
#: Id of the DEM's STAC item.
DEM_ITEM_ID = "demo-dem-30m"


@dataclass(frozen=True)
class SampleWorld:
    """Paths (and a few facts) of a built sample world.

    Get one from :func:`terrapipe.datasets.sample_world`; :meth:`at` only
    computes where the files would be.

    Attributes
    ----------
    root
        Folder of the world.
    scale
        Scale it was built at (tiles are ``1024 * scale`` pixels wide).
    seed
        Seed it was built with.
    manifest
        ``manifest.json``: version, scale, seed, root and every file with its size.
    catalog
        ``catalog.json`` of the static STAC catalog.
    s2_collection, dem_collection
        ``collection.json`` of the ``demo-s2`` and ``demo-dem`` collections in
        the static catalog.
    s2_api_collection, dem_api_collection
        The same collections without links, to load into a STAC API server
        together with their items (see :attr:`serve_hrefs`).
    s2_items_ndjson, dem_items_ndjson
        Each collection's items, one JSON per line, without links.
    items_parquet
        Every item as stac-geoparquet.
    s2_item_ids
        Ids of the six scenes, ordered by date then tile.
    s2_cogs
        Every scene COG (4 bands then ``scl`` per scene), in :attr:`s2_item_ids` order.
    dem
        The DEM COG.
    landcover_fgb, landcover_parquet
        Land-cover polygons as FlatGeobuf and as GeoParquet (bbox covering).
    buildings_gpkg
        Building footprints, layer :attr:`BUILDINGS_LAYER`.
    points_geojson
        Sample points with their land-cover class.
    climate_zarr
        Zarr v3 climate datacube.
    bbox
        ``(west, south, east, north)`` of the world in degrees.
    """

    root: Path
    scale: int = 1
    seed: int = SEED
    manifest: Path = field(init=False)
    catalog: Path = field(init=False)
    s2_collection: Path = field(init=False)
    dem_collection: Path = field(init=False)
    s2_api_collection: Path = field(init=False)
    dem_api_collection: Path = field(init=False)
    s2_items_ndjson: Path = field(init=False)
    dem_items_ndjson: Path = field(init=False)
    items_parquet: Path = field(init=False)
    s2_item_ids: tuple[str, ...] = field(init=False)
    s2_cogs: tuple[Path, ...] = field(init=False)
    dem: Path = field(init=False)
    landcover_fgb: Path = field(init=False)
    landcover_parquet: Path = field(init=False)
    buildings_gpkg: Path = field(init=False)
    points_geojson: Path = field(init=False)
    climate_zarr: Path = field(init=False)
    bbox: tuple[float, float, float, float] = field(init=False)

    #: Land-cover class code -> name (0 is "no label").
    CLASS_NAMES: ClassVar[Mapping[int, str]] = CLASS_NAMES
    #: Asset keys of the 10 m bands, in order.
    BANDS: ClassVar[tuple[str, ...]] = tuple(b.common_name for b in S2_BANDS)
    #: Scene-classification code -> name.
    SCL_CLASSES: ClassVar[Mapping[int, str]] = SCL_CLASSES
    #: Acquisition dates.
    DATES: ClassVar[tuple[dt.date, ...]] = S2_DATES
    #: MGRS names of tile 0 and tile 1.
    TILES: ClassVar[tuple[str, str]] = S2_TILES
    #: CRS of tile 0 and tile 1.
    TILE_CRS: ClassVar[tuple[str, str]] = TILE_CRS
    #: Collection ids.
    S2_COLLECTION: ClassVar[str] = S2_COLLECTION
    DEM_COLLECTION: ClassVar[str] = DEM_COLLECTION
    #: Layer of the buildings in the GeoPackage.
    BUILDINGS_LAYER: ClassVar[str] = BUILDINGS_LAYER
    #: Variables of the climate datacube.
    CLIMATE_VARIABLES: ClassVar[tuple[str, ...]] = CLIMATE_VARIABLES

    def __post_init__(self) -> None:
        """Compute every path from ``root``."""
        root = Path(self.root)
        check_scale(self.scale)
        stac = root / "stac"
        ids = tuple(a.item_id for a in acquisitions(self.scale))
        values: dict[str, object] = {
            "root": root,
            "manifest": root / "manifest.json",
            "catalog": stac / "catalog.json",
            "s2_collection": stac / S2_COLLECTION / "collection.json",
            "dem_collection": stac / DEM_COLLECTION / "collection.json",
            "s2_api_collection": stac / "api" / S2_COLLECTION / "collection.json",
            "dem_api_collection": stac / "api" / DEM_COLLECTION / "collection.json",
            "s2_items_ndjson": stac / "api" / S2_COLLECTION / "items.ndjson",
            "dem_items_ndjson": stac / "api" / DEM_COLLECTION / "items.ndjson",
            "items_parquet": stac / "items.parquet",
            "s2_item_ids": ids,
            "s2_cogs": tuple(root / "s2" / i / BAND_FILES[key] for i in ids for key in BAND_FILES),
            "dem": root / "dem" / "dem.tif",
            "landcover_fgb": root / "vectors" / "landcover.fgb",
            "landcover_parquet": root / "vectors" / "landcover.parquet",
            "buildings_gpkg": root / "vectors" / "buildings.gpkg",
            "points_geojson": root / "vectors" / "points.geojson",
            "climate_zarr": root / "climate" / "climate.zarr",
            "bbox": region_bbox(self.scale),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def at(cls, root: str | Path, scale: int = 1, seed: int = SEED) -> SampleWorld:
        """Paths of a sample world in ``root``, whether or not it has been built.

        Parameters
        ----------
        root
            Folder of the world.
        scale
            World scale.
        seed
            World seed.

        Returns
        -------
        SampleWorld
            The paths.
        """
        return cls(Path(root), check_scale(scale), seed)

    @property
    def serve_hrefs(self) -> tuple[Path, ...]:
        """Files to load into a STAC API server: both API collections, then their items.

        ``rustac serve *world.serve_hrefs`` serves ``demo-s2`` and ``demo-dem``
        at ``http://127.0.0.1:7822``.

        Examples
        --------
        >>> [p.name for p in SampleWorld.at("w").serve_hrefs]
        ['collection.json', 'items.ndjson', 'collection.json', 'items.ndjson']
        """
        return (self.s2_api_collection, self.s2_items_ndjson, self.dem_api_collection, self.dem_items_ndjson)

    def item_id(self, *, date: int | dt.date = 0, tile: int = 0) -> str:
        """Id of the scene of one date and tile.

        Parameters
        ----------
        date
            Index into :attr:`DATES`, or one of those dates.
        tile
            0 or 1.

        Returns
        -------
        str
            The STAC item id.

        Raises
        ------
        InvalidArgumentError
            For an unknown date or tile.

        Examples
        --------
        >>> SampleWorld.at("w").item_id(date=dt.date(2024, 8, 13), tile=1)
        'S2B_32TKR_20240813_0_L2A'
        """
        index = self.DATES.index(date) if isinstance(date, dt.date) and date in self.DATES else date
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self.DATES):
            msg = f"invalid date: {date!r}; use an index below {len(self.DATES)} or one of {self.DATES}"
            raise InvalidArgumentError(msg)
        if tile not in (0, 1):
            msg = f"invalid tile: {tile!r}; the sample world has tiles 0 and 1"
            raise InvalidArgumentError(msg)
        return self.s2_item_ids[2 * index + tile]

    def cog(self, band: str, *, date: int | dt.date = 0, tile: int = 0) -> Path:
        """Path of one band's COG of one scene.

        Parameters
        ----------
        band
            Asset key: ``"blue"``, ``"green"``, ``"red"``, ``"nir"`` or ``"scl"``.
        date
            Index into :attr:`DATES`, or one of those dates.
        tile
            0 or 1.

        Returns
        -------
        pathlib.Path
            The COG.

        Raises
        ------
        InvalidArgumentError
            For an unknown band, date or tile.
        """
        if band not in BAND_FILES:
            msg = f"invalid band: {band!r}; use one of {tuple(BAND_FILES)}"
            raise InvalidArgumentError(msg)
        return self.root / "s2" / self.item_id(date=date, tile=tile) / BAND_FILES[band]
