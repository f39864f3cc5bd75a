"""A static catalog and a stac-geoparquet file as they are published, then copied and searched from a relative path.

The catalog has the layout stactools and pystac write (``catalog.json`` -> ``collection.json`` -> one folder per
item, relative ``child``/``item`` links, relative asset hrefs ``./<item>.tif``) and, as published catalogs do
(``CatalogType.ABSOLUTE_PUBLISHED``), self links to where it was first served. A user downloads it and searches
it from the folder above (``search_stac("catalog/catalog.json")``): the assets are the copied files next to
each item. Before, a relative root gave items whose asset href was relative to the working directory
(``catalog/scenes/a/a.tif``) and whose self href was absolute, so pystac resolved the href a second time
(``/work/catalog/scenes/a/catalog/scenes/a/a.tif``); and a stac-geoparquet file's local hrefs next to an https
self link were read as paths on that server (``https://host/work/a.tif``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

import terrapipe as tp
from terrapipe.stac.items import absolute_item
from tests.realworld import layouts
from tests.realworld.test_raster_layouts import _item

PUBLISHED = "https://data.example.org/stac"
SCENES = ("int8", "south-up")


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``catalog/`` under ``tmp_path`` (the working directory), published at :data:`PUBLISHED`."""
    root = tmp_path / "catalog"
    (root / "scenes").mkdir(parents=True)
    item_links = []
    for i, name in enumerate(SCENES):
        folder = root / "scenes" / name
        folder.mkdir()
        layouts.write(folder / f"{name}.tif", name, seed=i)
        item = _item(folder / f"{name}.tif", f"./{name}.tif")
        item["collection"] = "scenes"
        item["links"] = [
            {"rel": "self", "href": f"{PUBLISHED}/scenes/{name}/{name}.json"},
            {"rel": "parent", "href": "../collection.json"},
        ]
        (folder / f"{name}.json").write_text(json.dumps(item))
        item_links.append({"rel": "item", "href": f"./{name}/{name}.json"})
    collection = {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": "scenes",
        "description": "scenes",
        "license": "CC0-1.0",
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [["2024-01-01T00:00:00Z", None]]},
        },
        "links": [{"rel": "self", "href": f"{PUBLISHED}/scenes/collection.json"}, *item_links],
    }
    (root / "scenes" / "collection.json").write_text(json.dumps(collection))
    top = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "root",
        "description": "root",
        "links": [
            {"rel": "self", "href": f"{PUBLISHED}/catalog.json"},
            {"rel": "child", "href": "./scenes/collection.json"},
        ],
    }
    (root / "catalog.json").write_text(json.dumps(top))
    monkeypatch.chdir(tmp_path)
    return root


def _pixels_equal_files(items: list[Any], root: Path) -> None:
    assert sorted(item.id for item in items) == sorted(SCENES)
    for item in items:
        href = absolute_item(item, where="test").assets["data"].href
        path = root / "scenes" / item.id / f"{item.id}.tif"
        assert href in (str(path), path.as_uri())
        cube = tp.stac.stack_items([item], bands=["data"])
        with rasterio.open(path) as src:
            np.testing.assert_array_equal(cube.isel(time=0).values, src.read(1)[None])


@pytest.mark.parametrize(
    "spelling", ["catalog/catalog.json", "./catalog/catalog.json", "catalog", "absolute", "file-uri"]
)
def test_static_catalog_searched_from_a_relative_path_reads_its_own_files(
    catalog: Path, spelling: str
) -> None:
    root = {"absolute": str(catalog / "catalog.json"), "file-uri": (catalog / "catalog.json").as_uri()}.get(
        spelling, spelling
    )
    items = list(tp.search_stac(root, datetime="2024-01-01/2025-01-01"))
    _pixels_equal_files(items, catalog)
    cube = next(iter(tp.search_stac(root, ids=["int8"]).stack_stac(bands=["data"])))
    with rasterio.open(catalog / "scenes/int8/int8.tif") as src:
        np.testing.assert_array_equal(cube.isel(time=0).values, src.read(1)[None])


@pytest.mark.parametrize("self_links", ["published", "none"])
def test_stac_geoparquet_with_relative_hrefs_searched_from_a_relative_path(
    catalog: Path, self_links: str
) -> None:
    arrow = pytest.importorskip("stac_geoparquet.arrow")
    records = []
    for name in SCENES:
        record = json.loads((catalog / "scenes" / name / f"{name}.json").read_text())
        record["assets"]["data"]["href"] = f"./scenes/{name}/{name}.tif"  # relative to the parquet file
        if self_links == "none":
            record["links"] = []
        records.append(record)
    arrow.to_parquet(arrow.parse_stac_items_to_arrow(records), catalog / "items.parquet")
    items = list(tp.search_stac("catalog/items.parquet"))
    _pixels_equal_files(items, catalog)
