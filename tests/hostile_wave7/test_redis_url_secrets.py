"""A Redis cache URL's password never shows in a repr, an error or a stage's text (cache/redis_store.py, P's).

DESIGN's trust rules: reprs, errors, logs, stats, cache keys show ``scheme://host/path`` only. A
``redis://user:password@host`` URL (the form Redis clients, Heroku and Upstash hand out) is kept as given.
No server is needed: port 1 on 127.0.0.1 refuses the connection.
"""

from __future__ import annotations

import pytest

import terrapipe as tp
import terrapipe.cache
from terrapipe.cache.redis_store import RedisStore

SECRET = "s3cr3t-h7-Pa55w0rd"
URLS = {
    "user": f"redis://user:{SECRET}@127.0.0.1:1/0",
    "password only": f"redis://:{SECRET}@127.0.0.1:1",
    "tls": f"rediss://default:{SECRET}@127.0.0.1:1/2",
    "query": f"redis://127.0.0.1:1/0?password={SECRET}",
}


@pytest.mark.parametrize("url", list(URLS.values()), ids=list(URLS))
def test_a_redis_store_s_repr_hides_its_password(url: str) -> None:
    store = RedisStore(url)
    assert SECRET not in repr(store)
    assert SECRET not in repr(tp.from_items([1, 2]).cache_point().map(abs).cache(store))


def test_a_tls_redis_error_hides_its_password() -> None:
    with pytest.raises(tp.TerrapipeError) as caught:
        RedisStore(URLS["tls"]).get("k")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("name", ["user", "password only", "query"])
def test_a_plain_redis_error_hides_its_password(name: str) -> None:
    """The CacheError of a refused connection names redis://127.0.0.1:1/... only (holds)."""
    with pytest.raises(tp.TerrapipeError) as caught:
        RedisStore(URLS[name]).get("k")
    assert SECRET not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)
