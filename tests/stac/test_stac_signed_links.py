"""A static catalog at an Azure SAS URL: its SAS goes to the links in its container, and nowhere else.

Two servers on 127.0.0.1 stand in for a blob service (path-style, as
Azurite and private endpoints: ``/account/container/blob``) and for another
host. The blob service refuses a blob of the ``data`` container without the
right ``sig`` and serves the ``public`` container to anyone; both log every
request, so the tests see exactly where the SAS went.
"""

from __future__ import annotations

import http.server
import posixpath
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import STACSearchError
from terrapipe.stac.signed_links import SignedRoot
from tests.servers.handler import JsonHandler

SIG = "S1gnature-Value+42/xyz"
SAS = urllib.parse.urlencode({"sv": "2024-08-04", "ss": "b", "srt": "co", "sp": "rl", "sig": SIG})


@dataclass
class Blobs:
    """A server: path -> JSON document or ``("redirect", url)``; the requests it got."""

    documents: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, query)
    private: str = "/acct/data/"
    url: str = ""


def _serve(blobs: Blobs) -> http.server.ThreadingHTTPServer:
    class Handler(JsonHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            path = posixpath.normpath(urllib.parse.unquote(parts.path))  # as a blob service resolves it
            blobs.requests.append((path, parts.query))
            given = dict(urllib.parse.parse_qsl(parts.query))
            found = blobs.documents.get(path)
            if path.startswith(blobs.private) and given.get("sig") != SIG:
                self._send_json(403, {"code": "AuthenticationFailed"})
            elif found is None:
                self._send_json(404, {"code": "BlobNotFound"})
            elif isinstance(found, tuple):
                self.send_response(302)
                self.send_header("Location", found[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send_json(200, found)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    blobs.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers() -> Iterator[tuple[Blobs, Blobs]]:
    service, other = Blobs(), Blobs(private="/never/")
    started = [_serve(service), _serve(other)]
    try:
        yield service, other
    finally:
        for server in started:
            server.shutdown()
            server.server_close()


def _collection(cid: str, item: str) -> dict[str, Any]:
    return {
        "type": "Collection", "id": cid, "stac_version": "1.0.0", "description": cid, "license": "proprietary",
        "extent": {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}},
        "links": [{"rel": "item", "href": item}],
    }  # fmt: skip


def _item(iid: str) -> dict[str, Any]:
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": iid, "bbox": [0, 0, 1, 1],
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
        "properties": {"datetime": "2024-06-01T00:00:00Z"}, "links": [],
        "assets": {"b": {"href": f"https://assets.example/{iid}.tif"}},
    }  # fmt: skip


def _catalog(links: list[str]) -> dict[str, Any]:
    return {
        "type": "Catalog", "id": "root", "stac_version": "1.0.0", "description": "root",
        "links": [{"rel": "child", "href": href} for href in links],
    }  # fmt: skip


def _add(blobs: Blobs, folder: str, name: str) -> None:
    """A collection ``name`` with one item ``name-1`` under ``folder`` (relative item link)."""
    blobs.documents[f"{folder}/{name}/collection.json"] = _collection(name, "./item.json")
    blobs.documents[f"{folder}/{name}/item.json"] = _item(f"{name}-1")


def _search(url: str) -> list[str]:
    return sorted(item.id for item in tp.search_stac(url, storage=tp.Storage(retries=0)))


def test_a_container_sas_signs_the_links_in_its_container_and_no_other(servers: tuple[Blobs, Blobs]) -> None:
    service, other = servers
    _add(service, "/acct/data/stac", "same")  # same container: read with the SAS
    _add(service, "/acct/data/stac/deep", "nested")
    _add(service, "/acct/public/stac", "container")  # another container of the same account
    _add(service, "/acct/other", "climbed")  # reached by %2e%2e segments: another container too
    _add(other, "/acct/data/stac", "host")  # the same path on another origin
    other.documents["/moved/collection.json"] = _collection("redirected", f"{other.url}/moved/item.json")
    other.documents["/moved/item.json"] = _item("redirected-1")
    service.documents["/acct/data/stac/moved/collection.json"] = (
        "redirect",
        f"{other.url}/moved/collection.json",
    )
    service.documents["/acct/data/stac/catalog.json"] = _catalog(
        [
            "./same/collection.json",
            "deep/nested/collection.json",
            "../../public/stac/container/collection.json",
            "./%2e%2e/%2E%2E/other/climbed/collection.json",
            f"{other.url}/acct/data/stac/host/collection.json",
            "./moved/collection.json",
        ]
    )
    found = _search(f"{service.url}/acct/data/stac/catalog.json?{SAS}")
    assert found == ["climbed-1", "container-1", "host-1", "nested-1", "redirected-1", "same-1"]
    for path, query in service.requests:
        if path.startswith("/acct/data/"):
            assert dict(urllib.parse.parse_qsl(query)).get("sig") == SIG, path
        else:
            assert query == "", (path, query)  # another container: never the SAS
    assert {p for p, _ in service.requests} >= {
        "/acct/public/stac/container/item.json",
        "/acct/other/climbed/item.json",
    }
    assert other.requests, "the other host was asked"
    assert all(query == "" for _, query in other.requests), other.requests  # other origin, redirect included
    assert ("/moved/collection.json", "") in other.requests


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=" + urllib.parse.quote(SIG, safe=""), "presigned S3"),
        ("X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature=" + urllib.parse.quote(SIG, safe=""), "presigned GCS"),
        (SAS.replace("ss=b&srt=co", "sr=b"), "blob SAS"),
    ],
)  # fmt: skip
def test_a_url_signed_for_one_object_signs_nothing_else_and_says_to_use_storage(
    servers: tuple[Blobs, Blobs], query: str, kind: str
) -> None:
    service, _ = servers
    _add(service, "/acct/data/stac", "same")
    service.documents["/acct/data/stac/catalog.json"] = _catalog(["./same/collection.json"])
    if "sig=" not in query:  # the test server checks "sig": let the root itself through as S3/GCS would
        query += "&sig=" + urllib.parse.quote(SIG, safe="")
    with pytest.raises(STACSearchError) as info:
        _search(f"{service.url}/acct/data/stac/catalog.json?{query}")
    message = str(info.value)
    assert "storage=" in message, (kind, message)
    assert "/acct/data/stac/same/collection.json" in message, message
    assert SIG not in message, message
    assert urllib.parse.quote(SIG, safe="") not in message, message
    assert [q for p, q in service.requests if p != "/acct/data/stac/catalog.json"] == [""], service.requests


