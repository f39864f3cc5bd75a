"""``stack_stac``'s time axis for items dated by ``start_datetime``/``end_datetime`` only, with UTC offsets.

The time label of a slot is the item's ``datetime``, else its ``start_datetime``, else its
``end_datetime`` (odc-stac's ``nominal_datetime``). The native cube converts whichever it takes to
UTC (``stack._nominal``); a cube that odc-stac loads (another grid: ``resolution=``, ``crs=``) gets
items whose ``datetime`` was moved to UTC (``stack._pystac_items``), but not their
``start_datetime``: odc-stac drops the offset of the one it labels with (``replace(tzinfo=None)``)
and groups solar days on the local clock. The same items then carry another time label, another
order of labels and other slots on the two grids: a composite, ``sel(time=...)`` or a label written
next to the pixels would be off by the offset. Asserted here: both grids label every slot with its
UTC time, keep labels in order, and group the same instant (``Z``, ``+00:00``, ``+01:00`` an hour
later) into one slot.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from terrapipe.stac.stack import stack_items
from tests.reliability.data import write_scene_item

pytest.importorskip("pystac")
pytest.importorskip("odc.stac")


@pytest.fixture(scope="module")
def item(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return write_scene_item(tmp_path_factory.mktemp("scene"), bands=1, size=64, block=64)


def _dated(item: dict[str, Any], ident: str, when: str | None, start: str | None = None) -> dict[str, Any]:
    out = copy.deepcopy(item)
    out["id"] = ident
    out["properties"]["datetime"] = when
    if start is not None:
        out["properties"]["start_datetime"] = start
        out["properties"]["end_datetime"] = start
    return out


GRIDS = ["native", "resampled"]


def _stack(items: list[dict[str, Any]], grid: str, **kwargs: Any) -> Any:
    if grid == "resampled":
        kwargs["resolution"] = 2 * items[0]["properties"]["proj:transform"][0]
    return stack_items(copy.deepcopy(items), **kwargs)


def _labels(cube: Any) -> list[str]:
    return [str(t) for t in np.datetime_as_string(cube.time.values, unit="m")]


@pytest.mark.parametrize("start", ["2024-06-01T12:30:00+02:00", "2024-06-01T05:30:00-05:00"])
@pytest.mark.parametrize(
    "grid",
    GRIDS,
)
def test_a_range_only_item_is_labelled_in_utc(item: dict[str, Any], grid: str, start: str) -> None:
    cube = _stack([_dated(item, "ranged", None, start)], grid)
    assert _labels(cube) == ["2024-06-01T10:30"]


@pytest.mark.parametrize(
    "grid",
    GRIDS,
)
def test_datetime_and_range_only_items_keep_their_labels_in_order(item: dict[str, Any], grid: str) -> None:
    items = [
        _dated(item, "plain", "2024-06-01T22:00:00Z"),
        _dated(item, "ranged", None, "2024-06-01T23:30:00+02:00"),  # 21:30 UTC: first
    ]
    cube = _stack(items, grid, groupby="time")
    assert _labels(cube) == ["2024-06-01T21:30", "2024-06-01T22:00"]


SAME_INSTANT = ["2024-06-01T10:30:00Z", "2024-06-01T10:30:00+00:00", "2024-06-01T11:30:00+01:00"]


@pytest.mark.parametrize("grid", GRIDS)
def test_one_instant_written_three_ways_is_one_slot(item: dict[str, Any], grid: str) -> None:
    items = [_dated(item, f"i{k}", when) for k, when in enumerate(SAME_INSTANT)]
    cube = _stack(items, grid, groupby="time")
    assert _labels(cube) == ["2024-06-01T10:30"]


@pytest.mark.parametrize(
    "grid",
    GRIDS,
)
def test_one_instant_written_three_ways_as_ranges_is_one_slot(item: dict[str, Any], grid: str) -> None:
    items = [_dated(item, f"i{k}", None, when) for k, when in enumerate(reversed(SAME_INSTANT))]
    cube = _stack(items, grid, groupby="time")
    assert _labels(cube) == ["2024-06-01T10:30"]


@pytest.mark.parametrize(
    "grid",
    GRIDS,
)
def test_solar_days_are_counted_from_utc(item: dict[str, Any], grid: str) -> None:
    """Near 3 degrees east a solar day is the UTC day: 01:30+02:00 on June 2 is June 1 there."""
    items = [
        _dated(item, "evening", "2024-06-01T20:00:00Z"),
        _dated(item, "late", None, "2024-06-02T01:30:00+02:00"),  # 23:30 UTC, June 1
    ]
    cube = _stack(items, grid, groupby="solar_day")
    assert cube.sizes["time"] == 1


@pytest.mark.parametrize("grid", GRIDS)
def test_both_grids_agree_on_a_mixed_set(item: dict[str, Any], grid: str) -> None:
    """A control: items dated by ``datetime`` alone (offsets included) label alike on both grids."""
    items = [
        _dated(item, "a", "2024-06-01T12:30:00+02:00"),
        _dated(item, "b", "2024-06-01T09:00:00Z"),
        _dated(item, "c", "2024-06-01T10:00:00-03:00"),
    ]
    cube = _stack(items, grid, groupby="time")
    assert _labels(cube) == ["2024-06-01T09:00", "2024-06-01T10:30", "2024-06-01T13:00"]
