"""Bytes a server leaves on a kept-alive connection (an unasked, forged ``206``) read as the next answer.

836097c restored the retry of a ``206`` for other bytes found on a kept-alive connection: a forged answer
left there by the server is not the answer to the next request. Its siblings are the other requests
that can follow a ranged read on the same connection: a ``HEAD`` (object_store.head/size) takes the
forged ``206``'s ``Content-Length`` for the file's size (100 bytes of a 5000-byte file, silently), and a
whole read is refused ("answered a request for the whole file with 206") where a fresh connection
gives the file. The hostile server's ``forge`` mode sends the forged answer after each real ``206``.
"""

from __future__ import annotations

import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io import http_reads, object_store
from tests.servers.hostile_http import HostileServer

DATA = bytes((i * 7 + 3) % 251 for i in range(5000))  # served as f.bin by `server` (conftest.py)
STORAGE = tp.Storage(retries=2, backoff=0.01, max_backoff=0.02, deadline=20)


def _leave_a_forged_answer(url: str) -> None:
    """A checked ranged read: right bytes, and a forged 206 for the next range left on the connection."""
    assert http_reads.read(url, STORAGE, byte_range=http_reads.ByteRange(0, 100)).body == DATA[:100]


def test_a_ranged_read_after_a_forged_answer_is_right(server: HostileServer) -> None:
    url = f"{server.url}/forge/f.bin"
    _leave_a_forged_answer(url)
    assert http_reads.read(url, STORAGE, byte_range=http_reads.ByteRange(1000, 1100)).body == DATA[1000:1100]


@pytest.mark.parametrize("how", ["read_head", "object_store_head", "object_store_size"])
def test_a_head_after_a_forged_answer_is_the_file_s_size_or_refused(server: HostileServer, how: str) -> None:
    url = f"{server.url}/forge/f.bin"
    _leave_a_forged_answer(url)
    try:
        if how == "read_head":
            size = http_reads.read(url, STORAGE, method="HEAD").total
        elif how == "object_store_head":
            size = object_store.head(url, STORAGE).size
        else:
            size = object_store.size(url, STORAGE)
    except ReadError:
        return  # refused: fine
    assert size == len(DATA)


@pytest.mark.parametrize("how", ["read", "object_store_get"])
def test_a_whole_read_after_a_forged_answer_is_the_file(server: HostileServer, how: str) -> None:
    url = f"{server.url}/forge/f.bin"
    _leave_a_forged_answer(url)
    body = http_reads.read(url, STORAGE).body if how == "read" else object_store.get(url, STORAGE)
    assert body == DATA
