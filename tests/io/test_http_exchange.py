"""One HTTP exchange for the byte layer and the STAC client (#19): the same body rules and the same wording.

``http_reads.exchange`` sends every request; these cases failed before it, when the STAC client read
bodies through urllib3's decoders and the byte layer through its own: a raw deflate body, gzip members
followed by NUL padding and an unasked ``Content-Encoding`` are now handled alike by both, and a refused
connection is "cannot connect" in both (the byte layer called it a time-out). Servers: the hostile
STAC server (tests/servers/hostile_stac.py), a real process on 127.0.0.1.
"""

from __future__ import annotations

import base64
import gzip
import zlib

import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io import http_reads
from terrapipe.stac.http_json import JsonClient
from tests.servers.hostile_stac import HostileServer
from tests.servers.object_stores import free_port

FAST = tp.Storage(timeout=2.0, retries=1, backoff=0.01, max_backoff=0.05, deadline=10)
DATA = b'{"type": "Catalog", "id": "c", "links": [], "pad": "' + b"x" * 50_000 + b'"}'


def _route(stac_server: HostileServer, blob: bytes, encoding: str) -> str:
    stac_server.reset()
    stac_server.route(
        {"/doc.json": {"base64": base64.b64encode(blob).decode(), "headers": {"Content-Encoding": encoding}}}
    )
    return f"{stac_server.url}/doc.json"


def _deflate(wbits: int) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(DATA) + packer.flush()


@pytest.mark.parametrize(
    ("blob", "encoding"),
    [
        (_deflate(zlib.MAX_WBITS), "deflate"),
        (_deflate(-zlib.MAX_WBITS), "deflate"),  # raw deflate, as some servers send it: refused before
        (
            gzip.compress(DATA[:100]) + gzip.compress(DATA[100:]) + b"\0" * 8,
            "gzip",
        ),  # padding: refused before
    ],
    ids=["zlib", "raw-deflate", "gzip-members-padding"],
)
def test_both_clients_inflate_what_a_server_may_send(
    stac_server: HostileServer, blob: bytes, encoding: str
) -> None:
    url = _route(stac_server, blob, encoding)
    assert http_reads.read(url, FAST).body == DATA
    assert JsonClient(FAST).request_bytes(url, error=ReadError, what="read") == DATA


def test_an_unasked_encoding_is_named_alike(stac_server: HostileServer) -> None:
    url = _route(stac_server, DATA, "br")
    with pytest.raises(ReadError, match="Content-Encoding 'br'"):
        http_reads.read(url, FAST)
    with pytest.raises(ReadError, match="Content-Encoding 'br'"):
        JsonClient(FAST).request("GET", url, error=ReadError, what="read")


def test_a_cut_gzip_body_is_retried_then_named_alike(stac_server: HostileServer) -> None:
    url = _route(stac_server, gzip.compress(DATA)[:-20], "gzip")
    with pytest.raises(ReadError, match=r"gzip-encoded answer was cut short \(after 2 tries\)"):
        http_reads.read(url, FAST)
    with pytest.raises(ReadError, match=r"gzip-encoded answer was cut short \(after 2 tries\)"):
        JsonClient(FAST).request("GET", url, error=ReadError, what="read")
    assert len(stac_server.log()) == 4  # two tries each


def test_a_refused_connection_is_cannot_connect_in_both() -> None:
    url = f"http://127.0.0.1:{free_port()}/doc.json"
    storage = FAST.with_options(retries=0)
    with pytest.raises(ReadError, match=r"cannot connect \(NewConnectionError\)") as byte_layer:
        http_reads.read(url, storage)
    assert "did not answer" not in str(byte_layer.value)  # before: a refused connection was called a time-out
    with pytest.raises(ReadError, match=r"cannot connect \(NewConnectionError\)"):
        JsonClient(storage).request("GET", url, error=ReadError, what="read")


def test_bytes_received_are_the_bytes_on_the_wire(stac_server: HostileServer) -> None:
    blob = gzip.compress(DATA)
    url = _route(stac_server, blob, "gzip")
    client = JsonClient(FAST)
    assert client.request("GET", url, error=ReadError, what="read")["id"] == "c"
    assert client.bytes_received == len(blob)


def test_a_missing_object_is_one_error_whichever_reader(stac_server: HostileServer) -> None:
    from terrapipe.io import object_store
    from terrapipe.io.object_file import ObjectFile

    stac_server.reset()
    url = f"{stac_server.url}/gone.parquet?sig=SECRET"
    shown = f"'{stac_server.url}/gone.parquet'"
    for reader, verb in [
        (lambda: object_store.get(url, FAST), "read"),
        (lambda: object_store.head(url, FAST), "look up"),  # before: no hint
        (lambda: ObjectFile(url, FAST).size, "read"),
    ]:
        with pytest.raises(ReadError) as info:
            reader()
        assert str(info.value) == f"cannot {verb} {shown}: no such object (HTTP 404); check the URL"


@pytest.mark.parametrize("blob", [DATA, gzip.compress(DATA)], ids=["plain", "gzip"])
def test_a_body_over_the_cap_is_one_error_in_both(stac_server: HostileServer, blob: bytes) -> None:
    url = _route(stac_server, blob, "gzip" if blob is not DATA else "identity")
    small = FAST.with_options(max_bytes=1000)
    said = "the answer is larger than the cap of 1000 bytes (decompressed); raise Storage(max_bytes=...)"
    with pytest.raises(ReadError) as byte_layer:
        http_reads.read(url, small)
    with pytest.raises(ReadError) as stac:
        JsonClient(small).request("GET", url, error=ReadError, what="read")
    for err in (byte_layer.value, stac.value):
        assert said in str(err)
        assert "cannot be trusted" not in str(err)  # before: the byte layer called a large body untrustworthy
