"""Hostile and unusual STAC search parameters: tp.stac.STACQuery and make_query (no server needed)."""

from __future__ import annotations

import datetime as dt
import pickle

import pytest
import shapely.geometry

from terrapipe.cache.canonical import canonical, digest_json
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.stac.query import STACQuery, item_matches, make_query


def _item(when: str | None = None, bbox: list[float] | None = None) -> dict[str, object]:
    box = bbox or [0.0, 0.0, 1.0, 1.0]
    return {
        "id": "a",
        "collection": "c",
        "bbox": box,
        "geometry": shapely.geometry.mapping(shapely.geometry.box(*box)),
        "properties": {"datetime": when or "2024-06-15T00:00:00Z"},
    }


@pytest.mark.parametrize(
    ("bbox", "says"),
    [
        ([float("nan"), 0, 1, 1], "finite"),
        ([0, 0, float("inf"), 1], "finite"),
        (["nan", 0, 1, 1], "finite"),
        ([0, 10, 1, 0], "south"),
        ([0, -100, 1, 100], "latitudes"),
        ([170, 0, 190, 10], "antimeridian"),  # 0..360 longitudes: would silently miss items at -175
        ([-190, 0, -170, 10], "antimeridian"),
        ([True, 0, 1, 1], "bool"),
        ([0, 0, 5, 1, 1, 1], "elevation"),
        (5, "4 or 6"),
        ([0, 0, 1], "4 or 6"),
    ],
)
def test_a_bbox_that_cannot_be_right_is_refused(bbox: object, says: str) -> None:
    with pytest.raises(InvalidArgumentError, match=says):
        STACQuery(bbox=bbox)
    with pytest.raises(InvalidArgumentError, match=says):
        make_query({"bbox": bbox})


def test_bboxes_that_are_right_are_kept() -> None:
    across = make_query({"bbox": [170, -10, -170, 10]})  # crosses the antimeridian: west > east
    assert item_matches(_item(bbox=[175.0, 0.0, 176.0, 1.0]), across)
    assert item_matches(_item(bbox=[-176.0, 0.0, -175.0, 1.0]), across)
    assert not item_matches(_item(bbox=[0.0, 0.0, 1.0, 1.0]), across)
    assert make_query({"bbox": [0, 0, -5, 1, 1, 5]}).bbox == (0.0, 0.0, 1.0, 1.0)  # 3-D: horizontal part
    assert make_query({"bbox": "0,0,1,1"}).bbox == (0.0, 0.0, 1.0, 1.0)
    assert make_query({"bbox": [-180, -90, 180, 90]}).bbox == (-180.0, -90.0, 180.0, 90.0)


def test_a_month_holds_its_last_second() -> None:
    june = make_query({"datetime": "2024-06"})
    assert item_matches(_item("2024-06-30T23:59:59.500Z"), june)  # was left out: end was 23:59:59.000
    assert not item_matches(_item("2024-07-01T00:00:00Z"), june)
    day = make_query({"datetime": dt.date(2024, 6, 30)})  # a date object: that whole day
    assert item_matches(_item("2024-06-30T23:59:59.999Z"), day)
    assert not item_matches(_item("2024-06-29T23:59:59.999Z"), day)
    open_end = make_query({"datetime": "../2024-06-30"})
    assert open_end.start is None
    assert item_matches(_item("2024-06-30T23:59:59.1Z"), open_end)
    exact = make_query({"datetime": "2024-06-30T10:00:00Z"})  # an instant stays an instant
    assert exact.end == dt.datetime(2024, 6, 30, 10, tzinfo=dt.UTC)


def test_datetime_forms() -> None:
    plus_two = make_query({"datetime": "2024-06-15T12:00:00+02:00"})
    assert item_matches(_item("2024-06-15T10:00:00Z"), plus_two)  # the same instant
    assert not item_matches(_item("2024-06-15T12:00:00Z"), plus_two)
    naive = make_query({"datetime": "2024-06-15T10:00:00"})  # naive: UTC
    assert naive.start == dt.datetime(2024, 6, 15, 10, tzinfo=dt.UTC)
    as_object = make_query(
        {"datetime": dt.datetime(2024, 6, 15, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))}
    )
    assert as_object.start == naive.start
    assert item_matches(_item("2024-06-15t10:00:00z"), naive)  # RFC 3339 allows lower case
    assert item_matches(_item("2024-06-15T10:00:00.123456789Z"), make_query({"datetime": "2024-06-15"}))
    assert make_query({"datetime": "2024-06-01/.."}).end is None
    assert make_query({"datetime": (None, "2024-06-01")}).start is None
    with pytest.raises(InvalidArgumentError, match="starts"):
        STACQuery(datetime="2024-07-01/2024-06-01")  # reversed: matches nothing anywhere
    with pytest.raises(InvalidArgumentError, match="open-ended"):
        STACQuery(datetime=(None, None))
    with pytest.raises(InvalidArgumentError):
        STACQuery(datetime="yesterday")


