"""The byte layer against real servers: ranges, sizes, listings, named errors without secrets."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from terrapipe.core.errors import ReadError
from terrapipe.io import object_store
from terrapipe.io.storage import AZURITE_ACCOUNT, Storage
from tests.servers.object_stores import S3_SECRET, azure_account_sas
from tests.storage.conftest import Bucket, obs

rasterio = pytest.importorskip("rasterio")


def test_ranged_get_returns_exactly_the_range(bucket: Bucket, stac_folder: Path) -> None:
    url = f"{bucket.root}/stac/catalog.json"
    whole = (stac_folder / "catalog.json").read_bytes()
    assert object_store.get(url, bucket.storage) == whole
    assert object_store.get(url, bucket.storage, range=(10, 74)) == whole[10:74]
    if bucket.server.kind != "gcs":  # gcp-storage-emulator implements no HEAD (501); Google does
        assert object_store.size(url, bucket.storage) == len(whole)


def test_many_ranges_come_back_exact(bucket: Bucket, stac_folder: Path) -> None:
    url = f"{bucket.root}/stac/items.parquet"
    whole = (stac_folder / "items.parquet").read_bytes()
    ranges = [(0, 4), (100, 164), (110, 120), (len(whole) - 8, len(whole))]
    assert object_store.get_ranges(url, ranges, bucket.storage) == [whole[a:b] for a, b in ranges]
    assert object_store.get_ranges(url, ranges, bucket.storage.with_options(deadline=10)) == [
        whole[a:b] for a, b in ranges
    ]


def test_range_past_the_end_is_an_error(bucket: Bucket, stac_folder: Path) -> None:
    url = f"{bucket.root}/stac/catalog.json"
    n = len((stac_folder / "catalog.json").read_bytes())
    with pytest.raises(ReadError, match="got 10 bytes, not 100"):
        object_store.get(url, bucket.storage, range=(n - 10, n + 90))


def test_cap_refuses_before_reading(bucket: Bucket) -> None:
    with pytest.raises(ReadError, match="over the cap of 100"):
        object_store.get(f"{bucket.root}/stac/items.parquet", bucket.storage, max_bytes=100)


def test_missing_object_is_named(bucket: Bucket) -> None:
    with pytest.raises(ReadError, match=r"no such object.*tp.Storage") as info:
        object_store.get(f"{bucket.root}/stac/nope.json", bucket.storage)
    assert f"'{bucket.root}/stac/nope.json'" in str(info.value)
    assert info.value.__cause__ is None  # obstore's text (with the request URL) is not chained


def test_list_objects(s3_bucket: Bucket, azure_bucket: Bucket) -> None:
    for b in (s3_bucket, azure_bucket):
        found = object_store.list_objects(f"{b.root}/stac/demo-dem/", b.storage)
        assert f"{b.root}/stac/demo-dem/collection.json" in found
        assert all(u.startswith(f"{b.root}/stac/demo-dem/") for u in found)


def test_wrong_s3_secret_is_access_denied(s3_bucket: Bucket) -> None:
    wrong = s3_bucket.storage.with_options(secret="not-the-secret-xyz")
    with pytest.raises(ReadError, match=r"access denied.*key_id/secret") as info:
        object_store.get(f"{s3_bucket.root}/stac/catalog.json", wrong)
    assert "not-the-secret-xyz" not in str(info.value)
    assert S3_SECRET not in str(info.value)


def test_anonymous_to_private_bucket_is_named(s3_bucket: Bucket, azure_bucket: Bucket) -> None:
    for b in (s3_bucket, azure_bucket):
        anon = Storage(endpoint=b.server.endpoint, account_name=AZURITE_ACCOUNT, anonymous=True)
        with pytest.raises(ReadError, match=r"access denied.*unsigned \(anonymous=True\)"):
            object_store.get(f"{b.root}/stac/catalog.json", anon)


def test_presigned_s3_url_read_without_head(s3_bucket: Bucket, stac_folder: Path) -> None:
    store = s3_bucket.storage.store_for("s3://private/")
    url = obs.sign(store, "GET", "stac/catalog.json", dt.timedelta(minutes=5))
    assert "X-Amz-Signature=" in url
    whole = (stac_folder / "catalog.json").read_bytes()
    assert object_store.get(url) == whole  # a GET-only signature: no HEAD is sent first
    assert object_store.get(url, range=(5, 25)) == whole[5:25]
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    with pytest.raises(ReadError, match="access denied") as info:
        object_store.get(tampered)
    signature = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Signature"][0]
    assert signature not in str(info.value)
    assert "X-Amz" not in str(info.value)


def test_sas_token_azure_read(azure_bucket: Bucket, stac_folder: Path) -> None:
    sas = azure_account_sas("rl")
    storage = Storage(
        azure_endpoint=azure_bucket.server.endpoint, account_name=AZURITE_ACCOUNT, sas_token=sas
    )
    whole = (stac_folder / "catalog.json").read_bytes()
    assert object_store.get("az://data/stac/catalog.json", storage) == whole
    # the same SAS on a plain HTTPS-style URL (the blob endpoint + query)
    url = f"{azure_bucket.server.endpoint}/data/stac/catalog.json?{sas}"
    assert object_store.get(url) == whole
    expired = azure_account_sas("rl", expiry=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    bad = Storage(
        azure_endpoint=azure_bucket.server.endpoint, account_name=AZURITE_ACCOUNT, sas_token=expired
    )
    with pytest.raises(ReadError, match="access denied") as info:
        object_store.get("az://data/stac/catalog.json", bad)
    sig = urllib.parse.parse_qs(expired)["sig"][0]
    assert sig not in str(info.value)


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    from rasterio.transform import from_origin

    path = tmp_path_factory.mktemp("cog") / "cog.tif"
    data = (np.arange(256 * 256, dtype=np.uint16).reshape(256, 256) * 7) % 65521
    profile = {"driver": "COG", "width": 256, "height": 256, "count": 1, "dtype": "uint16",
               "crs": "EPSG:32631", "transform": from_origin(600000, 5000000, 10, 10), "blocksize": 128}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path, data


VSI = {"s3": "/vsis3", "azure": "/vsiaz", "gcs": "/vsigs"}


def test_cog_in_bucket_through_gdal_options(bucket: Bucket, cog: tuple[Path, np.ndarray]) -> None:
    """rasterio.open('/vsis3|vsiaz|vsigs/...') under Storage.rasterio_env reads the local file's pixels."""
    path, data = cog
    bucket.put("cogs/cog.tif", path.read_bytes())
    url = f"{bucket.root}/cogs/cog.tif"
    name = f"{VSI[bucket.server.kind]}/{url.split('://', 1)[1]}"
    with bucket.storage.rasterio_env(url), rasterio.open(name) as src:
        remote = src.read(1)
        window = src.read(1, window=((64, 192), (32, 160)))
    np.testing.assert_array_equal(remote, data)
    np.testing.assert_array_equal(window, data[64:192, 32:160])


