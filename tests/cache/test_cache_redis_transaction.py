"""RedisStore's write of an entry in parts: one WATCH/MULTI/EXEC transaction, its parts sent one at a time.

Cases: every value of the entry (parts and manifest) gets the store's time
to live, or none; a key changed by another client between ``WATCH`` and
``EXEC`` makes the transaction apply nothing and the write try again; a
writer that loses three times gives up (``False``) and leaves nothing of
its own, the other writer's value in place; the pooled connection is
usable afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import redis as redis_py

from terrapipe.cache import RedisStore
from terrapipe.cache.codec import encode_value
from terrapipe.cache.parts import split_parts, unpack_manifest, write_parts

KEY = "entry"


def entry_parts() -> Any:
    elements = [encode_value(np.full(1000, i, dtype=np.uint8)) for i in range(7)]
    parts = split_parts(KEY, elements, part_bytes=2000)
    assert parts is not None
    assert len(parts) == 4
    return parts


@pytest.fixture
def other(redis_store: RedisStore) -> Any:
    """Another client of the same server (a second writer)."""
    client = redis_py.Redis.from_url(redis_store.url)
    yield client
    client.close()


def names(store: RedisStore) -> set[str]:
    return set(store.keys())


@pytest.mark.parametrize("ttl", [None, 30.0])
def test_every_part_and_the_manifest_get_the_time_to_live(redis_store: RedisStore, ttl: float | None) -> None:
    store = RedisStore(redis_store.url, prefix=redis_store.prefix, ttl=ttl)
    parts = entry_parts()
    assert write_parts(store, KEY, parts)
    assert names(store) == {KEY, *parts.names}
    assert [info.key for info in unpack_manifest(store.get(KEY) or b"", KEY)] == parts.names
    for name in names(store):
        left = store.ttl_of(name)
        assert left is None if ttl is None else (left is not None and 0 < left <= ttl)


def test_a_key_changed_after_watch_applies_nothing_and_the_write_tries_again(
    redis_store: RedisStore, other: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = RedisStore._decoded
    tries = []

    def meanwhile(self: RedisStore, value: bytes | None, key: str) -> bytes | None:
        tries.append(value)
        if len(tries) == 1:  # another client writes the key between our WATCH and our EXEC
            other.set(self.prefix + KEY, b"another writer's value")
        return decoded(self, value, key)

    monkeypatch.setattr(RedisStore, "_decoded", meanwhile)
    parts = entry_parts()
    assert write_parts(redis_store, KEY, parts)
    assert tries == [None, b"another writer's value"]  # the second try read what the first lost to
    assert names(redis_store) == {KEY, *parts.names}
    assert [info.key for info in unpack_manifest(redis_store.get(KEY) or b"", KEY)] == parts.names


def test_a_writer_that_loses_three_times_gives_up_and_leaves_nothing(
    redis_store: RedisStore, other: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = RedisStore._decoded

    def always(self: RedisStore, value: bytes | None, key: str) -> bytes | None:
        other.incr(self.prefix + KEY)  # changed on every try
        return decoded(self, value, key)

    monkeypatch.setattr(RedisStore, "_decoded", always)
    assert not write_parts(redis_store, KEY, entry_parts())
    assert names(redis_store) == {KEY}
    assert other.get(redis_store.prefix + KEY) == b"3"  # the other writer's value, untouched
    monkeypatch.undo()
    assert write_parts(redis_store, KEY, entry_parts())  # the connection went back to the pool clean
    assert len(names(redis_store)) == 5
