"""One HTTP client for the STAC client and the byte layer: urllib3's pools, one retry driver, the environment's proxy.

``JsonClient`` (STAC API calls, catalog documents, stac-geoparquet files) and
a blocking :func:`http_reads.read` share the process's urllib3 pool manager,
its deadline watchdog and :func:`http_reads.drive` (retries, back-off,
``Retry-After``) and :func:`http_reads.follow` (one redirect rule: credentials
to their origin on every hop, loops and non-HTTP targets named). Both go through the proxy the environment names
(``http_proxy``/``no_proxy``), as ``requests`` did for the STAC client; a
read with headers ignored it before. The proxy here is a real forward proxy
on 127.0.0.1 (this file run as a script), started and stopped by pid.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import shutil
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io import http_reads
from terrapipe.io.http_reads import ByteRange
from terrapipe.io.storage import Storage
from terrapipe.stac.http_json import JsonClient
from tests.servers.hostile_http import HostileServer, start_hostile_server
from tests.servers.http_range import RangeServer
from tests.servers.process import serve, start_serving, stop_process

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


# -- a forward proxy (absolute-form requests), as a process of its own --------------------------------
class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]] = []  # noqa: RUF012  (the server's log, one process)

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self) -> None:
        if not self.path.startswith("http://"):  # origin-form: a question for the proxy itself
            self._answer(200, json.dumps(self.seen).encode(), {"Content-Type": "application/json"})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(
            {
                "method": self.command,
                "url": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        )
        target = urllib.parse.urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.netloc, timeout=30)
        hop = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}
        sent = {k: v for k, v in self.headers.items() if k.lower() not in hop}
        upstream.request(self.command, self.path[len(f"http://{target.netloc}") :] or "/", body or None, sent)
        reply = upstream.getresponse()
        data = reply.read()
        keep = {"content-type", "content-range", "etag", "last-modified", "retry-after", "location"}
        self._answer(reply.status, data, {k: v for k, v in reply.getheaders() if k.lower() in keep})
        upstream.close()

    do_GET = do_POST = do_HEAD = _forward  # noqa: N815  (http.server's names)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Document(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"type": "Catalog", "id": "tls", "links": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve() -> None:
    if sys.argv[1:2] == ["tls"]:  # tls CERT KEY: one JSON document over HTTPS
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Document)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = context.wrap_socket(server.socket, server_side=True)
        print(f"serving https://127.0.0.1:{server.server_address[1]}", flush=True)
    else:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Forward)
        print(f"serving http://127.0.0.1:{server.server_address[1]}", flush=True)
    serve(server)


@dataclass
class Proxy:
    url: str
    process: Any
    start: int = field(default=0)

    def log(self) -> list[dict[str, Any]]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        with opener.open(f"{self.url}/__log__", timeout=10) as answer:
            entries: list[dict[str, Any]] = json.loads(answer.read())
        return entries[self.start :]

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture(scope="module")
def forward_proxy() -> Iterator[Proxy]:
    root = Path(__file__).resolve().parents[2]
    proxy = start_serving(
        [sys.executable, "-m", "tests.io.test_http_one_client"],
        Proxy,
        Proxy.log,
        "forward proxy",
        30.0,
        cwd=root,
    )
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxy(forward_proxy: Proxy, monkeypatch: pytest.MonkeyPatch) -> Proxy:
    """The forward proxy, its earlier log skipped, named by ``http_proxy``; no other proxy variable set."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("http_proxy", forward_proxy.url)
    forward_proxy.start += len(forward_proxy.log())
    return forward_proxy


@pytest.fixture
def blob(server: RangeServer, http_root: Path) -> tuple[str, bytes]:
    data = bytes(range(256)) * 400
    (http_root / "one-client.bin").write_bytes(data)
    (http_root / "one-client.json").write_text('{"type": "Catalog", "id": "c", "links": []}')
    return server.url_for(http_root / "one-client.bin"), data


