"""The stac-geoparquet pushdown filter is conservative: it never leaves out a row the client check keeps."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from typing import Any

import pyarrow as pa
import pytest

from terrapipe.stac.geoparquet import pushdown_filter
from terrapipe.stac.query import item_matches, make_query

BBOX_FIELDS = {"xmin", "ymin", "xmax", "ymax"}
UTC = dt.UTC

# (west, south, east, north) of the rows: plain, across the antimeridian (west > east), at +-180, unknown
BOXES: list[tuple[float, float, float, float] | None] = [
    (0.0, 0.0, 1.0, 1.0),
    (170.0, 0.0, -170.0, 10.0),
    (179.5, 0.0, -179.5, 1.0),
    (-180.0, -5.0, -175.0, 5.0),
    (175.0, -5.0, 180.0, 5.0),
    (-10.0, 20.0, 10.0, 30.0),
    (100.0, 0.0, 120.0, 10.0),
    (-120.0, 0.0, -100.0, 10.0),
    None,
    (math.nan, 0.0, 1.0, 1.0),
    (-math.inf, -90.0, math.inf, 90.0),
]
QUERIES = [
    [175, 1, 176, 2],
    [-176, 1, -175, 2],
    [0, 0.5, 0.5, 0.8],
    [179, 1, -179, 2],  # the query crosses the antimeridian
    [170, -1, -100, 40],  # a wide crossing query
    [110, 1, 115, 2],
    [-115, 1, -110, 2],
    [-5, 25, 5, 26],
    [50, 50, 60, 60],
    [-180, -90, 180, 90],
]


def _row(box: tuple[float, float, float, float] | None) -> dict[str, float] | None:
    return None if box is None else dict(zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True))


def _item(ident: str, box: tuple[float, float, float, float] | None, geometry: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "Feature", "id": ident, "geometry": geometry, "properties": {}}
    if box is not None and not any(math.isnan(v) for v in box):
        item["bbox"] = list(box)
    return item


@pytest.mark.parametrize("bbox", QUERIES, ids=str)
def test_the_bbox_pushdown_keeps_every_row_the_client_keeps(bbox: list[float]) -> None:
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    # the last two rows: a null or NaN bbox column, and a geometry the client tests instead
    rows = [(str(n), box, None) for n, box in enumerate(BOXES) if box is None or not math.isnan(box[0])]
    rows += [("null box, geometry", None, square), ("NaN box, geometry", (math.nan, 0.0, 1.0, 1.0), square)]
    table = pa.table({"id": [r[0] for r in rows], "bbox": pa.array([_row(r[1]) for r in rows])})
    query = make_query({"bbox": bbox})
    kept = set(
        table.filter(pushdown_filter(query, {"id", "bbox"}, bbox_fields=BBOX_FIELDS))["id"].to_pylist()
    )
    matched = {ident for ident, box, geometry in rows if item_matches(_item(ident, box, geometry), query)}
    assert matched <= kept, f"the pushdown left out {sorted(matched - kept)}"
    plain = table.filter(
        pushdown_filter(make_query({"bbox": [50, 50, 60, 60]}), {"id", "bbox"}, bbox_fields=BBOX_FIELDS)
    )
    assert "0" not in plain["id"].to_pylist()  # still a filter: a box far away is left out


def test_a_query_across_the_antimeridian_keeps_items_on_both_sides_and_across() -> None:
    boxes = [
        (178.0, 0.0, 179.0, 1.0),
        (-179.0, 0.0, -178.0, 1.0),
        (170.0, 0.0, -170.0, 1.0),
        (0.0, 0.0, 1.0, 1.0),
    ]
    table = pa.table(
        {"id": ["east", "west", "across", "greenwich"], "bbox": pa.array([_row(b) for b in boxes])}
    )
    query = make_query({"bbox": [175, 0, -175, 1]})
    kept = table.filter(pushdown_filter(query, {"id", "bbox"}, bbox_fields=BBOX_FIELDS))["id"].to_pylist()
    assert kept == ["east", "west", "across"]


def _times(tz: str | None = "UTC", unit: str = "us") -> pa.Array:
    values = [
        dt.datetime(2024, 6, 1, 12),
        dt.datetime(2024, 1, 1),
        None,
        dt.datetime(2024, 6, 30, 23, 59, 59),
    ]
    return (
        pa.array(values, pa.timestamp(unit)).cast(pa.timestamp(unit, tz=tz))
        if tz
        else pa.array(values, pa.timestamp(unit))
    )


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Tokyo"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_the_datetime_pushdown_keeps_the_items_of_the_range_whatever_the_zone_and_unit(
    tz: str, unit: str
) -> None:
    table = pa.table({"id": ["june", "january", "no date", "june end"], "datetime": _times(tz, unit)})
    query = make_query({"datetime": "2024-06-01T00:00:00Z/2024-06-30T23:59:59.5Z"})
    expression = pushdown_filter(
        query, {"id", "datetime"}, types={"datetime": table.schema.field("datetime").type}
    )
    kept = table.filter(expression)["id"].to_pylist()
    stamps = table["datetime"].to_pylist()
    matched = [
        ident
        for ident, stamp in zip(table["id"].to_pylist(), stamps, strict=True)
        if item_matches(
            {"id": ident, "properties": {"datetime": stamp and stamp.astimezone(UTC).isoformat()}}, query
        )
    ]
    assert matched == ["june", "june end"]
    assert kept == matched


@pytest.mark.parametrize("column", [pa.string(), pa.timestamp("us")], ids=["string", "naive"])
def test_a_datetime_column_that_is_not_a_zoned_timestamp_is_left_to_the_client(column: pa.DataType) -> None:
    # before: comparing it with the query's instant raised, and the whole search failed
    values = ["2024-06-01T12:00:00Z", None] if column == pa.string() else [dt.datetime(2024, 6, 1, 12), None]
    table = pa.table({"id": ["june", "no date"], "datetime": pa.array(values, column)})
    query = make_query({"datetime": "2024-06"})
    expression = pushdown_filter(query, {"id", "datetime"}, types={"datetime": column})
    kept = table.filter(expression) if expression is not None else table
    assert kept["id"].to_pylist() == ["june", "no date"]


def test_items_with_start_and_end_datetime_only_are_left_to_the_client() -> None:
    start = pa.array([None, dt.datetime(2024, 1, 1)], pa.timestamp("us", tz="UTC"))
    end = pa.array([None, dt.datetime(2024, 12, 31)], pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "id": ["instant", "year"],
            "datetime": pa.array([dt.datetime(2023, 1, 1), None], pa.timestamp("us", tz="UTC")),
            "start_datetime": start,
            "end_datetime": end,
        }
    )
    query = make_query({"datetime": "2024-06"})
    types = {field.name: field.type for field in table.schema}
    assert pushdown_filter(query, set(table.column_names), types=types) is None  # nothing to push: all kept
    item = {
        "id": "year",
        "properties": {
            "datetime": None,
            "start_datetime": "2024-01-01T00:00:00Z",
            "end_datetime": "2024-12-31T00:00:00Z",
        },
    }
    assert item_matches(item, query)


@pytest.mark.parametrize(
    ("ids", "collections"), list(itertools.product([None, ["a", "c"]], [None, ["s2"], ["s2", None]]))
)
def test_ids_and_collections_keep_what_the_client_keeps(
    ids: list[str] | None, collections: list[Any] | None
) -> None:
    table = pa.table({"id": ["a", "b", "c"], "collection": ["s2", "s2", None]})
    params: dict[str, Any] = {}
    if ids is not None:
        params["ids"] = ids
    if collections is not None:
        params["collections"] = [c for c in collections if c is not None]
    query = make_query(params)
    expression = pushdown_filter(query, {"id", "collection"})
    kept = table.filter(expression)["id"].to_pylist() if expression is not None else table["id"].to_pylist()
    rows = zip(table["id"].to_pylist(), table["collection"].to_pylist(), strict=True)
    matched = [i for i, c in rows if item_matches({"id": i, "collection": c, "properties": {}}, query)]
    assert set(matched) <= set(kept)
