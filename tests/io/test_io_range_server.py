"""The test HTTP server itself: Range semantics, counters, faults."""

from __future__ import annotations

import http.client
import time
import urllib.parse

import pytest

from tests.servers.http_range import parse_range


@pytest.fixture
def blob_url(server, http_root, unique_name):
    data = bytes(range(256)) * 40  # 10240 bytes
    path = http_root / unique_name("blob.bin")
    path.write_bytes(data)
    return server.url_for(path), data, f"/{path.name}"


def _request(url, method="GET", headers=None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request(method, parts.path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def test_parse_range():
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=5-100", 10) == (5, 9)
    assert parse_range("bytes=-100", 10) == (0, 9)
    assert parse_range("bytes=10-", 10) == "unsatisfiable"
    assert parse_range("bytes=-0", 10) == "unsatisfiable"
    assert parse_range("bytes=5-2", 10) is None
    assert parse_range("bytes=a-b", 10) is None
    assert parse_range(None, 10) is None


def test_full_get_and_head(blob_url):
    url, data, _ = blob_url
    response, body = _request(url)
    assert response.status == 200
    assert body == data
    assert response.getheader("Accept-Ranges") == "bytes"
    assert int(response.getheader("Content-Length")) == len(data)
    head, head_body = _request(url, "HEAD")
    assert head.status == 200
    assert head_body == b""
    assert int(head.getheader("Content-Length")) == len(data)


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-40", 10200, 10239),
        ("bytes=0-99999", 0, 10239),
    ],
)
def test_single_ranges(blob_url, header, start, end):
    url, data, _ = blob_url
    response, body = _request(url, headers={"Range": header})
    assert response.status == 206
    assert body == data[start : end + 1]
    assert response.getheader("Content-Range") == f"bytes {start}-{end}/{len(data)}"
    assert int(response.getheader("Content-Length")) == end - start + 1


def test_bad_and_multiple_ranges(blob_url):
    url, data, _ = blob_url
    response, body = _request(url, headers={"Range": "bytes=20000-"})
    assert response.status == 416
    assert response.getheader("Content-Range") == f"bytes */{len(data)}"
    response, body = _request(url, headers={"Range": "bytes=0-1,5-6"})
    assert response.status == 200
    assert body == data


def test_counts_bytes_and_resets(server, blob_url):
    url, _, path = blob_url
    _request(url, headers={"Range": "bytes=0-99"})
    _request(url, "HEAD")
    stats = server.stats()
    assert stats["paths"][path] == {"requests": 2, "bytes": 100, "statuses": {"206": 1, "200": 1}}
    assert stats["log"][-2]["range"] == "bytes=0-99"
    assert server.bytes_served(path) == 100
    server.reset()
    assert server.bytes_served() == 0


def test_faults(server, blob_url):
    url, data, path = blob_url
    server.fault(path, status=503, count=2, retry_after=1)
    first, _ = _request(url)
    assert first.status == 503
    assert first.getheader("Retry-After") == "1"
    assert _request(url)[0].status == 503
    assert _request(url)[0].status == 200
    server.fault(path, status=429)
    assert _request(url)[0].status == 429
    server.clear_faults()
    server.fault(path, status=None, delay=0.3, count=1)
    started = time.monotonic()
    response, body = _request(url)
    assert response.status == 200
    assert body == data
    assert time.monotonic() - started >= 0.3


def test_missing_listing_and_traversal(server, http_root):
    assert _request(f"{server.url}/no-such-file")[0].status == 404
    response, body = _request(f"{server.url}/")
    assert response.status == 200
    assert b"<a href=" in body
    assert _request(f"{server.url}/../../etc/passwd")[0].status == 404
