"""``stack_stac(bbox=...)`` covers the area the lon/lat box covers, around a pole and at high latitudes.

The box was projected by its four corners (as odc-stac does with
``bbox=``), joined by straight lines on the output grid: around a pole it
collapsed (``[-180, -90, 180, -60]`` over Antarctica in EPSG:3031 gave a
cube one pixel wide, every other pixel of the items silently left out),
and at high latitudes the northern parallel's bulge was cut off (rows of
the box missing). The outline is densified before it is projected now, on
the items' own grid and on another grid alike; the reference is rasterio
reading the file and the box's outline projected point by point.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from odc.geo import geom
from rasterio.transform import from_origin

from terrapipe.stac import stack_items

pytest.importorskip("odc.stac")


def write_item(
    tmp_path: Path, crs: str, origin: tuple[float, float], size: float, shape: int
) -> dict[str, Any]:
    path = tmp_path / f"{crs.replace(':', '_')}.tif"
    data = (np.arange(shape * shape, dtype="uint16").reshape(1, shape, shape) % 60000) + 1
    transform = from_origin(*origin, size, size)
    profile = {"driver": "GTiff", "height": shape, "width": shape, "count": 1, "dtype": "uint16", "crs": crs}
    with rasterio.open(path, "w", transform=transform, nodata=0, **profile) as dst:
        dst.write(data)
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": crs,
        "geometry": None,
        "properties": {
            "datetime": "2024-01-01T00:00:00Z",
            "proj:code": crs,
            "proj:shape": [shape, shape],
            "proj:transform": list(transform)[:6],
        },
        "links": [],
        "assets": {"data": {"href": str(path), "type": "image/tiff; application=geotiff"}},
    }


@pytest.fixture
def antarctica(tmp_path: Path) -> dict[str, Any]:
    """64 x 64 pixels of 10 km centred on the South Pole (EPSG:3031)."""
    return write_item(tmp_path, "EPSG:3031", (-320000.0, 320000.0), 10000.0, 64)


@pytest.mark.parametrize("bbox", [[-180, -90, 180, -60], [-180, -90, 180, -85.5]])
def test_a_box_around_the_pole_covers_the_cap(antarctica: dict[str, Any], bbox: list[float]) -> None:
    cube = stack_items([copy.deepcopy(antarctica)], bbox=bbox).compute()
    outline = geom.box(*bbox, "EPSG:4326").segmented(0.05).to_crs("EPSG:3031").boundingbox
    box = cube.odc.geobox.boundingbox
    assert box.left <= outline.left + 10000
    assert box.right >= outline.right - 10000
    assert box.bottom <= outline.bottom + 10000
    assert box.top >= outline.top - 10000
    with rasterio.open(antarctica["assets"]["data"]["href"]) as src:
        everything = src.read(1)
    inside = cube.isel(time=0, band=0).values
    if bbox[3] == -60:  # the cap holds the whole tile: every pixel of the file, once
        assert np.count_nonzero(inside) == everything.size
        assert sorted(inside[inside > 0].tolist()) == sorted(everything.ravel().tolist())


def test_a_box_around_the_pole_on_another_grid(antarctica: dict[str, Any]) -> None:
    record = copy.deepcopy(antarctica)  # odc-stac (another grid) picks items by footprint: give it one
    record["geometry"] = (
        geom.box(-320000, -320000, 320000, 320000, "EPSG:3031").to_crs("EPSG:4326", 1000).json
    )
    cube = stack_items([record], bbox=[-180, -90, 180, -60], resolution=5000).compute()
    assert cube.sizes["x"] > 600
    assert cube.sizes["y"] > 600
    assert np.count_nonzero(cube.values) == 128 * 128  # the tile at twice the resolution, all of it


def test_the_bulge_of_a_high_parallel_is_kept(tmp_path: Path) -> None:
    """A 5 x 5 degree box at 60-65 N in UTM 31N: the 65 N parallel bulges north of the box's corners."""
    item = write_item(tmp_path, "EPSG:32631", (200000.0, 7300000.0), 1000.0, 700)
    bbox = [0.5, 60.0, 5.5, 65.0]
    cube = stack_items([item], bbox=bbox)
    north = geom.box(*bbox, "EPSG:4326").segmented(0.01).to_crs("EPSG:32631").boundingbox.top
    assert cube.odc.geobox.boundingbox.top >= north - 1000  # within a pixel of the parallel's top
