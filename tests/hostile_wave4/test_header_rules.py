"""Storage(headers=...) values the transport cannot carry as meant are refused by name, never sent.

Before: a header value that is not a string was a bare ``TypeError`` from a regular expression; one
name given twice in different cases (``Authorization`` and ``authorization``: two credentials) went
out as two headers, of which a server takes either; a ``Transfer-Encoding: chunked`` of the
caller's promised a body the client never sends (the request waits for its deadline), ``Connection``,
``Upgrade``, ``Expect``... changed how the client's connection is handled. Each is now an ``InvalidArgumentError`` naming the header, never its value, on the byte
layer (a real request to a local server) and in the shared rule GDAL's reads use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError, TerrapipeError
from terrapipe.core.http_headers import TRANSPORT_HEADERS, check_headers
from terrapipe.io import http_reads
from terrapipe.io.storage import Storage
from tests.hostile_wave4.lying_ranges import start_lying_server

SECRET = "s3cret-value-never-shown"

REFUSED: dict[str, dict[str, Any]] = {
    "an int value": {"X-Count": 5},
    "a bytes value": {"X-Key": SECRET.encode()},
    "None": {"X-Key": None},
    "a bytes name": {b"X-Key": SECRET},
    "one credential twice": {"Authorization": f"Bearer {SECRET}", "authorization": "Bearer other"},
    "Range twice": {"range": "bytes=0-1"},  # the byte layer sets Range itself
    **{f"transport {name}": {name.title(): SECRET} for name in sorted(TRANSPORT_HEADERS)},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root: Path = tmp_path_factory.mktemp("headers")
    (root / "a.bin").write_bytes(bytes(range(256)) * 64)
    served = start_lying_server(root)
    try:
        yield served
    finally:
        served.stop()


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_by_name_before_any_request(server: Any, case: str) -> None:
    headers = REFUSED[case]
    if all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        storage = Storage(headers=headers, timeout=3.0, retries=0)
        with pytest.raises(TerrapipeError) as caught:
            http_reads.read(f"{server.url}/a.bin", storage, byte_range=http_reads.ByteRange(0, 16))
        assert SECRET not in str(caught.value)
        assert isinstance(caught.value, InvalidArgumentError) or isinstance(
            caught.value.__cause__, InvalidArgumentError
        )
    if case == "Range twice":
        return  # a duplicate only beside the byte layer's own Range
    with pytest.raises(InvalidArgumentError) as refused:
        check_headers(headers)
    assert SECRET not in str(refused.value)


def test_ordinary_headers_still_go(server: Any) -> None:
    storage = Storage(headers={"Authorization": f"Bearer {SECRET}", "X-Trace": "t", "Host": server.url[7:]})
    reply = http_reads.read(f"{server.url}/a.bin", storage, byte_range=http_reads.ByteRange(0, 4))
    assert reply.body == bytes(range(4))
    assert tp.Storage(headers={"Cookie": "a=b"}).headers == (("Cookie", "a=b"),)


NAMES_HOLDING_SECRETS: dict[str, tuple[str, str]] = {
    # name given -> what the message may show of it ("" for nothing)
    "a JWT's parts as the name": (f"eyJhbGciOiJIUzI1NiJ9.{SECRET}/sig=", ""),
    "a base64 key as the name": (f"{SECRET}+/abc==", ""),
    "a key after a leading space": (f" X-Api-Key: {SECRET}", ""),
    "a key after a NUL": (f"X-Key\x00{SECRET}", ""),
    "Basic user:password as the name": (f"alice:{SECRET}", "'alice'"),
    "a line with a space before its colon": (f"Authorization : Bearer {SECRET}", "'Authorization'"),
    "a line whose name is 41 characters": (f"{'X' * 41}: {SECRET}", ""),
}


@pytest.mark.parametrize("case", sorted(NAMES_HOLDING_SECRETS))
def test_an_invalid_name_is_shown_only_as_a_line_s_name(case: str) -> None:
    name, shown = NAMES_HOLDING_SECRETS[case]
    with pytest.raises(InvalidArgumentError) as refused:
        check_headers({name: "Authorization"})
    message = str(refused.value)
    assert SECRET[:8] not in message, message
    assert (f"name {shown} (and more)" if shown else "name (not shown)") in message, message
