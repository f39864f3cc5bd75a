"""Search parameters, client-side matching, hrefs and the retry policy: pure functions."""

from __future__ import annotations

import datetime as dt

import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.stac.api import next_token
from terrapipe.stac.hrefs import join_href
from terrapipe.stac.http_json import retry_delay
from terrapipe.stac.query import item_matches, make_query
from terrapipe.stac.search import detect_kind


def _item(**kw: object) -> dict[str, object]:
    record: dict[str, object] = {
        "id": "a",
        "collection": "c1",
        "bbox": [10.0, 40.0, 11.0, 41.0],
        "geometry": {"type": "Polygon", "coordinates": [[[10, 40], [11, 40], [11, 41], [10, 41], [10, 40]]]},
        "properties": {"datetime": "2024-06-19T10:30:00Z"},
    }
    record.update(kw)
    return record


def test_query_normalises_like_pystac_client() -> None:
    q = make_query({"bbox": [10, 40, 11, 41], "datetime": "2024-06", "collections": "c1,c2", "ids": ["a"]})
    assert q.bbox == (10.0, 40.0, 11.0, 41.0)
    assert q.start == dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    assert q.end == dt.datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=dt.UTC)  # the whole last second
    assert q.collections == ("c1", "c2")
    assert q.body["datetime"] == "2024-06-01T00:00:00Z/2024-06-30T23:59:59Z"
    open_ended = make_query({"datetime": "2024-06-01T00:00:00Z/.."})
    assert open_ended.start is not None
    assert open_ended.end is None


def test_defaults_merge_and_element_keys_win() -> None:
    q = make_query({"collections": ["c2"]}, defaults={"collections": ["c1"], "limit": 5})
    assert q.collections == ("c2",)
    assert q.limit == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"bbox": [1, 2, 3]}, "bbox must have 4 or 6 values"),
        ({"colections": ["a"]}, "unknown STAC search parameters ['colections']"),
        ({"max_items": -1}, "max_items must be an integer >= 0"),
        ({"limit": 0}, "limit must be an integer >= 1"),
        ({"datetime": "not a date"}, "invalid search parameters"),
        ("collections=a", "must be a mapping"),
    ],
)
def test_bad_queries_name_the_value(query: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_query(query)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, True),
        ({"ids": ["a"]}, True),
        ({"ids": ["b"]}, False),
        ({"collections": ["c2"]}, False),
        ({"bbox": [10.5, 40.5, 12, 42]}, True),
        ({"bbox": [11.5, 40.5, 12, 42]}, False),
        ({"bbox": [170, 40, 10.5, 41]}, True),  # crosses the antimeridian, reaches 10.5 E
        ({"intersects": {"type": "Point", "coordinates": [10.5, 40.5]}}, True),
        ({"intersects": {"type": "Point", "coordinates": [12, 40.5]}}, False),
        ({"datetime": "2024-06-19"}, True),
        ({"datetime": "2024-06-20/2024-07-01"}, False),
        ({"datetime": "../2024-06-19T10:30:00Z"}, True),
    ],
)
def test_item_matches_follows_item_search_semantics(query: dict[str, object], expected: bool) -> None:
    assert item_matches(_item(), make_query(query)) is expected


def test_item_ranges_overlap_the_query_range() -> None:
    ranged = _item(
        properties={
            "datetime": None,
            "start_datetime": "2024-01-01T00:00:00Z",
            "end_datetime": "2024-12-31T00:00:00Z",
        }
    )
    assert item_matches(ranged, make_query({"datetime": "2024-06"}))
    assert not item_matches(ranged, make_query({"datetime": "2025-06"}))


def test_detect_kind() -> None:
    assert detect_kind("http://127.0.0.1:7822") == "api"
    assert detect_kind("http://127.0.0.1:7822/search") == "api"
    assert detect_kind("https://h/stac/catalog.json?x=1") == "static"
    assert detect_kind("s3-less/local/items.parquet") == "geoparquet"
    assert detect_kind("/data/stac") == "static"


def test_join_href() -> None:
    assert join_href("/a/b/catalog.json", "./c/collection.json") == "/a/b/c/collection.json"
    assert join_href("/a/b/c/item.json", "../../x.tif") == "/a/x.tif"
    assert join_href("http://h:1/a/b/item.json", "./B04.tif") == "http://h:1/a/b/B04.tif"
    assert join_href("http://h:1/a/item.json", "https://other/x.tif") == "https://other/x.tif"
    assert join_href("/a/item.json", "file:///data/x.tif") == "/data/x.tif"


def test_next_token_forms() -> None:
    get = {"links": [{"rel": "next", "href": "search?token=2"}]}
    assert next_token(get, "http://h/stac/search?token=1", None) == {
        "method": "GET",
        "href": "http://h/stac/search?token=2",
        "body": None,
        "headers": None,
    }
    post = {
        "links": [
            {"rel": "next", "href": "/search", "method": "POST", "body": {"skip": 4}, "headers": {"X": "1"}}
        ]
    }
    token = next_token(post, "http://h/search", {"limit": 2, "skip": 2})
    assert token == {"method": "POST", "href": "http://h/search", "body": {"skip": 4}, "headers": {"X": "1"}}
    assert next_token({"links": [{"rel": "self", "href": "x"}]}, "http://h/search", None) is None


def test_retry_delay_grows_is_capped_and_honours_retry_after() -> None:
    delays = [retry_delay(a, backoff=0.1, max_backoff=1.0, jitter=0.0) for a in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    jittered = [retry_delay(2, backoff=0.1, max_backoff=1.0) for _ in range(50)]
    assert all(0.2 <= d <= 0.4 for d in jittered)
    assert len(set(jittered)) > 1
    assert retry_delay(0, backoff=0.1, max_backoff=1.0, retry_after=0.5) >= 0.5
    assert retry_delay(0, backoff=0.1, max_backoff=1.0, retry_after=60) == 1.0


def test_transport_options_validate() -> None:
    with pytest.raises(InvalidArgumentError, match="timeout"):
        tp.search_stac(
            "http://127.0.0.1:9/stac", storage=tp.Storage(timeout=5)
        ).backend.client.storage.with_options(timeout=0)
    with pytest.raises(InvalidArgumentError, match=r"storage must be a tp\.Storage"):
        tp.search_stac("http://127.0.0.1:9/stac", storage={"timeout": 5})  # type: ignore[arg-type]
