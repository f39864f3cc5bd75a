"""A bbox read of a FlatGeobuf over HTTP never turns into a whole-file download.

GDAL opens a URL with a query string (signed, token) with ``use_head=no``
and then learns the file's size from a ``GET`` without a ``Range`` whose body
it drops after the headers: the server streams the file until it sees the
connection close (256 KiB of 2 MiB on an idle machine, all of it under load:
``test_remote_bbox_reads_part_of_the_file[fgb]`` once counted 2.24 MB served
for a 2.1 MB file). Such reads go by exact ranges through the byte layer; a
server that ignores ``Range`` is a named error on both routes.
"""

from __future__ import annotations

import shutil
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import box

import terrapipe as tp
from terrapipe.io import open_vector
from tests.io.conftest import unique
from tests.servers.hostile_http import HostileServer, start_hostile_server

gpd = pytest.importorskip("geopandas")
pyogrio = pytest.importorskip("pyogrio")

QUERY = (500_200.0, 4_990_300.0, 500_260.0, 4_990_340.0)


def _file_gets(server: Any, path: Path) -> list[dict[str, Any]]:
    name = f"/{path.parent.name}/{path.name}"
    return [e for e in server.stats()["log"] if e["path"] == name and e["method"] == "GET"]


def _ids(gdf: Any) -> list[int]:
    return sorted(int(i) for i in gdf["id"])


@pytest.fixture
def big_fgb(big_vector_files: dict[str, Any]) -> Path:
    """A copy of the big FlatGeobuf under a name no other test (nor GDAL's cache of URLs) has seen."""
    source = big_vector_files["paths"]["fgb"]
    target = source.parent / unique("big.fgb")
    shutil.copyfile(source, target)
    return target


def test_gdal_learns_a_head_less_size_from_an_unranged_get(big_fgb, server):
    """The mechanism: GDAL's size probe without HEAD is a GET with no Range (so we keep such reads off it)."""
    name = "/vsicurl?" + urllib.parse.urlencode({"use_head": "no", "url": server.url_for(big_fgb) + "?t=1"})
    pyogrio.read_info(name)
    # the server logs a request once it stops writing: for the dropped body, after GDAL has moved on
    deadline = time.monotonic() + 20
    while not any(e["range"] is None for e in _file_gets(server, big_fgb)) and time.monotonic() < deadline:
        time.sleep(0.05)
    gets = _file_gets(server, big_fgb)
    assert any(e["range"] is None for e in gets), [(e["status"], e["bytes"], e["range"]) for e in gets]


@pytest.mark.parametrize("kind", ["signed-bbox", "signed-mask", "plain-bbox"])
def test_filtered_flatgeobuf_over_http_sends_only_ranged_gets(big_vector_files, big_fgb, server, kind):
    url = server.url_for(big_fgb) + ("?X-Goog-Signature=abc&token=1" if kind.startswith("signed") else "")
    region = box(*QUERY)
    got = open_vector(url, mask=region) if kind.endswith("mask") else open_vector(url, bbox=QUERY)
    ref = big_vector_files["gdf"]
    assert _ids(got) == sorted(int(i) for i in ref[ref.intersects(region)]["id"])
    assert got.attrs["source"] == url
    gets = _file_gets(server, big_fgb)
    assert gets
    assert all(e["range"] for e in gets), [(e["status"], e["range"]) for e in gets]
    served = sum(e["bytes"] for e in gets)
    assert served < 0.1 * big_fgb.stat().st_size, served


def test_signed_flatgeobuf_read_whole_still_works(vector_files, server):
    path = vector_files["paths"]["fgb"]
    got = open_vector(server.url_for(path) + "?sig=1")
    assert _ids(got) == list(range(400))


@pytest.fixture(scope="module")
def hostile(big_vector_files: dict[str, Any]) -> Any:
    server = start_hostile_server(big_vector_files["folder"], lifetime=120)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("query", ["?sig=1", ""])
def test_a_server_ignoring_ranges_is_named_not_downloaded(hostile: HostileServer, query):
    """A 200 with the whole file to each ranged GET: a named ReadError on both routes, never N whole files."""
    url = hostile.url_for("full", "big.fgb") + query
    with pytest.raises(tp.ReadError, match=r"'http://127\.0\.0\.1:\d+/full/big\.fgb'.*[Rr]ange") as info:
        open_vector(url, bbox=QUERY)
    assert "sig=" not in str(info.value)


@pytest.mark.parametrize("status", [404, 403])
def test_a_failing_signed_flatgeobuf_is_named_without_its_query(big_fgb, server, status):
    url = server.url_for(big_fgb) + "?X-Goog-Signature=s3cret"
    if status == 404:
        url = url.replace(big_fgb.name, "missing.fgb")
    else:
        server.fault(f"/{big_fgb.parent.name}/", status=status)
    with pytest.raises(tp.ReadError, match=rf"'{server.url}/.*\.fgb'.*{status}") as info:
        open_vector(url, bbox=QUERY)
    assert "s3cret" not in str(info.value)


def test_a_dropped_answer_of_an_earlier_test_is_not_counted(big_fgb, range_server_session):
    """The other way a test's counters could hold bytes it never asked for: an earlier client's dropped body.

    The server counts an answer when it ends; one whose client went away (as
    GDAL drops its size GET) ends when the server notices. ``cleared()``
    zeroes the counters once no answer is being written any more.
    """
    server = range_server_session
    name = f"/{big_fgb.parent.name}/{big_fgb.name}"
    server.fault(name, status=None, delay=0.5, count=1)  # the answer starts after the client has gone
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {name} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        time.sleep(0.1)  # the server has read the request
    with server.cleared() as fresh:
        time.sleep(1.0)  # the dropped answer has ended by now, before or after cleared()
        assert name not in fresh.stats()["paths"]  # neither its request nor any of its bytes
