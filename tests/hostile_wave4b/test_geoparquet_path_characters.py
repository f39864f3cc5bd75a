"""A stac-geoparquet file at a local path holding ``#`` or ``?`` (legal in file and folder names).

``search.detect_kind`` cuts a source at its first ``?`` and ``#`` before looking at the suffix, for a
local path too, where they are part of the name: ``/data/run#2/items.parquet`` is taken for a static
catalog and refused as "not valid JSON". A URL's query and fragment are cut as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.stac.items import absolute_item
from terrapipe.stac.search import detect_kind

arrow = pytest.importorskip("stac_geoparquet.arrow")


def _record() -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "a",
        "geometry": {"type": "Point", "coordinates": [1.0, 2.0]},
        "bbox": [1.0, 2.0, 1.0, 2.0],
        "properties": {"datetime": "2024-01-01T00:00:00Z"},
        "links": [],
        "assets": {"data": {"href": "./scenes/a.tif"}},
    }


@pytest.mark.parametrize(
    "name",
    [
        "plain/items.parquet",
        "run#2/items.parquet",
        "what?/items.parquet",
        "plain/items#v2.parquet",
    ],
)
def test_a_local_geoparquet_file_is_searched_whatever_its_path_holds(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    (path.parent / "scenes").mkdir(parents=True)
    (path.parent / "scenes" / "a.tif").write_bytes(b"")
    arrow.to_parquet(arrow.parse_stac_items_to_arrow([_record()]), path)
    items = list(tp.search_stac(str(path)))
    assert [item.id for item in items] == ["a"]
    href = absolute_item(items[0], where="test").assets["data"].href
    assert href in (str(path.parent / "scenes" / "a.tif"), (path.parent / "scenes" / "a.tif").as_uri())


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("https://h/stac/items.parquet?sig=abc#x", "geoparquet"),
        ("https://h/stac/catalog.json?token=1", "static"),
        ("s3://b/stac/items.parquet", "geoparquet"),
        ("/data/items.parquet", "geoparquet"),
    ],
)
def test_a_url_s_query_and_fragment_still_do_not_decide_its_kind(source: str, kind: str) -> None:
    assert detect_kind(source) == kind


def test_a_json_catalog_in_such_a_folder_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "run#2"
    folder.mkdir()
    record = {**_record(), "links": [{"rel": "self", "href": str(folder / "a.json")}]}
    (folder / "a.json").write_text(json.dumps(record))
    (folder / "catalog.json").write_text(
        json.dumps(
            {
                "type": "Catalog",
                "stac_version": "1.1.0",
                "id": "c",
                "description": "c",
                "links": [{"rel": "item", "href": "./a.json"}],
            }
        )
    )
    assert [item.id for item in tp.search_stac(str(folder / "catalog.json"))] == ["a"]
