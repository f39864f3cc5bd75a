"""What ``http_reads`` adds to urllib3 (#19): each case fails where urllib3's own behaviour is taken.

- A ``Retry-After`` HTTP date is read by urllib3 (``Retry.parse_retry_after``); ours reads fractions of
  a second first (urllib3 reads whole seconds only) and waits within the deadline, never past it.
- A gzip or deflate body is inflated by our checks, not urllib3's decoders: urllib3 2.8 ignores
  garbage after a gzip member (the bytes of a broken second member are silently lost) and gives what
  came of a stream cut short.
- An S3/Azure/GCS code refusing the credentials is "access denied" whatever the status (an expired
  presigned URL: 400 on some servers), and is not retried: urllib3 gives a status only.

Server: the hostile STAC server (tests/servers/hostile_stac.py), a real process on 127.0.0.1.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import time
import zlib

import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io import http_reads
from terrapipe.stac.http_json import JsonClient
from tests.servers.hostile_stac import HostileServer

FAST = tp.Storage(timeout=2.0, retries=1, backoff=0.01, max_backoff=0.05, deadline=10)
DATA = b'{"type": "Catalog", "id": "c", "links": [], "pad": "' + b"y" * 40_000 + b'"}'


def _route(stac_server: HostileServer, spec: dict[str, object]) -> str:
    stac_server.reset()
    stac_server.route({"/doc.json": spec})
    return f"{stac_server.url}/doc.json?sig=SECRET"


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("0.6", 0.6, 0.6),  # fractions: ours (urllib3 refuses them)
        ("3", 3.0, 3.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, 0.0),  # a date gone by: at once
        (None, None, None),
        ("soon", None, None),
        ("inf", None, None),
        ("Fri, 31 Dec 99999 23:59:59 GMT", None, None),  # urllib3 raises ValueError for the year
    ],
)
def test_retry_after_values(value: str | None, low: float | None, high: float | None) -> None:
    got = http_reads.retry_after_of(value)
    assert (got, got) == (low, high) if got is None or low is None else low <= got <= (high or 0.0)


def test_retry_after_as_a_date_to_come() -> None:
    got = http_reads.retry_after_of(email.utils.formatdate(time.time() + 30, usegmt=True))
    assert 28.0 <= (got if got is not None else -1.0) <= 30.0


def test_a_retry_after_date_past_the_deadline_ends_the_read_at_once(stac_server: HostileServer) -> None:
    later = email.utils.formatdate(time.time() + 60, usegmt=True)
    url = _route(stac_server, {"status": 503, "text": "busy", "headers": {"Retry-After": later}})
    storage = FAST.with_options(max_backoff=120.0, deadline=3)
    began = time.monotonic()
    with pytest.raises(ReadError, match=r"within the deadline of 3 s .*HTTP 503") as info:
        http_reads.read(url, storage)
    assert time.monotonic() - began < 2.0  # the server's wish lies past the deadline: no sleep toward it
    assert len(stac_server.log()) == 1
    assert "SECRET" not in str(info.value)


def _deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("blob", "encoding", "match"),
    [
        (gzip.compress(DATA) + b"garbage after the member", "gzip", "cannot be decoded"),
        (gzip.compress(DATA[:100]) + gzip.compress(DATA[100:])[:-30], "gzip", "cut short"),
        (_deflate(DATA, zlib.MAX_WBITS)[:-30], "deflate", "cut short"),
        (_deflate(DATA, -zlib.MAX_WBITS)[:-30], "deflate", "cut short"),
    ],
    ids=["gzip-trailing-garbage", "gzip-second-member-cut", "zlib-cut", "raw-deflate-cut"],
)
def test_a_body_that_does_not_inflate_whole_is_refused_by_both_clients(
    stac_server: HostileServer, blob: bytes, encoding: str, match: str
) -> None:
    # each body is complete as HTTP (its Content-Length is right): only the encoding tells
    url = _route(
        stac_server, {"base64": base64.b64encode(blob).decode(), "headers": {"Content-Encoding": encoding}}
    )
    with pytest.raises(ReadError, match=match):
        http_reads.read(url, FAST)
    with pytest.raises(ReadError, match=match):
        JsonClient(FAST).request("GET", url, error=ReadError, what="read")


@pytest.mark.parametrize("status", [400, 403, 409])
@pytest.mark.parametrize("code", ["ExpiredToken", "SignatureDoesNotMatch", "AuthenticationFailed"])
def test_a_code_refusing_the_credentials_is_access_denied_at_once(
    stac_server: HostileServer, status: int, code: str
) -> None:
    body = f'<?xml version="1.0"?><Error><Code>{code}</Code><Message>no</Message></Error>'
    url = _route(stac_server, {"status": status, "text": body, "content_type": "application/xml"})
    with pytest.raises(ReadError, match=rf"access denied \(HTTP {status}, {code}\)") as info:
        http_reads.read(url, FAST.with_options(retries=3))
    assert "SECRET" not in str(info.value)
    assert len(stac_server.log()) == 1  # not retried


def test_another_code_is_no_denial(stac_server: HostileServer) -> None:
    body = "<Error><Code>InvalidArgument</Code><Message>bad</Message></Error>"
    url = _route(stac_server, {"status": 400, "text": body, "content_type": "application/xml"})
    with pytest.raises(ReadError) as info:
        http_reads.read(url, FAST)
    assert "access denied" not in str(info.value)
