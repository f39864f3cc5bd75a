"""A Redis cache URL's user, password and query never show in a RedisStore's repr or any of its errors.

Siblings of tests/hostile_wave7/test_redis_url_secrets.py (repr, a refused read): a refused write and
listing, an invalid URL, and a Cache stage's text. Port 1 on 127.0.0.1 refuses the connection.
"""

from __future__ import annotations

import pytest

import terrapipe as tp
from terrapipe.cache.redis_store import RedisStore

pytest.importorskip("redis")

SECRET = "Pa55-s3cr3t-word"
URLS = [
    f"redis://user:{SECRET}@127.0.0.1:1/0",
    f"redis://{SECRET}:{SECRET}@127.0.0.1:1/0",
    f"rediss://:{SECRET}@127.0.0.1:1/2",
    f"redis://127.0.0.1:1/0?password={SECRET}&socket_timeout=1",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("call", ["get", "put", "keys", "delete"])
def test_a_refused_connection_names_the_host_not_the_secret(url: str, call: str) -> None:
    store = RedisStore(url, timeout=2)
    calls = {
        "get": lambda: store.get("k"),
        "put": lambda: store.put("k", b"v"),
        "keys": lambda: list(store.keys()),
        "delete": lambda: store.delete("k"),
    }
    with pytest.raises(tp.TerrapipeError) as caught:
        calls[call]()
    assert SECRET not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


@pytest.mark.parametrize("url", URLS)
def test_a_store_and_its_cache_stage_show_no_secret(url: str) -> None:
    store = RedisStore(url)
    assert SECRET not in repr(store)
    assert SECRET not in str(store)
    assert "127.0.0.1:1" in repr(store)
    assert SECRET not in repr(tp.from_items(["a"]).cache_point().map(str.upper).cache(store))


def test_an_invalid_url_names_no_secret() -> None:
    store = RedisStore(f"redis://user:{SECRET}@127.0.0.1:notaport/0")
    with pytest.raises(tp.TerrapipeError) as caught:
        store.get("k")
    assert SECRET not in str(caught.value)
