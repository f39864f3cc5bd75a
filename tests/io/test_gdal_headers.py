"""``Storage(headers=...)`` on GDAL reads of ``http(s)://`` COGs: sent to the origin, never to another host.

GDAL has no per-host header setting and follows redirects itself; libcurl
drops ``Authorization`` and ``Cookie`` when a redirect leads to another host
and sent every other header on (``X-Api-Key`` reached ``localhost`` after a
redirect from ``127.0.0.1``). A raster at a URL is now read by GDAL through
terrapipe's byte layer (``io/gdal_opener.py``): every header goes to the
origin only, GDAL gets none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.io import open_raster
from tests.io.conftest import write_cog
from tests.servers.header_server import HeaderServer, start_header_server

TOKEN = "Bearer s3cret-token"


@pytest.fixture(scope="module")
def pixels_and_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("headers")
    data = write_cog(root / "a.tif", count=1, height=256, width=256, block=128)
    server = start_header_server(root, f"Authorization={TOKEN}")
    try:
        yield data, server
    finally:
        server.stop()


@pytest.fixture
def server(pixels_and_server: Any) -> HeaderServer:
    pixels_and_server[1].reset()
    return pixels_and_server[1]


def _carrying(server: HeaderServer, host: str, secret: str = "s3cret") -> list[dict[str, Any]]:
    """Requests to ``host`` (a ``Host`` header's host) that carried ``secret`` in any header."""
    out = []
    for request in server.requests():
        headers = request["headers"]
        if headers.get("Host", "").split(":")[0] == host and any(
            secret in value for name, value in headers.items() if name != "Host"
        ):
            out.append(request)
    return out


def _hosts(server: HeaderServer) -> set[str]:
    return {r["headers"].get("Host", "").split(":")[0] for r in server.requests()}


def test_the_authorization_header_is_sent_on_gdal_reads(pixels_and_server, server):
    data = pixels_and_server[0]
    url = f"{server.url}/auth/a.tif?case=1"
    got = open_raster(url, storage=tp.Storage(headers={"Authorization": TOKEN})).values
    np.testing.assert_array_equal(got[0], data[0])
    assert server.requests()
    assert all(r["headers"].get("Authorization") == TOKEN for r in server.requests())


def test_without_the_header_the_server_refuses(server):
    with pytest.raises(tp.ReadError, match=r"auth/a\.tif.*401"):
        open_raster(f"{server.url}/auth/a.tif?case=2").load()


def test_a_redirect_to_the_same_host_keeps_it(pixels_and_server, server):
    url = f"{server.url}/redirect/127.0.0.1/{server.port}/auth/a.tif?case=3"
    got = open_raster(url, storage=tp.Storage(headers={"Authorization": TOKEN})).values
    np.testing.assert_array_equal(got[0], pixels_and_server[0][0])


@pytest.mark.parametrize(
    "query", ["case=4", "X-Amz-Signature=abc&X-Amz-Expires=3600&X-Amz-Date=20300101T000000Z&case=5"]
)
@pytest.mark.parametrize(
    "headers", [{"Authorization": TOKEN}, {"Authorization": TOKEN, "Cookie": "s=s3cret"}]
)
def test_a_redirect_to_another_host_never_receives_it(server, query, headers):
    """127.0.0.1 redirects to localhost (the same server under another host name): no secret goes there."""
    url = f"{server.url}/redirect/localhost/{server.port}/auth/a.tif?{query}"
    with pytest.raises(tp.ReadError, match=r"401") as info:
        open_raster(url, storage=tp.Storage(headers=headers)).load()
    assert "localhost" in _hosts(server)  # the redirect was followed
    assert _carrying(server, "localhost") == []
    assert "s3cret" not in str(info.value)
    assert _carrying(server, "127.0.0.1")  # the origin had it


@pytest.mark.parametrize("name", ["X-Api-Key", "x-goog-api-key", "Proxy-Authorization", "Cookie"])
def test_every_header_goes_to_the_origin_only(pixels_and_server, server, name):
    """Every header kind reaches the origin and never the host a redirect leads to (curl sent all but two on)."""
    storage = tp.Storage(headers={"Authorization": TOKEN, name: "s3cret-key"})
    got = open_raster(f"{server.url}/redirect/localhost/{server.port}/a.tif?case=6", storage=storage).values
    np.testing.assert_array_equal(got[0], pixels_and_server[0][0])
    assert "localhost" in _hosts(server)  # the redirect was followed
    assert _carrying(server, "localhost") == []
    origin = [r for r in server.requests() if r["headers"].get("Host", "").startswith("127.0.0.1")]
    assert origin
    assert all(r["headers"].get(name) == "s3cret-key" for r in origin)


def test_a_line_break_in_a_header_is_refused(server):
    storage = tp.Storage(headers={"Authorization": "Bearer x\r\nX-Api-Key: s3cret"})
    with pytest.raises(tp.InvalidArgumentError, match="line break") as info:
        open_raster(f"{server.url}/auth/a.tif?case=7", storage=storage)
    assert "s3cret" not in str(info.value)
    assert server.requests() == []


def test_read_raster_stage_sends_it_from_worker_threads(pixels_and_server, server):
    storage = tp.Storage(headers={"Authorization": TOKEN})
    url = f"{server.url}/auth/a.tif?case=8"
    pipe = tp.from_items([url]).read_raster(storage=storage).chip({"y": 128, "x": 128}, output="numpy")
    chips = list(pipe)
    assert len(chips) == 4
    assert all(r["headers"].get("Authorization") == TOKEN for r in server.requests())


def test_gdal_options_without_headers_are_unchanged():
    assert "GDAL_HTTP_HEADERS" not in tp.Storage().gdal_options("https://h/a.tif")
    assert "GDAL_HTTP_HEADERS" not in tp.Storage(headers={"X-Api-Key": "k"}).gdal_options("s3://b/a.tif")


def test_your_gdal_http_headers_come_first(monkeypatch):
    from terrapipe.io.gdal_env import header_options

    monkeypatch.setenv("GDAL_HTTP_HEADERS", "Authorization: Bearer yours")
    got = header_options("https://h/a.tif", [("Cookie", "c=1")])["GDAL_HTTP_HEADERS"]
    assert got == "Authorization: Bearer yours\r\nCookie: c=1"


@pytest.mark.parametrize(
    "value",
    [
        "Bearer s3cret\x00tail",
        "Bearer s3cret\ttail\x7f",
        "Bearer s3cret\r\nX-Other: y",
        "Bearer s3cr\u00e9t",
        "B\u20ac",
    ],
)
def test_a_header_value_gdal_would_cut_or_send_as_other_bytes_is_refused_by_name(value: str) -> None:
    """A NUL (GDAL cuts the value there: another credential), a control character, a line break, or a
    character outside ASCII (GDAL sends UTF-8, the byte layer latin-1) is refused before any request."""
    from terrapipe.io.gdal_env import header_options

    with pytest.raises(tp.InvalidArgumentError) as caught:
        header_options("https://example.test/a.tif?sig=abc", [("Authorization", value)])
    message = str(caught.value)
    assert "s3cr" not in message
    assert "sig=abc" not in message
    assert "https://example.test/a.tif" in message
    assert "Authorization" in message or "ASCII" in message


def test_the_header_is_given_once_when_a_read_opens_the_file(pixels_and_server, server, monkeypatch):
    # a read runs in the storage's environment and opens the file inside it: entered twice, GDAL got
    # 'Authorization: t\r\nAuthorization: t' (sent twice) for the open's requests
    from rasterio.env import get_gdal_config

    from terrapipe.io import raster_array

    seen = []
    real_open = raster_array.rasterio.open

    def spying_open(*args: Any, **kwargs: Any) -> Any:
        seen.append(get_gdal_config("GDAL_HTTP_HEADERS", normalize=False))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(raster_array.rasterio, "open", spying_open)
    storage = tp.Storage(headers={"Authorization": TOKEN})
    da = open_raster(f"{server.url}/auth/a.tif?case=9", storage=storage)
    raster_array.close_thread_handles()
    np.testing.assert_array_equal(da[0, :8, :8].values, pixels_and_server[0][0, :8, :8])
    assert len(seen) >= 2  # the open's, then the read's
    assert set(seen) == {None}  # GDAL gets no header: the byte layer under it sends it
    assert server.requests()
    assert all(r["headers"].get("Authorization") == TOKEN for r in server.requests())


def test_a_request_modifier_signs_every_request_of_a_raster_read(pixels_and_server, server):
    """GDAL calls no Python per request; the byte layer under it does: the hook signs each one."""
    signed: list[str] = []

    def sign(request: Any) -> None:
        request.headers["Authorization"] = TOKEN
        signed.append(request.url)

    storage = tp.Storage(request_modifier=sign)
    got = open_raster(f"{server.url}/auth/a.tif?case=10", storage=storage).values
    np.testing.assert_array_equal(got[0], pixels_and_server[0][0])
    assert len(signed) == len(server.requests()) > 0
    assert all(r["headers"].get("Authorization") == TOKEN for r in server.requests())
