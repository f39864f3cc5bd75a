"""The sample world's STAC metadata: valid offline, and true to the files it describes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pytest
import rasterio
import rasterio.transform
import rasterio.warp
import shapely
import shapely.geometry

from terrapipe.datasets import SampleWorld
from terrapipe.datasets.scenes import S2_BANDS

pystac = pytest.importorskip("pystac")

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
EXTENSION_OF_PREFIX = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
}


def local_path(href: str) -> Path:
    parsed = urlparse(href)
    assert parsed.scheme == "file", href
    return Path(url2pathname(parsed.path))


@pytest.fixture(scope="module")
def world(sample_world: SampleWorld) -> SampleWorld:
    return sample_world


@pytest.fixture(scope="module")
def catalog(world: SampleWorld) -> Any:
    return pystac.Catalog.from_file(str(world.catalog))


@pytest.fixture(scope="module")
def s2_items(catalog: Any) -> list[Any]:
    return list(catalog.get_child("demo-s2").get_items())


def used_prefixes(obj: Any) -> set[str]:
    """Extension prefixes ("eo", "proj", ...) of every field anywhere in a JSON object."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if ":" in key and not key.startswith(("http", "file")):
                found.add(key.split(":")[0])
            found |= used_prefixes(value)
    elif isinstance(obj, list):
        for value in obj:
            found |= used_prefixes(value)
    return found


def test_catalog_has_both_collections_and_all_items(world: SampleWorld, catalog: Any) -> None:
    assert {c.id for c in catalog.get_children()} == {"demo-s2", "demo-dem"}
    s2 = catalog.get_child("demo-s2")
    assert [i.id for i in s2.get_items()] == list(world.s2_item_ids)
    assert [i.id for i in catalog.get_child("demo-dem").get_items()] == ["demo-dem-30m"]
    assert catalog.catalog_type == pystac.CatalogType.SELF_CONTAINED
    assert Path(s2.get_self_href()) == world.s2_collection
    assert Path(catalog.get_child("demo-dem").get_self_href()) == world.dem_collection


def test_everything_validates_offline(catalog: Any, offline_validator: Any) -> None:
    objects = [catalog, *catalog.get_children(), *catalog.get_items(recursive=True)]
    for obj in objects:
        # Core against pystac's bundled STAC 1.1.0 schemas, extensions against ours (see conftest).
        uris = pystac.validation.validate(obj, validator=offline_validator)
        assert len(uris) == 1 + len(obj.stac_extensions)
    assert offline_validator.requested >= set(EXTENSION_OF_PREFIX.values())


def test_every_extension_used_is_declared(catalog: Any) -> None:
    for obj in [*catalog.get_children(), *catalog.get_items(recursive=True)]:
        record = obj.to_dict()
        for prefix in used_prefixes({k: v for k, v in record.items() if k != "links"}):
            assert EXTENSION_OF_PREFIX[prefix] in obj.stac_extensions, (obj.id, prefix)


def test_the_validator_catches_broken_items(world: SampleWorld, offline_validator: Any) -> None:
    item = pystac.Item.from_file(str(next(world.catalog.parent.glob("demo-s2/*/*.json"))))
    good = item.to_dict(include_self_link=False)
    pystac.validation.validate_dict(good, validator=offline_validator)
    for breakage in (
        lambda d: d["properties"].update({"proj:epsg": 32631}),  # a projection v1 field
        lambda d: d["properties"].update({"eo:cloud_cover": 140}),
        lambda d: d["assets"]["red"]["raster:bands"][0].update({"data_type": "u16"}),
        lambda d: d["properties"].pop("datetime"),
    ):
        broken = json.loads(json.dumps(good))
        breakage(broken)
        with pytest.raises(pystac.errors.STACValidationError):
            pystac.validation.validate_dict(broken, validator=offline_validator)


