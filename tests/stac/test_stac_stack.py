"""stack_stac: cubes equal direct rasterio reads and odc-stac's grids; grids, dtypes, chunks, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

import terrapipe as tp
import terrapipe.stac
from terrapipe.core.errors import GridMismatchError, InvalidArgumentError, ReadError, StacSearchError
from terrapipe.datasets import SampleWorld
from terrapipe.stac import search_stac, stack_items
from tests.servers.http_range import range_server
from tests.stac.stac_helpers import MINI_TILE, mini_item

odc_stac = pytest.importorskip("odc.stac")
pystac = pytest.importorskip("pystac")

BBOX = (5.93, 45.71, 5.987, 45.7712)  # inside tile 0 (EPSG:32631), not on its tile grid


@pytest.fixture(scope="module")
def s2_items(world: SampleWorld) -> list[Any]:
    return list(search_stac(world.catalog, collections=["demo-s2"]))


@pytest.fixture(scope="module")
def tile0(s2_items: list[Any]) -> list[Any]:
    return [item for item in s2_items if item.properties["proj:code"] == "EPSG:32631"]


def _read(path: Any, window: Window | None = None) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1, window=window)


def test_native_cube_equals_rasterio_reads(tile0: list[Any], world: SampleWorld) -> None:
    cube = stack_items(tile0, bands=["red", "nir"])
    assert cube.dims == ("time", "band", "y", "x")
    assert cube.dtype == np.uint16
    assert cube.attrs["nodata"] == 0
    values = cube.values
    for t in range(3):
        for b, band in enumerate(("red", "nir")):
            np.testing.assert_array_equal(values[t, b], _read(world.cog(band, date=t, tile=0)))
    with rasterio.open(world.cog("red", date=0, tile=0)) as src:
        assert cube.rio.transform() == src.transform
        assert cube.rio.crs == src.crs
    assert cube.encoding["stac_item_ids"] == [item.id for item in tile0]


def test_native_grid_equals_odc_stac(tile0: list[Any]) -> None:
    ours = stack_items(tile0, bands=["red"])
    theirs = odc_stac.load(tile0, bands=["red"], chunks={})
    assert ours.odc.geobox == theirs.odc.geobox
    np.testing.assert_array_equal(ours.x.values, theirs.x.values)
    np.testing.assert_array_equal(ours.y.values, theirs.y.values)
    np.testing.assert_array_equal(ours.time.values, theirs.time.values)


def test_bbox_cube_is_a_native_window(tile0: list[Any], world: SampleWorld) -> None:
    cube = stack_items(tile0, bands=["red"], bbox=BBOX)
    theirs = odc_stac.load(tile0, bands=["red"], bbox=BBOX, crs="EPSG:32631", resolution=10, chunks={})
    assert cube.odc.geobox == theirs.odc.geobox
    transform = cube.rio.transform()
    with rasterio.open(world.cog("red", date=1, tile=0)) as src:
        col = round((transform.c - src.transform.c) / src.transform.a)
        row = round((transform.f - src.transform.f) / src.transform.e)
        assert (transform.c - src.transform.c) % 10 == 0  # on the native pixel grid
        window = Window(col, row, cube.sizes["x"], cube.sizes["y"])
    np.testing.assert_array_equal(
        cube.isel(time=1, band=0).values, _read(world.cog("red", date=1, tile=0), window)
    )
    np.testing.assert_array_equal(cube.isel(time=1, band=0).values, theirs.red.isel(time=1).values)


def test_chunks_are_whole_cog_tiles(tile0: list[Any], world: SampleWorld) -> None:
    cube = stack_items(tile0, bands=["red", "nir"], bbox=BBOX)
    with rasterio.open(world.cog("red", date=0, tile=0)) as src:
        tile_y, tile_x = src.block_shapes[0]
        transform = cube.rio.transform()
        row0 = round((transform.f - src.transform.f) / src.transform.e)
        col0 = round((transform.c - src.transform.c) / src.transform.a)
    assert cube.chunks is not None
    _, _, y_chunks, x_chunks = cube.chunks
    assert all(c % tile_y == 0 for c in np.cumsum(y_chunks)[:-1] + row0)
    assert all(c % tile_x == 0 for c in np.cumsum(x_chunks)[:-1] + col0)
    preferred = cube.encoding["preferred_chunks"]
    assert sum(preferred["y"]) == cube.sizes["y"]
    assert all((c + row0) % tile_y == 0 for c in np.cumsum(preferred["y"])[:-1])
    assert all((c + col0) % tile_x == 0 for c in np.cumsum(preferred["x"])[:-1])
    full = stack_items(tile0, bands=["red"])
    assert full.chunks is not None
    assert full.chunks[2] == (1024,)
    # The items state their data types: no file is opened, the layout is 1024-pixel blocks of tiles.
    assert full.encoding["preferred_chunks"]["y"] == (1024,)


def test_coarser_band_is_resampled_nearest_onto_the_finest_grid(tile0: list[Any], world: SampleWorld) -> None:
    cube = stack_items(tile0[:1], bands=["red", "scl"], bbox=BBOX)
    assert cube.dtype == np.uint16  # uint16 and uint8 bands: the common type, never float
    scl = _read(world.cog("scl", date=0, tile=0))
    transform = cube.rio.transform()
    row0 = round((transform.f - 5075760.0) / -10)
    col0 = round((transform.c - 723600.0) / 10)
    rows = np.arange(row0, row0 + cube.sizes["y"]) // 2
    cols = np.arange(col0, col0 + cube.sizes["x"]) // 2
    np.testing.assert_array_equal(cube.sel(band="scl").isel(time=0).values, scl[np.ix_(rows, cols)])
    only_scl = stack_items(tile0[:1], bands=["scl"])
    assert only_scl.dtype == np.uint8
    assert only_scl.sizes["x"] == 512


def test_mixed_crs_needs_crs(s2_items: list[Any]) -> None:
    with pytest.raises(GridMismatchError, match=r"2 CRSs: EPSG:32631 .*EPSG:32632 .*pass crs="):
        stack_items(s2_items, bands=["red"])
    cube = stack_items(s2_items, bands=["red"], crs="EPSG:32631", bbox=(5.97, 45.72, 6.02, 45.75))
    theirs = odc_stac.load(
        s2_items, bands=["red"], crs="EPSG:32631", resolution=10, bbox=(5.97, 45.72, 6.02, 45.75), chunks={}
    )
    assert cube.odc.geobox == theirs.odc.geobox
    np.testing.assert_array_equal(cube.time.values, theirs.time.values)
    np.testing.assert_array_equal(cube.isel(band=0).values, theirs.red.values)


def test_groupby_solar_day(s2_items: list[Any]) -> None:
    per_item = stack_items(s2_items, bands=["red"], crs="EPSG:32632", resolution=20, groupby="id")
    per_day = stack_items(s2_items, bands=["red"], crs="EPSG:32632", resolution=20, groupby="solar_day")
    assert per_item.sizes["time"] == 6
    assert per_day.sizes["time"] == 3
    assert per_day.rio.crs.to_epsg() == 32632
    assert per_day.rio.resolution() == (20.0, -20.0)
    assert per_day.dtype == np.uint16


def test_assets_without_raster_metadata_keep_their_dtype(make_catalog: Any) -> None:
    catalog = make_catalog([mini_item("a", 1, raster=False), mini_item("b", 2, raster=False)])
    items = list(search_stac(catalog))
    cube = stack_items(items, bands=["red"])
    assert cube.dtype == np.uint16  # odc-stac alone gives float32 here
    assert cube.attrs["nodata"] == 0
    np.testing.assert_array_equal(cube.isel(time=0, band=0).values, _read(items[0].assets["red"].href))


def test_items_without_projection_info(make_catalog: Any) -> None:
    catalog = make_catalog([mini_item("a", 1), mini_item("noproj", 2, proj=False)])
    items = list(search_stac(catalog))
    with pytest.raises(
        StacSearchError, match=r"without projection info: 'noproj'.*pass crs= and resolution="
    ):
        stack_items(items, bands=["red"])
    cube = stack_items(items, bands=["red"], crs="EPSG:32631", resolution=10)
    assert cube.sizes["time"] == 2
    assert cube.dtype == np.uint16


def test_projection_v1_and_migrated_items(make_catalog: Any) -> None:
    """pystac 1.15 migrates proj:epsg to proj:code on reading; both forms give the same cube."""
    catalog = make_catalog([mini_item("v1", 1)])
    (item,) = list(search_stac(catalog))
    v1 = copy.deepcopy(item.to_dict())
    v1["properties"]["proj:epsg"] = int(v1["properties"].pop("proj:code").split(":")[1])
    v1["stac_extensions"] = ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"]
    migrated = pystac.Item.from_dict(copy.deepcopy(v1))
    assert migrated.properties.get("proj:code") == "EPSG:32631"
    assert "proj:epsg" not in migrated.properties
    legacy = item.clone()
    legacy.properties["proj:epsg"] = int(legacy.properties.pop("proj:code").split(":")[1])
    reference = stack_items([item], bands=["red"]).values
    for candidate in (legacy, migrated):
        np.testing.assert_array_equal(stack_items([candidate], bands=["red"]).values, reference)


def test_band_names(tile0: list[Any]) -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"unknown band 'swir'.*'blue', 'green', 'nir', 'red', 'scl'"
    ):
        stack_items(tile0, bands=["swir"])
    by_name = stack_items(tile0[:1], bands=["B04"])  # eo:bands name of the "red" asset
    assert list(by_name.band.values) == ["B04"]
    np.testing.assert_array_equal(by_name.values, stack_items(tile0[:1], bands=["red"]).values)
    with pytest.raises(InvalidArgumentError, match="no items"):
        stack_items([], bands=["red"])


def test_a_missing_asset_is_named_when_computed(make_catalog: Any) -> None:
    catalog = make_catalog([mini_item("ok", 1), mini_item("broken", 2)])
    (Path(catalog).parent / "mini" / "broken" / "red.tif").unlink()
    with range_server(Path(catalog).parent) as server:
        items = list(search_stac(server.url_for(catalog)))
        cube = stack_items(items, bands=["red"])  # lazy: only the first asset's header is read
        with pytest.raises(ReadError) as info:
            cube.compute()
        message = str(info.value)
        assert "asset 'red' of STAC item 'broken'" in message
        assert f"{server.url}/mini/broken/red.tif" in message
        assert "404" in message
        reversed_cube = stack_items(items[::-1], bands=["red"])  # built from the metadata: nothing opened
        with pytest.raises(ReadError, match=r"asset 'red' of STAC item 'broken'.*HTTP 404"):
            reversed_cube.compute()


def test_cube_from_an_http_catalog_equals_the_local_one(make_catalog: Any) -> None:
    catalog = make_catalog([mini_item("a", 1), mini_item("b", 2)])
    local = stack_items(list(search_stac(catalog)), bands=["red", "nir"])
    with range_server(Path(catalog).parent) as server:
        remote = stack_items(list(search_stac(server.url_for(catalog))), bands=["red", "nir"])
        np.testing.assert_array_equal(remote.values, local.values)
    assert local.chunks is not None
    assert local.encoding["preferred_chunks"]["x"] == (2 * MINI_TILE,)  # one block: nothing opened


def test_stack_stac_stage_forms(tile0: list[Any], stac_api: str) -> None:
    cubes = list(tp.from_items([tile0[:1], [], tile0]).stack_stac(bands=["red"]))
    assert [c.sizes["time"] for c in cubes] == [1, 3]
    collected = list(tp.from_items(tile0).stack_stac(bands=["red"]))
    assert [c.sizes["time"] for c in collected] == [3]
    (cube,) = search_stac(stac_api, collections=["demo-s2"], bbox=[5.93, 45.72, 5.95, 45.74]).stack_stac(
        bands=["red"], bbox=BBOX
    )
    assert cube.sizes["time"] == 3
    with pytest.raises(InvalidArgumentError, match="groupby"):
        tp.from_items([tile0]).stack_stac(groupby="month")


def test_bad_options(tile0: list[Any]) -> None:
    with pytest.raises(InvalidArgumentError, match="resolution must be a positive number"):
        stack_items(tile0, bands=["red"], resolution=-10)
    with pytest.raises(InvalidArgumentError, match="bbox must be"):
        stack_items(tile0, bands=["red"], bbox=(6, 46, 5, 45))
    with pytest.raises(InvalidArgumentError, match="geobox= fixes the grid"):
        stack_items(tile0, bands=["red"], bbox=BBOX, geobox=stack_items(tile0, bands=["red"]).odc.geobox)
    with pytest.raises(StacSearchError, match=r"malformed STAC item .*element 0"):
        stack_items([json.loads("{}")], bands=["red"])
