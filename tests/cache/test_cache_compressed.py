"""Compressed entries (#20): Blosc frames in ZarrStore and RedisStore decoded straight into the hit's buffer.

Hits equal misses for every layout (Zarr folder and URL, Redis; LZ4, zstd,
uncompressed); a damaged compressed entry is a corrupt miss, never a wrong
hit; a Redis store reads values of either layout, whichever it writes (a
default that changed leaves hits, not misses); entries of the previous key
format are never served.
"""

from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.cache import CacheStore, CorruptEntryError, RedisStore, ZarrStore
from terrapipe.cache import frames as frames_module
from terrapipe.cache.codec import encode_value
from terrapipe.cache.entry import pack_entry, unpack_entry
from terrapipe.cache.frames import FRAME_MAGIC, compress_entry, decompress_entry
from terrapipe.core.errors import InvalidArgumentError
from tests.cache.test_cache_hits import cube, same

zarr = pytest.importorskip("zarr")
pytest.importorskip("numcodecs")

LAYOUTS = [
    ("zarr", None),
    ("zarr", "lz4"),
    ("zarr", "zstd"),
    ("zarr", False),
    ("zarr-url", None),
    ("redis", "lz4"),
    ("redis", "zstd"),
    ("redis", False),
]


def make(kind: str, codec: Any, tmp_path: Path, request: pytest.FixtureRequest) -> CacheStore:
    if kind == "redis":
        url = request.getfixturevalue("redis_server").url
        return RedisStore(url, prefix=f"compressed-{codec}-{tmp_path.name}:", compress=codec)
    root = tmp_path / f"cache-{codec}.zarr"
    return ZarrStore(root if kind == "zarr" else f"file://{root}", compress=codec)


def chips_pipe(path: Path, store: CacheStore | None) -> Any:
    pipe = tp.from_items([str(path)])
    pipe = pipe.cache_point() if store is not None else pipe
    pipe = pipe.read_zarr(variables="image").chip({"y": 32, "x": 16})
    return pipe.cache(store) if store is not None else pipe


