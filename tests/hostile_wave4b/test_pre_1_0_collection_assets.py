"""A catalog older than STAC 1.0.0-rc.1 (no ``type``) whose collection has collection-level assets.

bca6f96 walks pre-1.0 catalogs "as pystac identifies them": with ``stac_version`` and ``links``, an
``extent`` makes a collection. ``static._kind`` adds ``"assets" not in doc``, so a 1.0.0-beta.2
collection with assets (a thumbnail: collection assets came with 1.0.0-beta.1) is refused as "not a
STAC catalog, collection or item (type None)" where pystac reads its items.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp

pystac = pytest.importorskip("pystac")


def _catalog(folder: Path, collection_extra: dict[str, Any]) -> Path:
    (folder / "c" / "i").mkdir(parents=True)
    catalog = {
        "stac_version": "1.0.0-beta.2",
        "id": "root",
        "description": "root",
        "links": [{"rel": "child", "href": "./c/collection.json"}],
    }
    collection = {
        "stac_version": "1.0.0-beta.2",
        "id": "c",
        "description": "c",
        "license": "CC0-1.0",
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]},
        },
        "links": [{"rel": "item", "href": "./i/i.json"}],
        **collection_extra,
    }
    item = {
        "type": "Feature",
        "stac_version": "1.0.0-beta.2",
        "id": "i",
        "collection": "c",
        "geometry": {"type": "Point", "coordinates": [0.0, 0.0]},
        "bbox": [0.0, 0.0, 0.0, 0.0],
        "properties": {"datetime": "2020-06-01T00:00:00Z"},
        "links": [],
        "assets": {"data": {"href": "./a.tif"}},
    }
    (folder / "catalog.json").write_text(json.dumps(catalog))
    (folder / "c" / "collection.json").write_text(json.dumps(collection))
    (folder / "c" / "i" / "i.json").write_text(json.dumps(item))
    return folder / "catalog.json"


def _ids_as_pystac(root: Path) -> list[str]:
    return [item.id for item in pystac.Catalog.from_file(str(root)).get_items(recursive=True)]


def test_a_pre_1_0_collection_without_assets_is_walked(tmp_path: Path) -> None:
    root = _catalog(tmp_path, {})
    assert [item.id for item in tp.search_stac(str(root))] == _ids_as_pystac(root) == ["i"]


def test_a_pre_1_0_collection_with_assets_is_walked_as_pystac_walks_it(tmp_path: Path) -> None:
    root = _catalog(tmp_path, {"assets": {"thumbnail": {"href": "./thumb.png", "roles": ["thumbnail"]}}})
    assert [item.id for item in tp.search_stac(str(root))] == _ids_as_pystac(root) == ["i"]
