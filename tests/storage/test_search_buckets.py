"""search_stac over buckets: a static catalog and a stac-geoparquet file at s3://, az:// and gs://."""

from __future__ import annotations

import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError, StacSearchError
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
    with pytest.raises(StacSearchError, match=r"no such object") as info:
        list(tp.search_stac("s3://private/nowhere/catalog.json", storage=s3_bucket.storage))
    assert "s3://private/nowhere/catalog.json" in str(info.value)


def test_wrong_key_on_bucket_catalog_is_access_denied(s3_bucket: Bucket) -> None:
    wrong = s3_bucket.storage.with_options(secret="wrong-secret-abc")
    with pytest.raises(StacSearchError, match="access denied") as info:
        list(tp.search_stac("s3://private/stac/catalog.json", storage=wrong))
    assert "wrong-secret-abc" not in str(info.value)
    with pytest.raises(StacSearchError, match="access denied"):
        list(tp.search_stac("s3://private/stac/items.parquet", storage=wrong))


def test_bucket_is_not_an_api() -> None:
    with pytest.raises(InvalidArgumentError, match="served over HTTP"):
        tp.search_stac("s3://b/stac/", kind="api")


def test_search_repr_and_config_hide_storage_secret(s3_bucket: Bucket) -> None:
    stage = tp.search_stac("s3://private/stac/catalog.json", storage=s3_bucket.storage)
    shown = repr(stage) + repr(stage.cache_config())
    assert s3_bucket.storage.secret not in shown
    assert "s3://private/stac/catalog.json" in shown
