"""An item without ``geometry`` (allowed by STAC) stacks on any grid, with or without ``bbox=``.

On its own pixel grid such an item stacked (the grid comes from the
projection fields), but on another grid with ``bbox=`` odc-stac refused it
("Can not process items without defined footprint", passed on without
naming the item). The footprint of its asset is taken from the projection
fields now; the cube equals the one of the same item with its geometry.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrapipe.stac import stack_items

pytest.importorskip("odc.stac")
ORIGIN = (600000.0, 5000640.0)


@pytest.fixture
def with_geometry(tmp_path: Path) -> dict[str, Any]:
    from odc.geo.geobox import GeoBox

    path = tmp_path / "a.tif"
    transform = from_origin(*ORIGIN, 10, 10)
    data = np.arange(1, 64 * 64 + 1, dtype="uint16").reshape(1, 64, 64)
    profile = {
        "driver": "GTiff",
        "height": 64,
        "width": 64,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32631",
    }
    with rasterio.open(path, "w", transform=transform, nodata=0, **profile) as dst:
        dst.write(data)
    outline = GeoBox((64, 64), transform, "EPSG:32631").extent.to_crs("EPSG:4326", resolution=10)
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "a",
        "geometry": outline.json,
        "bbox": list(outline.boundingbox),
        "properties": {
            "datetime": "2024-01-01T00:00:00Z",
            "proj:code": "EPSG:32631",
            "proj:shape": [64, 64],
            "proj:transform": list(transform)[:6],
        },
        "links": [],
        "assets": {"data": {"href": str(path), "type": "image/tiff; application=geotiff"}},
    }


@pytest.mark.parametrize(
    "options",
    [{"crs": "EPSG:4326", "resolution": 0.0001}, {"resolution": 20}, {"crs": "EPSG:3857", "resolution": 15}],
    ids=["4326", "coarser", "3857"],
)
@pytest.mark.parametrize("kind", ["dict", "pystac"])
def test_no_geometry_stacks_as_with_it(
    with_geometry: dict[str, Any], options: dict[str, Any], kind: str
) -> None:
    pystac = pytest.importorskip("pystac")
    bbox = with_geometry["bbox"]
    without = copy.deepcopy(with_geometry)
    without["geometry"], without["bbox"] = None, None
    given = without if kind == "dict" else pystac.Item.from_dict(without)
    want = stack_items([copy.deepcopy(with_geometry)], bbox=bbox, **options).compute()
    got = stack_items([given], bbox=bbox, **options).compute()
    assert got.odc.geobox == want.odc.geobox
    np.testing.assert_array_equal(got.values, want.values)
    assert np.count_nonzero(got.values) > 0