# -- the proxy ---------------------------------------------------------------------------------------
def test_a_read_with_headers_goes_through_the_environments_proxy(
    proxy: Proxy, blob: tuple[str, bytes]
) -> None:
    url, data = blob
    storage = Storage(
        headers={"X-Api-Key": "k-1"}, retries=0
    )  # headers: urllib3 (obstore would pass them on)
    assert http_reads.read(url, storage, byte_range=ByteRange(10, 30)).body == data[10:30]
    (entry,) = proxy.log()  # before: urllib3's pool went straight to the server
    assert entry["url"] == url
    assert entry["headers"]["x-api-key"] == "k-1"
    assert entry["headers"]["range"] == "bytes=10-29"


def test_a_signed_read_and_a_stac_request_go_through_it_too(proxy: Proxy, blob: tuple[str, bytes]) -> None:
    url, data = blob

    def sign(request: Any) -> None:
        request.headers["X-Signed"] = "yes"

    signed = Storage(request_modifier=sign, retries=0)
    assert http_reads.read(url, signed, byte_range=ByteRange(0, 4)).body == data[:4]
    document = url.replace("one-client.bin", "one-client.json")
    assert JsonClient(signed).request("GET", document, error=ReadError, what="read")["id"] == "c"
    assert [(e["url"], e["headers"].get("x-signed")) for e in proxy.log()] == [
        (url, "yes"),
        (document, "yes"),
    ]


