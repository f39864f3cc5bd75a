"""GCS under ``STORAGE_EMULATOR_HOST``, as google-cloud-storage's client reads it, against the emulator (#19).

google-cloud-storage's ``Client`` sends unsigned requests when
``STORAGE_EMULATOR_HOST`` is set (``AnonymousCredentials``; an emulator checks
no credentials), whatever ``GOOGLE_APPLICATION_CREDENTIALS`` says.
``tp.Storage.from_env`` did not: GDAL refused ``gs://`` without credentials
and the page told users to add ``anonymous=True``, which also made their S3
and Azure requests unsigned. Now only GCS is unsigned there. And the
emulator's 501 to ``HEAD`` is said in words, naming the object and what to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.io import object_store
from terrapipe.io.raster import open_raster
from terrapipe.io.storage import Storage
from terrapipe.io.vector import open_vector
from tests.servers.object_stores import S3_KEY_ID, S3_SECRET
from tests.storage.conftest import Bucket

gpd = pytest.importorskip("geopandas")
shapely_geometry = pytest.importorskip("shapely.geometry")


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("gcs-env") / "a.tif"
    with rasterio.open(path, "w", driver="COG", width=32, height=32, count=1, dtype="uint16", crs="EPSG:32631",
                       transform=from_origin(600000, 5000000, 10, 10)) as dst:  # fmt: skip
        dst.write((np.arange(32 * 32, dtype="uint16") * 5).reshape(1, 32, 32))
    with rasterio.open(path) as src:
        return path, src.read()


def test_from_env_under_the_emulator_signs_nothing_for_gcs_only(tmp_path: Path) -> None:
    environ = {
        "STORAGE_EMULATOR_HOST": "127.0.0.1:9023",
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-such-key.json"),  # not read there, as by the SDK
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    storage = Storage.from_env(environ)
    assert storage.gcs_endpoint == "http://127.0.0.1:9023"
    assert storage.gcs_anonymous
    assert not storage.anonymous
    assert storage.gcs_credentials is None
    assert storage.gdal_options("gs://b/a.tif")["GS_NO_SIGN_REQUEST"] == "YES"
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in storage.gdal_options("gs://b/a.tif")
    assert storage.store_for("gs://b/a.tif").config["skip_signature"] in (True, "true")
    assert storage.fsspec_options("gs://b/a.tif")["token"] == "anon"
    s3 = storage.gdal_options("s3://b/a.tif")  # S3 keeps its keys
    assert "AWS_NO_SIGN_REQUEST" not in s3
    assert s3["AWS_ACCESS_KEY_ID"] == "k"
    assert "skip_signature" not in storage.store_for("s3://b/a.tif").config
    signed = Storage.from_env(environ, gcs_token="t")  # a token given by hand signs again
    assert not signed.gcs_anonymous
    assert signed.gdal_options("gs://b/a.tif")["GS_OAUTH2_TOKEN"] == "t"
    plain = Storage.from_env({"GOOGLE_APPLICATION_CREDENTIALS": "/k.json"})  # without the emulator: as before
    assert not plain.gcs_anonymous
    assert plain.gdal_options("gs://b/a")["GOOGLE_APPLICATION_CREDENTIALS"] == "/k.json"
    with pytest.raises(InvalidArgumentError, match="sidecars"):
        Storage(sidecars="yes")  # type: ignore[arg-type]


def test_the_emulator_reads_with_from_env_alone(
    gcs_bucket: Bucket, s3_bucket: Bucket, cog: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """A COG through GDAL, GeoParquet through the byte layer: the emulator from its variable, S3 signed beside it."""
    path, expected = cog
    parquet = tmp_path / "p.parquet"
    gpd.GeoDataFrame({"id": [1, 2]}, geometry=[shapely_geometry.Point(0, 0)] * 2, crs="EPSG:4326").to_parquet(
        parquet
    )
    for bucket in (gcs_bucket, s3_bucket):
        bucket.put("env/a.tif", path.read_bytes())
        bucket.put("env/p.parquet", parquet.read_bytes())
    storage = Storage.from_env({
        "STORAGE_EMULATOR_HOST": gcs_bucket.server.endpoint, "AWS_ENDPOINT_URL": s3_bucket.server.endpoint,
        "AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_REGION": "us-east-1",
    })  # fmt: skip
    for root in ("gs://gcs-bucket", "s3://private"):  # rclone's S3 refuses unsigned requests: still signed
        np.testing.assert_array_equal(open_raster(f"{root}/env/a.tif", storage=storage).values, expected)
        assert open_vector(f"{root}/env/p.parquet", storage=storage)["id"].tolist() == [1, 2]


def test_the_emulators_501_to_head_is_said_in_words(gcs_bucket: Bucket) -> None:
    url = f"{gcs_bucket.root}/stac/catalog.json"
    with pytest.raises(ReadError) as info:
        object_store.size(url, gcs_bucket.storage)
    text = str(info.value)
    assert f"'{url}'" in text
    assert "HTTP 501" in text
    assert "not implement" in text
    assert "Error" not in text.replace("ReadError", "")  # no class name of obstore's (GenericError)
    assert info.value.__cause__ is None