def test_s2_items_describe_their_cogs(world: SampleWorld, s2_items: list[Any]) -> None:
    for item in s2_items:
        props = item.properties
        assert props["constellation"] == "sentinel-2"
        assert props["platform"] in ("sentinel-2a", "sentinel-2b")
        assert props["instruments"] == ["msi"]
        assert props["proj:code"] in world.TILE_CRS
        assert set(item.assets) == {*world.BANDS, "scl"}
        for key, asset in item.assets.items():
            assert asset.media_type == COG
            assert asset.href.startswith("file:///")
            path = local_path(asset.href)
            assert path.is_file()
            assert path.is_relative_to(world.root)
            assert "data" in asset.roles
            shape = asset.extra_fields.get("proj:shape", props["proj:shape"])
            transform = asset.extra_fields.get("proj:transform", props["proj:transform"])
            with rasterio.open(path) as src:
                assert src.crs.to_string() == props["proj:code"]
                assert list(src.shape) == shape
                assert list(src.transform)[:6] == pytest.approx(transform)
                assert list(src.bounds) == pytest.approx(props["proj:bbox"])
                (raster_band,) = asset.extra_fields["raster:bands"]
                assert raster_band["data_type"] == src.dtypes[0]
                assert raster_band["nodata"] == src.nodata
                assert raster_band["spatial_resolution"] == src.res[0]
            if key == "scl":
                assert asset.extra_fields["proj:shape"] == [512, 512]
            else:
                assert "proj:shape" not in asset.extra_fields
                (eo_band,) = asset.extra_fields["eo:bands"]
                assert eo_band["common_name"] == key


def test_cloud_cover_is_computed_from_the_scene_classification(s2_items: list[Any]) -> None:
    covers = []
    for item in s2_items:
        with rasterio.open(local_path(item.assets["scl"].href)) as src:
            scl = src.read(1)
        expected = 100 * np.isin(scl, (8, 9, 10)).sum() / np.count_nonzero(scl)
        assert item.properties["eo:cloud_cover"] == pytest.approx(expected, abs=0.01)
        covers.append(item.properties["eo:cloud_cover"])
    assert max(covers) > 5
    assert min(covers) < max(covers)


def test_datetimes_are_s2_like_datatakes(s2_items: list[Any]) -> None:
    by_date: dict[Any, list[Any]] = {}
    for item in s2_items:
        assert item.datetime.utcoffset().total_seconds() == 0
        assert 10 <= item.datetime.hour < 11
        by_date.setdefault(item.datetime.date(), []).append(item)
    assert sorted(by_date) == list(SampleWorld.DATES)
    for same_take in by_date.values():
        first, second = sorted(i.datetime for i in same_take)
        assert 0 < (second - first).total_seconds() < 10
        assert len({i.properties["platform"] for i in same_take}) == 1
        assert len({i.properties["proj:code"] for i in same_take}) == 2


def test_geometry_is_the_valid_data_footprint(s2_items: list[Any]) -> None:
    for item in s2_items:
        geometry = shapely.geometry.shape(item.geometry)
        assert geometry.is_valid
        assert list(geometry.bounds) == pytest.approx(item.bbox)
        with rasterio.open(local_path(item.assets["red"].href)) as src:
            rows, cols = (a.ravel() for a in np.mgrid[8 : src.height : 16, 8 : src.width : 16])
            data = src.read(1)[rows, cols]
            xs, ys = rasterio.transform.xy(src.transform, rows, cols)
            lon, lat = rasterio.warp.transform(src.crs, "EPSG:4326", xs, ys)
        inside = shapely.contains_xy(geometry.buffer(-0.001), lon, lat)
        outside = ~shapely.contains_xy(geometry.buffer(0.001), lon, lat)
        assert inside.sum() > 1000
        assert (data[inside] > 0).all()
        assert (data[outside] == 0).all()


