"""STAC items in shapes real catalogs publish that the corpus (``tests/conformance/stac``) does not hold.

- Items kept in a bucket carry their bucket URL as self link (stactools and rio-stac write
  ``s3://bucket/.../item.json`` when a catalog is saved there) with relative asset hrefs
  (``./B04.tif``): the hrefs resolve inside the bucket, as pystac resolves them.
- RFC 3339 datetimes with a UTC offset (``2024-01-01T10:00:00+02:00``; the STAC spec allows any offset)
  and without one (older catalogs: ``2024-01-01T09:00:00``, which pystac takes as given).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from pystac.utils import make_absolute_href

from terrapipe.core.errors import ReadError, TerrapipeError
from terrapipe.stac.items import absolute_item
from terrapipe.stac.stack import stack_items

SELF_LINKS = [
    "s3://bucket/stac/landsat/LC08_L2SP/item.json",
    "gs://bucket/stac/item.json",
    "az://container/a/b/item.json",
    "abfs://container@account.dfs.core.windows.net/stac/item.json",
]
ASSET_HREFS = ["./B04.tif", "B04.tif", "../cogs/B04.tif", "/cogs/B04.tif", "../../../../../B04.tif"]


def _item(href: str = "./B04.tif", self_link: str | None = None, when: str = "2024-01-01T10:00:00Z") -> Any:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "id": "scene",
        "bbox": [3.0, 36.1, 3.1, 36.2],
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[3.0, 36.1], [3.1, 36.1], [3.1, 36.2], [3.0, 36.2], [3.0, 36.1]]],
        },
        "properties": {"datetime": when},
        "links": [] if self_link is None else [{"rel": "self", "href": self_link}],
        "assets": {
            "B04": {
                "href": href,
                "type": "image/tiff; application=geotiff",
                "proj:code": "EPSG:32631",
                "proj:shape": [8, 8],
                "proj:transform": [10, 0, 500000, 0, -10, 4000000],
                "raster:bands": [{"data_type": "uint16", "nodata": 0}],
            }
        },
    }


@pytest.mark.parametrize("href", ASSET_HREFS)
@pytest.mark.parametrize("self_link", SELF_LINKS)
def test_relative_asset_href_resolves_inside_the_bucket_of_the_self_link(self_link: str, href: str) -> None:
    """Before: ``s3://bucket/stac/x/item.json`` + ``./B04.tif`` gave ``s3:/bucket/stac/x/B04.tif`` (a local path)."""
    want = make_absolute_href(href, self_link)  # pystac's resolution (odc-stac reads what pystac gives)
    assert want.split("://", 1)[0] == self_link.split("://", 1)[0]
    item = absolute_item(_item(href, self_link), where="test item")
    assert item.assets["B04"].href == want


def test_a_bucket_asset_resolved_from_a_self_link_is_named_as_a_bucket_url() -> None:
    """The read goes to the bucket URL (refused here: no credentials), not to a local path ``s3:/...``."""
    cube = stack_items([_item("./B04.tif", SELF_LINKS[0])], bands=["B04"], chunks={})
    with pytest.raises(ReadError) as caught:
        cube.isel(time=0, band=0).compute()
    assert "s3://bucket/stac/landsat/LC08_L2SP/B04.tif" in str(caught.value)


def _times(datetimes: list[str], **kwargs: Any) -> list[np.datetime64]:
    items = []
    for i, when in enumerate(datetimes):
        item = _item("/nowhere/B04.tif", when=when)
        item["id"] = f"scene-{i}"
        items.append(item)
    cube = stack_items(items, bands=["B04"], chunks={}, **kwargs)
    return list(cube.time.values)


OFFSETS = [
    # (datetimes as published, the UTC instants of the cube's time axis)
    (
        ["2024-01-01T10:00:00+02:00", "2024-01-01T09:00:00Z", "2024-01-01T08:30:00Z"],
        ["08:00", "08:30", "09:00"],
    ),
    (["2023-12-31T22:00:00-05:00", "2024-01-01T02:00:00Z"], ["02:00", "03:00"]),
    (["2024-01-01T09:00:00+00:00", "2024-01-01T08:00:00.5Z"], ["08:00:00.5", "09:00"]),
]


@pytest.mark.parametrize(("datetimes", "utc"), OFFSETS[:2])
def test_time_axis_is_utc_for_datetimes_with_an_offset(datetimes: list[str], utc: list[str]) -> None:
    day = "2024-01-01T"
    assert _times(datetimes) == [np.datetime64(day + t, "ns") for t in utc]


@pytest.mark.parametrize(("datetimes", "utc"), OFFSETS[2:])
def test_time_axis_for_utc_spellings(datetimes: list[str], utc: list[str]) -> None:
    assert _times(datetimes) == [np.datetime64("2024-01-01T" + t, "ns") for t in utc]


def test_datetimes_with_and_without_an_offset_stack_or_are_a_named_error() -> None:
    try:
        times = _times(["2024-01-01T09:00:00", "2024-01-01T08:00:00Z"])
    except TerrapipeError:
        return  # refused by name: acceptable
    assert times == [np.datetime64("2024-01-01T08:00", "ns"), np.datetime64("2024-01-01T09:00", "ns")]


def test_items_are_not_changed() -> None:
    record = _item("./B04.tif", SELF_LINKS[0])
    before = copy.deepcopy(record)
    absolute_item(record, where="test item")
    assert record == before
