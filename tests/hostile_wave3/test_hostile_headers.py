"""Storage(headers=...) with values a careless or hostile caller gives: each client sends them as given or refuses them by name.

HTTP header values are visible ASCII, spaces and tabs (and, obsolete, bytes 0x80-0xFF); a value
outside latin-1 cannot be sent at all, a NUL is cut by GDAL (the server gets another credential).
Whatever the client (GDAL for COGs, urllib3 for bytes and STAC), the caller must get a
TerrapipeError naming the header (never its value), not a bare UnicodeEncodeError, and never a
truncated credential on the wire.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import TerrapipeError
from terrapipe.io import object_store, open_raster
from terrapipe.stac.http_json import JsonClient
from tests.io.conftest import write_cog
from tests.servers.header_server import HeaderServer, start_header_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("hostile_headers")
    write_cog(root / "a.tif", count=1, height=64, width=64, block=64)
    (root / "doc.json").write_text(json.dumps({"type": "Feature"}))
    started = start_header_server(root, "Authorization=Bearer x")
    try:
        yield started
    finally:
        started.stop()


def _bytes(server: HeaderServer, storage: tp.Storage) -> None:
    object_store.get(f"{server.url}/doc.json", storage)


def _stac(server: HeaderServer, storage: tp.Storage) -> None:
    JsonClient(storage).request("GET", f"{server.url}/doc.json", error=tp.ReadError, what="read the document")


def _gdal(server: HeaderServer, storage: tp.Storage) -> None:
    open_raster(f"{server.url}/a.tif", storage=storage).load()


@pytest.mark.parametrize("read", [_bytes, _stac])
def test_a_header_value_outside_latin1_is_a_named_error(server: HeaderServer, read: Any) -> None:
    secret = "Bearer s3cret\u20acvalue"
    with pytest.raises(TerrapipeError) as info:
        read(server, tp.Storage(headers={"Authorization": secret}))
    assert "s3cret" not in str(info.value)


def test_a_header_value_with_a_nul_is_refused_not_cut(server: HeaderServer) -> None:
    server.reset()
    storage = tp.Storage(headers={"Authorization": "Bearer s3cret\x00tail"})
    message = ""
    try:
        _gdal(server, storage)
    except TerrapipeError as err:  # refused by name: fine, as long as the value is not shown
        message = str(err)
    assert "s3cret" not in message
    sent = {r["headers"].get("Authorization") for r in server.requests()}
    assert sent <= {"Bearer s3cret\x00tail"}