def test_collections_have_extents_summaries_and_item_assets(
    world: SampleWorld, catalog: Any, s2_items: list[Any]
) -> None:
    s2 = catalog.get_child("demo-s2")
    bbox = s2.extent.spatial.bboxes[0]
    for item in s2_items:
        assert bbox[0] <= item.bbox[0]
        assert item.bbox[2] <= bbox[2]
        assert bbox[1] <= item.bbox[1]
        assert item.bbox[3] <= bbox[3]
    start, end = s2.extent.temporal.intervals[0]
    assert start == min(i.datetime for i in s2_items)
    assert end == max(i.datetime for i in s2_items)
    assert set(s2.item_assets) == {*SampleWorld.BANDS, "scl"}
    assert s2.item_assets["red"].media_type == COG
    assert s2.summaries.get_list("proj:code") == list(SampleWorld.TILE_CRS)
    assert [b["common_name"] for b in s2.summaries.get_list("eo:bands")] == [b.common_name for b in S2_BANDS]
    dem = catalog.get_child("demo-dem")
    assert set(dem.item_assets) == {"data"}
    (dem_item,) = dem.get_items()
    assert dem_item.properties["proj:code"] == "EPSG:4326"
    assert dem_item.assets["data"].extra_fields["raster:bands"][0]["nodata"] == -9999
    assert local_path(dem_item.assets["data"].href) == world.dem
    dem_shape = shapely.geometry.shape(dem_item.geometry)
    for item in s2_items:
        assert dem_shape.contains(shapely.geometry.shape(item.geometry))


def test_ndjson_has_one_item_per_line_without_links(world: SampleWorld, s2_items: list[Any]) -> None:
    lines = world.s2_items_ndjson.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [i.id for i in s2_items]
    for record, item in zip(records, s2_items, strict=True):
        assert record["collection"] == "demo-s2"
        assert record["links"] == []
        assert record["assets"] == item.to_dict()["assets"]
    (dem,) = [json.loads(line) for line in world.dem_items_ndjson.read_text().splitlines()]
    assert dem["collection"] == "demo-dem"
    for path, cid in ((world.s2_api_collection, "demo-s2"), (world.dem_api_collection, "demo-dem")):
        collection = json.loads(path.read_text())
        assert collection["id"] == cid
        assert collection["links"] == []


def test_stac_geoparquet_round_trips_every_item(
    world: SampleWorld, catalog: Any, offline_validator: Any
) -> None:
    arrow = pytest.importorskip("stac_geoparquet.arrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(world.items_parquet)
    assert table.num_rows == 7
    assert "bbox" in table.column_names
    items = list(arrow.stac_table_to_items(table))
    expected = {i.id: i for i in catalog.get_items(recursive=True)}
    assert {i["id"] for i in items} == set(expected)
    for record in items:
        # One table holds both collections, so a property one collection lacks reads back as
        # null with stac-geoparquet's reader (rustac's drops them); drop them here too.
        record["properties"] = {k: v for k, v in record["properties"].items() if v is not None}
        pystac.validation.validate_dict(record, validator=offline_validator)
        assert record["properties"].keys() == expected[record["id"]].properties.keys()
        assert record["assets"].keys() == expected[record["id"]].assets.keys()
        (link,) = record["links"]
        assert link["rel"] == "collection"
        assert local_path(link["href"]).is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stac_api(world: SampleWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``rustac serve`` on 127.0.0.1 with the world's API collections and ndjson items."""
    rustac = shutil.which("rustac") or str(Path(sys.executable).with_name("rustac"))
    if not Path(rustac).exists():
        pytest.skip("the rustac CLI is not installed")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [rustac, "serve", "--addr", f"127.0.0.1:{port}", *map(str, world.serve_hrefs)]
    log = tmp_path_factory.mktemp("rustac") / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if process.poll() is not None:
                pytest.fail(f"rustac serve exited: {log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("rustac serve did not start within 10 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_rustac_serves_the_items(stac_api: str, world: SampleWorld, offline_validator: Any) -> None:
    with urllib.request.urlopen(f"{stac_api}/collections", timeout=10) as response:
        collections = {c["id"] for c in json.load(response)["collections"]}
    assert collections == {"demo-s2", "demo-dem"}
    query = (
        "collections=demo-s2&bbox=5.95,45.72,5.99,45.74&datetime=2024-06-01T00:00:00Z/2024-06-30T23:59:59Z"
    )
    with urllib.request.urlopen(f"{stac_api}/search?{query}", timeout=10) as response:
        features = json.load(response)["features"]
    assert [f["id"] for f in features] == [world.item_id(date=1, tile=0)]
    # As served (with the server's links), the items are valid STAC.
    pystac.validation.validate_dict(features[0], validator=offline_validator)
