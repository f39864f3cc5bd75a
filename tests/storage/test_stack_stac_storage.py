"""stack_stac through tp.Storage against real S3, Azure and GCS servers on 127.0.0.1 (#19).

Every asset open and read (each chunk, each dask thread) happens inside
``storage.rasterio_env(href)``; cubes from buckets, presigned and SAS URLs
equal the cube of the same files on disk; a wrong key or a missing object is
a ReadError naming the item, the asset and ``scheme://host/path``, with no
secret in its chain; the stage's cache description holds the storage's
location, never its credentials.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import traceback
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp
from terrapipe.cache.segment import describe_stage
from terrapipe.core.errors import InvalidArgumentError, ReadError
from terrapipe.io.storage import Storage
from terrapipe.stac.stack import StackSTAC, stack_items
from tests.servers.object_stores import AZURITE_ACCOUNT, S3_KEY_ID, S3_SECRET, azure_account_sas
from tests.storage.conftest import Bucket

obs = pytest.importorskip("obstore")
pytest.importorskip("odc.stac")

WRONG = "not-the-secret-0123456789"
#: (scene, origin): two scenes of 200 x 160 pixels on one 10 m lattice, overlapping, one timestamp each.
SCENES = (
    ("a", (600000.0, 5000000.0), "2024-06-01T10:30:00Z"),
    ("b", (600800.0, 4999400.0), "2024-06-02T10:30:00Z"),
)
BANDS = ("red", "nir")
SHAPE = (160, 200)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Two-band scenes as one-band COGs in 64-pixel tiles: ``{'a/red.tif': bytes, ...}`` (nodata 0, a hole each)."""
    folder = tmp_path_factory.mktemp("stack-storage")
    out = {}
    for i, (name, origin, _) in enumerate(SCENES):
        for j, band in enumerate(BANDS):
            data = (
                (np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint32).reshape(SHAPE) * (7 + i + 3 * j)) % 4000 + 1
            ).astype(np.uint16)
            data[10:30, 20:90] = 0  # nodata: the other scene fills it where they overlap
            path = folder / f"{name}-{band}.tif"
            profile = {"driver": "COG", "width": SHAPE[1], "height": SHAPE[0], "count": 1, "dtype": "uint16",
                       "crs": "EPSG:32631", "transform": from_origin(*origin, 10, 10), "nodata": 0,
                       "blocksize": 64}  # fmt: skip
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(data, 1)
            out[f"{name}/{band}.tif"] = path.read_bytes()
    return out


def _items(root: str, *, stated: bool = True) -> list[dict[str, Any]]:
    """Item dicts whose assets are ``{root}/{scene}/{band}.tif`` (``stated``: raster:bands give the type)."""
    from odc.geo import geom

    items = []
    for name, (west, north), when in SCENES:
        south, east = north - 10 * SHAPE[0], west + 10 * SHAPE[1]
        footprint = geom.box(west, south, east, north, "EPSG:32631").to_crs("EPSG:4326")
        assets = {}
        for band in BANDS:
            asset: dict[str, Any] = {
                "href": f"{root}/{name}/{band}.tif",
                "type": "image/tiff; application=geotiff",
            }
            if stated:
                asset["raster:bands"] = [{"data_type": "uint16", "nodata": 0}]
            assets[band] = asset
        items.append({
            "type": "Feature", "stac_version": "1.1.0", "id": f"scene-{name}", "collection": "c", "links": [],
            "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
            "geometry": footprint.json, "bbox": list(footprint.boundingbox),
            "properties": {"datetime": when, "proj:code": "EPSG:32631", "proj:shape": list(SHAPE),
                           "proj:transform": [10.0, 0.0, west, 0.0, -10.0, north]},
            "assets": assets,
        })  # fmt: skip
    return items