def test_a_refused_signed_link_names_it_without_the_sas(servers: tuple[Blobs, Blobs]) -> None:
    service, _ = servers
    service.documents["/acct/data/stac/catalog.json"] = _catalog(["./gone/collection.json"])
    with pytest.raises(STACSearchError) as info:
        _search(f"{service.url}/acct/data/stac/catalog.json?{SAS}")
    message = str(info.value)
    assert f"{service.url}/acct/data/stac/gone/collection.json" in message, message
    assert "404" in message, message
    for secret in (SIG, urllib.parse.quote(SIG, safe=""), "sig=", "?sv"):
        assert secret not in message, message
    assert dict(urllib.parse.parse_qsl(service.requests[-1][1])).get("sig") == SIG  # it was sent, signed


ROOT = "https://acc.blob.core.windows.net/data/stac/catalog.json?sv=2024-08-04&sr=c&sp=rl&sig=k3y%2Bvalue"


@pytest.mark.parametrize(
    ("link", "signed"),
    [
        ("https://acc.blob.core.windows.net/data/stac/a/item.json", True),
        ("https://ACC.blob.core.windows.net:443/data/x%20y/item.json", True),
        ("https://acc.blob.core.windows.net/data/stac/a/item.json#frag", True),
        ("https://acc.blob.core.windows.net/other/item.json", False),
        (
            "https://acc.blob.core.windows.net/data",
            False,
        ),  # the container itself (a listing), not a blob in it
        ("https://acc.blob.core.windows.net/data/../other/item.json", False),
        ("https://acc.blob.core.windows.net/data/%2e%2e/other/item.json", False),
        ("https://acc.blob.core.windows.net/data%2F..%2Fother/item.json", False),
        ("https://acc.blob.core.windows.net/../data/item.json", False),  # climbs above the root
        ("https://acc.blob.core.windows.net/data\\..\\other/item.json", False),
        ("https://acc2.blob.core.windows.net/data/item.json", False),
        ("https://acc.blob.core.windows.net.evil.example/data/item.json", False),
        ("http://acc.blob.core.windows.net/data/item.json", False),  # another scheme
        ("https://acc.blob.core.windows.net:8443/data/item.json", False),
        ("https://acc.blob.core.windows.net/data/item.json?sv=1&sig=other", False),  # its own query
        ("s3://data/item.json", False),
        ("/data/item.json", False),
    ],
)
def test_which_links_get_the_sas(link: str, signed: bool) -> None:
    root = SignedRoot.of(ROOT)
    assert root.unsigned == ROOT.split("?")[0]
    assert "k3y" not in repr(root)
    got = root.sign(link)
    if signed:
        assert got == link.split("#")[0] + "?" + ROOT.split("?")[1]
    else:
        assert got == link


def test_what_is_not_a_container_sas_lends_nothing() -> None:
    for url in (
        "https://h.example/stac/catalog.json?token=abc",  # a server's own query: sent as given, to the root only
        "https://acc.blob.core.windows.net/catalog.json?sv=1&sig=x",  # no container in the path
        "http://127.0.0.1:10000/acct/catalog.json?sv=1&sig=x",  # path-style: account, then container
        "https://acc.blob.core.windows.net/data/catalog.json",
    ):
        root = SignedRoot.of(url)
        assert root.unsigned == url
        assert root.hint is None
        assert (
            root.sign(url.split("?")[0].rsplit("/", 1)[0] + "/x/item.json")
            == url.split("?")[0].rsplit("/", 1)[0] + "/x/item.json"
        )
