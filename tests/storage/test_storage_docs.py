"""docs/storage.md's claims, one per cloud, against the real servers: what a user sets is what is read.

``tp.Storage.from_env(environ)`` is given only the variables the page names
for each cloud (the server's address and test keys); a COG is read through GDAL
and a GeoParquet file through the byte layer, each equal to the local file.
The requester-pays flag reaches each translation the page lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrapipe.io.raster import open_raster
from terrapipe.io.storage import AZURITE_ACCOUNT, AZURITE_KEY, Storage
from terrapipe.io.vector import open_vector
from tests.servers.object_stores import S3_KEY_ID, S3_SECRET, azure_account_sas
from tests.storage.conftest import Bucket

gpd = pytest.importorskip("geopandas")
shapely_geometry = pytest.importorskip("shapely.geometry")
pytest.importorskip("obstore")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("docs-claims")
    cog = folder / "a.tif"
    with rasterio.open(cog, "w", driver="COG", width=64, height=64, count=1, dtype="uint16", crs="EPSG:32631",
                       transform=from_origin(600000, 5000000, 10, 10)) as dst:  # fmt: skip
        dst.write((np.arange(64 * 64, dtype="uint16") * 3).reshape(1, 64, 64))
    parquet = folder / "p.parquet"
    gpd.GeoDataFrame(
        {"id": range(10)}, geometry=[shapely_geometry.Point(i, i) for i in range(10)], crs="EPSG:32631"
    ).to_parquet(parquet)
    return {"cog": cog, "parquet": parquet}


def _environ(kind: str, bucket: Bucket) -> tuple[dict[str, str], str]:
    """The variables the page names for ``kind``, and the URL scheme and bucket to read."""
    endpoint = bucket.server.endpoint  # (Azurite's: http://127.0.0.1:PORT/devstoreaccount1)
    if kind == "s3":  # AWS_ENDPOINT_URL (GDAL ignores it: terrapipe translates it), keys, region
        return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": S3_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_REGION": "us-east-1"}, "s3://private"  # fmt: skip
    if kind == "azure-connection-string":  # an account key and a custom BlobEndpoint
        string = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                  f"BlobEndpoint={endpoint};")  # fmt: skip
        return {"AZURE_STORAGE_CONNECTION_STRING": string}, "az://data"
    if kind == "azure-sas":  # a SAS token, the endpoint in the connection string
        string = f"BlobEndpoint={endpoint};SharedAccessSignature={azure_account_sas('rl')}"
        return {"AZURE_STORAGE_CONNECTION_STRING": string, "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT}, (
            f"abfs://data@{AZURITE_ACCOUNT}.dfs.core.windows.net"
        )
    return {"STORAGE_EMULATOR_HOST": endpoint}, "gs://gcs-bucket"


@pytest.mark.parametrize("kind", ["s3", "azure-connection-string", "azure-sas", "gcs"])
def test_each_clouds_variables_read_a_cog_and_geoparquet(
    kind: str, files: dict[str, Path], request: pytest.FixtureRequest
) -> None:
    fixture = {"s3": "s3_bucket", "gcs": "gcs_bucket"}.get(kind, "azure_bucket")
    bucket: Bucket = request.getfixturevalue(fixture)
    environ, root = _environ(kind, bucket)
    # under STORAGE_EMULATOR_HOST GCS is unsigned, as in google-cloud-storage
    storage = Storage.from_env(environ)
    for path in files.values():
        bucket.put(f"docs-claims/{kind}/{path.name}", path.read_bytes())
    with rasterio.open(files["cog"]) as src:
        expected = src.read()
    np.testing.assert_array_equal(
        open_raster(f"{root}/docs-claims/{kind}/a.tif", storage=storage).values, expected
    )
    got = open_vector(f"{root}/docs-claims/{kind}/p.parquet", storage=storage)
    assert got.geometry.x.tolist() == [float(i) for i in range(10)]


def test_requester_pays_reaches_every_translation() -> None:
    """The page: obstore's ``request_payer``, GDAL's ``AWS_REQUEST_PAYER=requester``, s3fs's ``requester_pays``."""
    storage = Storage(requester_pays=True, key_id="k", secret="s")
    assert storage.store_for("s3://b/k").config["request_payer"] in (True, "true")
    assert storage.gdal_options("s3://b/k")["AWS_REQUEST_PAYER"] == "requester"
    assert storage.fsspec_options("s3://b/k")["requester_pays"] is True
    plain = Storage(key_id="k", secret="s")
    assert "AWS_REQUEST_PAYER" not in plain.gdal_options("s3://b/k")
    assert "request_payer" not in plain.store_for("s3://b/k").config
