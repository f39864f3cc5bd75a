"""STAC metadata of the sample world: a static catalog, ndjson and stac-geoparquet.

Items look like Sentinel-2 L2A items of a public STAC API (Element84's Earth
Search): one COG asset per band keyed by common name, the projection
extension v2 (``proj:code``, ``proj:shape``, ``proj:transform``,
``proj:bbox``; per asset for the 20 m ``scl``), ``eo:bands`` and
``raster:bands`` per asset, ``eo:cloud_cover`` computed from the scene
classification, and the valid-data footprint as geometry. Asset hrefs are
absolute ``file://`` URIs, so the items work from any of the three encodings:

* ``stac/catalog.json``: a self-contained static catalog with the collections
  ``demo-s2`` and ``demo-dem`` (relative links, ``item_assets``, summaries);
* ``stac/api/<collection>/collection.json`` and ``items.ndjson``: the same
  collection without links and its items one per line, for a STAC API server
  (``rustac serve stac/api/demo-s2/collection.json stac/api/demo-s2/items.ndjson``).
  The API collection is a separate file because ``rustac serve`` also loads
  the item links of a collection it is given, and resolves relative links
  against its working directory, not the collection's folder;
* ``stac/items.parquet``: every item as stac-geoparquet.

Building needs the ``stac`` extra (pystac, stac-geoparquet), imported lazily.

Examples
--------
>>> from terrapipe.datasets.stac_metadata import S2_COLLECTION, DEM_COLLECTION, transform_list
>>> S2_COLLECTION, DEM_COLLECTION
('demo-s2', 'demo-dem')
>>> from affine import Affine
>>> transform_list(Affine(10.0, 0.0, 699960.0, 0.0, -10.0, 5100000.0))
[10.0, 0.0, 699960.0, 0.0, -10.0, 5100000.0]
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from affine import Affine
from odc.geo.geobox import GeoBox

from terrapipe.core.optional import require
from terrapipe.datasets.dem import DEM_NODATA
from terrapipe.datasets.scenes import S2_BANDS, SCL_CLASSES, Acquisition

__all__ = [
    "DEM_COLLECTION",
    "S2_COLLECTION",
    "DemItemInfo",
    "S2ItemInfo",
    "build_catalog",
    "dem_item",
    "s2_item",
    "transform_list",
    "write_api_collection",
    "write_catalog",
    "write_geoparquet",
    "write_ndjson",
]

#: Collection id of the Sentinel-2-like scenes.
S2_COLLECTION = "demo-s2"
#: Collection id of the DEM.
DEM_COLLECTION = "demo-dem"
#: Id of the root catalog.
CATALOG_ID = "terrapipe-sample-world"

_COG = "image/tiff; application=geotiff; profile=cloud-optimized"
_LICENSE = "CC0-1.0"
_DEM_DATETIME = dt.datetime(2021, 4, 22, tzinfo=dt.UTC)


@dataclass(frozen=True)
class S2ItemInfo:
    """What an S2 item describes: a rendered, written scene.

    Attributes
    ----------
    acquisition
        Date, tile, platform of the scene.
    geobox
        10 m grid of the bands.
    scl_geobox
        20 m grid of the scene classification.
    cloud_cover
        Percentage of valid pixels under cloud.
    footprint
        Valid-data polygon in EPSG:4326.
    hrefs
        Asset key -> final absolute path of the COG.
    """

    acquisition: Acquisition
    geobox: GeoBox
    scl_geobox: GeoBox
    cloud_cover: float
    footprint: shapely.Polygon
    hrefs: Mapping[str, Path]


@dataclass(frozen=True)
class DemItemInfo:
    """What the DEM item describes.

    Attributes
    ----------
    item_id
        STAC item id.
    geobox
        Grid of the DEM.
    footprint
        Polygon in EPSG:4326.
    href
        Final absolute path of the COG.
    """

    item_id: str
    geobox: GeoBox
    footprint: shapely.Polygon
    href: Path


def transform_list(affine: Affine) -> list[float]:
    """List the six coefficients of an affine transform, as ``proj:transform`` wants them.

    Parameters
    ----------
    affine
        North-up transform.

    Returns
    -------
    list of float
        ``[a, b, c, d, e, f]``.
    """
    return [float(v) for v in affine[:6]]


def _proj_fields(geobox: GeoBox) -> dict[str, Any]:
    left, bottom, right, top = geobox.extent.boundingbox[:4]
    return {
        "proj:shape": [int(n) for n in geobox.shape.yx],
        "proj:transform": transform_list(geobox.affine),
        "proj:bbox": [float(left), float(bottom), float(right), float(top)],
    }


def _bbox(geometry: shapely.Geometry) -> list[float]:
    return [round(float(v), 9) for v in geometry.bounds]


def _geojson(geometry: shapely.Geometry) -> dict[str, Any]:
    mapping: dict[str, Any] = shapely.geometry.mapping(shapely.set_precision(geometry, 1e-9))
    as_lists: dict[str, Any] = json.loads(json.dumps(mapping))  # tuples -> lists
    return as_lists


def _extension_uris() -> dict[str, str]:
    eo = require("pystac.extensions.eo", extra="stac", feature="writing the sample world's STAC metadata")
    projection = require("pystac.extensions.projection", extra="stac")
    raster = require("pystac.extensions.raster", extra="stac")
    return {"eo": eo.SCHEMA_URI, "proj": projection.SCHEMA_URI, "raster": raster.SCHEMA_URI}


def _eo_band(band_index: int) -> dict[str, Any]:
    band = S2_BANDS[band_index]
    return {
        "name": band.name,
        "common_name": band.common_name,
        "center_wavelength": band.center_wavelength,
        "full_width_half_max": band.full_width_half_max,
    }


def _band_asset_fields(band_index: int) -> dict[str, Any]:
    return {
        "gsd": 10.0,
        "eo:bands": [_eo_band(band_index)],
        "raster:bands": [
            {"data_type": "uint16", "nodata": 0, "spatial_resolution": 10.0, "scale": 0.0001, "offset": 0.0}
        ],
    }


def _scl_asset_fields() -> dict[str, Any]:
    return {
        "gsd": 20.0,
        "raster:bands": [{"data_type": "uint8", "nodata": 0, "spatial_resolution": 20.0}],
    }


def _band_title(band_index: int, resolution: int) -> str:
    band = S2_BANDS[band_index]
    return f"{band.common_name.capitalize()} ({band.name}) - {resolution}m"


def s2_item(info: S2ItemInfo) -> Any:
    """Build the STAC item of one scene.

    Parameters
    ----------
    info
        The scene and where its COGs are.

    Returns
    -------
    pystac.Item
        Item with projection v2, eo and raster extension fields.
    """
    pystac = require("pystac", extra="stac", feature="writing the sample world's STAC metadata")
    uris = _extension_uris()
    acq = info.acquisition
    properties: dict[str, Any] = {
        "platform": acq.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "gsd": 10.0,
        "eo:cloud_cover": info.cloud_cover,
        "proj:code": acq.crs,
        **_proj_fields(info.geobox),
    }
    item = pystac.Item(
        id=acq.item_id,
        geometry=_geojson(info.footprint),
        bbox=_bbox(info.footprint),
        datetime=acq.datetime,
        properties=properties,
        stac_extensions=[uris["eo"], uris["proj"], uris["raster"]],
        collection=S2_COLLECTION,
    )
    for index, band in enumerate(S2_BANDS):
        item.add_asset(
            band.common_name,
            pystac.Asset(
                href=info.hrefs[band.common_name].as_uri(),
                title=_band_title(index, 10),
                media_type=_COG,
                roles=["data", "reflectance"],
                extra_fields=_band_asset_fields(index),
            ),
        )
    item.add_asset(
        "scl",
        pystac.Asset(
            href=info.hrefs["scl"].as_uri(),
            title="Scene classification map (SCL) - 20m",
            media_type=_COG,
            roles=["data"],
            extra_fields={**_scl_asset_fields(), **_proj_fields(info.scl_geobox)},
        ),
    )
    return item


def dem_item(info: DemItemInfo) -> Any:
    """Build the STAC item of the DEM.

    Parameters
    ----------
    info
        The DEM's grid, footprint and COG.

    Returns
    -------
    pystac.Item
        Item with one ``data`` asset.
    """
    pystac = require("pystac", extra="stac", feature="writing the sample world's STAC metadata")
    uris = _extension_uris()
    properties: dict[str, Any] = {
        "platform": "tandem-x",
        "gsd": 30.0,
        "proj:code": "EPSG:4326",
        **_proj_fields(info.geobox),
    }
    item = pystac.Item(
        id=info.item_id,
        geometry=_geojson(info.footprint),
        bbox=_bbox(info.footprint),
        datetime=_DEM_DATETIME,
        properties=properties,
        stac_extensions=[uris["proj"], uris["raster"]],
        collection=DEM_COLLECTION,
    )
    item.add_asset(
        "data",
        pystac.Asset(
            href=info.href.as_uri(),
            title="Elevation (m), 1 arc-second",
            media_type=_COG,
            roles=["data"],
            extra_fields={
                "raster:bands": [
                    {"data_type": "float32", "nodata": DEM_NODATA, "spatial_resolution": 30.0, "unit": "m"}
                ]
            },
        ),
    )
    return item


def _extent(items: Sequence[Any]) -> Any:
    pystac = require("pystac", extra="stac")
    boxes = [item.bbox for item in items]
    bbox = [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]
    times = sorted(item.datetime for item in items)
    return pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[times[0], times[-1]]]))


def _s2_collection(items: Sequence[Any]) -> Any:
    pystac = require("pystac", extra="stac")
    from pystac.item_assets import ItemAssetDefinition

    uris = _extension_uris()
    collection = pystac.Collection(
        id=S2_COLLECTION,
        title="Sample world: Sentinel-2-like L2A scenes",
        description=(
            "Synthetic Sentinel-2 L2A-like surface reflectance generated offline by terrapipe from a "
            "land-cover map: 3 dates x 2 tiles in UTM zones 31 and 32, 4 bands at 10 m and a scene "
            "classification at 20 m, one COG per band. Not real data."
        ),
        extent=_extent(items),
        license=_LICENSE,
        keywords=["sentinel-2", "synthetic", "terrapipe", "sample"],
        providers=[pystac.Provider(name="terrapipe", roles=["producer", "processor", "host"])],
        summaries=pystac.Summaries(
            {
                "platform": sorted({item.properties["platform"] for item in items}),
                "constellation": ["sentinel-2"],
                "instruments": ["msi"],
                "gsd": [10.0],
                "proj:code": sorted({item.properties["proj:code"] for item in items}),
                "eo:bands": [_eo_band(i) for i in range(len(S2_BANDS))],
                "eo:cloud_cover": {"minimum": 0, "maximum": 100},
            }
        ),
        stac_extensions=[uris["eo"], uris["proj"], uris["raster"]],
    )
    assets = {
        band.common_name: ItemAssetDefinition.create(
            title=_band_title(index, 10),
            description=None,
            media_type=_COG,
            roles=["data", "reflectance"],
            extra_fields=_band_asset_fields(index),
        )
        for index, band in enumerate(S2_BANDS)
    }
    assets["scl"] = ItemAssetDefinition.create(
        title="Scene classification map (SCL) - 20m",
        description="Sen2Cor-like classes: " + ", ".join(f"{k}={v}" for k, v in SCL_CLASSES.items()),
        media_type=_COG,
        roles=["data"],
        extra_fields=_scl_asset_fields(),
    )
    collection.item_assets = assets
    collection.add_items(items)
    return collection


def _dem_collection(items: Sequence[Any]) -> Any:
    pystac = require("pystac", extra="stac")
    from pystac.item_assets import ItemAssetDefinition

    uris = _extension_uris()
    collection = pystac.Collection(
        id=DEM_COLLECTION,
        title="Sample world: 30 m digital elevation model",
        description=(
            "Synthetic Copernicus-GLO-30-like DEM generated offline by terrapipe: float32 elevations in "
            "metres at 1 arc-second in EPSG:4326, nodata -9999. Not real data."
        ),
        extent=_extent(items),
        license=_LICENSE,
        keywords=["dem", "elevation", "synthetic", "terrapipe", "sample"],
        providers=[pystac.Provider(name="terrapipe", roles=["producer", "processor", "host"])],
        summaries=pystac.Summaries({"gsd": [30.0], "proj:code": ["EPSG:4326"]}),
        stac_extensions=[uris["proj"], uris["raster"]],
    )
    collection.item_assets = {
        "data": ItemAssetDefinition.create(
            title="Elevation (m), 1 arc-second",
            description=None,
            media_type=_COG,
            roles=["data"],
            extra_fields={
                "raster:bands": [
                    {"data_type": "float32", "nodata": DEM_NODATA, "spatial_resolution": 30.0, "unit": "m"}
                ]
            },
        )
    }
    collection.add_items(items)
    return collection


def build_catalog(s2_items: Sequence[Any], dem_items: Sequence[Any]) -> Any:
    """Assemble the root catalog with the ``demo-s2`` and ``demo-dem`` collections.

    Parameters
    ----------
    s2_items, dem_items
        Items from :func:`s2_item` and :func:`dem_item`.

    Returns
    -------
    pystac.Catalog
        The root catalog (not yet saved).
    """
    pystac = require("pystac", extra="stac", feature="writing the sample world's STAC metadata")
    catalog = pystac.Catalog(
        id=CATALOG_ID,
        title="terrapipe sample world",
        description=(
            "A small, deterministic, generated world for terrapipe's demo, tests and tutorials: "
            "Sentinel-2-like scenes, a DEM, vector labels and a climate datacube. Not real data."
        ),
    )
    catalog.add_child(_s2_collection(s2_items))
    catalog.add_child(_dem_collection(dem_items))
    return catalog


def write_catalog(catalog: Any, folder: str | Path) -> Path:
    """Save ``catalog`` as a self-contained static catalog under ``folder``.

    Links are relative, so the catalog can be written in a temporary folder and
    moved; asset hrefs are kept as they are (absolute ``file://`` URIs).

    Parameters
    ----------
    catalog
        From :func:`build_catalog`.
    folder
        Output folder; ``catalog.json`` is written at its top.

    Returns
    -------
    pathlib.Path
        Path of ``catalog.json``.
    """
    pystac = require("pystac", extra="stac", feature="writing the sample world's STAC metadata")
    root = Path(folder)
    catalog.normalize_hrefs(str(root))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def write_api_collection(collection: Any, path: str | Path) -> Path:
    """Write a collection without links, to be loaded by a STAC API server with its items.

    Parameters
    ----------
    collection
        A pystac collection (e.g. a child of :func:`build_catalog`'s catalog).
    path
        Output ``collection.json``; its folder is created if missing.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    record: dict[str, Any] = collection.to_dict(include_self_link=False, transform_hrefs=False)
    record["links"] = []
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out


def _item_record(item: Any, collections: Mapping[str, Path] | None) -> dict[str, Any]:
    record: dict[str, Any] = item.to_dict(include_self_link=False, transform_hrefs=False)
    # The static catalog's links are relative to its files. A server makes its own links;
    # a standalone record keeps one absolute link to its collection (STAC requires one
    # when the "collection" field is set).
    record["links"] = []
    if collections is not None:
        href = collections[item.collection_id].as_uri()
        record["links"].append({"rel": "collection", "href": href, "type": "application/json"})
    return record


def write_ndjson(items: Sequence[Any], path: str | Path) -> Path:
    """Write items as newline-delimited JSON, one item per line, for a STAC API server.

    The items carry no links: a server (``rustac serve``, pgstac, ...) adds its
    own ``self``, ``root``, ``parent`` and ``collection`` links, which is also
    what makes them valid STAC items (a ``collection`` field needs a
    ``collection`` link).

    Parameters
    ----------
    items
        pystac items, each with its ``collection`` set.
    path
        Output file.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as stream:
        for item in items:
            stream.write(json.dumps(_item_record(item, None), separators=(",", ":")) + "\n")
    return out


def write_geoparquet(items: Sequence[Any], collections: Mapping[str, Path], path: str | Path) -> Path:
    """Write items as stac-geoparquet (one row per item, with a bbox column).

    Parameters
    ----------
    items
        pystac items.
    collections
        Collection id -> final path of its ``collection.json``.
    path
        Output ``.parquet`` file.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    arrow = require(
        "stac_geoparquet.arrow", extra="stac", feature="writing the sample world's stac-geoparquet"
    )
    reader = arrow.parse_stac_items_to_arrow([_item_record(item, collections) for item in items])
    arrow.to_parquet(reader, Path(path))
    return Path(path)
