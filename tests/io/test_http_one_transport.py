"""One client sends every checked HTTP(S) read: urllib3 (obstore reads only buckets and local files).

A blocking :func:`http_reads.read` (``HTTPFile``, a chip's reader threads,
``object_store.get``), ``object_store.get_ranges`` and ``read_async``
(``HTTPStore``, Zarr) all go through urllib3 and never start obstore (whose
runtime would then make a forked child's bucket reads refuse); a proxy the
environment names (``*_proxy``, ``no_proxy``) is used as ``requests`` uses it.
A 206 body is read in one piece.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from terrapipe.core.errors import ReadError
from terrapipe.io import http_reads, object_store, obstore_runtime
from terrapipe.io.http_reads import ByteRange
from terrapipe.io.object_file import HTTPFile
from terrapipe.io.storage import Storage
from tests.servers.http_range import RangeServer

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def blob(server: RangeServer, http_root: Path) -> tuple[str, bytes]:
    data = os.urandom(300_000)
    (http_root / "transport.bin").write_bytes(data)
    return server.url_for(http_root / "transport.bin"), data


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the requests urllib3 sends (the read itself runs unchanged); obstore may not be loaded."""
    counts: Counter[str] = Counter()
    by_urllib3 = http_reads.exchange

    def urllib3(*args: Any, **kwargs: Any) -> Any:
        counts["urllib3"] += 1
        return by_urllib3(*args, **kwargs)

    def no_obstore() -> Any:
        counts["obstore"] += 1
        raise AssertionError("an HTTP(S) read loaded obstore")

    monkeypatch.setattr(http_reads, "exchange", urllib3)
    monkeypatch.setattr(obstore_runtime, "load_obstore", no_obstore)
    monkeypatch.setattr(object_store, "load_obstore", no_obstore)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return counts


def test_every_read_goes_through_urllib3(blob: tuple[str, bytes], sent: Counter[str]) -> None:
    url, data = blob
    assert http_reads.read(url, Storage(), byte_range=ByteRange(1000, 5000)).body == data[1000:5000]
    assert http_reads.read(url, Storage()).body == data
    assert http_reads.read(url, Storage(), byte_range=ByteRange(None, 10)).body == data[-10:]
    with HTTPFile(url, Storage()) as handle:
        handle.seek(299_990)
        assert handle.read() == data[-10:]
    assert object_store.get(url, Storage(), range=(7, 70_007)) == data[7:70_007]
    assert object_store.size(url, Storage()) == len(data)
    reply = asyncio.run(http_reads.read_async(url, Storage(), byte_range=ByteRange(100, 200)))
    assert reply.body == data[100:200]
    ranges = [(0, 10), (50_000, 120_000), (299_000, 300_000)]
    assert object_store.get_ranges(url, ranges, Storage()) == [data[a:b] for a, b in ranges]
    assert sent == Counter(urllib3=11)


def test_async_reads_run_at_once_and_fail_by_name(blob: tuple[str, bytes], sent: Counter[str]) -> None:
    url, data = blob

    async def many() -> list[Any]:
        reads = [
            http_reads.read_async(url, Storage(), byte_range=ByteRange(i, i + 7))
            for i in range(0, 64_000, 1000)
        ]
        return list(await asyncio.gather(*reads))

    assert [r.body for r in asyncio.run(many())] == [data[i : i + 7] for i in range(0, 64_000, 1000)]
    missing = asyncio.run(http_reads.read_async(url.replace("transport", "nope"), Storage()))
    assert missing.status == 404
    refused = "http://127.0.0.1:9/cube.zarr/zarr.json?sig=SECRET"  # nothing listens on port 9
    with pytest.raises(ReadError, match=r"cannot read 'http://127\.0\.0\.1:9/cube\.zarr/zarr\.json'") as info:
        asyncio.run(http_reads.read_async(refused, Storage(retries=0, timeout=2.0)))
    assert "SECRET" not in str(info.value)
    assert sent["obstore"] == 0


def test_a_proxy_of_the_environment_is_used(
    blob: tuple[str, bytes], sent: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, data = blob
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # ... but not for this host: no proxy
    assert http_reads.read(url, Storage(), byte_range=ByteRange(0, 10)).body == data[:10]
    monkeypatch.delenv("no_proxy")
    monkeypatch.setenv("NO_PROXY", "")
    with pytest.raises(ReadError, match=r"cannot read 'http://127\.0\.0\.1"):  # the proxy is used
        http_reads.read(url, Storage(retries=0, timeout=2.0), byte_range=ByteRange(0, 10))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("http_proxy")
    assert http_reads.read(url, Storage(), byte_range=ByteRange(0, 10)).body == data[:10]  # https only
    assert sent == Counter(urllib3=3)


def test_a_range_is_read_in_one_piece(blob: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    # A 206 of known length is read with one call and kept without copies into a growing buffer.
    url, data = blob
    asked: list[int | None] = []
    urllib3 = pytest.importorskip("urllib3")
    stream = urllib3.HTTPResponse.stream

    def spy(self: Any, amt: int | None = 2**16, decode_content: bool | None = None) -> Any:
        asked.append(amt)
        return stream(self, amt, decode_content)

    monkeypatch.setattr(urllib3.HTTPResponse, "stream", spy)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert http_reads.read(url, Storage(), byte_range=ByteRange(10, 250_010)).body == data[10:250_010]
    assert http_reads.read(url, Storage()).body == data
    assert asked == [250_000, 300_000]


def test_the_deadline_watch_stays_small_and_fires_for_an_earlier_deadline(
    blob: tuple[str, bytes], server: RangeServer, http_root: Path
) -> None:
    url, data = blob
    starts = range(3 * http_reads._PRUNE_AT)  # each read leaves a done deadline 120 s away

    async def many() -> list[Any]:
        reads = [http_reads.read_async(url, Storage(), byte_range=ByteRange(s, s + 3)) for s in starts]
        return list(await asyncio.gather(*reads))

    assert [r.body for r in asyncio.run(many())] == [data[s : s + 3] for s in starts]
    watch = http_reads._deadlines()
    end = time.monotonic() + 5
    while len(watch.heap) > http_reads._PRUNE_AT + 1 and time.monotonic() < end:
        time.sleep(0.01)
    assert len(watch.heap) <= http_reads._PRUNE_AT + 1
    (http_root / "slow.bin").write_bytes(b"x" * 10)
    server.fault("/slow.bin", status=None, delay=4)
    began = time.monotonic()
    with pytest.raises(ReadError, match="deadline of 1 s"):  # later than none of the 120 s ones: woken for it
        http_reads.read(
            server.url_for(http_root / "slow.bin"), Storage(deadline=1.0, timeout=10.0, retries=0)
        )
    assert time.monotonic() - began < 3