@pytest.fixture(scope="module")
def local(scenes: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stack-local")
    for key, data in scenes.items():
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(data)
    return folder


def _upload(bucket: Bucket, scenes: dict[str, bytes], prefix: str) -> str:
    for key, data in scenes.items():
        bucket.put(f"{prefix}/{key}", data)
    return f"{bucket.root}/{prefix}"


def _chain(err: BaseException) -> str:
    return "".join(traceback.format_exception(err))


@pytest.mark.parametrize("stated", [True, False], ids=["types-stated", "header-read"])
def test_cube_from_a_bucket_equals_the_local_cube(
    bucket: Bucket, scenes: dict[str, bytes], local: Path, stated: bool
) -> None:
    root = _upload(bucket, scenes, f"stack-{stated}")
    environ = dict(os.environ)
    want = stack_items(_items(str(local), stated=stated), bands=list(BANDS), chunks={"x": 64, "y": 64})
    cube = stack_items(
        _items(root, stated=stated), bands=list(BANDS), chunks={"x": 64, "y": 64}, storage=bucket.storage
    )
    np.testing.assert_array_equal(cube.values, want.values)
    assert cube.odc.geobox == want.odc.geobox
    assert dict(os.environ) == environ  # nothing process-wide


def test_a_resampled_cube_from_a_bucket_equals_the_local_one(
    s3_bucket: Bucket, scenes: dict[str, bytes], local: Path
) -> None:
    """Another CRS and resolution: odc-stac's reader, each open inside the storage's environment."""
    root = _upload(s3_bucket, scenes, "stack-warp")
    options: dict[str, Any] = {
        "bands": ["red"],
        "crs": "EPSG:3857",
        "resolution": 25,
        "chunks": {"x": 100, "y": 100},
    }
    want = stack_items(_items(str(local)), **options)
    cube = stack_items(_items(root), **options, storage=s3_bucket.storage)
    np.testing.assert_array_equal(cube.values, want.values)


def test_azure_sas_abfs_and_a_sas_url(azure_bucket: Bucket, scenes: dict[str, bytes], local: Path) -> None:
    _upload(azure_bucket, scenes, "stack-sas")
    want = stack_items(_items(str(local)), bands=list(BANDS)).values
    sas = azure_account_sas("rl")
    storage = Storage(
        azure_endpoint=azure_bucket.server.endpoint, account_name=AZURITE_ACCOUNT, sas_token=sas
    )
    abfs = f"abfs://data@{AZURITE_ACCOUNT}.dfs.core.windows.net/stack-sas"
    np.testing.assert_array_equal(stack_items(_items(abfs), bands=list(BANDS), storage=storage).values, want)
    items = _items(f"{azure_bucket.server.endpoint}/data/stack-sas")
    for item in items:  # a SAS URL per asset (what a signing STAC API hands out)
        for asset in item["assets"].values():
            asset["href"] += f"?{sas}"
    cube = stack_items(items, bands=list(BANDS), storage=Storage())
    np.testing.assert_array_equal(cube.values, want)
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    for text in (repr(cube), str(cube.data.dask), json.dumps(cube.encoding, default=str)):
        assert signature not in urllib.parse.unquote(text)


def test_presigned_s3_urls_equal_the_local_cube(
    s3_bucket: Bucket, scenes: dict[str, bytes], local: Path
) -> None:
    _upload(s3_bucket, scenes, "stack-signed")
    store = s3_bucket.storage.store_for("s3://private/")
    items = _items("https://unused")
    for item, (name, _, _) in zip(items, SCENES, strict=True):
        for band, asset in item["assets"].items():
            asset["href"] = obs.sign(store, "GET", f"stack-signed/{name}/{band}.tif", dt.timedelta(minutes=5))
    cube = stack_items(items, bands=list(BANDS), chunks={"x": 64, "y": 64})
    np.testing.assert_array_equal(cube.values, stack_items(_items(str(local)), bands=list(BANDS)).values)


def test_wrong_secret_is_a_read_error_naming_the_asset_without_the_secret(
    s3_bucket: Bucket, scenes: dict[str, bytes]
) -> None:
    root = _upload(s3_bucket, scenes, "stack-wrong")
    wrong = s3_bucket.storage.with_options(secret=WRONG)
    cube = stack_items(_items(root), bands=["nir"], storage=wrong)
    with pytest.raises(ReadError, match="access denied") as info:
        cube.compute()
    text = str(info.value)
    assert "of STAC item 'scene-" in text
    assert "asset 'nir'" in text
    assert "'s3://private/stack-wrong/" in text
    for secret in (WRONG, S3_SECRET):
        assert secret not in _chain(info.value)
    with pytest.raises(ReadError, match="access denied") as header:  # the header read at build time
        stack_items(_items(root, stated=False), bands=["nir"], storage=wrong)
    assert WRONG not in _chain(header.value)
    # the right key afterwards reads (GDAL's cache of the URL was dropped when the storage changed)
    right = stack_items(_items(root), bands=["nir"], storage=s3_bucket.storage)
    assert int(right.max()) > 0


def test_right_key_first_then_wrong_key_is_refused(s3_bucket: Bucket, scenes: dict[str, bytes]) -> None:
    """One storage's handles and GDAL's cached blocks never answer for another's."""
    root = _upload(s3_bucket, scenes, "stack-switch")
    right = stack_items(_items(root), bands=["red"], storage=s3_bucket.storage)
    assert int(right.max()) > 0
    wrong = stack_items(_items(root), bands=["red"], storage=s3_bucket.storage.with_options(secret=WRONG))
    with pytest.raises(ReadError, match="access denied"):
        wrong.compute(scheduler="synchronous")  # this thread holds the right storage's handles


def test_missing_object_names_the_item_and_asset(gcs_bucket: Bucket, scenes: dict[str, bytes]) -> None:
    root = _upload(gcs_bucket, scenes, "stack-missing")
    items = _items(root)
    items[1]["assets"]["red"]["href"] = f"{root}/nowhere/red.tif"
    cube = stack_items(items, bands=["red"], storage=gcs_bucket.storage)
    with pytest.raises(ReadError) as info:
        cube.compute()
    text = str(info.value)
    assert "asset 'red' of STAC item 'scene-b'" in text
    assert "'gs://gcs-bucket/stack-missing/nowhere/red.tif'" in text


def test_the_stage_passes_its_storage_and_describes_only_its_location(
    s3_bucket: Bucket, scenes: dict[str, bytes], local: Path
) -> None:
    root = _upload(s3_bucket, scenes, "stack-stage")
    [cube] = tp.from_items([_items(root)]).stack_stac(bands=["red"], storage=s3_bucket.storage)
    np.testing.assert_array_equal(cube.values, stack_items(_items(str(local)), bands=["red"]).values)
    stage = StackSTAC(tp.from_items([]), bands=["red"], storage=s3_bucket.storage)
    other_key = StackSTAC(
        tp.from_items([]), bands=["red"], storage=s3_bucket.storage.with_options(secret=WRONG)
    )
    elsewhere = StackSTAC(
        tp.from_items([]),
        bands=["red"],
        storage=s3_bucket.storage.with_options(s3_endpoint="http://127.0.0.1:1"),
    )
    description = json.dumps(describe_stage(stage))
    for text in (repr(stage), str(stage), description):
        assert S3_SECRET not in text
        assert S3_KEY_ID not in text or "key_id" not in text
    assert "storage_location" in description
    assert stage.storage is s3_bucket.storage
    assert describe_stage(other_key) == describe_stage(stage)  # a new key keeps the cache
    assert describe_stage(elsewhere) != describe_stage(stage)  # another server does not
    assert "storage" not in json.dumps(describe_stage(StackSTAC(tp.from_items([]), bands=["red"])))


def test_storage_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"storage must be None or a terrapipe\.Storage"):
        stack_items(_items("/nowhere"), bands=["red"], storage={"secret": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="storage must be"):
        tp.from_items([]).stack_stac(storage="s3://bucket")  # type: ignore[arg-type]


def test_the_cube_pickles_without_credentials_in_its_repr(
    s3_bucket: Bucket, scenes: dict[str, bytes]
) -> None:
    import pickle

    root = _upload(s3_bucket, scenes, "stack-pickle")
    cube = stack_items(_items(root), bands=["red"], storage=s3_bucket.storage)
    again = pickle.loads(pickle.dumps(cube))  # a dask worker's copy reads with the same storage
    np.testing.assert_array_equal(again.values, cube.values)
    assert S3_SECRET not in repr(cube)
    assert copy.deepcopy(cube).shape == cube.shape


def test_reads_in_flight_at_once_through_every_store(
    bucket: Bucket, scenes: dict[str, bytes], local: Path
) -> None:
    """dask's threads and the reader pool read several chunks at once from S3, Azure and GCS.

    The S3 and GCS servers answer through ``ConformingProxy``, in a process of its own: on a
    thread of the test process, a GDAL read holding the GIL while it waited for the proxy stalled
    it (now and then, for minutes), so these tests read one chunk at a time until it moved.
    """
    import dask

    root = _upload(bucket, scenes, "stack-in-flight")
    want = stack_items(_items(str(local)), bands=list(BANDS), chunks={"x": 32, "y": 32}).values
    cube = stack_items(_items(root), bands=list(BANDS), chunks={"x": 32, "y": 32}, storage=bucket.storage)
    with dask.config.set(scheduler="threads", num_workers=6):
        np.testing.assert_array_equal(cube.values, want)
    np.testing.assert_array_equal(cube.values, want)  # the default scheduler, the reader pool


def test_every_reader_thread_opens_with_the_storage(
    azure_bucket: Bucket, scenes: dict[str, bytes], local: Path
) -> None:
    """dask's threads and the reader pool each open the assets themselves, inside the storage's environment."""
    import dask

    root = _upload(azure_bucket, scenes, "stack-threads")
    want = stack_items(_items(str(local)), bands=list(BANDS), chunks={"x": 32, "y": 32}).values
    cube = stack_items(
        _items(root), bands=list(BANDS), chunks={"x": 32, "y": 32}, storage=azure_bucket.storage
    )
    with dask.config.set(scheduler="threads", num_workers=6):
        np.testing.assert_array_equal(cube.values, want)
    sas = azure_account_sas("rl")
    items = _items(f"{azure_bucket.server.endpoint}/data/stack-threads")
    for item in items:  # SAS URLs over HTTPS: a chunk's bands are read at once on the reader pool
        for asset in item["assets"].values():
            asset["href"] += f"?{sas}"
    cube = stack_items(items, bands=list(BANDS), chunks={"x": 32, "y": 32})
    with dask.config.set(scheduler="threads", num_workers=6):
        np.testing.assert_array_equal(cube.values, want)