def test_no_proxy_and_proxy_credentials(
    proxy: Proxy, blob: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, data = blob
    document = url.replace("one-client.bin", "one-client.json")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert JsonClient(Storage(retries=0)).request("GET", document, error=ReadError, what="read")["id"] == "c"
    assert http_reads.read(url, Storage(headers={"A": "1"}), byte_range=ByteRange(0, 4)).body == data[:4]
    assert proxy.log() == []
    monkeypatch.delenv("no_proxy")
    netloc = urllib.parse.urlsplit(proxy.url).netloc
    monkeypatch.setenv("http_proxy", f"http://us%40er:p%3Aw-secret@{netloc}")
    JsonClient(Storage(retries=0)).request("GET", document, error=ReadError, what="read")
    (entry,) = proxy.log()
    assert (
        entry["headers"]["proxy-authorization"] == "Basic " + base64.b64encode(b"us@er:p:w-secret").decode()
    )


# -- one pool, one driver ------------------------------------------------------------------------------
def test_stac_requests_and_byte_reads_share_one_pool_and_keep_their_connection(
    blob: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    url, data = blob
    document = url.replace("one-client.bin", "one-client.json")
    storage = Storage(headers={"X-Api-Key": "k"}, concurrency=7, retries=0)
    client = JsonClient(storage)
    for _ in range(3):
        assert client.request("GET", document, error=ReadError, what="read")["id"] == "c"
        assert http_reads.read(url, storage, byte_range=ByteRange(0, 8)).body == data[:8]
    manager = http_reads._pool(storage)
    pool = manager.connection_from_url(url)
    # before: the STAC client's requests went through a requests session of its own
    assert (pool.num_requests, pool.num_connections) == (6, 1)


def test_a_fraction_of_a_second_in_retry_after_is_waited_on_a_read(
    server: RangeServer, blob: tuple[str, bytes]
) -> None:
    url, data = blob
    server.fault("/one-client.bin", status=503, count=1, retry_after=0.6)
    began = time.monotonic()
    storage = Storage(headers={"X-Api-Key": "k"}, retries=1, backoff=0.01, max_backoff=5.0)
    assert http_reads.read(url, storage, byte_range=ByteRange(0, 8)).body == data[:8]
    assert time.monotonic() - began >= 0.55  # before: 'Retry-After: 0.6' was not read (only whole seconds)


def test_a_request_modifier_that_raises_is_a_named_stac_error(proxy: Proxy, blob: tuple[str, bytes]) -> None:
    url, _ = blob

    def sign(request: Any) -> None:
        raise ValueError("cannot sign with key s3cr3t-key")

    with pytest.raises(tp.STACSearchError) as caught:  # before: the bare ValueError
        tp.search_stac(
            url.replace("one-client.bin", "api"), storage=Storage(request_modifier=sign)
        ).backend.client.request("GET", url, error=tp.STACSearchError, what="open the STAC API")
    message = str(caught.value)
    assert "request_modifier failed on it (ValueError)" in message
    assert "s3cr3t" not in message
    assert proxy.log() == []


# -- one redirect rule -----------------------------------------------------------------------------------
BLOB = bytes(range(256)) * 64


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    root = tmp_path_factory.mktemp("one-client")
    (root / "blob.bin").write_bytes(BLOB)
    server = start_hostile_server(root, lifetime=120)
    try:
        yield server
    finally:
        server.stop()


def _get(client: str, url: str, storage: Storage) -> bytes:
    if client == "stac":
        return JsonClient(storage).request_bytes(url, error=ReadError, what="read")
    return http_reads.read(url, storage).body


@pytest.mark.parametrize("client", ["stac", "byte layer"])
def test_a_redirect_to_a_non_http_url_is_named_at_once(
    client: str, hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    storage = Storage(headers={"X-Api-Key": "k"}, retries=3, backoff=0.5)  # headers: urllib3 for both
    for where in ("redirect-file", "redirect-nohost"):
        began = time.monotonic()
        with pytest.raises(ReadError, match="redirects to a URL that is not a usable http"):
            _get(client, hostile.url_for(where, "x"), storage)
        assert (
            time.monotonic() - began < 1.0
        )  # not retried (before: the STAC client retried 'cannot connect')


@pytest.mark.parametrize("client", ["stac", "byte layer"])
def test_credentials_go_to_their_origin_on_every_hop(
    client: str, hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    away, back = f"redirect-localhost-{hostile.port}", f"redirect-127.0.0.1-{hostile.port}"
    hostile.reset()
    storage = Storage(headers={"X-Api-Key": "k-2"}, retries=0)
    assert _get(client, hostile.url_for(away, f"{back}/plain/blob.bin"), storage) == BLOB
    sent = [
        (r["headers"].get("Host", "").split(":")[0], r["headers"].get("X-Api-Key"))
        for r in hostile.requests()
    ]
    # 127.0.0.1 -> localhost (another origin: none) -> 127.0.0.1 again (the origin: sent again, by both
    # clients; before, the byte layer's urllib3 redirects dropped them for good after the first other host)
    assert sent == [("127.0.0.1", "k-2"), ("localhost", None), ("127.0.0.1", "k-2")]


@pytest.mark.parametrize("client", ["stac", "byte layer"])
def test_a_socks_proxy_without_pysocks_says_what_to_install(
    client: str, blob: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("urllib3")
    if importlib.util.find_spec("socks") is not None:
        pytest.skip("PySocks is installed here")
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("all_proxy", "socks5://user:s3cr3t@127.0.0.1:9")
    url, _ = blob
    # before: the STAC client said 'the answer was cut short or garbled', the byte layer ignored the proxy
    with pytest.raises(tp.MissingDependencyError, match="pip install pysocks") as caught:
        _get(client, url, Storage(headers={"X-Api-Key": "k"}, retries=0))
    assert "s3cr3t" not in str(caught.value)


# -- whom TLS trusts --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proxy, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "tests.io.test_http_one_client", "tls", str(cert), str(key)]
    server = start_serving(command, Proxy, lambda _: None, "TLS server", 30.0, cwd=root)
    try:
        yield server, cert
    finally:
        server.stop()


@pytest.mark.parametrize("client", ["stac", "byte layer"])
def test_requests_ca_bundle_is_trusted_by_both_clients(
    client: str, tls_server: tuple[Proxy, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    for name in (*PROXY_VARIABLES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    url = f"{server.url}/catalog.json"
    storage = Storage(headers={"X-Api-Key": "k"}, retries=0, concurrency=3)  # headers: urllib3 for both
    monkeypatch.setattr(http_reads, "_POOLS", {})  # pools are made with the trust in force
    with pytest.raises(ReadError) as refused:  # a certificate nobody vouches for
        _get(client, url, storage)
    assert "127.0.0.1" in str(refused.value)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # requests' variable
    monkeypatch.setattr(http_reads, "_POOLS", {})
    assert (
        json.loads(_get(client, url, storage))["id"] == "tls"
    )  # before: the byte layer's urllib3 refused it


if __name__ == "__main__":
    _serve()
