"""GeoParquet from buckets and presigned/SAS URLs through the byte layer (#19), on real servers.

Each read is compared with ``geopandas.read_parquet`` of the local copy, whole
and with ``bbox=`` (row groups pruned by the covering column).
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path

import pytest
from geopandas.testing import assert_geodataframe_equal

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io import object_store
from terrapipe.io.object_file import ObjectFile
from terrapipe.io.storage import AZURITE_ACCOUNT, Storage
from terrapipe.io.vector import open_vector
from tests.servers.object_stores import S3_KEY_ID, S3_SECRET, azure_account_sas
from tests.storage.conftest import Bucket

gpd = pytest.importorskip("geopandas")
obs = pytest.importorskip("obstore")
shapely_geometry = pytest.importorskip("shapely.geometry")

BBOX = (20.0, 20.0, 44.5, 44.5)


@pytest.fixture(scope="module")
def points(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GeoParquet file of 100 points in 10 row groups, with a bbox covering (for pushdown)."""
    frame = gpd.GeoDataFrame(
        {"id": range(100), "name": [f"p{i}" for i in range(100)]},
        geometry=[shapely_geometry.Point(i, i) for i in range(100)],
        crs="EPSG:32631",
    )
    path = tmp_path_factory.mktemp("gpq") / "points.parquet"
    frame.to_parquet(path, write_covering_bbox=True, row_group_size=10)
    return path


def _expected(path: Path, bbox: tuple[float, ...] | None) -> object:
    frame = gpd.read_parquet(path, bbox=bbox).drop(columns=["bbox"], errors="ignore")
    if bbox is not None:
        frame = frame[frame.geometry.intersects(shapely_geometry.box(*bbox))].reset_index(drop=True)
    return frame


def _check(got: object, path: Path, bbox: tuple[float, ...] | None) -> None:
    expected = _expected(path, bbox)
    assert_geodataframe_equal(got, expected)
    if bbox is not None:
        assert got.attrs["row_groups_read"] == 3  # type: ignore[attr-defined]
        assert got.attrs["row_groups_total"] == 10  # type: ignore[attr-defined]
        assert list(got["id"]) == list(range(20, 45))  # type: ignore[index]


@pytest.mark.parametrize("bbox", [None, BBOX])
def test_bucket_geoparquet_equals_local(bucket: Bucket, points: Path, bbox: tuple[float, ...] | None) -> None:
    bucket.put("vectors/points.parquet", points.read_bytes())
    url = f"{bucket.root}/vectors/points.parquet"
    _check(open_vector(url, bbox=bbox, storage=bucket.storage), points, bbox)


def test_read_vector_stage_passes_storage(s3_bucket: Bucket, points: Path) -> None:
    s3_bucket.put("vectors/stage.parquet", points.read_bytes())
    pipe = tp.from_items(["s3://private/vectors/stage.parquet"]).read_vector(
        bbox=BBOX, storage=s3_bucket.storage
    )
    (got,) = list(pipe)
    _check(got, points, BBOX)


@pytest.mark.parametrize("bbox", [None, BBOX])
def test_azure_sas_and_abfs(azure_bucket: Bucket, points: Path, bbox: tuple[float, ...] | None) -> None:
    azure_bucket.put("vectors/sas.parquet", points.read_bytes())
    sas = azure_account_sas("rl")
    storage = Storage(
        azure_endpoint=azure_bucket.server.endpoint, account_name=AZURITE_ACCOUNT, sas_token=sas
    )
    _check(open_vector("az://data/vectors/sas.parquet", bbox=bbox, storage=storage), points, bbox)
    abfs = f"abfs://data@{AZURITE_ACCOUNT}.dfs.core.windows.net/vectors/sas.parquet"
    _check(open_vector(abfs, bbox=bbox, storage=storage), points, bbox)
    # the SAS on the blob's HTTP URL (a SAS link as users get them)
    url = f"{azure_bucket.server.endpoint}/data/vectors/sas.parquet?{sas}"
    _check(open_vector(url, bbox=bbox, storage=Storage()), points, bbox)


@pytest.mark.parametrize("bbox", [None, BBOX])
def test_get_presigned_s3_url_without_head(
    s3_bucket: Bucket, points: Path, bbox: tuple[float, ...] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_bucket.put("vectors/signed.parquet", points.read_bytes())
    store = s3_bucket.storage.store_for("s3://private/")
    url = obs.sign(store, "GET", "vectors/signed.parquet", dt.timedelta(minutes=5))
    # a HEAD with a GET signature is refused by the server: check, then make sure none is sent
    with pytest.raises(ReadError):
        object_store.head(url)

    def no_head(*args: object, **kwargs: object) -> None:
        raise AssertionError("a HEAD was sent for a presigned URL")

    monkeypatch.setattr(obs, "head", no_head)
    monkeypatch.setattr(obs, "head_async", no_head)
    _check(open_vector(url, bbox=bbox, storage=Storage()), points, bbox)


def test_object_file_keeps_the_tail(s3_bucket: Bucket, points: Path) -> None:
    s3_bucket.put("vectors/tail.parquet", points.read_bytes())
    store = s3_bucket.storage.store_for("s3://private/")
    url = obs.sign(store, "GET", "vectors/tail.parquet", dt.timedelta(minutes=5))
    data = points.read_bytes()
    with ObjectFile(url, Storage()) as handle:
        assert handle.size == len(data)
        assert handle.seek(-8, 2) == len(data) - 8
        assert handle.read() == data[-8:]
        assert handle.read_at(100, 3) == data[3:103]
        assert handle.read_at(10, len(data)) == b""
        assert "X-Amz" not in repr(handle)


def test_wrong_secret_is_a_named_read_error_without_the_secret(s3_bucket: Bucket, points: Path) -> None:
    s3_bucket.put("vectors/private.parquet", points.read_bytes())
    wrong = "not-the-secret-" + S3_SECRET[::-1]
    storage = Storage(
        s3_endpoint=s3_bucket.server.endpoint, key_id=S3_KEY_ID, secret=wrong, region="us-east-1"
    )
    with pytest.raises(ReadError, match="access denied") as info:
        open_vector("s3://private/vectors/private.parquet", storage=storage)
    text = str(info.value)
    assert "s3://private/vectors/private.parquet" in text
    assert wrong not in text
    assert S3_SECRET not in text


def test_tampered_presigned_url_is_named_without_the_signature(s3_bucket: Bucket, points: Path) -> None:
    s3_bucket.put("vectors/tampered.parquet", points.read_bytes())
    store = s3_bucket.storage.store_for("s3://private/")
    url = obs.sign(store, "GET", "vectors/tampered.parquet", dt.timedelta(minutes=5))
    signature = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Signature"][0]
    with pytest.raises(ReadError, match="access denied") as info:
        open_vector(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), storage=Storage())
    assert signature not in str(info.value)
    assert "X-Amz" not in str(info.value)


def test_missing_object_is_a_read_error(gcs_bucket: Bucket) -> None:
    with pytest.raises(ReadError, match="no such object"):
        open_vector("gs://gcs-bucket/vectors/none.parquet", storage=gcs_bucket.storage)


def test_local_path_without_storage_is_unchanged(points: Path) -> None:
    _check(open_vector(str(points), bbox=BBOX), points, BBOX)
