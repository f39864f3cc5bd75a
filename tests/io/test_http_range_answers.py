"""A ranged read's answer checks that urllib3 does not make, on a chunked 206 (no Content-Length to lean on).

urllib3 refuses a body shorter than its ``Content-Length`` (``enforce_content_length``),
but a chunked answer has none: a ``206`` that names the range asked for and
ends its chunks early is the byte layer's to refuse, or a read returns half
the bytes as if they were all. A ``206`` whose bytes are gzip-encoded
although ``identity`` was asked for is refused by name, not decoded or
taken as the file's bytes. Every reader over HTTP meets the same checks:
:func:`http_reads.read`, ``object_store.get``, ``HTTPFile`` and ``HTTPStore``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from zarr.abc.store import RangeByteRequest
from zarr.core.buffer import default_buffer_prototype

from terrapipe.core.errors import ReadError
from terrapipe.io import http_reads, object_store
from terrapipe.io.http_store import HTTPStore
from terrapipe.io.object_file import HTTPFile
from terrapipe.io.storage import Storage
from tests.servers.hostile_http import HostileServer, start_hostile_server

pytestmark = pytest.mark.timeout(60)

SIZE = 50_000
ONCE = Storage(retries=0, timeout=5.0)


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    root = tmp_path_factory.mktemp("range-answers")
    data = np.random.default_rng(11).bytes(SIZE)
    (root / "blob.bin").write_bytes(data)
    return root, data


@pytest.fixture(scope="module")
def hostile(blob: tuple[Path, bytes]) -> Iterator[HostileServer]:
    server = start_hostile_server(blob[0], max_seconds=10, lifetime=120)
    try:
        yield server
    finally:
        server.stop()


def _reads(folder: str, query: str = "") -> dict[str, object]:
    """Bytes 1000-4999 of ``blob.bin`` in ``folder`` (a URL) by every reader over HTTP (each a callable)."""
    url = f"{folder}/blob.bin{query}"

    def store() -> object:
        base, key = folder + query, "blob.bin"
        found = asyncio.run(
            HTTPStore(base, storage=ONCE).get(key, default_buffer_prototype(), RangeByteRequest(1000, 5000))
        )
        return None if found is None else found.to_bytes()

    def handle() -> object:
        with HTTPFile(url, ONCE) as opened:
            opened.seek(1000)
            return opened.read(4000)

    return {
        "read": lambda: http_reads.read(url, ONCE, byte_range=http_reads.ByteRange(1000, 5000)).body,
        "object_store.get": lambda: object_store.get(url, ONCE, range=(1000, 5000)),
        "HTTPFile": handle,
        "HTTPStore": store,
    }


@pytest.mark.parametrize("reader", ["read", "object_store.get", "HTTPFile", "HTTPStore"])
def test_an_honest_chunkless_range_reads_exactly(
    hostile: HostileServer, blob: tuple[Path, bytes], reader: str
) -> None:
    assert _reads(f"{hostile.url}/plain")[reader]() == blob[1][1000:5000]  # type: ignore[operator]


@pytest.mark.parametrize("reader", ["read", "object_store.get", "HTTPFile", "HTTPStore"])
def test_a_chunked_206_cut_short_is_refused(hostile: HostileServer, reader: str) -> None:
    # (HTTPFile's first read, of one byte for the size, is cut to none)
    with pytest.raises(
        ReadError, match=r"holds (2000|0) bytes, not the (4000|1) of its Content-Range"
    ) as info:
        _reads(f"{hostile.url}/chunked-short", "?sig=SECRET")[reader]()  # type: ignore[operator]
    assert "cannot read 'http://127.0.0.1" in str(info.value)
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize("reader", ["read", "object_store.get", "HTTPFile", "HTTPStore"])
def test_a_range_sent_gzip_encoded_is_refused_by_name(hostile: HostileServer, reader: str) -> None:
    with pytest.raises(ReadError, match=r"with a gzip-encoded body \(asked for identity\)"):
        _reads(f"{hostile.url}/gzip-range")[reader]()  # type: ignore[operator]