def test_cog_with_sas_through_gdal_options(azure_bucket: Bucket, cog: tuple[Path, np.ndarray]) -> None:
    path, data = cog
    azure_bucket.put("cogs/sas.tif", path.read_bytes())
    storage = Storage(
        azure_endpoint=azure_bucket.server.endpoint,
        account_name=AZURITE_ACCOUNT,
        sas_token=azure_account_sas("rl"),
    )
    with storage.rasterio_env("az://data/cogs/sas.tif"), rasterio.open("/vsiaz/data/cogs/sas.tif") as src:
        np.testing.assert_array_equal(src.read(1), data)


def test_cog_with_wrong_s3_secret_fails_in_gdal(s3_bucket: Bucket, cog: tuple[Path, np.ndarray]) -> None:
    path, _ = cog
    s3_bucket.put("cogs/other.tif", path.read_bytes())  # a path GDAL has not cached
    wrong = s3_bucket.storage.with_options(secret="nope-nope")
    with (
        wrong.rasterio_env("s3://private/cogs/other.tif"),
        pytest.raises(rasterio.errors.RasterioIOError),
        rasterio.open("/vsis3/private/cogs/other.tif"),
    ):
        pass


def test_missing_bucket_is_named(s3_bucket: Bucket) -> None:
    with pytest.raises(ReadError, match=r"no such object \(HTTP 404, NoSuchBucket\)"):
        object_store.get("s3://no-such-bucket/a.json", s3_bucket.storage)


def test_expired_presigned_url_is_access_denied(s3_bucket: Bucket) -> None:
    import time

    store = s3_bucket.storage.store_for("s3://private/")
    url = obs.sign(store, "GET", "stac/catalog.json", dt.timedelta(seconds=1))
    time.sleep(2.1)
    with pytest.raises(ReadError, match="access denied") as info:
        object_store.get(url)
    assert "X-Amz" not in str(info.value)


def test_abfs_url_names_its_account(azure_bucket: Bucket, stac_folder: Path) -> None:
    storage = Storage(
        azure_endpoint=azure_bucket.server.endpoint, account_key=azure_bucket.storage.account_key
    )
    url = f"abfs://data@{AZURITE_ACCOUNT}.dfs.core.windows.net/stac/catalog.json"
    assert object_store.get(url, storage) == (stac_folder / "catalog.json").read_bytes()


def _child_read(url: str, storage: Storage, queue) -> None:  # type: ignore[no-untyped-def]
    try:
        queue.put(len(object_store.get(url, storage)))
    except BaseException as err:  # report, never hang the parent
        queue.put(f"{type(err).__name__}: {err}")


def test_forked_worker_gets_a_named_error_not_a_hang(s3_bucket: Bucket) -> None:
    """obstore is not fork-safe: a child forked after the parent used it must fail fast, by name."""
    import multiprocessing

    url = "s3://private/stac/catalog.json"
    object_store.get(url, s3_bucket.storage)  # the parent has now used obstore
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_read, args=(url, s3_bucket.storage, queue))
    child.start()
    child.join(20)
    if child.exitcode is None:  # pragma: no cover - the bug this guards against
        child.kill()
        pytest.fail("the forked child hung on its read")
    message = queue.get(timeout=5)
    assert message.startswith("WorkerError:"), message
    assert "multiprocessing_context='forkserver'" in message
