"""Helpers of the STAC tests: a tiny static catalog writer and small adapters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import from_origin

MINI_CRS = "EPSG:32631"
MINI_ORIGIN = (600000.0, 5000640.0)
MINI_SIZE = 64
MINI_TILE = 32


def write_cog(
    path: Path, data: np.ndarray, *, origin: tuple[float, float] = MINI_ORIGIN, crs: str = MINI_CRS
) -> None:
    """Write a small tiled GeoTIFF (COG-like layout: 32 px tiles) with nodata 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "height": data.shape[0],
        "width": data.shape[1],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": from_origin(origin[0], origin[1], 10.0, 10.0),
        "nodata": 0,
        "tiled": True,
        "blockxsize": MINI_TILE,
        "blockysize": MINI_TILE,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def mini_item(
    ident: str,
    day: int,
    *,
    bands: tuple[str, ...] = ("red", "nir"),
    raster: bool = True,
    proj: bool = True,
    origin: tuple[float, float] = MINI_ORIGIN,
    crs: str = MINI_CRS,
) -> dict[str, Any]:
    """Item dict of one mini scene (asset hrefs relative: ``./<band>.tif``)."""
    west, north = origin
    east, south = west + 10 * MINI_SIZE, north - 10 * MINI_SIZE
    from odc.geo import geom

    footprint = geom.box(west, south, east, north, crs).to_crs("EPSG:4326")
    properties: dict[str, Any] = {"datetime": f"2024-06-{day:02d}T10:30:00Z"}
    if proj:
        properties.update(
            {
                "proj:code": crs,
                "proj:shape": [MINI_SIZE, MINI_SIZE],
                "proj:transform": [10.0, 0.0, west, 0.0, -10.0, north],
            }
        )
    assets = {}
    for band in bands:
        asset: dict[str, Any] = {
            "href": f"./{band}.tif",
            "type": "image/tiff; application=geotiff",
            "roles": ["data"],
        }
        if raster:
            asset["raster:bands"] = [{"data_type": "uint16", "nodata": 0}]
        assets[band] = asset
    extensions = ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"] if proj else []
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": extensions,
        "id": ident,
        "geometry": footprint.json,
        "bbox": list(footprint.boundingbox),
        "properties": properties,
        "links": [],
        "assets": assets,
        "collection": "mini",
    }


def scene_data(seed: int) -> np.ndarray:
    """Deterministic uint16 data with a nodata corner."""
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 10000, size=(MINI_SIZE, MINI_SIZE), dtype=np.uint16)
    data[:8, :8] = 0
    return data


def write_mini_catalog(root: Path, items: list[dict[str, Any]]) -> Path:
    """Write a catalog -> collection -> items tree with one COG per asset; return catalog.json."""
    root.mkdir(parents=True, exist_ok=True)
    collection_links = [
        {"rel": "root", "href": "../catalog.json"},
        {"rel": "parent", "href": "../catalog.json"},
    ]
    for index, item in enumerate(items):
        folder = root / "mini" / item["id"]
        folder.mkdir(parents=True, exist_ok=True)
        origin = item["properties"].get("proj:transform") or [0, 0, MINI_ORIGIN[0], 0, 0, MINI_ORIGIN[1]]
        for band_index, band in enumerate(item["assets"]):
            write_cog(
                folder / f"{band}.tif", scene_data(100 * index + band_index), origin=(origin[2], origin[5])
            )
        record = dict(item, links=[{"rel": "collection", "href": "../collection.json"}])
        (folder / f"{item['id']}.json").write_text(json.dumps(record))
        collection_links.append({"rel": "item", "href": f"./{item['id']}/{item['id']}.json"})
    collection = {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": "mini",
        "description": "tiny test collection",
        "license": "CC0-1.0",
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [["2024-01-01T00:00:00Z", "2024-12-31T00:00:00Z"]]},
        },
        "links": collection_links,
    }
    (root / "mini" / "collection.json").write_text(json.dumps(collection))
    catalog = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "mini-catalog",
        "description": "tiny test catalog",
        "links": [
            {"rel": "root", "href": "./catalog.json"},
            {"rel": "child", "href": "./mini/collection.json"},
        ],
    }
    (root / "catalog.json").write_text(json.dumps(catalog))
    return root / "catalog.json"


def ids(items: Any) -> list[str]:
    """Ids of an iterable of pystac items."""
    return [item.id for item in items]


class IdsOf:
    """A pipe of items seen as its ids, with the pipe's state (for ``check_resume``)."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def __iter__(self) -> Iterator[str]:
        return (item.id for item in self.pipe)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.pipe.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pipe.load_state_dict(state)


#: A box no sample-world item touches.
FAR_AWAY = [-60.0, -10.0, -59.0, -9.0]


def queries(world: Any) -> list[dict[str, Any]]:
    """Searches that every backend must answer alike (the server is the reference)."""
    west, south, east, north = world.bbox
    middle = (west + east) / 2
    return [
        {},
        {"collections": ["demo-s2"]},
        {"collections": ["demo-dem"]},
        {"ids": [world.item_id(date=2, tile=1), world.item_id(date=0, tile=0)]},
        {"bbox": [west, south, middle - 0.05, north]},
        {"bbox": [5.95, 45.72, 5.99, 45.74], "datetime": "2024-06"},
        {"datetime": "2024-08-13T00:00:00Z/2024-12-31T00:00:00Z", "collections": ["demo-s2"]},
        {"intersects": {"type": "Point", "coordinates": [6.1, 45.75]}, "collections": ["demo-s2"]},
        {"bbox": FAR_AWAY},
    ]
