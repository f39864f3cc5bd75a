"""Zarr writes at an http(s) URL are refused before any request (B1, eec8fca): also behind an fsspec chain?

``ZarrStore`` takes fsspec URLs, chained ones included (``simplecache::memory://...`` works). The
refusal (``zarr_object_store.refuse_http_writes``) looks at the URL's scheme only, so
``simplecache::https://h/c.zarr?token=...`` goes on to fsspec's HTTP filesystem: aiohttp's bare
``RuntimeError('Timeout context manager should be used inside a task')`` on the first write, where the
plain URL gets the named refusal. No server is needed: the port is closed.
"""

from __future__ import annotations

import socket

import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError

pytest.importorskip("zarr")
pytest.importorskip("fsspec")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


CHAINS = ["simplecache::", "blockcache::", "filecache::"]


@pytest.mark.parametrize("chain", CHAINS)
def test_a_cache_at_a_chained_http_url_refuses_writes(chain: str) -> None:
    from terrapipe.cache.zarr_store import ZarrStore

    url = f"{chain}http://127.0.0.1:{_closed_port()}/cache.zarr?token=s3cret-token"
    cache = ZarrStore(url)
    with pytest.raises(InvalidArgumentError) as info:
        cache.put("k", b"abc")
    assert "s3cret" not in str(info.value)
    assert "read-only" in str(info.value)


def test_materialize_to_a_chained_http_url_is_refused_before_the_pipe_runs() -> None:
    ran: list[int] = []
    pipe = tp.from_items(range(3)).map(lambda i: ran.append(i) or {"x": i})
    url = f"simplecache::http://127.0.0.1:{_closed_port()}/run.zarr?token=s3cret-token"
    with pytest.raises(InvalidArgumentError) as info:
        tp.dist.materialize(pipe, url, partitions=1)
    assert "s3cret" not in str(info.value)
    assert ran == []


def test_a_chained_memory_url_still_writes() -> None:
    from terrapipe.cache.zarr_store import ZarrStore

    cache = ZarrStore("simplecache::memory://hostile-wave4b/cache.zarr")
    cache.put("k", b"abc")
    assert cache.get("k") == b"abc"


@pytest.mark.parametrize("scheme", ["HTTP", "Https", "http"])
def test_any_spelling_of_the_scheme_is_refused(scheme: str) -> None:
    from terrapipe.cache.zarr_store import ZarrStore

    cache = ZarrStore(f"{scheme}://127.0.0.1:{_closed_port()}/cache.zarr?token=s3cret-token")
    with pytest.raises(InvalidArgumentError) as info:
        cache.put("k", b"abc")
    assert "s3cret" not in str(info.value)


SAS = "?sv=2021-08-06&sr=c&sp=racwdl&sig=s3cret-signature"


def test_a_sample_store_at_an_azure_sas_url_never_shows_the_signature() -> None:
    from terrapipe.dist.store import SampleStore

    url = f"http://127.0.0.1:{_closed_port()}/account/container/run.zarr{SAS}"  # Azurite's URL form
    assert "s3cret" not in repr(SampleStore(url))
    ran: list[int] = []
    pipe = tp.from_items(range(2)).map(lambda i: ran.append(i) or {"x": i})
    with pytest.raises(tp.TerrapipeError) as info:
        tp.dist.materialize(pipe, url, partitions=1)
    assert "s3cret" not in str(info.value), str(info.value)
