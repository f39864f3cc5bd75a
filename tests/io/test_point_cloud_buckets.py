"""read_point_cloud and rasterize_points from S3, Azure Blob and GCS (real servers on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("laspy")
pytest.importorskip("lazrs")

import terrapipe as tp
from tests.storage.conftest import (  # noqa: F401  (the bucket fixtures of tests/storage)
    Bucket,
    _no_cloud_environment,
    azure_bucket,
    bucket,
    gcs_bucket,
    s3_bucket,
    stac_folder,
)

DATA = Path(__file__).parents[1] / "conformance" / "files" / "data" / "laspy"
BOX = (636000.0, 849000.0, 636600.0, 849600.0)


def test_copc_and_laz_from_a_bucket_equal_local(bucket: Bucket) -> None:  # noqa: F811  (the fixture)
    for name in ("simple_with_page.copc.laz", "1_4_w_evlr.laz"):
        bucket.put(f"lidar/{name}", (DATA / name).read_bytes())
    url = f"{bucket.root}/lidar/simple_with_page.copc.laz"
    size = (DATA / "simple_with_page.copc.laz").stat().st_size
    remote = tp.open_point_cloud(url, bounds=BOX, storage=bucket.storage)
    local = tp.open_point_cloud(str(DATA / "simple_with_page.copc.laz"), bounds=BOX)
    assert remote.copc
    assert len(remote) == len(local) > 0
    np.testing.assert_array_equal(np.sort(remote.xyz, axis=0), np.sort(local.xyz, axis=0))
    assert remote.bytes_fetched < 0.3 * size
    laz = list(
        tp.from_items([f"{bucket.root}/lidar/1_4_w_evlr.laz"]).read_point_cloud(storage=bucket.storage)
    )
    np.testing.assert_array_equal(laz[0].xyz, tp.open_point_cloud(str(DATA / "1_4_w_evlr.laz")).xyz)


def test_missing_object_is_a_named_read_error(s3_bucket: Bucket) -> None:  # noqa: F811  (the fixture)
    with pytest.raises(tp.ReadError, match=r"s3://private/lidar/none\.copc\.laz"):
        tp.open_point_cloud("s3://private/lidar/none.copc.laz", storage=s3_bucket.storage)