def test_intersects_forms() -> None:
    point = {"type": "Point", "coordinates": [0.5, 0.5]}
    assert STACQuery(intersects=point) == STACQuery(intersects=shapely.geometry.Point(0.5, 0.5))
    feature = {"type": "Feature", "geometry": point, "properties": {}}
    assert make_query({"intersects": feature}).intersects == point
    assert item_matches(_item(), make_query({"intersects": shapely.geometry.Point(0.5, 0.5)}))
    beyond = shapely.geometry.mapping(shapely.geometry.box(170, 0, 190, 10))  # 0..360: missed items at -175
    for bad in (
        {"type": "Point"},
        {"type": "Point", "coordinates": [float("nan"), 0]},
        {"type": "Blob"},
        beyond,
        {"type": "Point", "coordinates": [0, 91]},
    ):
        with pytest.raises(InvalidArgumentError, match="intersects"):  # was: every item 'malformed'
            STACQuery(intersects=bad)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": True}, "limit"),
        ({"max_items": -1}, "max_items"),
        ({"max_items": False}, "max_items"),
        ({"collections": []}, "no collections"),  # empty: all items on some servers, none here
        ({"ids": ""}, "no ids"),  # "" was dropped: a search of every item
        ({"ids": [""]}, "no ids"),
        ({"collections": 5}, "strings"),
        ({"collections": b"s2"}, "strings"),
        ({"ids": ["a", 1]}, "strings"),
        ({"filter": "eo:cloud_cover < 10", "filter_lang": "cql2-json"}, "filter_lang"),
        ({"filter": {"op": "<", "args": [{"property": "a"}, 1]}, "filter_lang": "cql2-text"}, "filter_lang"),
        ({"filter": "a < 1", "filter_lang": "sql"}, "filter_lang"),
        ({"sortby": [{"field": "datetime", "direction": "sideways"}]}, "direction"),
    ],
)
def test_other_bad_parameters_are_named(params: dict[str, object], says: str) -> None:
    with pytest.raises(InvalidArgumentError, match=says):
        STACQuery.of(params)


def test_forms_the_server_reads_alike() -> None:
    assert make_query({"sortby": "-datetime"}).body["sortby"] == [{"field": "datetime", "direction": "desc"}]
    assert make_query({"fields": ["id", "-geometry"]}).body["fields"] == {
        "include": ["id"],
        "exclude": ["geometry"],
    }
    assert make_query({"filter": "a < 1"}).body["filter-lang"] == "cql2-text"
    assert (
        make_query({"filter": {"op": "<", "args": [{"property": "a"}, 1]}}).body["filter-lang"] == "cql2-json"
    )
    both = make_query({"ids": ["a"], "bbox": [0, 0, 1, 1]})
    assert item_matches(_item(), both)
    assert not item_matches(_item(bbox=[5.0, 5.0, 6.0, 6.0]), both)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"collections": ["a", "b"]}, {"collections": ("a", "b")}),
        ({"collections": ["a", "b"]}, {"collections": "a,b"}),
        ({"collections": ["b", "a"]}, {"collections": {"a", "b"}}),
        ({"bbox": [0, 0, 1, 1]}, {"bbox": [0.0, 0.0, 1.0, 1.0]}),  # equal values, hashes differed
        ({"bbox": [0, 0, 1, 1]}, {"bbox": "0,0,1,1"}),
        ({"datetime": "2024-06-15T10:00:00Z"}, {"datetime": dt.datetime(2024, 6, 15, 10, tzinfo=dt.UTC)}),
        ({"datetime": "2024-06-15T10:00:00"}, {"datetime": "2024-06-15T10:00:00Z"}),
        ({"sortby": "-datetime"}, {"sortby": [{"field": "datetime", "direction": "desc"}]}),
        ({"query": {"a": {"lt": 1}, "b": {"gt": 2}}}, {"query": {"b": {"gt": 2}, "a": {"lt": 1}}}),
    ],
)
def test_equal_searches_are_equal_queries_with_one_hash_and_one_cache_key(
    one: dict[str, object], other: dict[str, object]
) -> None:
    a, b = STACQuery.of(one), STACQuery.of(other)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert digest_json(canonical(a)) == digest_json(canonical(b))
    assert pickle.loads(pickle.dumps(a)) == a
    assert hash(pickle.loads(pickle.dumps(a))) == hash(a)


