"""Parts a rewrite leaves behind (``terrapipe.cache.parts``): never read, and removed, on every store.

An entry stored as parts is a manifest plus parts named by the write that
made them (``<key>.<write>.<n>``). Cases, on each store kind (memory, local
Zarr folder, Zarr at a URL, Redis, an S3 bucket): a recomputed entry that
comes out in fewer parts (or as one value, or more parts again) leaves only
its own parts; a part of another write, even one with the same elements, is
never read as part of this one; an entry of the first parts layout (parts
named ``<key>.<n>``) is recomputed and its parts removed; a writer that crashed before its manifest
leaves parts that the next write removes once they are older than any live
writer's (``STALE_AFTER``), and a Redis write cut off mid-way leaves
nothing; writers of one key at once leave one entry, whole, and only its
parts.
"""

from __future__ import annotations

import json
import struct
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
import terrapipe.cache.parts as parts_module
from terrapipe.cache import CacheStore, MemoryLRU, RedisStore, ZarrStore
from terrapipe.cache.codec import encode_value
from terrapipe.cache.entry import crc32, entry_digest, pack_entry
from terrapipe.cache.parts import STALE_AFTER, is_manifest, new_write_id, pack_parts, unpack_manifest
from terrapipe.core.errors import CacheError
from tests.cache.conftest import make_store
from tests.storage.conftest import Bucket, _no_cloud_environment, s3_bucket, stac_folder  # noqa: F401

zarr = pytest.importorskip("zarr")
STORES = ("memory", "zarr", "zarr-url", "redis", "s3")
SIZE = 1000  # bytes per element; parts of 3 elements
#: Elements each input yields now (a module global: changing it does not change the key, as a stage that
#: is not deterministic would not).
COUNT = {"n": 10}
#: Per thread, elements the input yields (the concurrent writers).
PER_THREAD: dict[int, int] = {}


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts_module, "PART_BYTES", 3 * SIZE)
    COUNT["n"] = 10


