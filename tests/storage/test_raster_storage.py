"""open_raster / read_raster through tp.Storage against real S3, Azure and GCS servers on 127.0.0.1.

Every open and read (in every thread, each time a handle is opened) happens
inside ``storage.rasterio_env(url)``; two storages never share a handle or
GDAL's cache of a URL; no credential reaches a message, repr or cache key.
"""

from __future__ import annotations

import json
import os
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp
from terrapipe.cache.segment import describe_stage
from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.io.raster import open_raster
from terrapipe.io.raster_array import close_thread_handles
from terrapipe.io.storage import Storage
from tests.servers.object_stores import AZURITE_ACCOUNT, S3_SECRET, azure_account_sas
from tests.storage.conftest import Bucket

WRONG = "not-the-secret-0123456789"


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A two-band COG of 256 x 256 pixels in 128-pixel blocks, and its pixels as rasterio reads them."""
    path = tmp_path_factory.mktemp("raster-storage") / "cog.tif"
    data = ((np.arange(2 * 256 * 256, dtype=np.uint32).reshape(2, 256, 256) * 7) % 65521).astype(np.uint16)
    profile = {"driver": "COG", "width": 256, "height": 256, "count": 2, "dtype": "uint16",
               "crs": "EPSG:32631", "transform": from_origin(600000, 5000000, 10, 10), "blocksize": 128}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    with rasterio.open(path) as src:  # the truth: rasterio on the local copy
        return path, src.read()


def _put(bucket: Bucket, cog: tuple[Path, np.ndarray], key: str) -> str:
    bucket.put(key, cog[0].read_bytes())
    return f"{bucket.root}/{key}"


def _no_secret(err: BaseException, *secrets: str) -> None:
    text = "".join(traceback.format_exception(err))
    for secret in secrets:
        assert secret not in text, f"secret in the error chain: {text}"


def test_open_raster_in_bucket_reads_the_local_pixels(bucket: Bucket, cog: tuple[Path, np.ndarray]) -> None:
    url = _put(bucket, cog, "rasters/open.tif")
    environ = dict(os.environ)
    da = open_raster(url, storage=bucket.storage)
    np.testing.assert_array_equal(da.values, cog[1])
    np.testing.assert_array_equal(
        da.isel(band=1, y=slice(64, 192), x=slice(32, 160)).values, cog[1][1, 64:192, 32:160]
    )
    assert da.encoding["source"] == url
    assert dict(os.environ) == environ  # nothing process-wide


def test_read_raster_stage_in_bucket(bucket: Bucket, cog: tuple[Path, np.ndarray]) -> None:
    url = _put(bucket, cog, "rasters/stage.tif")
    arrays = list(tp.from_items([url, url]).read_raster(storage=bucket.storage, bands=[2]))
    assert len(arrays) == 2
    for da in arrays:
        np.testing.assert_array_equal(da.values, cog[1][1:2])


def test_every_thread_opens_with_the_storage(s3_bucket: Bucket, cog: tuple[Path, np.ndarray]) -> None:
    """Each new thread opens its own handle lazily, inside the storage's environment."""
    url = _put(s3_bucket, cog, "rasters/threads.tif")
    da = open_raster(url, storage=s3_bucket.storage)

    def block(i: int) -> np.ndarray:
        try:
            return da.isel(
                y=slice((i // 2) * 128, (i // 2 + 1) * 128), x=slice((i % 2) * 128, (i % 2 + 1) * 128)
            ).values
        finally:
            close_thread_handles()

    with ThreadPoolExecutor(4) as pool:
        blocks = list(pool.map(block, range(4)))
    np.testing.assert_array_equal(np.block([[blocks[0], blocks[1]], [blocks[2], blocks[3]]]), cog[1])


def test_dask_threads_see_the_storage(gcs_bucket: Bucket, cog: tuple[Path, np.ndarray]) -> None:
    pytest.importorskip("dask")
    url = _put(gcs_bucket, cog, "rasters/dask.tif")
    da = open_raster(url, storage=gcs_bucket.storage, chunks=True)
    values = da.data.compute(scheduler="threads", num_workers=2)
    np.testing.assert_array_equal(values, cog[1])


def test_wrong_secret_is_a_read_error_without_the_secret(
    s3_bucket: Bucket, cog: tuple[Path, np.ndarray]
) -> None:
    url = _put(s3_bucket, cog, "rasters/wrong.tif")
    wrong = s3_bucket.storage.with_options(secret=WRONG)
    with pytest.raises(ReadError, match=r"cannot open raster 's3://private/rasters/wrong.tif'") as info:
        open_raster(url, storage=wrong)
    _no_secret(info.value, WRONG, S3_SECRET)
    with pytest.raises(ReadError) as info:
        list(tp.from_items([url]).read_raster(storage=wrong))
    _no_secret(info.value, WRONG, S3_SECRET)


def test_two_storages_never_share_a_handle(s3_bucket: Bucket, cog: tuple[Path, np.ndarray]) -> None:
    """Right, then wrong, then right again on one URL in one thread: each open asks the server with its own keys."""
    url = _put(s3_bucket, cog, "rasters/two.tif")
    wrong = s3_bucket.storage.with_options(secret=WRONG)
    right = open_raster(url, storage=s3_bucket.storage)
    np.testing.assert_array_equal(right.values, cog[1])  # GDAL has the header and every block cached
    with pytest.raises(ReadError):
        open_raster(url, storage=wrong)
    with pytest.raises(ReadError):
        open_raster(url, storage=wrong, verify=False)
    np.testing.assert_array_equal(right.values, cog[1])  # the right handle still reads
    np.testing.assert_array_equal(open_raster(url, storage=s3_bucket.storage).values, cog[1])


def test_wrong_storage_first_then_right(s3_bucket: Bucket, cog: tuple[Path, np.ndarray]) -> None:
    url = _put(s3_bucket, cog, "rasters/wrong-first.tif")
    with pytest.raises(ReadError):
        open_raster(url, storage=s3_bucket.storage.with_options(secret=WRONG))
    np.testing.assert_array_equal(open_raster(url, storage=s3_bucket.storage).values, cog[1])


def test_azure_sas(azure_bucket: Bucket, cog: tuple[Path, np.ndarray]) -> None:
    url = _put(azure_bucket, cog, "rasters/sas.tif")
    sas = azure_account_sas("rl")
    storage = Storage(
        azure_endpoint=azure_bucket.server.endpoint, account_name=AZURITE_ACCOUNT, sas_token=sas
    )
    np.testing.assert_array_equal(open_raster(url, storage=storage).values, cog[1])
    abfs = f"abfs://data@{AZURITE_ACCOUNT}.dfs.core.windows.net/rasters/sas.tif"
    [da] = tp.from_items([abfs]).read_raster(storage=storage)
    np.testing.assert_array_equal(da.values, cog[1])
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    stage = tp.from_items([url]).read_raster(storage=storage)
    for text in (
        repr(stage),
        str(stage),
        repr(da),
        repr(da.variable._data),
        json.dumps(describe_stage(stage)),
    ):
        assert signature not in text
        assert sas not in text


def test_expired_sas_is_a_read_error_without_the_token(
    azure_bucket: Bucket, cog: tuple[Path, np.ndarray]
) -> None:
    import datetime as dt

    url = _put(azure_bucket, cog, "rasters/expired.tif")
    sas = azure_account_sas("rl", expiry=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    storage = Storage(
        azure_endpoint=azure_bucket.server.endpoint, account_name=AZURITE_ACCOUNT, sas_token=sas
    )
    with pytest.raises(ReadError, match=r"az://data/rasters/expired.tif") as info:
        open_raster(url, storage=storage)
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    _no_secret(info.value, sas, signature)


def test_stage_repr_and_cache_description_hold_no_secret(s3_bucket: Bucket) -> None:
    stage = tp.from_items(["s3://private/a.tif"]).read_raster(storage=s3_bucket.storage)
    other_key = tp.from_items(["s3://private/a.tif"]).read_raster(
        storage=s3_bucket.storage.with_options(secret=WRONG)
    )
    elsewhere = tp.from_items(["s3://private/a.tif"]).read_raster(
        storage=s3_bucket.storage.with_options(s3_endpoint="http://127.0.0.1:1")
    )
    description = json.dumps(describe_stage(stage))
    for text in (repr(stage), str(stage), description):
        assert S3_SECRET not in text
    assert stage.storage is s3_bucket.storage
    assert describe_stage(other_key) == describe_stage(stage)  # a new key keeps the cache
    assert describe_stage(elsewhere) != describe_stage(stage)  # another server does not


def test_no_storage_keeps_the_description() -> None:
    description = describe_stage(tp.from_items(["a.tif"]).read_raster())
    assert "storage" not in json.dumps(description)


def test_storage_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"storage must be None or a terrapipe\.Storage"):
        tp.from_items(["a.tif"]).read_raster(storage={"key": "value"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="storage must be"):
        open_raster("a.tif", storage="s3")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
@pytest.mark.parametrize("name", ["cog.tif", "tiles.gpkg"])
def test_a_failed_bucket_read_asks_no_metadata_server(
    kind: str, name: str, request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """Forgetting a failed bucket path made GDAL look for credentials it was not given.

    GDAL works out the URL to drop from its cache as for a read; outside the storage's environment (and
    in pyogrio's GDAL, always) it had no credentials, went through its credential chain and asked
    169.254.169.254 for an instance role, printing "ERROR 1: URL rejected: Malformed input to a URL
    function" where that address answered (4 times per missing GeoPackage or COG on s3://).
    """
    bucket: Bucket = request.getfixturevalue(f"{kind}_bucket")
    monkeypatch.setenv("CPL_DEBUG", "ON")  # GDAL's debug lines name each request it makes
    with pytest.raises(ReadError) as info:
        _ = open_raster(f"{bucket.root}/no-such-folder/{name}", storage=bucket.storage).values
    assert "no-such-folder" in str(info.value)
    err = capfd.readouterr().err
    assert "169.254.169.254" not in err
    assert "metadata.google.internal" not in err
    assert "URL rejected" not in err


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_a_bucket_file_missing_then_written_reads(kind: str, request: pytest.FixtureRequest, cog) -> None:
    """GDAL caches that a file does not exist; the failed read makes it forget that very URL (storage's endpoint)."""
    bucket: Bucket = request.getfixturevalue(f"{kind}_bucket")
    path, expected = cog
    url = f"{bucket.root}/late-{kind}/cog.tif"
    with pytest.raises(ReadError):
        _ = open_raster(url, storage=bucket.storage).values
    bucket.put(f"late-{kind}/cog.tif", path.read_bytes())
    np.testing.assert_array_equal(open_raster(url, storage=bucket.storage).values, expected)


def test_closing_a_bucket_geopackage_asks_no_metadata_server(
    s3_bucket: Bucket, capfd: pytest.CaptureFixture[str], monkeypatch, tmp_path: Path
) -> None:
    """Seen at the end of the storage matrix: a good GeoPackage raster read on s3:// printed 'URL rejected'."""
    from tests.io.test_io_raster_signed_urls import write_gpkg

    expected = write_gpkg(tmp_path / "tiles.gpkg")
    s3_bucket.put("close/tiles.gpkg", (tmp_path / "tiles.gpkg").read_bytes())
    url = f"{s3_bucket.root}/close/tiles.gpkg"
    np.testing.assert_array_equal(open_raster(url, storage=s3_bucket.storage).values, expected)
    monkeypatch.setenv("CPL_DEBUG", "ON")
    capfd.readouterr()
    close_thread_handles()
    err = capfd.readouterr().err
    assert "169.254.169.254" not in err
    assert "URL rejected" not in err