@pytest.mark.parametrize(("kind", "codec"), LAYOUTS)
@pytest.mark.parametrize(("dtype", "nodata"), [("uint16", 0), ("float32", np.nan), ("int8", -128)])
def test_hits_equal_misses_for_every_layout(
    kind: str,
    codec: Any,
    dtype: str,
    nodata: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = cube(tmp_path / "cube.zarr", dtype, nodata=nodata)
    expected = list(chips_pipe(path, None))
    store = make(kind, codec, tmp_path, request)
    pipe = chips_pipe(path, store)
    first = list(pipe)
    if kind == "zarr":  # a local entry is read by the direct path, never by zarr

        def no_zarr(self: Any, key: str) -> None:
            raise AssertionError("a local entry went through zarr")

        monkeypatch.setattr(ZarrStore, "_get_with_zarr", no_zarr)
    hits = list(pipe)
    assert (pipe.stats.hits, pipe.stats.misses, pipe.stats.corrupt) == (1, 1, 0)
    assert len(hits) == len(first) == len(expected) == 6
    for a, b, c in zip(expected, first, hits, strict=True):
        same(a, b)
        same(a, c)
    if isinstance(store, RedisStore):
        store.clear()


def test_zarr_entries_are_blosc_chunks_at_urls_and_plain_in_folders_by_default(tmp_path: Path) -> None:
    imagery = np.random.default_rng(1).normal(3000, 30, 2**18).astype("uint16")
    entry = pack_entry("k", [encode_value(imagery)])
    for codec, cname in ((None, "lz4"), ("lz4", "lz4"), (True, "zstd"), ("zstd", "zstd")):
        root = tmp_path / f"c-{codec}.zarr"
        store = ZarrStore(f"file://{root}") if codec is None else ZarrStore(root, compress=codec)
        store.put("k", entry)
        array = json.loads((root / "k" / "zarr.json").read_bytes())["attributes"][
            "array"
        ]  # data-<id> at a URL
        meta = json.loads((root / "k" / array / "zarr.json").read_bytes())
        (blosc,) = [c for c in meta["codecs"] if c["name"] == "blosc"]
        assert blosc["configuration"]["cname"] == cname
        assert blosc["configuration"]["shuffle"] == "shuffle"
        stored = sum(p.stat().st_size for p in (root / "k" / array / "c").iterdir())
        assert stored < 0.75 * len(entry)  # byte shuffle: the high bytes of imagery compress
        assert store.get("k") == entry
    folder = ZarrStore(tmp_path / "default.zarr")  # a local folder: plain, the fastest hit measured
    folder.put("k", entry)
    meta = json.loads((tmp_path / "default.zarr" / "k" / "data" / "zarr.json").read_bytes())
    assert [c["name"] for c in meta["codecs"]] == ["bytes"]
    plain = ZarrStore(tmp_path / "plain.zarr", compress=False)
    plain.put("k", entry)
    meta = json.loads((tmp_path / "plain.zarr" / "k" / "data" / "zarr.json").read_bytes())
    assert [c["name"] for c in meta["codecs"]] == ["bytes"]
    with pytest.raises(InvalidArgumentError, match="cache codec"):
        ZarrStore(tmp_path / "x.zarr", compress="gzip")
    with pytest.raises(InvalidArgumentError, match="cache codec"):
        RedisStore(compress="snappy")


@pytest.mark.parametrize("size", [0, 1, 7, 64, 1000, 1001, 3 * 1000, 3 * 1000 + 1])
def test_framed_values_round_trip(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames_module, "FRAME_BYTES", 1000)  # several frames, a short last one
    data = np.random.default_rng(size).integers(0, 2**12, size, dtype="uint16").astype("uint8").tobytes()
    for codec in ("lz4", "zstd"):
        value = compress_entry(data, codec)
        out = decompress_entry(value, "k")
        assert bytes(out) == data
        assert not out.readonly


def damaged_values(value: bytes) -> list[tuple[str, bytes]]:
    """Ways a framed value can be damaged: every region of it."""
    head = len(FRAME_MAGIC) + 12 + 8 * struct.unpack_from("<I", value, len(FRAME_MAGIC) + 8)[0]
    out = []
    for name, where in (
        ("magic", 0),
        ("size", len(FRAME_MAGIC)),
        ("count", len(FRAME_MAGIC) + 8),
        ("table", len(FRAME_MAGIC) + 12),
        ("blosc header", head + 4),
        ("blosc cbytes", head + 12),
        ("frame", head + 40),
        ("frame middle", (head + len(value)) // 2),
        ("last byte", len(value) - 1),
    ):
        damaged = bytearray(value)
        damaged[where] ^= 0x5A
        out.append((name, bytes(damaged)))
    out += [("truncated", value[:-1]), ("extended", value + b"\0"), ("empty", b""), ("raw", value[head:])]
    return out


def test_damaged_framed_values_are_never_decoded_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames_module, "FRAME_BYTES", 4096)
    data = np.random.default_rng(2).normal(3000, 100, 6000).astype("uint16")
    entry = pack_entry("k", [encode_value(data)])
    for name, damaged in damaged_values(compress_entry(entry, "lz4")):
        with pytest.raises(
            CorruptEntryError
        ):  # the frames refuse it, or the entry's CRC of the decoded bytes
            unpack_entry(decompress_entry(damaged, "k"), "k", owned=True)
        assert name


@pytest.mark.parametrize("part_bytes", [None, 3000], ids=["one-value", "parts"])
def test_redis_reads_values_of_either_layout_and_damaged_ones_are_corrupt_misses(
    redis_server: Any, tmp_path: Path, part_bytes: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from terrapipe.cache import parts as parts_module

    if part_bytes is not None:
        monkeypatch.setattr(parts_module, "PART_BYTES", part_bytes)  # a manifest and several parts
    path = cube(tmp_path / "cube.zarr", "uint16", nodata=0)
    expected = list(chips_pipe(path, None))
    compressed = RedisStore(redis_server.url, prefix=f"layout-lz4-{part_bytes}:", compress="lz4")
    plain = RedisStore(redis_server.url, prefix=f"layout-plain-{part_bytes}:", compress=False)
    try:
        for store, other in ((compressed, plain), (plain, compressed)):
            pipe = chips_pipe(path, store)
            list(pipe)
            keys = list(store.keys())
            assert len(keys) == 1 if part_bytes is None else len(keys) > 2
            writer = RedisStore(redis_server.url, prefix=store.prefix, compress=other.codec or False)
            for key in keys:  # every value rewritten in the other layout: still the same entry
                entry = store.get(key)
                assert entry is not None
                writer.put(key, entry)
                assert store.client.get(store.prefix + key).startswith(FRAME_MAGIC) == (store is plain)
                assert store.get(key) == entry
                assert writer.get(key) == entry
            out = list(pipe)
            assert (pipe.stats.corrupt, pipe.stats.misses, pipe.stats.hits) == (0, 1, 1)
            for a, b in zip(expected, out, strict=True):
                same(a, b)
        key = next(k for k in list(compressed.keys()) if "." not in k)  # the manifest or the one value
        compressed.put(key, compressed.get(key) or b"")  # compressed again (the plain writer's above)
        value = compressed.client.get(compressed.prefix + key)
        for name, damaged in damaged_values(value):
            compressed.client.set(compressed.prefix + key, damaged)
            pipe = chips_pipe(path, compressed)
            out = list(pipe)
            assert (pipe.stats.corrupt, pipe.stats.hits) == (1, 0), name
            for a, b in zip(expected, out, strict=True):
                same(a, b)
            assert compressed.client.get(compressed.prefix + key) != damaged  # overwritten
    finally:
        compressed.clear()
        plain.clear()


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend", "header size", "swap chunks"])
def test_damaged_blosc_chunks_of_a_zarr_entry_are_corrupt_misses(tmp_path: Path, damage: str) -> None:
    path = cube(tmp_path / "cube.zarr", "uint16", nodata=0)
    expected = list(chips_pipe(path, None))
    store = ZarrStore(tmp_path / "cache.zarr", chunk_bytes=4096, compress="lz4")
    pipe = chips_pipe(path, store)
    list(pipe)
    (key,) = list(store.keys())
    chunks = tmp_path / "cache.zarr" / key / "data" / "c"
    first, second = chunks / "1", chunks / "2"
    blob = bytearray(first.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x10
    elif damage == "truncate":
        blob = blob[:-3]
    elif damage == "extend":
        blob += b"\0\0"
    elif damage == "header size":
        struct.pack_into("<I", blob, 4, struct.unpack_from("<I", blob, 4)[0] - 2)
    else:
        blob = bytearray(second.read_bytes())
        second.write_bytes(first.read_bytes())
    first.write_bytes(bytes(blob))
    out = list(pipe)
    for a, b in zip(expected, out, strict=True):
        same(a, b)
    if damage == "extend":  # bytes after a Blosc buffer are not read (zarr's path decodes it; the CRC passes)
        assert (pipe.stats.corrupt, pipe.stats.hits) == (0, 1)
    else:
        assert (pipe.stats.corrupt, pipe.stats.hits) == (1, 0)
    hits = pipe.stats.hits
    again = list(pipe)  # the entry was overwritten (or intact): a hit again
    assert pipe.stats.hits == hits + 1
    for a, b in zip(expected, again, strict=True):
        same(a, b)


@pytest.mark.parametrize("kind", ["zarr", "redis"])
def test_entries_of_key_format_3_are_never_looked_up(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from terrapipe.cache.canonical import digest_json
    from terrapipe.cache.keys import KEY_FORMAT, element_identity

    assert KEY_FORMAT == 4  # 3: entries stored uncompressed
    store = make(kind, False, tmp_path, request)
    pipe = tp.from_items([1]).cache_point().map(lambda x: np.arange(3) * x).cache(store)
    old_key = digest_json(
        {"format": 3, "config": pipe.config_digest, "element": element_identity(1)}, size=32
    )
    store.put(old_key, pack_entry(old_key, [encode_value(np.arange(3) * 7)]))  # a stale old-layout entry
    (out,) = list(pipe)
    assert (pipe.stats.misses, pipe.stats.hits) == (1, 0)
    assert out.tolist() == [0, 1, 2]
    if isinstance(store, RedisStore):
        store.clear()


@pytest.fixture
def private_server(tmp_path: Path) -> Any:
    """A redis-server of this test's own, with a unix socket; a password is set once it runs."""
    from tests.servers.redis_server import find_redis_server, start_redis_server

    if find_redis_server() is None:
        pytest.skip("redis-server is not installed")
    socket_path = tmp_path / "r.sock"
    server = start_redis_server(extra_args=("--unixsocket", str(socket_path), "--unixsocketperm", "700"))
    yield server, socket_path
    server.stop()


def test_the_socket_reader_authenticates_selects_and_recovers(private_server: Any) -> None:
    import redis

    from terrapipe.cache.redis_wire import RedisReader
    from terrapipe.core.errors import CacheError

    server, socket_path = private_server
    redis.Redis(port=server.port).config_set("requirepass", "s3cret-pw")
    data = np.random.default_rng(3).normal(3000, 30, 300_000).astype("uint16")
    entry = pack_entry("k", [encode_value(data)])
    urls = (f"redis://:s3cret-pw@127.0.0.1:{server.port}/3", f"unix://:s3cret-pw@{socket_path}?db=3")
    for url, compress in itertools.product(urls, ("lz4", False)):
        store = RedisStore(url, prefix="wire:", compress=compress)
        store.put("k", entry)
        assert redis.Redis(port=server.port, password="s3cret-pw", db=3).exists("wire:k")  # db 3, not 0
        buffer = store.get_buffer("k")
        assert isinstance(store._reader, RedisReader)  # the socket reader served it
        assert buffer is not None
        assert not buffer.readonly
        assert bytes(buffer) == entry
        assert store.get_buffer("missing") is None
        good = store.client.get("wire:k")
        store.client.set("wire:k", good[:-7] + bytes(7))  # damaged mid-value: the reader drops the connection
        with pytest.raises(CorruptEntryError):
            unpack_entry(store.get_buffer("k") or b"", "k", owned=True)
        other = compress_entry(entry) if compress is False else entry  # the other layout: read right
        store.client.set("wire:k", other)
        assert bytes(store.get_buffer("k") or b"") == entry
        for short in (b"", b"TPC", b"TPCFRAM1"[:7]):  # shorter than a magic: a plain value, not an entry
            store.client.set("wire:k", short)
            got = store.get_buffer("k")
            assert got is not None
            assert bytes(got) == short
        store.client.set("wire:k", compress_entry(entry)[:30])  # a frame table cut short
        with pytest.raises(CorruptEntryError):
            store.get_buffer("k")
        store.client.set("wire:k", good)
        assert bytes(store.get_buffer("k") or b"") == entry  # the next read is in step with the server
        limited = RedisStore(url, prefix="wire:", max_entry_bytes=1000, compress=compress)
        with pytest.raises(CorruptEntryError, match="max_entry_bytes"):
            limited.get_buffer("k")  # announced above the limit: nothing allocated
        assert bytes(store.get_buffer("k") or b"") == entry
        wrong = RedisStore(url.replace("s3cret-pw", "wrong-pw"), prefix="wire:", compress=compress)
        with pytest.raises(CacheError) as info:
            wrong.get_buffer("k")
        assert "pw" not in str(info.value)  # no password in the message


def test_a_store_on_this_machine_is_plain_by_default_and_one_on_another_lz4(tmp_path: Path) -> None:
    assert RedisStore(f"unix://{tmp_path / 'r.sock'}").codec is None  # the server is on this machine
    for local in (
        "redis://127.0.0.1:6379/0",
        "redis://127.3.2.1:6379",
        "redis://localhost:6379/0",
        "REDIS://LocalHost",
        "redis://[::1]:6379/0",
        "redis://:pw@127.0.0.1:6379/0",
        "redis://user:pw@localhost/2",
    ):
        assert RedisStore(local).codec is None, local  # loopback: no network between
        assert "compress" not in repr(RedisStore(local))
        assert RedisStore(local, compress="lz4").codec == "lz4"
    for remote in (
        "redis://10.0.0.5:6379/0",
        "redis://cache.example.org:6379/0",
        "redis://localhost.example.org:6379",
        "redis://[2001:db8::1]:6379",
        "redis://128.0.0.1:6379",
        "rediss://127.0.0.1:6379/0",  # TLS: not measured, stays compressed
        "rediss://cache.example.org:6380/0",
    ):
        assert RedisStore(remote).codec == "lz4", remote
        assert "compress" not in repr(RedisStore(remote))
        assert RedisStore(remote, compress=False).codec is None
    assert RedisStore(f"UNIX://{tmp_path / 'r.sock'}", compress="lz4").codec == "lz4"
    assert repr(RedisStore(f"unix://{tmp_path / 'r.sock'}")) == (
        f"RedisStore('unix://{tmp_path / 'r.sock'}', ttl=None, max_entry_bytes=67108864)"
    )
    assert "compress='lz4'" in repr(RedisStore(f"unix://{tmp_path / 'r.sock'}", compress="lz4"))


def test_the_socket_reader_serves_threads_each_their_own_connection(redis_server: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = RedisStore(redis_server.url, prefix="wire-threads:", compress="lz4")
    entries = {
        f"k{i}": pack_entry(f"k{i}", [encode_value(np.full(200_000 + i, i, dtype="uint16"))])
        for i in range(6)
    }
    try:
        for key, entry in entries.items():
            store.put(key, entry)

        def read(key: str) -> bool:
            return all(bytes(store.get_buffer(key) or b"") == entries[key] for _ in range(5))

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(read, list(entries) * 2))
    finally:
        store.clear()


def test_the_entry_checksum_is_zlib_crc32_whichever_implementation_computes_it() -> None:
    import zlib

    from terrapipe.cache import entry as entry_module

    data = np.random.default_rng(4).integers(0, 255, 100_003, dtype=np.uint8).tobytes()
    assert entry_module._crc32(data) == zlib.crc32(data)
    assert entry_module._crc32(data[7:], entry_module._crc32(data[:7])) == zlib.crc32(data)
    isal = pytest.importorskip("isal.isal_zlib")  # in the cache extra: ISA-L's, about four times zlib's speed
    assert entry_module._crc32 is isal.crc32
