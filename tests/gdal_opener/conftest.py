"""The object-store emulators of ``tests/storage`` (session fixtures), for the bucket rasters here."""

from tests.storage.conftest import (  # noqa: F401
    _no_cloud_environment,
    azure_bucket,
    bucket,
    gcs_bucket,
    s3_bucket,
    stac_folder,
)
