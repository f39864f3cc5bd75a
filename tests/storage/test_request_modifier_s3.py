"""A request modifier that presigns each request, against an S3 server that checks every signature.

``Storage(request_modifier=...)`` is how a user signs requests terrapipe makes
(a token service, a presigner). Here the hook presigns each reader request
for the real S3 server (``rclone serve s3``) with obstore's signer: the
server refuses the same URL unsigned, accepts it signed, and refuses a
tampered signature, whose value never appears in the error.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

import pytest

from terrapipe.core.errors import ReadError
from terrapipe.io import http_reads, object_store
from terrapipe.io.object_file import HTTPFile
from terrapipe.io.storage import Storage
from tests.storage.conftest import Bucket

obs = pytest.importorskip("obstore")
pytestmark = pytest.mark.timeout(60)


class Presigner:
    """Replace each request's URL by a URL presigned for its method and key (as a signing service would)."""

    def __init__(self, bucket: Bucket, tamper: bool = False) -> None:
        self.store = bucket.storage.store_for(f"{bucket.root}/")
        self.prefix = f"/{bucket.root.split('://', 1)[1]}/"
        self.tamper = tamper
        self.signatures: list[str] = []

    def __call__(self, request: Any) -> None:
        key = urllib.parse.unquote(urllib.parse.urlsplit(request.url).path).removeprefix(self.prefix)
        signed = obs.sign(self.store, request.method, key, dt.timedelta(minutes=5))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(signed).query)
        signature = query["X-Amz-Signature"][0]
        if self.tamper:
            signed = signed.replace(signature, signature[::-1])
        self.signatures.append(signature)
        request.url = signed


def test_a_presigning_modifier_reads_a_private_bucket_over_http(s3_bucket: Bucket, stac_folder: Any) -> None:
    url = f"{s3_bucket.server.endpoint}/private/stac/catalog.json"  # path-style, no credentials
    expected = (stac_folder / "catalog.json").read_bytes()
    with pytest.raises(ReadError, match=r"HTTP 400|access denied"):
        http_reads.read(url, Storage(retries=0))  # unsigned: refused (rclone answers 400)
    signer = Presigner(s3_bucket)
    storage = Storage(request_modifier=signer)
    assert http_reads.read(url, storage).body == expected
    assert object_store.get(url, storage, range=(5, 50)) == expected[5:50]
    handle = HTTPFile(url, storage)
    assert handle.read() == expected
    assert object_store.size(url, storage) == len(expected)  # a HEAD, signed for HEAD
    assert len(signer.signatures) == 5  # one per request: GET, GET, GET (open), GET (read), HEAD
    assert len(set(signer.signatures)) >= 2


def test_a_tampered_signature_is_access_denied_and_never_shown(s3_bucket: Bucket) -> None:
    url = f"{s3_bucket.server.endpoint}/private/stac/catalog.json"
    signer = Presigner(s3_bucket, tamper=True)
    with pytest.raises(ReadError, match="access denied") as info:
        http_reads.read(url, Storage(request_modifier=signer, retries=1, backoff=0.01))
    text = str(info.value)
    assert "X-Amz" not in text
    assert all(s not in text and s[::-1] not in text for s in signer.signatures)
    assert len(signer.signatures) == 1  # a refused signature is not retried as a network fault
