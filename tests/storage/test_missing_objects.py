"""A missing object on S3, Azure or GCS read through GDAL is worded as the byte layer words it (#19).

GDAL passes a store's error reply on as its text: the S3 server's XML
(``<?xml ...><Error><Code>NoSuchKey</Code>...``, where it has no
``<Message>``), AWS's ``The specified key does not exist.``, or ``HTTP
response code: 404``. The user reads ``no such object (HTTP 404, NoSuchKey);
check the bucket and the key, and the endpoint of tp.Storage``, as from
:mod:`terrapipe.io.object_store`, never the XML, never a credential; and the
store's final answer is not retried.
"""

from __future__ import annotations

import re
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp
import terrapipe.io.raster_array as raster_array
from terrapipe.core.errors import ReadError
from terrapipe.io.object_store import get
from terrapipe.io.raster import open_raster
from terrapipe.io.read_errors import explain, read_error, store_error_code
from terrapipe.stac.stack import stack_items
from tests.servers.object_stores import AZURITE_KEY, S3_SECRET
from tests.storage.conftest import Bucket
from tests.storage.test_stack_stac_storage import _items, _upload
from tests.storage.test_stack_stac_storage import scenes as scenes  # a fixture

BUCKET_HINT = "check the bucket and the key, and the endpoint of tp.Storage"


def _wrong_bucket(bucket: Bucket) -> str:
    scheme, name = bucket.root.split("://")
    return f"{scheme}://no-such-{name}"


def _clean(err: BaseException) -> None:
    """No XML of the store and no credential in the message; no credential anywhere in the chain."""
    assert "<" not in str(err), str(err)
    assert "xml" not in str(err).lower(), str(err)
    chain = "".join(traceback.format_exception(err))
    for secret in (S3_SECRET, AZURITE_KEY):
        assert secret not in chain


class _Sleeps:
    """Stands in for raster_array's ``time``: records each back-off before a new try."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture(scope="module")
def cog_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("missing-objects") / "a.tif"
    profile = {"driver": "COG", "width": 64, "height": 64, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32631", "transform": from_origin(600000, 5000000, 10, 10)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(64 * 64, dtype=np.uint32).reshape(1, 64, 64).astype(np.uint8))
    return path.read_bytes()


@pytest.mark.parametrize("missing", ["key", "bucket"])
@pytest.mark.parametrize("name", ["a.tif", "a.gpkg", "a.nc"])
def test_a_missing_raster_on_a_bucket_is_no_such_object(
    bucket: Bucket, missing: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = bucket.root if missing == "key" else _wrong_bucket(bucket)
    url = f"{root}/missing-objects/{name}"
    sleeps = _Sleeps()
    monkeypatch.setattr(raster_array, "time", sleeps)
    with pytest.raises(ReadError) as info:
        _ = open_raster(url, storage=bucket.storage).values
    text = str(info.value)
    assert text.startswith(f"cannot open raster '{url}': no such object (HTTP 404"), text
    assert text.endswith(BUCKET_HINT), text
    _clean(info.value)
    assert sleeps.slept == []  # the store's answer is final: not retried


def test_the_raster_reader_words_it_as_the_byte_layer(bucket: Bucket) -> None:
    url = f"{bucket.root}/missing-objects/same.tif"
    with pytest.raises(ReadError) as raster:
        list(tp.from_items([url]).read_raster(storage=bucket.storage))
    with pytest.raises(ReadError) as byte_layer:
        get(url, bucket.storage)

    def words(err: pytest.ExceptionInfo[ReadError]) -> str:  # cause and hint; the store's code named or not
        said = str(err.value).splitlines()[0].split("': ", 1)[1]
        return re.sub(r"\(HTTP 404(, \w+)?\)", "(HTTP 404)", said)

    assert words(raster) == words(byte_layer)
    _clean(raster.value)


def test_a_missing_stac_asset_on_a_bucket_is_no_such_object(
    bucket: Bucket,
    scenes: dict[str, bytes],
) -> None:
    root = _upload(bucket, scenes, "missing-asset")
    items = _items(root)
    items[1]["assets"]["red"]["href"] = f"{root}/nowhere/red.tif"
    cube = stack_items(items, bands=["red"], storage=bucket.storage)
    with pytest.raises(ReadError) as info:
        cube.compute()
    text = str(info.value)
    assert f"asset 'red' of STAC item 'scene-b' at '{root}/nowhere/red.tif': no such object (HTTP 404" in text
    assert BUCKET_HINT in text
    _clean(info.value)


def test_a_present_object_still_reads(bucket: Bucket, cog_bytes: bytes) -> None:
    bucket.put("missing-objects/present.tif", cog_bytes)
    da = open_raster(f"{bucket.root}/missing-objects/present.tif", storage=bucket.storage)
    assert da.shape == (1, 64, 64)


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ('<?xml version="1.0"?>\n<Error>\n  <Code>NoSuchKey</Code>\n  <Resource>k</Resource>\n</Error>',
         "no such object (HTTP 404, NoSuchKey)"),
        ("<Error><Code>NoSuchBucket</Code><Message>gone</Message></Error>", "no such object (HTTP 404, NoSuchBucket)"),
        ("The specified key does not exist.", "no such object (HTTP 404, NoSuchKey)"),
        ("The specified bucket does not exist", "no such object (HTTP 404, NoSuchBucket)"),
        ("The specified blob does not exist.", "no such object (HTTP 404, BlobNotFound)"),
        ("<Error><Code>ContainerNotFound</Code></Error>", "no such object (HTTP 404, ContainerNotFound)"),
        ("HTTP response code: 404", "no such object (HTTP 404)"),
        ("/vsis3/b/a.tif: No such file or directory", "no such object"),
        ("<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
         "the store is busy (SlowDown)"),
        ("<Error><Code>InternalError</Code></Error>", "the store failed (InternalError)"),
        ("<Error><Code>AccessDenied</Code></Error>", "access denied (AccessDenied)"),
        ("<Error><Code>InvalidObjectState</Code><Message>archived</Message></Error>",
         "the store refused the request (InvalidObjectState: archived)"),
    ],
)  # fmt: skip
def test_a_store_reply_is_said_in_words(text: str, cause: str) -> None:
    said, hint = explain(RuntimeError(text), "s3://b/a.tif")
    assert said == cause
    assert "<" not in said
    assert hint
    message = str(read_error("s3://b/a.tif", "cannot open raster", RuntimeError(text)))
    assert "<" not in message


def test_the_hint_follows_the_path() -> None:
    missing = RuntimeError("HTTP response code: 404")
    assert explain(missing, "gs://b/a.tif")[1] == BUCKET_HINT
    assert explain(missing, "/vsiaz/c/a.tif")[1] == BUCKET_HINT
    assert explain(missing, "https://h/a.tif?sig=x") == ("no such object (HTTP 404)", "check the URL")
    assert explain(missing, "/vsicurl/https://h/a.tif")[1] == "check the URL"
    local = FileNotFoundError("a.tif: No such file or directory")
    assert explain(local, "a.tif") == ("no such file or directory", "check the path or URL")
    assert explain(local, Path("a.tif")) == ("no such file or directory", "check the path or URL")  # type: ignore[arg-type]
    assert store_error_code("HTTP response code: 503") is None
