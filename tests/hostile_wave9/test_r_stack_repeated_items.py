"""An item given twice to a cube of one time slice per item is refused, never stacked twice.

With ``groupby="id"`` (or ``None``) every item is its own time slice, so an
item that comes twice (an API whose pages repeat an item: the search stage
passes items on as the API sends them; two searches chained) made two
identical slices, and every chip of it a duplicated training sample;
odc-stac does the same. Such a stack is a named ``InvalidArgumentError``
now. The same id in two collections is two items; ``groupby="time"`` fuses
the copies (one slice, as odc-stac).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.stac import stack_items

pystac = pytest.importorskip("pystac")
odc_stac = pytest.importorskip("odc.stac")

ORIGIN = (600000.0, 5000320.0)


@pytest.fixture
def item(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "a.tif"
    data = np.arange(32 * 32, dtype="uint16").reshape(1, 32, 32) + 1
    profile = {
        "driver": "GTiff",
        "height": 32,
        "width": 32,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32631",
    }
    with rasterio.open(path, "w", transform=from_origin(*ORIGIN, 10, 10), nodata=0, **profile) as dst:
        dst.write(data)
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "id": "S2B_31TGK_20240601_0_L2A",
        "collection": "sentinel-2-l2a",
        "geometry": None,
        "properties": {
            "datetime": "2024-06-01T10:30:00Z",
            "proj:code": "EPSG:32631",
            "proj:shape": [32, 32],
            "proj:transform": [10, 0, ORIGIN[0], 0, -10, ORIGIN[1]],
        },
        "links": [],
        "assets": {"red": {"href": str(path), "type": "image/tiff; application=geotiff"}},
    }


@pytest.mark.parametrize("groupby", ["id", None])
@pytest.mark.parametrize("kind", ["dicts", "pystac"])
def test_an_item_given_twice_is_refused_by_name(item: dict[str, Any], groupby: Any, kind: str) -> None:
    other = {**copy.deepcopy(item), "id": "another"}
    records = [copy.deepcopy(item), other, copy.deepcopy(item)]
    given = records if kind == "dicts" else [pystac.Item.from_dict(r) for r in records]
    with pytest.raises(
        InvalidArgumentError, match=r"'S2B_31TGK_20240601_0_L2A' \(collection 'sentinel-2-l2a'\)"
    ):
        stack_items(given, groupby=groupby)


def test_the_stage_refuses_repeats_from_its_source(item: dict[str, Any]) -> None:
    pipe = tp.from_items([copy.deepcopy(item), copy.deepcopy(item)]).stack_stac(groupby="id")
    with pytest.raises(InvalidArgumentError, match="more than once"):
        list(pipe)


def test_the_same_id_in_two_collections_is_two_slices(item: dict[str, Any]) -> None:
    other = {**copy.deepcopy(item), "collection": "sentinel-2-l2a-reprocessed"}
    cube = stack_items([copy.deepcopy(item), other], groupby="id")
    assert cube.sizes["time"] == 2


def test_groupby_time_fuses_the_copies_as_odc_stac_does(item: dict[str, Any]) -> None:
    cube = stack_items([copy.deepcopy(item), copy.deepcopy(item)], groupby="time")
    theirs = odc_stac.load([pystac.Item.from_dict(copy.deepcopy(item)) for _ in range(2)], groupby="time")
    assert cube.sizes["time"] == theirs.sizes["time"] == 1
    np.testing.assert_array_equal(cube.isel(time=0, band=0).values, theirs["red"].isel(time=0).values)
