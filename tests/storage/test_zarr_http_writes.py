"""Zarr writes at an ``http(s)://`` URL are refused before any request (#19: one HTTP transport, urllib3).

Before, a ``ZarrStore`` cache at an HTTP URL wrote through fsspec's HTTP
filesystem (aiohttp: a bare ``ClientResponseError`` naming the URL, query and
signature included), ``zarr_object_store(url, read_only=False)`` through
obstore's WebDAV client (a ``ReadError`` "cannot list"), and ``materialize``
read through fsspec first (a bare 403). No server a Zarr store is written to
takes plain HTTP writes; buckets are written through their own APIs and an
Azure container SAS URL as Azure blobs (the storage matrix's write cells).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError

pytest.importorskip("zarr")


@pytest.fixture
def server(range_server_session) -> Iterator:
    with range_server_session.cleared() as cleared:
        yield cleared


QUERIES = ["", "?token=s3cret-token", "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=s3cret-token"]


def _refused(info: pytest.ExceptionInfo[InvalidArgumentError], url: str) -> None:
    message = str(info.value)
    assert url.split("?")[0] in message, message
    assert "s3cret" not in message, message
    assert "read-only" in message, message


@pytest.mark.parametrize("query", QUERIES, ids=["plain", "token", "presigned"])
def test_a_cache_at_an_http_url_refuses_writes_before_any_request(server, query) -> None:
    from terrapipe.cache.zarr_store import ZarrStore

    url = f"{server.url}/cache-{len(query)}{query}"
    cache = ZarrStore(url)
    for write in (lambda: cache.put("k", b"abc"), lambda: cache.swap("k", b"abc"), lambda: cache.delete("k")):
        with pytest.raises(InvalidArgumentError) as info:
            write()
        _refused(info, url)
    assert server.stats()["total_requests"] == 0


@pytest.mark.parametrize("query", QUERIES, ids=["plain", "token", "presigned"])
def test_a_zarr_object_store_at_an_http_url_is_read_only(server, query) -> None:
    from terrapipe.io.zarr_object_store import zarr_object_store

    url = f"{server.url}/cube.zarr{query}"
    with pytest.raises(InvalidArgumentError) as info:
        zarr_object_store(url, read_only=False)
    _refused(info, url)
    assert server.stats()["total_requests"] == 0


@pytest.mark.parametrize("query", QUERIES, ids=["plain", "token", "presigned"])
def test_materialize_to_an_http_url_is_refused_before_the_pipe_runs(server, query) -> None:
    ran = []
    pipe = tp.from_items(range(3)).map(lambda i: ran.append(i) or {"x": i})
    url = f"{server.url}/run.zarr{query}"
    with pytest.raises(InvalidArgumentError) as info:
        tp.dist.materialize(pipe, url, partitions=1)
    _refused(info, url)
    assert ran == []
    assert server.stats()["total_requests"] == 0
