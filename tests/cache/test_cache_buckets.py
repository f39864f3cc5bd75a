"""ZarrStore on buckets through the byte layer: ``storage=`` (tp.Storage), real S3, Azure and GCS servers.

The servers are the session fixtures of ``tests/storage/conftest.py`` (rclone
serve s3, azurite, gcp-storage-emulator on 127.0.0.1). Entries go through
zarr 3's ``ObjectStore`` over ``Storage.store_for(url)``: written with the
group document last (the commit), read back equal to what a miss yields, and
a refused credential is a ``CacheError`` naming ``scheme://host/path`` and
never the secret.
"""

# ruff: noqa: F811  (pytest fixtures imported from tests/storage/conftest.py are test arguments here)
from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

import terrapipe as tp
from terrapipe.cache import ZarrStore
from terrapipe.core.errors import CacheError, InvalidArgumentError
from tests.storage.conftest import (  # noqa: F401  (the bucket fixtures)
    Bucket,
    _no_cloud_environment,
    azure_bucket,
    bucket,
    gcs_bucket,
    s3_bucket,
    stac_folder,
)

obs = pytest.importorskip("obstore")
pytest.importorskip("zarr")


def make_chip(i: int) -> xr.DataArray:
    """A chip with nodata, a CRS coordinate and float coordinates."""
    data = np.arange(2 * 8 * 8, dtype="int16").reshape(2, 8, 8) + i
    data[:, 0, 0] = -9999
    da = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={"band": ["red", "nir"], "y": 100.0 - np.arange(8) - i, "x": 50.0 + np.arange(8)},
        name="image",
        attrs={"_FillValue": -9999, "scale_factor": 0.5},
    )
    return da.rio.write_crs("EPSG:32631")


def cached_pipe(store: Any) -> Any:
    return (
        tp.from_items([0, 1, 2])
        .cache_point()
        .map(make_chip)
        .map(lambda da: {"chip": da, "tensor": torch.from_numpy(da.values.astype("float32"))})
        .cache(store)
    )


def writer(bucket: Bucket) -> tp.Storage:
    """A Storage that may write the bucket (the GCS emulator takes any token, but obstore signs writes)."""
    if bucket.server.kind == "gcs":
        return tp.Storage(gcs_endpoint=bucket.server.endpoint, gcs_token="emulator-token")
    return bucket.storage


def test_entries_on_each_bucket_round_trip_exactly(bucket: Bucket) -> None:
    url = f"{bucket.root}/caches/{uuid.uuid4().hex[:8]}.zarr"
    store = ZarrStore(url, storage=writer(bucket))
    if bucket.server.kind == "gcs":
        # gcp-storage-emulator implements no object listing (HTTP 501; Google does), and a hit lists an
        # entry's chunks before reading them: entries are written, and the read fails with a named error.
        blob = b"an entry"
        assert store.put("k1", blob)
        stored = obs.get(store.storage.store_for(url), url.split("/", 3)[3] + "/k1/zarr.json").bytes()
        assert b'"terrapipe_cache"' in bytes(stored)
        with pytest.raises(CacheError, match="HTTP 501") as info:
            store.get("k1")
        assert "gs://gcs-bucket/caches/" in str(info.value)
        return
    first = list(cached_pipe(store))
    again = cached_pipe(store)
    second = list(again)
    assert (again.stats.hits, again.stats.misses) == (3, 0)
    for a, b in zip(first, second, strict=True):
        xr.testing.assert_identical(a["chip"], b["chip"])
        assert a["chip"].rio.crs == b["chip"].rio.crs
        assert a["chip"].rio.transform() == b["chip"].rio.transform()
        assert a["tensor"].dtype == b["tensor"].dtype
        assert torch.equal(a["tensor"], b["tensor"])
    keys = sorted(store.keys())
    assert len(keys) == 3
    assert all(k in store for k in keys)
    # the objects are in the bucket, under the store's folder
    folder = url.split("://", 1)[1].split("/", 1)[1]
    listed = [
        meta["path"] for batch in obs.list(store.storage.store_for(url), prefix=folder) for meta in batch
    ]
    assert any(p.endswith(f"{keys[0]}/zarr.json") for p in listed)
    store.delete(keys[0])
    assert keys[0] not in store
    assert len(list(store.keys())) == 2
    assert "secret" not in repr(store).lower()


def test_a_wrong_s3_secret_is_a_named_cache_error_without_the_secret(s3_bucket: Bucket) -> None:
    from tests.servers.object_stores import S3_KEY_ID, S3_SECRET

    wrong = "not-the-secret-" + S3_SECRET[::-1]
    storage = tp.Storage(
        s3_endpoint=s3_bucket.server.endpoint, key_id=S3_KEY_ID, secret=wrong, region="us-east-1"
    )
    store = ZarrStore("s3://private/caches/denied.zarr", storage=storage)
    with pytest.raises(CacheError, match="access denied") as info:
        list(cached_pipe(store))
    text = str(info.value)
    assert "s3://private/caches/denied.zarr" in text
    assert wrong not in text
    assert S3_SECRET not in text
    assert info.value.__cause__ is None  # obstore's text (request URLs) is not chained


def test_a_wrong_azure_key_is_a_named_cache_error_without_the_key(azure_bucket: Bucket) -> None:
    import base64

    wrong = base64.b64encode(b"not the account key at all, 64 bytes long, for azurite!!!!!!!!").decode()
    storage = tp.Storage(
        azure_endpoint=azure_bucket.server.endpoint,
        account_name=azure_bucket.storage.account_name,
        account_key=wrong,
    )
    store = ZarrStore("az://data/caches/denied.zarr", storage=storage)
    with pytest.raises(CacheError, match="access denied") as info:
        store.put("k1", b"entry")
    assert "az://data/caches/denied.zarr" in str(info.value)
    assert wrong not in str(info.value)


def test_storage_is_for_bucket_urls_only(tmp_path: Any) -> None:
    storage = tp.Storage()
    with pytest.raises(InvalidArgumentError, match="bucket URLs"):
        ZarrStore(tmp_path / "cache.zarr", storage=storage)
    with pytest.raises(InvalidArgumentError, match="not both"):
        ZarrStore("s3://b/c.zarr", storage=storage, storage_options={"anon": True})
    with pytest.raises(InvalidArgumentError, match=r"tp\.Storage"):
        ZarrStore("s3://b/c.zarr", storage={"key_id": "x"})  # type: ignore[arg-type]
