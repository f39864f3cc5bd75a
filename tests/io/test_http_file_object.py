"""``HTTPFile`` is an ``ObjectFile`` opened by its first byte: one file object for every URL.

Both learn the size from a GET (never a HEAD: a URL presigned for GET
refuses it): ``ObjectFile`` of the last 64 KiB (kept: a Parquet footer),
``HTTPFile`` of the first byte. An empty file is a file of size 0 for both;
a non-HTTP URL is refused by ``HTTPFile``; either pickles and reads on.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.io.object_file import HTTPFile, ObjectFile, open_http
from terrapipe.io.storage import Storage
from tests.servers.http_range import RangeServer


@pytest.fixture
def files(server: RangeServer, http_root: Path) -> tuple[str, str, bytes]:
    data = os.urandom(100_000)
    (http_root / "object-file.bin").write_bytes(data)
    (http_root / "object-empty.bin").write_bytes(b"")
    return server.url_for(http_root / "object-file.bin"), server.url_for(http_root / "object-empty.bin"), data


@pytest.mark.parametrize("kind", [HTTPFile, ObjectFile])
def test_an_empty_file_has_size_0(files: tuple[str, str, bytes], kind: type) -> None:
    handle = kind(files[1], Storage(retries=0))
    assert handle.size == 0
    assert handle.read() == b""


def test_http_file_reads_from_its_first_byte_and_pickles(
    files: tuple[str, str, bytes], server: RangeServer
) -> None:
    url, _, data = files
    server.reset()
    handle = HTTPFile(url, Storage())
    assert isinstance(handle, ObjectFile)
    assert isinstance(handle, io.RawIOBase)
    assert (handle.size, handle.options, handle.name) == (len(data), Storage(), url)
    stats = server.stats()["paths"]["/object-file.bin"]
    assert stats["requests"] == 1
    assert stats["bytes"] == 1
    handle.seek(-10, os.SEEK_END)
    assert handle.read() == data[-10:]
    again = pickle.loads(pickle.dumps(handle))
    assert again.tell() == len(data)
    assert again.seek(5) == 5
    assert again.read(20) == data[5:25]
    with open_http(url, Storage(), buffer_size=4096) as buffered:
        assert buffered.read(3000) == data[:3000]
        assert buffered.raw.bytes_read == 4096


def test_object_file_keeps_the_tail_and_http_file_refuses_other_urls(files: tuple[str, str, bytes]) -> None:
    url, _, data = files
    handle = ObjectFile(url, Storage())
    handle.seek(len(data) - 1000)
    assert handle.read() == data[-1000:]
    assert handle.bytes_read == 1000
    with pytest.raises(InvalidArgumentError, match="needs an http"):
        HTTPFile("s3://bucket/key.bin")