def test_different_searches_differ() -> None:
    base = STACQuery(collections=["a"], bbox=[0, 0, 1, 1])
    for changed in (
        base.replace(collections=["b"]),
        base.replace(bbox=[0, 0, 1, 2]),
        base.replace(max_items=3),
        base.replace(limit=5),
        base.replace(datetime="2024"),
    ):
        assert changed != base
        assert digest_json(canonical(changed)) != digest_json(canonical(base))
    assert STACQuery() != {"collections": None}  # not equal to a mapping


def test_repr_shows_no_geometry_and_stays_short() -> None:
    huge = shapely.geometry.Polygon([(i / 1000, (i % 7) / 1000) for i in range(2000)] + [(0, 0)]).convex_hull
    text = repr(STACQuery(intersects=huge, ids=[f"item-{i}" for i in range(1000)]))
    assert "<Polygon>" in text
    assert len(text) < 300


def test_a_stage_given_its_source_twice_refuses_rather_than_drop_one() -> None:
    import terrapipe as tp
    from terrapipe.core.errors import TerrapipeDeprecationWarning

    first, second = tp.from_items(["a.json"]), tp.from_items(["b.json"])
    with pytest.warns(TerrapipeDeprecationWarning), pytest.raises(InvalidArgumentError, match="two source"):
        tp.stac.ReadSTACItem(first, source_dp=second)  # second was dropped without a word
    with pytest.warns(TerrapipeDeprecationWarning), pytest.raises(InvalidArgumentError, match="two source"):
        tp.stac.StackSTAC(first, source_dp=second)
    with pytest.warns(TerrapipeDeprecationWarning):
        stage = tp.stac.ReadSTACItem(source_dp=first)  # the old keyword alone still works
    assert stage.source is first


def test_an_item_whose_bbox_crosses_the_antimeridian_matches_where_it_is() -> None:
    crossing = _item(bbox=[0.0, 0.0, 1.0, 1.0])
    crossing["bbox"], crossing["geometry"] = [170.0, 0.0, -170.0, 10.0], None  # bbox only, west > east
    assert item_matches(crossing, make_query({"bbox": [175, 1, 176, 2]}))  # was False
    assert item_matches(crossing, make_query({"bbox": [-176, 1, -175, 2]}))  # was False
    assert not item_matches(crossing, make_query({"bbox": [0, 1, 1, 2]}))  # was True: the other 340 degrees
    assert item_matches(crossing, make_query({"bbox": [179, 1, -179, 2]}))
    crossing["bbox"] = [170.0, 0.0, -5.0, -170.0, 10.0, 5.0]  # 3-D
    assert not item_matches(crossing, make_query({"bbox": [0, 1, 1, 2]}))


def test_geoparquet_pushdown_keeps_an_item_across_the_antimeridian() -> None:
    import pyarrow as pa

    from terrapipe.stac.geoparquet import pushdown_filter

    bbox = pa.array(
        [
            {"xmin": 170.0, "ymin": 0.0, "xmax": -170.0, "ymax": 10.0},
            {"xmin": 0.0, "ymin": 0.0, "xmax": 1.0, "ymax": 1.0},
        ]
    )
    table = pa.table({"id": ["crossing", "plain"], "bbox": bbox})
    query = make_query({"bbox": [175, 1, 176, 2]})
    expression = pushdown_filter(query, {"id", "bbox"}, bbox_fields={"xmin", "ymin", "xmax", "ymax"})
    assert table.filter(expression)["id"].to_pylist() == ["crossing"]


def test_numpy_datetimes_are_instants_or_whole_periods() -> None:
    import numpy as np

    assert STACQuery(datetime=np.datetime64("2024-06-01T10:00")) == STACQuery(datetime="2024-06-01T10:00:00Z")
    day = make_query({"datetime": np.datetime64("2024-06-01")})  # a day unit: that whole day, as "2024-06-01"
    assert item_matches(_item("2024-06-01T23:59:59.9Z"), day)
    assert make_query({"datetime": np.datetime64("2024-06-01T10:00:00.5")}).start == dt.datetime(
        2024, 6, 1, 10, 0, 0, 500000, tzinfo=dt.UTC
    )
    assert make_query({"datetime": [np.datetime64("2024-06-01"), None]}).end is None
    with pytest.raises(InvalidArgumentError, match="NaT"):  # was a bare-ish 'not iterable'; never 'all items'
        STACQuery(datetime=np.datetime64("NaT"))
