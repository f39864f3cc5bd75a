"""``stack_stac``'s time axis and its two item parsers (plain dicts, ``pystac.Item`` s) on odd but valid items.

The native cube builds its time axis with ``np.asarray(times, dtype="datetime64[ns]")``: a datetime
outside 1677-09-21..2262-04-11 (climate projections to 2300, historical maps, the ``0001-01-01`` /
``9999-12-31`` placeholders some catalogs write) wraps around silently, while the resampled cube
(odc-stac) labels it right. A ``pystac.Item`` whose unused ``start_datetime`` does not parse stacks
as a dict but raises pystac's bare ``ValueError`` as an Item.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from terrapipe.core.errors import TerrapipeError
from terrapipe.stac.stack import stack_items
from tests.reliability.data import write_scene_item

pystac = pytest.importorskip("pystac")
pytest.importorskip("odc.stac")


@pytest.fixture(scope="module")
def item(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return write_scene_item(tmp_path_factory.mktemp("scene"), bands=1, size=128, block=128)


def _at(item: dict[str, Any], when: str, ident: str = "a", **properties: Any) -> dict[str, Any]:
    out = copy.deepcopy(item)
    out["id"] = ident
    out["properties"].update(datetime=when, **properties)
    return out


def _text(value: Any) -> str:
    return str(np.datetime_as_string(value, unit="s"))


FAR = ["2300-01-01T00:00:00Z", "1500-06-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]


@pytest.mark.parametrize("when", FAR)
def test_a_date_far_from_now_is_labelled_right_or_refused(item: dict[str, Any], when: str) -> None:
    want = when.replace("Z", "")  # compared as text: numpy converts units through nanoseconds, wrapping too
    resampled = stack_items([_at(item, when)], resolution=2 * item["properties"]["proj:transform"][0])
    assert _text(resampled.time.values[0]) == want  # odc-stac's label
    try:
        cube = stack_items([_at(item, when)])
    except TerrapipeError:
        return  # refused by name: fine
    assert _text(cube.time.values[0]) == want, cube.time.values


def test_far_dates_keep_their_order(item: dict[str, Any]) -> None:
    items = [_at(item, "2024-06-01T00:00:00Z", "now"), _at(item, "2300-01-01T00:00:00Z", "later")]
    try:
        cube = stack_items(items, groupby="id")
    except TerrapipeError:
        return
    times = cube.time.values
    assert times[0] < times[1], times


def test_dates_at_the_edges_of_nanoseconds_are_exact(item: dict[str, Any]) -> None:
    for when in ("1678-01-01T00:00:00Z", "2262-01-01T00:00:00Z", "2024-02-29T23:59:59.999999Z"):
        cube = stack_items([_at(item, when)])
        assert cube.time.values[0] == np.datetime64(when.replace("Z", ""), "ns")


@pytest.mark.parametrize("field", [{"start_datetime": "garbage"}, {"end_datetime": 5}])
def test_an_item_s_unused_malformed_range_is_as_its_dict(item: dict[str, Any], field: dict[str, Any]) -> None:
    record = _at(item, "2024-06-19T10:30:00Z", **field)
    want = stack_items([copy.deepcopy(record)])  # a plain dict: its datetime is what counts
    try:
        got = stack_items([pystac.Item.from_dict(copy.deepcopy(record))])
    except TerrapipeError:
        return  # refused by name: fine too
    assert got.time.values.tolist() == want.time.values.tolist()
    np.testing.assert_array_equal(got.values, want.values)


ODD_TIMES = [
    "2024-06-19t10:30:00z",
    "2024-06-19T10:30:00.123456789Z",
    "2024-06-19T10:30:00-00:00",
    "2024-06-19T12:30:00+02:00",
    "2024-06-19",
    "2024-06-19 10:30:00Z",
    "2024-06-19T24:00:00Z",
    "20240619T103000Z",
    "2024-06-19T10:30:00,5Z",
]


@pytest.mark.parametrize("when", ODD_TIMES)
def test_odd_rfc3339_forms_stack_as_pystac_items_do(item: dict[str, Any], when: str) -> None:
    records = [_at(item, when, "odd"), _at(item, "2024-06-19T10:30:00Z", "plain")]
    got = stack_items(copy.deepcopy(records), groupby="id")
    want = stack_items([pystac.Item.from_dict(copy.deepcopy(r)) for r in records], groupby="id")
    assert got.time.values.tolist() == want.time.values.tolist()
    assert list(got.coords) == list(want.coords)
    np.testing.assert_array_equal(got.values, want.values)


def test_the_item_dicts_are_left_as_they_were(item: dict[str, Any]) -> None:
    records = [_at(item, t, f"i{k}") for k, t in enumerate(ODD_TIMES[:4])]
    before = copy.deepcopy(records)
    assert stack_items(records, groupby="id").values.size > 0
    assert records == before
