"""Threads that use one RedisStore for the first time at once share one client, and none loses a write.

Each thread that found no client made one and put it on the store; the client
it replaced was collected, and redis-py closes a collected client's
connections, so another thread's transaction on one of them failed with
``Bad file descriptor`` (a ``CacheError`` from a write that should have
worked: test_cache_stale_parts's four writers of one key, 1 run in 5). Many
fresh stores here, each first used by eight threads at once, through every
entry point that makes the client or the reader.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest

from terrapipe.cache import RedisStore
from tests.servers.redis_server import RedisServer

THREADS = 8


def _at_once(store: RedisStore, work: Callable[[RedisStore, int], None]) -> list[BaseException]:
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(30)
            work(store, n)
        except BaseException as err:  # reported by the test
            errors.append(err)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def _replace(store: RedisStore, n: int) -> None:
    for round_ in range(5):
        assert store.replace_parts(f"k{n % 2}", f"value {n} {round_}".encode() * 50) in (True, False)


def _put_get(store: RedisStore, n: int) -> None:
    for round_ in range(5):
        store.put(f"k{n}", f"v{n}-{round_}".encode())
        assert bytes(store.get_buffer(f"k{n}")) == f"v{n}-{round_}".encode()


@pytest.mark.parametrize("work", [_replace, _put_get], ids=["replace_parts", "put+get"])
def test_threads_using_a_new_store_at_once_share_one_client(
    redis_server: RedisServer, work: Callable[[RedisStore, int], None]
) -> None:
    for _ in range(20):
        store = RedisStore(redis_server.url, prefix=f"first-use-{uuid.uuid4().hex[:10]}:", compress="lz4")
        try:
            errors = _at_once(store, work)
            assert not errors, errors[:2]
        finally:
            store.clear()


def test_a_store_makes_one_client_and_one_reader(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, prefix=f"first-use-{uuid.uuid4().hex[:10]}:")
    made: list[int] = []

    def work(s: RedisStore, n: int) -> None:
        made.append(id(s.client))
        s.get_buffer("absent")

    try:
        assert not _at_once(store, work)
        assert len(set(made)) == 1
        assert store.client is store.client
    finally:
        store.clear()
