"""A ``null`` band field is no value: it never hides the nodata the asset or the item states.

stac-geoparquet (and other columnar stores of items) give every item every
field some item of the file has, ``null`` where it had none. An item whose
nodata is on the asset (STAC 1.1) came back with ``"nodata": null`` in its
``raster:bands`` entry, and that null was read as "no nodata": the cube lost
its nodata, and with a file header without one, the nodata pixels came out
as valid data. The same null on an asset's ``proj:shape``/``proj:transform``
hid the item's own (a valid item refused as having no projection), and
null ``raster:bands``/``eo:bands``/``bands``/``data_type`` made a metadata
asset count as a raster for ``bands=None``. Checked on files written by
stac-geoparquet and rustac and read back by ``search_stac``, against the
items as they were written.
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
from terrapipe.stac import stack_items
from terrapipe.stac.bands import BandRef, band_info

pytest.importorskip("pystac")
ORIGIN = (600000.0, 5000320.0)


def write(path: Path) -> str:
    """A 32 x 32 uint16 GeoTIFF whose header states no nodata; its top 4 rows are 0 (nodata by the items)."""
    data = np.arange(1, 32 * 32 + 1, dtype="uint16").reshape(1, 32, 32)
    data[:, :4, :] = 0
    profile = {
        "driver": "GTiff",
        "height": 32,
        "width": 32,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32631",
    }
    with rasterio.open(path, "w", transform=from_origin(*ORIGIN, 10, 10), **profile) as dst:
        dst.write(data)
    return str(path)


def item(ident: str, href: str, asset: dict[str, Any], when: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "id": ident,
        "collection": "c",
        "geometry": {"type": "Point", "coordinates": [7.7, 45.1]},
        "bbox": [7.7, 45.1, 7.7, 45.1],
        "properties": {
            "datetime": when,
            "proj:code": "EPSG:32631",
            "proj:shape": [32, 32],
            "proj:transform": [10, 0, ORIGIN[0], 0, -10, ORIGIN[1]],
        },
        "links": [],
        "assets": {"red": {"href": href, "type": "image/tiff; application=geotiff", **asset}},
    }


@pytest.fixture
def items(tmp_path: Path) -> list[dict[str, Any]]:
    href = write(tmp_path / "a.tif")
    band_level = item(
        "band-level", href, {"raster:bands": [{"nodata": 0, "data_type": "uint16"}]}, "2024-06-01T10:00:00Z"
    )
    asset_level = item(
        "asset-level",
        href,
        {"nodata": 0, "data_type": "uint16", "raster:bands": [{"data_type": "uint16"}]},
        "2024-06-02T10:00:00Z",
    )
    return [band_level, asset_level]


def write_stac_geoparquet(items: list[dict[str, Any]], path: Path) -> None:
    arrow = pytest.importorskip("stac_geoparquet.arrow")
    arrow.to_parquet(arrow.parse_stac_items_to_arrow(copy.deepcopy(items)), path)


def write_rustac(items: list[dict[str, Any]], path: Path) -> None:
    import asyncio

    rustac = pytest.importorskip("rustac")

    async def run() -> None:
        await rustac.write(str(path), copy.deepcopy(items))

    asyncio.run(run())


@pytest.mark.parametrize("writer", [write_stac_geoparquet, write_rustac], ids=["stac-geoparquet", "rustac"])
def test_items_read_back_from_geoparquet_keep_their_nodata(
    items: list[dict[str, Any]], tmp_path: Path, writer: Any
) -> None:
    path = tmp_path / "items.parquet"
    writer(items, path)
    back = {found.id: found for found in tp.search_stac(str(path))}
    for written in items:
        want = stack_items([copy.deepcopy(written)], bands=["red"])
        got = stack_items([back[written["id"]]], bands=["red"])
        assert want.attrs["nodata"] == 0
        assert got.attrs == want.attrs, written["id"]
        np.testing.assert_array_equal(got.values, want.values)


@pytest.mark.parametrize(
    ("asset", "properties"),
    [
        ({"nodata": 0, "raster:bands": [{"nodata": None}]}, {}),
        ({"nodata": 0, "bands": [{"name": "red", "nodata": None}]}, {}),
        ({"raster:bands": [{"nodata": None}], "nodata": None}, {"nodata": 0}),
    ],
    ids=["raster:bands-over-asset", "bands-over-asset", "all-over-item"],
)
def test_a_null_nodata_is_not_given(asset: dict[str, Any], properties: dict[str, Any]) -> None:
    record = {"id": "a", "properties": properties, "assets": {"red": {"href": "a.tif", **asset}}}
    assert band_info(record, BandRef("red", "red", 1, 1)).nodata == 0


def test_a_null_asset_projection_field_falls_back_to_the_item_s(tmp_path: Path) -> None:
    """An item with item-level ``proj:shape``/``proj:transform`` read back next to one with asset-level ones."""
    href = write(tmp_path / "a.tif")
    grid = {"proj:shape": [32, 32], "proj:transform": [10, 0, ORIGIN[0], 0, -10, ORIGIN[1]]}
    per_asset = item("per-asset", href, dict(grid), "2024-06-01T10:00:00Z")
    per_item = item("per-item", href, {}, "2024-06-02T10:00:00Z")
    for record in (per_asset, per_item):
        record["assets"]["red"]["raster:bands"] = [{"nodata": 0, "data_type": "uint16"}]
    per_asset["properties"] = {k: v for k, v in per_asset["properties"].items() if k not in grid}
    path = tmp_path / "items.parquet"
    write_stac_geoparquet([per_asset, per_item], path)
    back = [found for found in tp.search_stac(str(path)) if found.id == "per-item"]
    assert back[0].assets["red"].extra_fields.get("proj:shape", "absent") in (None, "absent")
    want = stack_items([copy.deepcopy(per_item)], bands=["red"])
    got = stack_items(back, bands=["red"])
    assert tuple(got.odc.geobox.transform)[:6] == tuple(want.odc.geobox.transform)[:6]
    np.testing.assert_array_equal(got.values, want.values)


def test_an_asset_with_null_band_fields_is_not_taken_for_a_raster(tmp_path: Path) -> None:
    """``bands=None`` stacks the raster assets; a metadata asset padded with null band fields is not one."""
    href = write(tmp_path / "a.tif")
    record = item("a", href, {"raster:bands": [{"nodata": 0, "data_type": "uint16"}]}, "2024-06-01T10:00:00Z")
    record["assets"]["metadata"] = {
        "href": str(tmp_path / "granule.xml"),
        "type": "application/xml",
        "raster:bands": None,
        "eo:bands": None,
        "bands": None,
        "data_type": None,
    }
    cube = stack_items([record])
    assert list(cube.band.values) == ["red"]
