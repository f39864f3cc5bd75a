"""search_stac over buckets: a static catalog and a stac-geoparquet file at s3://, az:// and gs://."""

from __future__ import annotations

import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError, STACSearchError
from tests.storage.conftest import Bucket

pytest.importorskip("pystac")


def ids(pipe) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(item.id for item in pipe)


def test_static_catalog_in_bucket(bucket: Bucket, sample_world) -> None:  # type: ignore[no-untyped-def]
    local = ids(tp.search_stac(sample_world.catalog, collections=["demo-s2"], datetime="2024-06"))
    found = list(
        tp.search_stac(f"{bucket.root}/stac/catalog.json", storage=bucket.storage, collections=["demo-s2"],
                       datetime="2024-06")
    )  # fmt: skip
    assert sorted(i.id for i in found) == local
    assert len(local) == 2
    # the sample world's asset hrefs are absolute: they stay as they are (relative ones resolve in the
    # bucket: join_url, whose doctests cover it)
    hrefs = {i.id: sorted(a.href for a in i.assets.values()) for i in found}
    local_items = tp.search_stac(sample_world.catalog, collections=["demo-s2"], datetime="2024-06")
    assert hrefs == {i.id: sorted(a.href for a in i.assets.values()) for i in local_items}


def test_bucket_folder_means_its_catalog(bucket: Bucket, sample_world) -> None:  # type: ignore[no-untyped-def]
    everything = ids(tp.search_stac(sample_world.catalog))
    assert ids(tp.search_stac(f"{bucket.root}/stac/", storage=bucket.storage)) == everything


def test_geoparquet_in_bucket(bucket: Bucket, sample_world) -> None:  # type: ignore[no-untyped-def]
    local = ids(tp.search_stac(sample_world.items_parquet, collections=["demo-s2"]))
    remote = ids(
        tp.search_stac(f"{bucket.root}/stac/items.parquet", storage=bucket.storage, collections=["demo-s2"])
    )
    assert remote == local
    assert local


def test_missing_catalog_in_bucket_is_named(s3_bucket: Bucket) -> None:
    with pytest.raises(STACSearchError, match=r"no such object") as info:
        list(tp.search_stac("s3://private/nowhere/catalog.json", storage=s3_bucket.storage))
    assert "s3://private/nowhere/catalog.json" in str(info.value)


def test_wrong_key_on_bucket_catalog_is_access_denied(s3_bucket: Bucket) -> None:
    wrong = s3_bucket.storage.with_options(secret="wrong-secret-abc")
    with pytest.raises(STACSearchError, match="access denied") as info:
        list(tp.search_stac("s3://private/stac/catalog.json", storage=wrong))
    assert "wrong-secret-abc" not in str(info.value)
    with pytest.raises(STACSearchError, match="access denied"):
        list(tp.search_stac("s3://private/stac/items.parquet", storage=wrong))


def test_bucket_is_not_an_api() -> None:
    with pytest.raises(InvalidArgumentError, match="served over HTTP"):
        tp.search_stac("s3://b/stac/", kind="api")


def test_search_repr_and_config_hide_storage_secret(s3_bucket: Bucket) -> None:
    stage = tp.search_stac("s3://private/stac/catalog.json", storage=s3_bucket.storage)
    shown = repr(stage) + repr(stage.cache_config())
    assert s3_bucket.storage.secret not in shown
    assert "s3://private/stac/catalog.json" in shown
    assert stage.cache_config()["endpoint"] == s3_bucket.server.endpoint
    other = tp.search_stac(
        "s3://private/stac/catalog.json", storage=s3_bucket.storage.with_options(secret="x")
    )
    assert other.cache_config() == stage.cache_config()  # a credential is not part of the description


