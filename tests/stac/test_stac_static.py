"""Static catalogs and stac-geoparquet, local and over HTTP; read_stac_item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import terrapipe as tp
import terrapipe.stac
from terrapipe.core.errors import InvalidArgumentError, ReadError, STACSearchError
from terrapipe.core.state import check_resume
from terrapipe.datasets import SampleWorld
from terrapipe.stac import open_stac_item, search_stac
from terrapipe.stac.geoparquet import pushdown_filter
from terrapipe.stac.query import make_query
from tests.servers.http_range import RangeServer, start_range_server
from tests.stac.stac_helpers import IdsOf, ids

pq = pytest.importorskip("pyarrow.parquet")
pa_dataset = pytest.importorskip("pyarrow.dataset")


@pytest.fixture(scope="module")
def world_http(world: SampleWorld) -> Iterator[RangeServer]:
    """The sample world's folder over HTTP (range server)."""
    server = start_range_server(world.root)
    try:
        yield server
    finally:
        server.stop()


def test_local_static_catalog(mini_catalog: Path) -> None:
    items = list(search_stac(mini_catalog))
    assert ids(items) == ["mini-0", "mini-1", "mini-2"]
    red = items[0].assets["red"].href
    assert red == str(mini_catalog.parent / "mini" / "mini-0" / "red.tif")  # relative href resolved
    assert items[0].get_self_href() == str(mini_catalog.parent / "mini" / "mini-0" / "mini-0.json")
    assert ids(search_stac(mini_catalog, datetime="2024-06-02")) == ["mini-1"]
    assert ids(search_stac(mini_catalog.parent)) == ids(items)  # a folder holding catalog.json
    assert ids(search_stac(mini_catalog, ids=["mini-2"], collections=["mini"])) == ["mini-2"]
    assert ids(search_stac(mini_catalog, collections=["other"])) == []


def test_static_catalog_over_http(mini_catalog: Path, http_files: RangeServer) -> None:
    url = http_files.url_for(mini_catalog)
    items = list(search_stac(url, datetime="2024-06-01/2024-06-02"))
    assert ids(items) == ["mini-0", "mini-1"]
    assert items[0].assets["nir"].href == f"{http_files.url}/mini/mini-0/nir.tif"


def test_static_search_pushes_collection_filters_down(world: SampleWorld, world_http: RangeServer) -> None:
    catalog = world_http.url_for(world.catalog)
    world_http.reset()
    assert ids(search_stac(catalog, collections=["demo-dem"])) == ["demo-dem-30m"]
    read = set(world_http.stats()["paths"])
    assert "/stac/demo-s2/collection.json" in read
    assert not any(path.startswith("/stac/demo-s2/S2") for path in read)  # no S2 item was read
    world_http.reset()
    assert ids(search_stac(catalog, bbox=[-60, -10, -59, -9])) == []
    assert set(world_http.stats()["paths"]) == {
        "/stac/catalog.json",
        "/stac/demo-s2/collection.json",
        "/stac/demo-dem/collection.json",
    }


def test_static_search_resumes(mini_catalog: Path, world: SampleWorld) -> None:
    for stop in range(4):
        check_resume(lambda: IdsOf(search_stac(mini_catalog, limit=2)), stop_after=stop)
    for stop in (0, 3, 6):
        check_resume(lambda: IdsOf(search_stac(world.catalog, limit=4)), stop_after=stop)


def test_api_only_parameters_are_refused_by_files(mini_catalog: Path, world: SampleWorld) -> None:
    with pytest.raises(InvalidArgumentError, match=r"static catalog search .* cannot evaluate \['sortby'\]"):
        list(search_stac(mini_catalog, sortby="datetime"))
    with pytest.raises(InvalidArgumentError, match=r"stac-geoparquet search .* cannot evaluate \['filter'\]"):
        list(search_stac(world.items_parquet, filter={"op": "=", "args": [{"property": "id"}, "x"]}))


def test_geoparquet_filter_prunes_row_groups(world: SampleWorld, tmp_path: Path) -> None:
    """With one item per row group, the bbox/datetime filter leaves the matching row groups only."""
    path = tmp_path / "items.parquet"
    pq.write_table(pq.read_table(world.items_parquet), path, row_group_size=1)
    query = make_query(
        {"bbox": [5.95, 45.72, 5.99, 45.74], "datetime": "2024-06", "collections": ["demo-s2"]}
    )
    dataset = pa_dataset.dataset(path, format="parquet")
    bbox_type = dataset.schema.field("bbox").type
    expression = pushdown_filter(
        query,
        set(dataset.schema.names),
        bbox_fields={bbox_type.field(i).name for i in range(bbox_type.num_fields)},
    )
    (fragment,) = dataset.get_fragments()
    kept = fragment.split_by_row_group(expression)
    assert fragment.num_row_groups == 7
    assert len(kept) == 1  # only the June scene of tile 0 passes the bbox and datetime statistics
    assert ids(search_stac(path, **{k: query.params[k] for k in ("bbox", "datetime", "collections")})) == [
        world.item_id(date=1, tile=0)
    ]


