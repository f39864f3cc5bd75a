"""A search of a file finds the items a STAC API finds for the same ``datetime`` query.

An item with both ``datetime`` and a ``start_datetime``/``end_datetime``
range (an annual map dated by the first day of its year: ESA WorldCover,
io-lulc; a composite dated by its nominal day) is matched by its range in
the STAC APIs (rustac; pgstac alike when ``datetime`` lies in the range).
The static and stac-geoparquet searches matched ``datetime`` alone, so a
search for any later month of that year silently dropped the item. The
reference here is ``rustac serve`` (the API the STAC tests run against),
searched with the same queries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.stac.server import serve_stac

pytest.importorskip("pystac")
pytest.importorskip("rustac")


def item(ident: str, **times: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": ident,
        "collection": "c",
        "geometry": {"type": "Point", "coordinates": [6.0, 45.0]},
        "bbox": [6.0, 45.0, 6.0, 45.0],
        "properties": {"datetime": None, **times},
        "assets": {},
        "links": [],
    }


ITEMS = [
    item(
        "annual-map",
        datetime="2021-01-01T00:00:00Z",
        start_datetime="2021-01-01T00:00:00Z",
        end_datetime="2021-12-31T23:59:59Z",
    ),
    item(
        "composite",
        datetime="2021-06-15T00:00:00Z",
        start_datetime="2021-06-01T00:00:00Z",
        end_datetime="2021-06-30T23:59:59Z",
    ),
    item("range-only", start_datetime="2021-03-01T00:00:00Z", end_datetime="2021-04-30T00:00:00Z"),
    item("instant", datetime="2021-04-10T10:30:00Z"),
    item("instant-offset", datetime="2021-07-01T01:00:00+02:00"),
]
QUERIES = [
    "2021-06",
    "2021-04-20T00:00:00Z",
    "2021-12-31T00:00:00Z/..",
    "../2021-01-31T00:00:00Z",
    "2021-02",
    "2020",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ranges")
    collection = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": "c",
        "description": "items with time ranges",
        "license": "CC0-1.0",
        "extent": {"spatial": {"bbox": [[5, 44, 7, 46]]}, "temporal": {"interval": [[None, None]]}},
        "links": [],
    }
    (root / "collection.json").write_text(json.dumps(collection))
    (root / "items.ndjson").write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    (root / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": ITEMS}))
    arrow = pytest.importorskip("stac_geoparquet.arrow")
    arrow.to_parquet(arrow.parse_stac_items_to_arrow(json.loads(json.dumps(ITEMS))), root / "items.parquet")
    return root


@pytest.fixture(scope="module")
def api(folder: Path) -> Iterator[str]:
    with serve_stac(folder) as server:
        yield server.url


def ids(pipe: Any) -> list[str]:
    return sorted(found.id for found in pipe)


@pytest.mark.parametrize("query", QUERIES)
def test_files_find_what_the_api_finds(folder: Path, api: str, query: str) -> None:
    want = ids(tp.search_stac(api, collections=["c"], datetime=query))
    assert ids(tp.search_stac(str(folder / "items.json"), datetime=query)) == want
    assert ids(tp.search_stac(str(folder / "items.parquet"), datetime=query)) == want


def test_an_annual_map_is_found_by_any_month_of_its_year(folder: Path) -> None:
    found = ids(tp.search_stac(str(folder / "items.json"), datetime="2021-09"))
    assert found == ["annual-map"]
