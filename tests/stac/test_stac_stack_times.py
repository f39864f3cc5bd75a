"""The time axis of a ``stack_stac`` cube is in UTC, whatever offset the items' datetimes carry.

Before, the native cube took ``.replace(tzinfo=None)`` of an offset datetime (``10:00+02:00`` labelled
``10:00``, after ``09:00Z``), odc-stac does the same for other grids, and an item without an offset
stacked with one that has it raised a bare ``TypeError`` (naive and aware datetimes do not sort).
Now offsets are converted, and a datetime without one is taken as UTC, on both paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from terrapipe.stac.stack import stack_items
from tests.reliability.data import write_scene_item

pystac = pytest.importorskip("pystac")
pytest.importorskip("odc.stac")


def _items(tmp_path: Path, datetimes: list[str]) -> list[dict[str, Any]]:
    first = write_scene_item(tmp_path, bands=1, size=64, block=64)
    return [
        {**first, "id": f"s{i}", "properties": {**first["properties"], "datetime": when}}
        for i, when in enumerate(datetimes)
    ]


def _resolution(items: list[dict[str, Any]]) -> float:
    return 2 * float(items[0]["properties"]["proj:transform"][0])


CASES = [
    (
        ["2024-01-01T10:00:00+02:00", "2024-01-01T09:00:00Z", "2024-01-01T08:30:00Z"],
        ["08:00", "08:30", "09:00"],
    ),
    (["2023-12-31T22:00:00-05:00", "2024-01-01T02:00:00Z"], ["02:00", "03:00"]),
    (["2024-01-01T09:00:00", "2024-01-01T08:00:00Z"], ["08:00", "09:00"]),  # no offset: UTC
]


@pytest.mark.parametrize(("datetimes", "utc"), CASES)
@pytest.mark.parametrize("grid", ["native", "resampled"])
def test_the_time_axis_is_utc(tmp_path: Path, datetimes: list[str], utc: list[str], grid: str) -> None:
    items = _items(tmp_path, datetimes)
    options = {"resolution": _resolution(items)} if grid == "resampled" else {}
    cube = stack_items(items, **options)
    assert list(cube.time.values) == [np.datetime64("2024-01-01T" + t, "ns") for t in utc]


@pytest.mark.parametrize("grid", ["native", "resampled"])
def test_the_same_instant_with_two_offsets_is_one_slot(tmp_path: Path, grid: str) -> None:
    items = _items(tmp_path, ["2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00Z"])
    options = {"resolution": _resolution(items)} if grid == "resampled" else {}
    cube = stack_items(items, **options)
    assert list(cube.time.values) == [np.datetime64("2024-01-01T08:00", "ns")]


def test_pystac_items_given_are_not_changed(tmp_path: Path) -> None:
    items = [pystac.Item.from_dict(d) for d in _items(tmp_path, ["2024-01-01T10:00:00+02:00"])]
    before = items[0].datetime
    stack_items(items, resolution=_resolution(_items(tmp_path, ["2024-01-01T10:00:00Z"])))
    assert items[0].datetime == before
    assert items[0].datetime.utcoffset().total_seconds() == 7200


def test_dates_outside_nanoseconds_are_labelled_in_microseconds(tmp_path: Path) -> None:
    items = _items(tmp_path, ["2024-06-01T00:00:00Z", "2300-01-01T00:00:00Z", "0001-01-01T00:00:00Z"])
    cube = stack_items(items, groupby="id")
    assert cube.time.dtype == np.dtype("datetime64[us]")
    assert [str(t) for t in cube.time.values] == [
        "2024-06-01T00:00:00.000000",
        "2300-01-01T00:00:00.000000",
        "0001-01-01T00:00:00.000000",
    ]
    assert stack_items(items[:1]).time.dtype == np.dtype("datetime64[ns]")  # as before where ns holds them


def test_a_pystac_item_whose_used_range_is_malformed_is_a_named_error(tmp_path: Path) -> None:
    from terrapipe.core.errors import STACSearchError

    (record,) = _items(tmp_path, ["2024-06-01T00:00:00Z"])
    record["properties"] = {
        **record["properties"],
        "datetime": None,
        "start_datetime": "garbage",
        "end_datetime": "2024-06-02T00:00:00Z",
    }
    with pytest.raises(STACSearchError, match=r"STAC item 's0': start_datetime 'garbage' is not a datetime"):
        stack_items([pystac.Item.from_dict(record)])