def test_geoparquet_items(world: SampleWorld) -> None:
    items = list(search_stac(world.items_parquet, collections=["demo-s2"]))
    assert ids(items) == list(world.s2_item_ids)
    first = items[0]
    assert "data" not in first.assets  # the DEM's asset column is null for S2 rows: dropped
    assert first.properties["proj:code"] == "EPSG:32631"
    assert first.assets["red"].href == world.cog("red", date=0, tile=0).as_uri()  # as written
    for stop in range(0, 8, 3):
        check_resume(lambda: IdsOf(search_stac(world.items_parquet, limit=3)), stop_after=stop)


def test_geoparquet_over_http(world: SampleWorld, world_http: RangeServer) -> None:
    url = world_http.url_for(world.items_parquet)
    assert ids(search_stac(url, datetime="2024-04")) == list(world.s2_item_ids[:2])


def test_geoparquet_asset_hrefs_come_back_as_written_wherever_the_file_is(tmp_path: Path) -> None:
    """Absolute hrefs (file:// URIs included) are kept as stored; relative ones resolve against the file."""
    arrow = pytest.importorskip("stac_geoparquet.arrow")
    written = {
        "uri": "file:///data/scenes/a%20b/B04.tif",
        "path": "/data/scenes/B03.tif",
        "https": "https://h.example/cogs/B02.tif?x=1",
        "s3": "s3://bucket/key with space/B08.tif",
        "relative": "cogs/SCL.tif",
        "parent": "../cogs/AOT.tif",
    }
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": "a", "bbox": [0, 0, 1, 1],
        "geometry": {"type": "Point", "coordinates": [0.5, 0.5]},
        "properties": {"datetime": "2024-06-01T00:00:00Z"}, "links": [],
        "assets": {name: {"href": href} for name, href in written.items()},
    }  # fmt: skip
    folder = tmp_path / "stac"
    folder.mkdir()
    path = folder / "items.parquet"
    arrow.to_parquet(arrow.parse_stac_items_to_arrow([item]), path)
    stored = next(iter(arrow.stac_table_to_items(pq.read_table(path))))["assets"]
    assert {name: asset["href"] for name, asset in stored.items()} == written  # stac-geoparquet's own read
    server = start_range_server(tmp_path)
    try:
        local = {k: a.href for k, a in next(iter(search_stac(path))).assets.items()}
        remote = {k: a.href for k, a in next(iter(search_stac(server.url_for(path)))).assets.items()}
    finally:
        server.stop()
    absolute = {k: v for k, v in written.items() if k not in ("relative", "parent")}
    assert {k: local[k] for k in absolute} == {k: remote[k] for k in absolute} == absolute
    assert local["relative"] == str(folder / "cogs" / "SCL.tif")
    assert local["parent"] == str(tmp_path / "cogs" / "AOT.tif")
    assert remote["relative"] == f"{server.url}/stac/cogs/SCL.tif"
    assert remote["parent"] == f"{server.url}/cogs/AOT.tif"


def test_read_stac_item_local_and_http(mini_catalog: Path, http_files: RangeServer) -> None:
    path = mini_catalog.parent / "mini" / "mini-1" / "mini-1.json"
    local = open_stac_item(path)
    assert local.id == "mini-1"
    assert local.assets["red"].href == str(path.parent / "red.tif")
    url = http_files.url_for(path)
    items = list(tp.from_items([url, path.as_uri()]).read_stac_item())
    assert ids(items) == ["mini-1", "mini-1"]
    assert items[0].assets["red"].href == f"{http_files.url}/mini/mini-1/red.tif"


def test_read_stac_item_errors(mini_catalog: Path, http_files: RangeServer, tmp_path: Path) -> None:
    missing = f"{http_files.url}/mini/nope/nope.json"
    with pytest.raises(ReadError, match="HTTP 404") as info:
        list(tp.from_items([missing]).read_stac_item(storage=tp.Storage(retries=0)))
    assert missing in str(info.value)
    not_item = tmp_path / "collection.json"
    not_item.write_text(json.dumps({"type": "Collection", "id": "c"}))
    with pytest.raises(STACSearchError, match=r"malformed STAC item 'c'.*'type' is 'Collection'"):
        open_stac_item(not_item)
    with pytest.raises(ReadError, match="no such file"):
        open_stac_item(tmp_path / "missing.json")
    good = mini_catalog.parent / "mini" / "mini-0" / "mini-0.json"
    pipe = tp.from_items([good, tmp_path / "missing.json", not_item]).read_stac_item(on_error="skip")
    assert ids(pipe) == ["mini-0"]
    assert pipe.stats.skipped == 2
    with pytest.raises(InvalidArgumentError, match="item hrefs"):
        open_stac_item(3)  # type: ignore[arg-type]


def test_modules_register_functional_names() -> None:
    names = set(tp.core.registered_names())
    assert {"search_stac", "list_stac_items", "read_stac_item", "stack_stac", "mosaic"} <= names
    assert sorted(terrapipe.stac.__all__) == terrapipe.stac.__all__
