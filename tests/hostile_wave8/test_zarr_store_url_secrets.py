"""A ZarrStore URL's user and password never show in an error or its traceback (cache/zarr_store.py).

Promised (DESIGN's trust rules): a cache store at ``s3://key:secret@bucket/cache`` (fsspec's form for
credentials in the URL), ``ftp://user:password@host/...`` and the like shows ``scheme://host/path``
only, in its repr and in the CacheError raised when the store cannot be opened (a missing fsspec
back-end, a refused connection), the chained cause included. Before, the open error repeated the
URL whole. No server is needed: port 1 on 127.0.0.1 refuses, and a missing back-end fails at once.
"""

from __future__ import annotations

import traceback

import pytest

import terrapipe as tp
from terrapipe.cache import ZarrStore

SECRET = "h8-Zarr-s3cret"
KEY = "0123456789abcdef" * 4  # as the cache stage makes them
URLS = [
    f"s3://AKIAH8KEY:{SECRET}@bucket/cache",
    f"gs://user:{SECRET}@bucket/cache",
    f"ftp://user:{SECRET}@127.0.0.1:1/cache",
    f"sftp://user:{SECRET}@127.0.0.1:1/cache",
    f"webdav://user:{SECRET}@127.0.0.1:1/cache",
    f"http://user:{SECRET}@127.0.0.1:1/cache",
]


@pytest.mark.parametrize("url", URLS, ids=lambda u: u.split(":", 1)[0])
@pytest.mark.parametrize("operation", ["get", "put", "contains"])
def test_a_store_that_cannot_open_shows_no_secret(url: str, operation: str) -> None:
    store = ZarrStore(url)
    assert SECRET not in repr(store)
    calls = {
        "get": lambda: store.get(KEY),
        "put": lambda: store.put(KEY, b"entry"),
        "contains": lambda: KEY in store,
    }
    with pytest.raises(tp.TerrapipeError) as caught:
        calls[operation]()
    assert SECRET not in "".join(traceback.format_exception(caught.value))
