"""pystac's own test catalogs (``tests/data/pystac``) searched by ``search_stac``, against pystac's walk.

- ``planet-example-v1.0.0-beta.2``: Planet's disaster-data catalog in STAC 1.0.0-beta.2, whose catalogs and
  collection have no ``type`` (added in 1.0.0-rc.1); before, ``search_stac`` refused it ("not a STAC catalog,
  collection or item (type None)") where pystac reads it.
- ``test-case-1``: a country/area/item tree with relative links (STAC 1.1).
- ``test-case-5``: a CBERS-4 catalog six levels deep.

Each gives the items pystac finds (``get_items(recursive=True)``), with the collection and the absolute asset
hrefs pystac gives, for the whole catalog and for a ``bbox``/``datetime`` search.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import pystac
import pytest
import rasterio
import shapely

import terrapipe as tp
from terrapipe.stac.items import absolute_item
from tests.realworld import layouts
from tests.realworld.test_raster_layouts import _item

DATA = Path(__file__).parents[1] / "data" / "pystac"
CATALOGS = {
    "planet-example-v1.0.0-beta.2": "collection.json",
    "test-case-1": "catalog.json",
    "test-case-5": "catalog.json",
}


def _pystac_items(root: Path) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(pystac.read_file(str(root)).get_items(recursive=True))


def _summary(items: list[Any]) -> dict[str, Any]:
    return {
        item.id: (item.collection_id, {key: asset.get_absolute_href() for key, asset in item.assets.items()})
        for item in items
    }


@pytest.mark.parametrize("name", list(CATALOGS))
def test_every_item_with_pystac_s_collection_and_asset_hrefs(name: str) -> None:
    root = DATA / name / CATALOGS[name]
    want = _summary(_pystac_items(root))
    assert want
    got = _summary([absolute_item(item, where=name) for item in tp.search_stac(str(root))])
    assert got == want


@pytest.mark.parametrize("name", list(CATALOGS))
def test_a_bbox_and_datetime_search_keeps_the_items_pystac_s_fields_select(name: str) -> None:
    root = DATA / name / CATALOGS[name]
    items = _pystac_items(root)
    first = items[0]
    box = shapely.geometry.shape(first.geometry).centroid.buffer(0.01).bounds
    when = first.datetime or first.common_metadata.start_datetime
    assert when is not None
    window = (when - dt.timedelta(days=1), when + dt.timedelta(days=1))

    def _kept(item: Any) -> bool:
        start = item.datetime or item.common_metadata.start_datetime
        end = item.datetime or item.common_metadata.end_datetime
        return (
            shapely.geometry.shape(item.geometry).intersects(shapely.box(*box))
            and start <= window[1]
            and end >= window[0]
        )

    want = sorted(item.id for item in items if _kept(item))
    assert first.id in want
    interval = "/".join(t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in window)
    got = sorted(item.id for item in tp.search_stac(str(root), bbox=list(box), datetime=interval))
    assert got == want


ITEM_COLLECTION = DATA / "item-collection" / "sample-item-collection.json"


def test_an_item_collection_file_gives_pystac_s_items() -> None:
    """A search saved by pystac-client (``ItemCollection.save_object``: NASA CMR's HLS items); refused before."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = _summary(list(pystac.ItemCollection.from_file(str(ITEM_COLLECTION))))
    assert len(want) == 10
    got = _summary([absolute_item(item, where="test") for item in tp.search_stac(str(ITEM_COLLECTION))])
    assert got == want
    box = [-177.0, -45.0, -176.9, -44.9]
    assert [item.id for item in tp.search_stac(str(ITEM_COLLECTION), bbox=box)] == ["G1994512890-LPCLOUD"]


def test_an_item_collection_s_relative_hrefs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a self link an item's relative href is the file's neighbour; with one, pystac's resolution."""
    folder = tmp_path / "saved"
    folder.mkdir()
    layouts.write(folder / "int8.tif", "int8")
    bare = _item(folder / "int8.tif", "./int8.tif")
    linked = dict(_item(folder / "int8.tif", "./B04.tif"), id="linked")
    linked["links"] = [{"rel": "self", "href": "https://data.example.org/stac/linked/linked.json"}]
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [bare, linked]}))
    monkeypatch.chdir(tmp_path)
    items = {item.id: absolute_item(item, where="test") for item in tp.search_stac("saved/items.json")}
    assert items["int8"].assets["data"].href == str(folder / "int8.tif")
    assert items["linked"].assets["data"].href == "https://data.example.org/stac/linked/B04.tif"
    cube = tp.stac.stack_items([items["int8"]], bands=["data"])
    with rasterio.open(folder / "int8.tif") as src:
        assert (cube.isel(time=0).values == src.read(1)[None]).all()
