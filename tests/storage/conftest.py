"""Session fixtures: a real S3 server, the Azure Blob emulator and a GCS emulator on 127.0.0.1.

Each is started once per session (``tests/servers/object_stores.py``), answers
before the first test, and is stopped by pid at the end. The sample world's
STAC folder (catalog, collections, items, stac-geoparquet) is uploaded into a
bucket on each.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from terrapipe.io.storage import Storage
from tests.servers.object_stores import (
    ALLOW_SKIP_ENV,
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    S3_KEY_ID,
    S3_SECRET,
    Server,
    ServerMissingError,
    create_container,
    gcs_upload,
    start_azurite,
    start_gcs_emulator,
    start_s3_server,
)

obs = pytest.importorskip("obstore")


@dataclass
class Bucket:
    """A bucket on a running server, the Storage that may read and write it, and its URL root."""

    server: Server
    storage: Storage
    root: str  # e.g. s3://private

    def put(self, key: str, data: bytes) -> None:
        """Write an object (the GCS emulator through its own upload API: it checks no credentials)."""
        if self.server.kind == "gcs":
            gcs_upload(self.server, key, data)
        else:
            obs.put(self.storage.store_for(f"{self.root}/"), key, data)


def _start(start, *args: str) -> Server:  # type: ignore[no-untyped-def]
    """Start a server; a missing binary fails the run (CI), or skips where TERRAPIPE_ALLOW_SKIP_SERVERS=1."""
    try:
        return start(*args)  # type: ignore[no-any-return]
    except ServerMissingError as err:
        if os.environ.get(ALLOW_SKIP_ENV) == "1":
            pytest.skip(str(err))
        raise


def _loopback(endpoint: str) -> None:
    assert endpoint.startswith("http://127.0.0.1:"), endpoint  # never a real cloud


def _upload_tree(bucket: Bucket, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            bucket.put(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())


@pytest.fixture(scope="session")
def stac_folder(sample_world) -> Path:  # type: ignore[no-untyped-def]
    return Path(sample_world.catalog).parent


@pytest.fixture(scope="session")
def s3_bucket(stac_folder: Path) -> Iterator[Bucket]:
    server = _start(start_s3_server, ("private",))
    try:
        _loopback(server.endpoint)
        storage = Storage(s3_endpoint=server.endpoint, key_id=S3_KEY_ID, secret=S3_SECRET, region="us-east-1")
        bucket = Bucket(server, storage, "s3://private")
        _upload_tree(bucket, stac_folder, "stac")
        yield bucket
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azure_bucket(stac_folder: Path) -> Iterator[Bucket]:
    server = _start(start_azurite)
    try:
        _loopback(server.endpoint)
        create_container(server.endpoint, "data")
        storage = Storage(
            azure_endpoint=server.endpoint, account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY
        )
        bucket = Bucket(server, storage, "az://data")
        _upload_tree(bucket, stac_folder, "stac")
        yield bucket
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs_bucket(stac_folder: Path) -> Iterator[Bucket]:
    server = _start(start_gcs_emulator, "gcs-bucket")
    try:
        _loopback(server.endpoint)
        storage = Storage(gcs_endpoint=server.endpoint, anonymous=True)  # the emulator checks no credentials
        bucket = Bucket(server, storage, "gs://gcs-bucket")
        _upload_tree(bucket, stac_folder, "stac")
        yield bucket
    finally:
        server.stop()


@pytest.fixture(params=["s3", "azure", "gcs"])
def bucket(request: pytest.FixtureRequest) -> Bucket:
    return request.getfixturevalue(f"{request.param}_bucket")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _no_cloud_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's cloud variables out (a test never reaches a real cloud)."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "AZURE_STORAGE", "GOOGLE_APPLICATION", "STORAGE_EMULATOR")):
            monkeypatch.delenv(name)