def _doc(kind: str, ident: str, links: list[dict[str, str]], **extra: object) -> bytes:
    import json

    base: dict[str, object] = {"type": kind, "id": ident, "stac_version": "1.1.0", "links": links}
    if kind != "Feature":
        base["description"] = ident
    if kind == "Collection":
        base.update(license="CC0-1.0", extent={"spatial": {"bbox": [[0, 0, 1, 1]]},
                                              "temporal": {"interval": [[None, None]]}})  # fmt: skip
    base.update(extra)
    return json.dumps(base).encode()


def _item(ident: str, asset_href: str) -> bytes:
    return _doc(
        "Feature",
        ident,
        [],
        geometry={"type": "Point", "coordinates": [0.5, 0.5]},
        bbox=[0.5, 0.5, 0.5, 0.5],
        properties={"datetime": "2024-01-01T00:00:00Z"},
        assets={"data": {"href": asset_href, "type": "image/tiff"}},
    )


def test_relative_links_resolve_within_the_bucket(bucket: Bucket) -> None:
    """child/item links with ./ and ../ and relative asset hrefs, all inside one bucket prefix."""
    p = "rel"
    bucket.put(
        f"{p}/cat/catalog.json", _doc("Catalog", "root", [{"rel": "child", "href": "./col/collection.json"}])
    )
    bucket.put(
        f"{p}/cat/col/collection.json",
        _doc("Collection", "col", [{"rel": "item", "href": "../items/a/a.json"},
                                   {"rel": "item", "href": "./b.json"}]),
    )  # fmt: skip
    bucket.put(f"{p}/cat/items/a/a.json", _item("a", "./a.tif"))
    bucket.put(f"{p}/cat/col/b.json", _item("b", "../../data/b.tif"))
    found = {i.id: i for i in tp.search_stac(f"{bucket.root}/{p}/cat/catalog.json", storage=bucket.storage)}
    assert sorted(found) == ["a", "b"]
    assert found["a"].assets["data"].href == f"{bucket.root}/{p}/cat/items/a/a.tif"
    assert found["b"].assets["data"].href == f"{bucket.root}/{p}/data/b.tif"
    assert found["a"].collection_id == "col"


def test_links_never_climb_out_of_the_bucket(s3_bucket: Bucket) -> None:
    s3_bucket.put("deep/catalog.json", _doc("Catalog", "r", [{"rel": "item", "href": "../../../../x.json"}]))
    s3_bucket.put("x.json", _item("x", "x.tif"))
    found = list(tp.search_stac("s3://private/deep/catalog.json", storage=s3_bucket.storage))
    assert [i.id for i in found] == ["x"]
    assert found[0].assets["data"].href == "s3://private/x.tif"


def test_cycle_in_bucket_catalog_is_named(s3_bucket: Bucket) -> None:
    s3_bucket.put("loop/catalog.json", _doc("Catalog", "r", [{"rel": "child", "href": "./sub/catalog.json"}]))
    s3_bucket.put(
        "loop/sub/catalog.json", _doc("Catalog", "s", [{"rel": "child", "href": "../catalog.json"}])
    )
    with pytest.raises(STACSearchError, match="cycle"):
        list(tp.search_stac("s3://private/loop/catalog.json", storage=s3_bucket.storage))


def test_document_cap_applies_in_buckets(s3_bucket: Bucket) -> None:
    with pytest.raises(STACSearchError, match="over the cap of 100"):
        list(
            tp.search_stac(
                "s3://private/stac/catalog.json", storage=s3_bucket.storage.with_options(max_bytes=100)
            )
        )
    with pytest.raises(STACSearchError, match="over the cap of 100"):
        list(
            tp.search_stac(
                "s3://private/stac/items.parquet", storage=s3_bucket.storage.with_options(max_bytes=100)
            )
        )


def test_storage_must_be_a_storage() -> None:
    with pytest.raises(InvalidArgumentError, match="Storage"):
        tp.search_stac("s3://b/catalog.json", storage={"key": "x"})  # type: ignore[arg-type]
