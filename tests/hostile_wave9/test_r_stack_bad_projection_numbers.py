"""Projection fields with numbers no grid can have are named errors, never a bare ValueError or a hang.

JSON readers take ``NaN`` and ``Infinity`` (Python's ``json`` does), so an
item can carry ``proj:transform: [10, 0, NaN, ...]``: stack_stac failed
with a bare ``ValueError: cannot convert float NaN to integer`` naming
nothing. ``proj:shape: [16.7, 16]`` was cut to 16 rows silently, and
``proj:shape: [1e9, 1e9]`` on the items' own grid built a dask graph of
10^12 chunks until memory ran out (the size check covered other grids
only). Each is a :class:`STACSearchError` or :class:`InvalidArgumentError`
naming the item now, raised before anything is read.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrapipe.core.errors import InvalidArgumentError, STACSearchError
from terrapipe.stac import stack_items

ORIGIN = (600000.0, 5000160.0)


@pytest.fixture
def record(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "a.tif"
    profile = {
        "driver": "GTiff",
        "height": 16,
        "width": 16,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32631",
    }
    with rasterio.open(path, "w", transform=from_origin(*ORIGIN, 10, 10), nodata=0, **profile) as dst:
        dst.write(np.ones((1, 16, 16), "uint16"))
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "odd-numbers",
        "geometry": None,
        "properties": {
            "datetime": "2024-01-01T00:00:00Z",
            "proj:code": "EPSG:32631",
            "proj:shape": [16, 16],
            "proj:transform": [10, 0, ORIGIN[0], 0, -10, ORIGIN[1]],
        },
        "links": [],
        "assets": {"data": {"href": str(path), "type": "image/tiff; application=geotiff"}},
    }


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("proj:transform", "[10, 0, NaN, 0, -10, 5000160]"),
        ("proj:transform", "[Infinity, 0, 600000, 0, -10, 5000160]"),
        ("proj:transform", "[10, 0, 600000, 0, -10, 5000160, 0, 0, NaN]"),
        ("proj:shape", "[16.7, 16]"),
        ("proj:shape", "[true, 16]"),
    ],
)
def test_numbers_no_grid_can_have_are_named(record: dict[str, Any], field: str, text: str) -> None:
    given = copy.deepcopy(record)
    given["properties"][field] = json.loads(text)  # as json.load reads an item file
    if text.endswith("NaN]") and field == "proj:transform" and len(given["properties"][field]) == 9:
        assert stack_items([given]).shape == (1, 1, 16, 16)  # the third row is never used: no harm
        return
    with pytest.raises(
        STACSearchError, match=rf"STAC item 'odd-numbers', asset 'data': {field} .* is not valid"
    ):
        stack_items([given])


def test_a_native_grid_too_large_to_build_is_refused(record: dict[str, Any]) -> None:
    given = copy.deepcopy(record)
    given["properties"]["proj:shape"] = [10**9, 10**9]
    with pytest.raises(InvalidArgumentError, match=r"the grid of the items 'odd-numbers' is 1,000,000,000 x"):
        stack_items([given])


def test_whole_numbers_written_as_floats_still_stack(record: dict[str, Any]) -> None:
    given = copy.deepcopy(record)
    given["properties"]["proj:shape"] = [16.0, 16.0]
    assert stack_items([given]).shape == (1, 1, 16, 16)
