"""A STAC API that echoes a refused credential in its error body: the message must not show it.

``stac/http_json`` puts 300 characters of an error answer's body in the message (the server's
reason) and scrubs the URL's query and ``Storage.headers``' values from it. A credential a
``Storage(request_modifier=...)`` adds (a header or a query token, as signing hooks do) is not
scrubbed (a query token it adds is): ``HTTP 400 ({"message": "token Bearer <token> rejected"})``, on 400, 403 and 500.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

import terrapipe as tp
from tests.hostile_wave4b.echo_server import EchoServer, start_echo_server

pytest.importorskip("requests")  # request_modifier's Request

TOKEN = "tok3n-never-shown"


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with start_echo_server() as server:
        yield server


def _header(request: Any) -> Any:
    request.headers["Authorization"] = f"Bearer {TOKEN}"
    return request


def _api_key(request: Any) -> Any:
    request.headers["X-Api-Key"] = TOKEN
    return request


def _query(request: Any) -> Any:
    request.params = {**(request.params or {}), "token": TOKEN}
    return request


def _message(url: str, storage: tp.Storage) -> str:
    with pytest.raises(tp.TerrapipeError) as info:
        list(tp.stac.search_stac(url, storage=storage, collections=["x"]))
    return str(info.value)


@pytest.mark.parametrize("status", [400, 403, 500])
def test_a_request_modifier_s_query_token_is_scrubbed(echo: EchoServer, status: int) -> None:
    message = _message(f"{echo.url}/{status}/search", tp.Storage(request_modifier=_query, retries=0))
    assert f"HTTP {status}" in message
    assert TOKEN not in message, message


@pytest.mark.parametrize("status", [400, 403, 500])
def test_storage_headers_are_scrubbed_from_an_echoing_answer(echo: EchoServer, status: int) -> None:
    storage = tp.Storage(headers={"Authorization": f"Bearer {TOKEN}"}, retries=0)
    message = _message(f"{echo.url}/{status}/search?sig={TOKEN}", storage)
    assert f"HTTP {status}" in message
    assert TOKEN not in message, message


@pytest.mark.parametrize("modifier", [_header, _api_key], ids=["authorization", "api-key"])
@pytest.mark.parametrize("status", [400, 403, 500])
def test_a_request_modifier_s_credential_is_scrubbed_too(
    echo: EchoServer, status: int, modifier: Any
) -> None:
    storage = tp.Storage(request_modifier=modifier, retries=0)
    message = _message(f"{echo.url}/{status}/search", storage)
    assert f"HTTP {status}" in message
    assert TOKEN not in message, message


def test_a_basic_password_echoed_decoded_is_scrubbed(echo: EchoServer) -> None:
    basic = "Basic " + base64.b64encode(f"alice:{TOKEN}".encode()).decode()
    message = _message(f"{echo.url}/403/search", tp.Storage(headers={"Authorization": basic}, retries=0))
    assert "HTTP 403" in message
    assert TOKEN not in message, message


def test_one_cookie_of_several_echoed_is_scrubbed(echo: EchoServer) -> None:
    storage = tp.Storage(headers={"Cookie": f"session={TOKEN}; theme=dark"}, retries=0)
    message = _message(f"{echo.url}/403/search", storage)
    assert "HTTP 403" in message
    assert TOKEN not in message, message