def build(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A fresh store of one kind (Redis on the session server, S3 on the session bucket server)."""
    if kind == "s3":
        bucket: Bucket = request.getfixturevalue("s3_bucket")
        return ZarrStore(f"{bucket.root}/caches/{uuid.uuid4().hex[:8]}.zarr", storage=bucket.storage)
    url = request.getfixturevalue("redis_server").url if kind == "redis" else None
    return make_store(kind, tmp_path, url)


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A store of the kind the test names (indirect parameter; Redis keys removed afterwards)."""
    out = build(request.param, request, tmp_path)
    yield out
    if isinstance(out, RedisStore):
        out.clear()


def make(n: int) -> list[np.ndarray[Any, Any]]:
    count = PER_THREAD.get(threading.get_ident(), COUNT["n"])
    return [np.full(SIZE, (10 * n + i + 7 * count) % 256, dtype=np.uint8) for i in range(count)]


def expected(n: int, count: int) -> list[int]:
    return [(10 * n + i + 7 * count) % 256 for i in range(count)]


def pipe_of(store: CacheStore, *, policy: str = "read-write") -> Any:
    return tp.from_items([1]).cache_point().flatmap(make).cache(store, policy=policy)


def firsts(elements: list[Any]) -> list[int]:
    assert all(len(a) == SIZE and (a == a[0]).all() for a in elements)
    return [int(a[0]) for a in elements]


def part_names(store: CacheStore, key: str) -> list[str]:
    return [info.key for info in unpack_manifest(store.get(key) or b"", key)]


def stored(store: CacheStore) -> set[str]:
    return set(store.keys())


@pytest.mark.parametrize("store", STORES, indirect=True)
def test_a_rewrite_leaves_only_its_own_parts_as_the_entry_shrinks_and_grows(store: CacheStore) -> None:
    pipe = pipe_of(store)
    assert firsts(list(pipe)) == expected(1, 10)
    key = pipe.key_of(1)
    first = part_names(store, key)
    assert len(first) == 4
    assert stored(store) == {key, *first}
    for count, parts in ((4, 2), (2, 0), (12, 4), (7, 3)):  # fewer parts, one value, more, fewer
        COUNT["n"] = count
        refresh = pipe_of(store, policy="refresh")
        assert firsts(list(refresh)) == expected(1, count)
        assert refresh.stats.writes == 1
        names = part_names(store, key) if parts else []
        assert len(names) == parts
        assert stored(store) == {key, *names}, count  # nothing of an earlier write is left
        if not parts:
            assert not is_manifest(store.get(key) or b"")
        hit = pipe_of(store)
        assert firsts(list(hit)) == expected(1, count)
        assert (hit.stats.hits, hit.stats.corrupt) == (1, 0)


@pytest.mark.parametrize("store", STORES, indirect=True)
def test_a_part_of_another_write_is_never_read_even_with_the_same_elements(store: CacheStore) -> None:
    pipe = pipe_of(store)
    list(pipe)
    key = pipe.key_of(1)
    older = {name: store.get(name) for name in part_names(store, key)}
    list(pipe_of(store, policy="refresh"))  # the same elements, written again
    newer = part_names(store, key)
    assert not set(older) & set(newer)  # another write: other names
    assert not set(older) & stored(store)  # and the older parts are gone
    for index in (0, 3):
        old_blob = list(older.values())[index]
        assert old_blob is not None
        store.put(newer[index], old_blob)  # the same elements, the same size, packed for the other write
        again = pipe_of(store)
        assert firsts(list(again)) == expected(1, 10)
        assert (again.stats.corrupt, again.stats.misses, again.stats.writes) == (1, 1, 1), index
        newer = part_names(store, key)
        assert stored(store) == {key, *newer}


def crashed_write(store: CacheStore, key: str, *, began: float, count: int = 12) -> list[str]:
    """Put the parts of a write of ``key`` that began at ``began``, and no manifest (a killed writer)."""
    other = [encode_value(np.full(SIZE, 200, dtype=np.uint8)) for _ in range(count)]
    _, parts = pack_parts(key, other, write=new_write_id(began))
    for name, blob in parts:
        assert store.put(name, blob)
    return [name for name, _ in parts]


@pytest.mark.parametrize("rewrite", [False, True])
@pytest.mark.parametrize("store", [k for k in STORES if k != "redis"], indirect=True)  # Redis: next test
def test_parts_a_crashed_writer_left_are_removed_by_the_next_write_never_read(
    store: CacheStore, rewrite: bool
) -> None:
    pipe = pipe_of(store)
    key = pipe.key_of(1)
    if rewrite:
        list(pipe)
    old = crashed_write(store, key, began=time.time() - 2 * STALE_AFTER)
    young = crashed_write(store, key, began=time.time(), count=5)  # a writer that may still be running
    assert set(old) <= stored(store)
    refresh = pipe_of(store, policy="refresh" if rewrite else "read-write")
    assert firsts(list(refresh)) == expected(1, 10)
    assert refresh.stats.writes == 1
    names = part_names(store, key)
    assert stored(store) == {key, *names, *young}  # the old crashed write's parts are gone
    hit = pipe_of(store)
    assert firsts(list(hit)) == expected(1, 10)
    assert (hit.stats.hits, hit.stats.corrupt) == (1, 0)
    later = time.time() + 2 * STALE_AFTER  # once the young writer cannot be running any more
    assert parts_module.remove_stale(store, key, keep=names, now=later) == len(young)
    assert stored(store) == {key, *names}


def test_a_redis_write_cut_off_mid_way_leaves_nothing_behind(
    redis_store: RedisStore, monkeypatch: Any
) -> None:
    import redis
    from redis.connection import Connection

    pipe = pipe_of(redis_store)
    key = pipe.key_of(1)
    send = Connection.send_packed_command

    sent = {"multi": False, "parts": 0}

    def cut(self: Any, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, bytes | str) else list(command)
        head = chunks[0].encode() if isinstance(chunks[0], str) else bytes(chunks[0])
        if b"MULTI" in head:
            sent["multi"] = True
        elif sent["multi"] and b"SET" in head:  # the parts are sent one at a time, each queued
            sent["parts"] += 1
            if sent["parts"] == 3:  # two parts queued by the server, half of the third sent
                send(self, chunks[: len(chunks) // 2], check_health)
                raise redis.exceptions.ConnectionError("cut off")
        return send(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(Connection, "send_packed_command", cut)
        with pytest.raises(CacheError, match="cannot write cache entry"):
            list(pipe)
    assert sent["parts"] == 3
    assert stored(redis_store) == set()  # no part, no manifest
    again = pipe_of(redis_store)
    assert firsts(list(again)) == expected(1, 10)
    assert stored(redis_store) == {key, *part_names(redis_store, key)}


@pytest.mark.parametrize("store", [k for k in STORES if k != "s3"], indirect=True)  # URL: zarr-url
def test_writers_of_one_key_at_once_leave_one_whole_entry_and_only_its_parts(store: CacheStore) -> None:
    counts = [10, 7, 4, 12]  # each writer computes other elements (a stage that is not deterministic)
    barrier = threading.Barrier(len(counts))
    errors: list[BaseException] = []

    def run(count: int) -> None:
        PER_THREAD[threading.get_ident()] = count
        try:
            barrier.wait(30)
            list(pipe_of(store))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)
        finally:
            PER_THREAD.pop(threading.get_ident(), None)

    threads = [threading.Thread(target=run, args=(c,)) for c in counts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    key = pipe_of(store).key_of(1)
    hit = pipe_of(store)
    got = firsts(list(hit))
    assert (hit.stats.hits, hit.stats.corrupt) == (1, 0)
    assert got in [expected(1, c) for c in counts]  # one writer's elements, whole
    names = part_names(store, key) if len(got) > 3 else []
    left = stored(store) - {key, *names}
    if isinstance(store, MemoryLRU | RedisStore) or (isinstance(store, ZarrStore) and store.path is not None):
        assert left == set()  # each replaced manifest's parts went with it
    else:  # at a URL two writers may both read the same manifest before their own: the next rewrite
        later = time.time() + 2 * STALE_AFTER  # after STALE_AFTER removes what the loser left
        parts_module.remove_stale(store, key, keep=names, now=later)
        assert stored(store) == {key, *names}


def format_1_entry(key: str, count: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A manifest and parts as the first layout wrote them (``TPCPART1``, parts named ``<key>.<n>``)."""
    encoded = [encode_value(np.full(SIZE, 100 + i, dtype=np.uint8)) for i in range(count)]
    groups = [encoded[i : i + 3] for i in range(0, count, 3)]
    parts = [(f"{key}.{i}", pack_entry(f"{key}.{i}", group)) for i, group in enumerate(groups)]
    table = [[len(g), len(blob), entry_digest(blob)] for g, (_, blob) in zip(groups, parts, strict=True)]
    text = json.dumps({"format": 1, "key": key, "parts": table}, separators=(",", ":")).encode()
    head = b"TPCPART1" + struct.pack("<Q", len(text)) + text
    return head + struct.pack("<I", crc32(head)), parts


@pytest.mark.parametrize("store", STORES, indirect=True)
def test_an_entry_of_the_first_parts_layout_is_recomputed_and_its_parts_removed(store: CacheStore) -> None:
    key = pipe_of(store).key_of(1)
    manifest, parts = format_1_entry(key, 10)
    for name, blob in parts:
        store.put(name, blob)
    store.put(key, manifest)
    pipe = pipe_of(store)
    assert firsts(list(pipe)) == expected(1, 10)  # never the old layout's elements
    assert (pipe.stats.corrupt, pipe.stats.writes) == (1, 1)
    assert stored(store) == {key, *part_names(store, key)}  # the old layout's parts went with it


class DictStore:
    """A store of the bare protocol (no swap, no listing, no transaction), refusing values when told to."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.refuse = False

    def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    def put(self, key: str, data: bytes) -> bool:
        if self.refuse:
            return False
        self.values[key] = bytes(data)
        return True

    def delete(self, key: str) -> None:
        self.values.pop(key, None)

    def keys(self) -> Any:
        return iter(list(self.values))

    def __contains__(self, key: object) -> bool:
        return key in self.values


def test_a_store_of_the_bare_protocol_loses_old_parts_on_a_rewrite_and_keeps_them_on_a_refusal() -> None:
    store = DictStore()
    pipe = pipe_of(store)
    list(pipe)
    key = pipe.key_of(1)
    COUNT["n"] = 4
    list(pipe_of(store, policy="refresh"))  # fewer parts: read, replaced, then its parts deleted
    names = part_names(store, key)
    assert len(names) == 2
    assert stored(store) == {key, *names}
    COUNT["n"] = 2
    store.refuse = True  # the one value that would replace the manifest is refused
    refused = pipe_of(store, policy="refresh")
    assert firsts(list(refused)) == expected(1, 2)
    assert (refused.stats.writes, refused.stats.not_written) == (0, 1)
    assert stored(store) == {key, *names}  # the entry in place keeps its parts
    store.refuse = False
    hit = pipe_of(store)
    assert firsts(list(hit)) == expected(1, 4)
    assert (hit.stats.hits, hit.stats.corrupt) == (1, 0)
