"""STAC search against hostile servers: deadlines, page loops, body caps, credential scope, malformed answers.

Every server is a real process on 127.0.0.1 (``tests/servers/hostile_stac.py``)
scripted per test; each test ends by itself within a few seconds, whatever the
code under test does (bounded trickles, bounded bodies).
"""

from __future__ import annotations

import base64
import json
import time
import tracemalloc
import urllib.parse
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import STACSearchError
from terrapipe.stac.http_json import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, deadline_of
from tests.servers.hostile_stac import HostileServer, start_hostile_server

pytest.importorskip("pystac")
pytest.importorskip("pystac_client")

SECRET = "Zk3y-h0stile-s3cr3t"


def net(**fields: Any) -> tp.Storage:
    """The transport of these tests: no retries, 5 s per read, and ``fields``."""
    return tp.Storage(**{"retries": 0, "timeout": 5.0, **fields})


FAST: dict[str, Any] = {"storage": net()}
_MIB = 2**20


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the second server serves under ``/files/``."""
    return tmp_path_factory.mktemp("hostile-files")


@pytest.fixture(scope="module")
def servers(files: Path) -> Iterator[tuple[HostileServer, HostileServer]]:
    """Two hostile servers (two origins: same host, different ports); the second serves files too."""
    first = start_hostile_server()
    try:
        second = start_hostile_server(files)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.fixture
def api(servers: tuple[HostileServer, HostileServer]) -> HostileServer:
    """The first server, with no routes and an empty log."""
    servers[0].reset()
    return servers[0]


@pytest.fixture
def other(servers: tuple[HostileServer, HostileServer]) -> HostileServer:
    """The second server (another origin), with no routes and an empty log."""
    servers[1].reset()
    return servers[1]


def item(ident: str) -> dict[str, Any]:
    """A small valid STAC item."""
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": ident,
        "collection": "c",
        "geometry": {"type": "Point", "coordinates": [6.0, 45.0]},
        "bbox": [6.0, 45.0, 6.0, 45.0],
        "properties": {"datetime": "2024-06-01T10:00:00Z"},
        "links": [],
        "assets": {},
    }


def page(ids: list[str], next_link: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ItemCollection answer."""
    links = [dict(next_link, rel="next")] if next_link is not None else []
    return {"json": {"type": "FeatureCollection", "features": [item(i) for i in ids], "links": links}}


def collect(pipe: Any) -> tuple[list[str], BaseException | None]:
    """The ids a pipe yields before it raises, and what it raised."""
    got: list[str] = []
    try:
        for found in pipe:
            got.append(found.id)
    except Exception as err:  # the test looks at the type
        return got, err
    return got, None


# -- 1. deadlines ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickling_api_meets_the_deadline(api: HostileServer, where: str) -> None:
    slow = page(["a", "b", "c"]) | {
        "trickle": 0.1,
        "trickle_headers": where == "headers",
        "trickle_limit": 20,
    }
    api.route({"/search": slow})
    started = time.monotonic()
    got, err = collect(tp.search_stac(f"{api.url}/search", storage=net(deadline=1.5)))
    elapsed = time.monotonic() - started
    assert isinstance(err, STACSearchError), err
    assert got == []
    assert elapsed < 8.0, f"the deadline of 1.5 s took {elapsed:.1f} s"
    message = str(err)
    assert "deadline of 1.5 s" in message
    assert "deadline=" in message
    assert f"{api.url}/search" in message


def test_the_deadline_covers_retries_and_retry_after(api: HostileServer) -> None:
    api.route({"/search": {"status": 503, "text": "busy", "headers": {"Retry-After": "20"}}})
    started = time.monotonic()
    _got, err = collect(
        tp.search_stac(f"{api.url}/search", storage=net(deadline=1.0, retries=5, max_backoff=60))
    )
    assert isinstance(err, STACSearchError)
    assert time.monotonic() - started < 8.0
    assert "deadline of 1 s" in str(err)
    assert "HTTP 503" in str(err)


def test_a_trickling_static_catalog_meets_the_deadline(api: HostileServer) -> None:
    catalog = {"type": "Catalog", "id": "x", "description": "d", "stac_version": "1.1.0", "links": []}
    api.route({"/catalog.json": {"json": catalog, "trickle": 0.1, "trickle_limit": 20}})
    started = time.monotonic()
    _got, err = collect(tp.search_stac(f"{api.url}/catalog.json", storage=net(deadline=1.0)))
    assert isinstance(err, STACSearchError)
    assert "deadline of 1 s" in str(err)
    assert time.monotonic() - started < 8.0


def test_the_deadline_has_a_documented_default() -> None:
    assert deadline_of(tp.Storage()) == DEFAULT_DEADLINE == 120.0
    assert DEFAULT_MAX_BYTES == 64 * _MIB
    doc = Path(__file__).parents[2] / "docs" / "reliability.md"
    assert "120 s" in doc.read_text()
    assert "64 MiB" in doc.read_text()


# -- 2. loops -----------------------------------------------------------------------------------------
def test_pages_that_cycle_are_a_named_error_before_any_repeat(api: HostileServer) -> None:
    api.route(
        {
            "/search": page(["a"], {"href": "/p/2?b=1&a=2"}),
            "/p/2": page(["b"], {"href": "/p/3"}),
            # the same page as /p/2, spelled differently: scheme case, query order, a fragment
            "/p/3": page(["c"], {"href": f"{api.url.upper()}/p/2?a=2&b=1#frag"}),
        }
    )
    got, err = collect(tp.search_stac(f"{api.url}/search", **FAST))
    assert got == ["a", "b", "c"]
    assert isinstance(err, STACSearchError)
    assert "loop" in str(err)
    assert "page 3 leads back to page 2" in str(err)
    assert len([e for e in api.log() if e["path"] == "/p/2"]) == 1


def test_a_post_token_that_cycles_is_a_named_error(api: HostileServer) -> None:
    def token(value: str) -> dict[str, Any]:
        return {"href": f"{api.url}/search", "method": "POST", "body": {"token": value}, "merge": True}

    # the API answers by body, which the scripted server cannot see: answer in turn with the 3 pages
    api.route({"/search": page(["a"], token("t1"))})
    pipe = tp.search_stac(f"{api.url}/search", **FAST)
    it = iter(pipe)
    assert next(it).id == "a"
    api.route({"/search": page(["b"], token("t2"))})
    assert next(it).id == "b"
    api.route({"/search": page(["c"], token("t1"))})
    assert next(it).id == "c"
    with pytest.raises(STACSearchError, match="loop"):
        next(it)


def test_a_page_that_names_itself_is_a_named_error(api: HostileServer) -> None:
    api.route({"/search": page(["a"], {"href": "/p/1"}), "/p/1": page(["b"], {"href": "/p/1"})})
    got, err = collect(tp.search_stac(f"{api.url}/search", **FAST))
    assert got == ["a", "b"]
    assert isinstance(err, STACSearchError)
    assert "loop" in str(err)


def test_the_same_items_under_ever_new_tokens_are_a_loop(api: HostileServer) -> None:
    api.route({f"/p/{n}": page(["a", "b"], {"href": f"/p/{n + 1}"}) for n in range(2, 50)})
    api.route({"/search": page(["a", "b"], {"href": "/p/2"})})
    got, err = collect(tp.search_stac(f"{api.url}/search", **FAST))
    assert got == ["a", "b"]
    assert isinstance(err, STACSearchError)
    assert "repeats the items of page 1" in str(err)


def test_a_loop_is_skipped_with_on_error_skip(api: HostileServer) -> None:
    api.route(
        {
            "/search": page(["a"], {"href": "/search?again=1"}),
            "/search?again=1": page(["b"], {"href": "/search"}),
        }
    )
    pipe = tp.from_items([{}, {"ids": ["x"]}]).search_stac(f"{api.url}/search", on_error="skip", **FAST)
    got, err = collect(pipe)
    assert err is None
    # each query: a, b, then the loop (POST /search again) is skipped
    assert got == ["a", "b", "a", "b"]
    assert pipe.stats.skipped == 2


def _catalog(links: list[dict[str, str]], kind: str = "Catalog", ident: str = "cat") -> dict[str, Any]:
    return {"type": kind, "id": ident, "description": "d", "stac_version": "1.1.0", "links": links}


def test_a_static_catalog_whose_links_cycle_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "catalog.json").write_text(
        json.dumps(_catalog([{"rel": "child", "href": "./sub/catalog.json"}]))
    )
    (tmp_path / "sub" / "catalog.json").write_text(
        json.dumps(
            _catalog(
                [{"rel": "item", "href": "./a.json"}, {"rel": "child", "href": "../sub/../catalog.json"}]
            )
        )
    )
    (tmp_path / "sub" / "a.json").write_text(json.dumps(item("a")))
    _, err = collect(tp.search_stac(tmp_path / "catalog.json"))
    assert isinstance(err, STACSearchError)
    assert "cycle" in str(err)
    assert "sub/catalog.json" in str(err)


def test_a_catalog_reached_twice_is_searched_once(tmp_path: Path) -> None:
    links = [
        {"rel": "child", "href": "./left/catalog.json"},
        {"rel": "child", "href": "./right/catalog.json"},
    ]
    (tmp_path / "catalog.json").write_text(json.dumps(_catalog(links)))
    for side in ("left", "right"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "catalog.json").write_text(
            json.dumps(_catalog([{"rel": "item", "href": "../a.json"}]))
        )
    (tmp_path / "a.json").write_text(json.dumps(item("a")))
    got, err = collect(tp.search_stac(tmp_path / "catalog.json"))
    assert err is None
    assert got == ["a"]


def test_an_http_catalog_cycle_and_an_endless_chain(api: HostileServer) -> None:
    for back in (f"{api.url.upper()}/catalog.json?", "../catalog.json#top"):
        api.route(
            {
                "/catalog.json": {"json": _catalog([{"rel": "child", "href": "./c/1.json"}])},
                "/c/1.json": {"json": _catalog([{"rel": "child", "href": back}])},
            }
        )
        _, err = collect(tp.search_stac(f"{api.url}/catalog.json", **FAST))
        assert isinstance(err, STACSearchError), err
        assert "cycle" in str(err)
    api.route(
        {f"/d/{n}.json": {"json": _catalog([{"rel": "child", "href": f"./{n + 1}.json"}])} for n in range(80)}
    )
    started = time.monotonic()
    _, err = collect(tp.search_stac(f"{api.url}/d/0.json", **FAST))
    assert isinstance(err, STACSearchError)
    assert "levels deep" in str(err)
    assert time.monotonic() - started < 20


# -- 3. body caps ---------------------------------------------------------------------------------------
def _peak_while(fn: Any) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        return tracemalloc.get_traced_memory()[1] - before, result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "spec",
    [
        {"big_mib": 200},  # Content-Length says 200 MiB
        {"big_mib": 200, "chunked": True},  # no length: read until the cap
        {"gzip_bomb_mib": 256},  # ~260 KB on the wire
    ],
    ids=["200MiB", "200MiB-chunked", "gzip-bomb-256MiB"],
)
def test_huge_pages_and_gzip_bombs_stop_at_the_cap(api: HostileServer, spec: dict[str, Any]) -> None:
    api.route({"/search": spec})
    started = time.monotonic()
    peak, (_got, err) = _peak_while(lambda: collect(tp.search_stac(f"{api.url}/search", **FAST)))
    assert isinstance(err, STACSearchError), err
    assert "larger than the cap of 64 MiB" in str(err)
    assert "max_bytes=" in str(err)
    assert f"{api.url}/search" in str(err)
    assert peak < 80 * _MIB, f"peak {peak / _MIB:.0f} MiB"
    assert time.monotonic() - started < 30


def test_the_cap_can_be_raised_and_lowered(api: HostileServer) -> None:
    api.route({"/search": {"big_mib": 2, "chunked": True}})
    got, err = collect(tp.search_stac(f"{api.url}/search", storage=net(max_bytes=_MIB)))
    assert isinstance(err, STACSearchError)
    assert "cap of 1 MiB" in str(err)
    got, err = collect(tp.search_stac(f"{api.url}/search", storage=net(max_bytes=4 * _MIB)))
    assert err is None
    assert got == []


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_bombs_stop_at_the_cap(api: HostileServer, wbits: int) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    blob = packer.compress(b'{"features": [' + b" " * (8 * _MIB)) + packer.compress(b"]}") + packer.flush()
    spec = {"base64": base64.b64encode(blob).decode(), "headers": {"Content-Encoding": "deflate"}}
    api.route({"/search": spec})
    got, err = collect(tp.search_stac(f"{api.url}/search", storage=net(max_bytes=_MIB)))
    assert isinstance(err, STACSearchError)
    assert "cap of 1 MiB" in str(err)
    got, err = collect(tp.search_stac(f"{api.url}/search", **FAST))
    assert err is None
    assert got == []


def test_a_local_document_over_the_cap_is_named(tmp_path: Path) -> None:
    catalog = _catalog([]) | {"description": " " * (2 * _MIB)}
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    _, err = collect(tp.search_stac(tmp_path / "catalog.json", storage=tp.Storage(max_bytes=_MIB)))
    assert isinstance(err, STACSearchError)
    assert "larger than the cap" in str(err)
    got, err = collect(tp.search_stac(tmp_path / "catalog.json"))
    assert err is None
    assert got == []


def test_gzip_members_and_padding_decode_whole(api: HostileServer) -> None:
    import gzip

    text = json.dumps(page(["a", "b"])["json"]).encode()
    blob = gzip.compress(text[:40]) + gzip.compress(text[40:]) + b"\0" * 8  # two members, then padding
    api.route(
        {"/search": {"base64": base64.b64encode(blob).decode(), "headers": {"Content-Encoding": "gzip"}}}
    )
    got, err = collect(tp.search_stac(f"{api.url}/search", **FAST))
    assert err is None
    assert got == ["a", "b"]


def test_an_unasked_content_encoding_is_named(api: HostileServer) -> None:
    api.route({"/search": page(["a"]) | {"headers": {"Content-Encoding": "br"}}})
    _, err = collect(tp.search_stac(f"{api.url}/search", **FAST))
    assert isinstance(err, STACSearchError)
    assert "Content-Encoding" in str(err)


def test_static_documents_and_geoparquet_downloads_are_capped(api: HostileServer) -> None:
    api.route({"/catalog.json": {"gzip_bomb_mib": 32}, "/items.parquet": {"big_mib": 3, "chunked": True}})
    _, err = collect(tp.search_stac(f"{api.url}/catalog.json", storage=net(max_bytes=_MIB)))
    assert isinstance(err, STACSearchError)
    assert "cap of 1 MiB" in str(err)
    _, err = collect(tp.search_stac(f"{api.url}/items.parquet", storage=net(max_bytes=_MIB)))
    assert isinstance(err, STACSearchError)
    assert "cap of 1 MiB" in str(err)


# -- 4. credentials only to their origin ---------------------------------------------------------------------
HEADERS = {"X-Api-Key": SECRET, "Authorization": f"Bearer {SECRET}"}


def _leaked(server: HostileServer) -> list[dict[str, Any]]:
    return [entry for entry in server.log() if SECRET in json.dumps(entry)]


def test_a_next_link_to_another_origin_gets_no_credentials(api: HostileServer, other: HostileServer) -> None:
    api.route({"/search": page(["a"], {"href": f"{other.url}/page/2"})})
    other.route({"/page/2": page(["b"], {"href": f"{api.url}/page/3"})})
    api.route({"/page/3": page(["c"])})
    seen: list[str] = []

    def modifier(request: Any) -> None:
        seen.append(request.url)
        request.headers["X-Signed"] = SECRET

    url = f"{api.url}/search?api_key={SECRET}"
    got, err = collect(tp.search_stac(url, storage=net(headers=HEADERS, request_modifier=modifier)))
    assert err is None
    assert got == ["a", "b", "c"]
    assert _leaked(other) == []
    assert all(not u.startswith(other.url) for u in seen)
    # the origin the credentials were given for gets them on every page, the API key included
    for entry in api.log():
        assert entry["headers"]["x-api-key"] == SECRET
        assert entry["headers"]["x-signed"] == SECRET
        assert f"api_key={SECRET}" in entry["query"]


def test_a_pystac_client_sessions_credentials_stay_with_its_api(
    api: HostileServer, other: HostileServer
) -> None:
    from pystac_client import ItemSearch
    from pystac_client.stac_api_io import StacApiIO

    api.route({"/search": page(["a"], {"href": f"{other.url}/page/2"})})
    other.route({"/page/2": page(["b"])})
    stac_io = StacApiIO(headers=HEADERS, parameters={"subscription-key": SECRET})
    search = ItemSearch(f"{api.url}/search", stac_io=stac_io)
    got, err = collect(tp.from_items([search]).list_stac_items(storage=net()))
    assert err is None
    assert got == ["a", "b"]
    assert _leaked(other) == []
    assert f"subscription-key={SECRET}" in api.log()[0]["query"]


def test_a_search_link_to_another_origin_gets_no_credentials(
    api: HostileServer, other: HostileServer
) -> None:
    links = [{"rel": "search", "href": f"{other.url}/search", "method": "POST"}]
    api.route({"/": {"json": {"type": "Catalog", "id": "x", "conformsTo": [], "links": links}}})
    other.route({"/search": page(["a"])})
    got, err = collect(tp.search_stac(f"{api.url}/?api_key={SECRET}", storage=net(headers=HEADERS)))
    assert err is None
    assert got == ["a"]
    assert _leaked(other) == []
    assert api.log()[0]["headers"]["x-api-key"] == SECRET


@pytest.mark.parametrize("status", [302, 307, 308])
def test_a_redirect_to_another_origin_gets_no_credentials(
    api: HostileServer, other: HostileServer, status: int
) -> None:
    api.route({"/search": {"status": status, "location": f"{other.url}/search", "text": ""}})
    other.route({"/search": page(["a"])})
    got, err = collect(tp.search_stac(f"{api.url}/search?token={SECRET}", storage=net(headers=HEADERS)))
    assert err is None
    assert got == ["a"]
    assert _leaked(other) == []
    assert [e["method"] for e in other.log()] == (["GET"] if status == 302 else ["POST"])
    # a redirect within the origin keeps them
    api.route({"/search": {"status": status, "location": "/moved"}, "/moved": page(["b"])})
    got, _ = collect(tp.search_stac(f"{api.url}/search", storage=net(headers=HEADERS)))
    assert got == ["b"]
    assert api.log()[-1]["path"] == "/moved"
    assert api.log()[-1]["headers"]["x-api-key"] == SECRET


def test_a_redirect_loop_is_named(api: HostileServer) -> None:
    api.route({"/search": {"status": 307, "location": "/b"}, "/b": {"status": 307, "location": "/search"}})
    _, err = collect(tp.search_stac(f"{api.url}/search", **FAST))
    assert isinstance(err, STACSearchError)
    assert "redirects in a loop" in str(err)


def test_static_catalog_links_to_another_origin_get_no_credentials(
    api: HostileServer, other: HostileServer
) -> None:
    links = [{"rel": "item", "href": "./a.json"}, {"rel": "child", "href": f"{other.url}/sub/catalog.json"}]
    api.route({"/catalog.json": {"json": _catalog(links)}, "/a.json": {"json": item("a")}})
    other.route(
        {
            "/sub/catalog.json": {"json": _catalog([{"rel": "item", "href": "./b.json"}])},
            "/sub/b.json": {"json": item("b")},
        }
    )
    got, err = collect(tp.search_stac(f"{api.url}/catalog.json", storage=net(headers=HEADERS)))
    assert err is None
    assert got == ["a", "b"]
    assert _leaked(other) == []
    assert all(e["headers"].get("x-api-key") == SECRET for e in api.log())


def test_access_denied_elsewhere_says_why(api: HostileServer, other: HostileServer) -> None:
    api.route({"/search": page(["a"], {"href": f"{other.url}/page/2"})})
    other.route({"/page/2": {"status": 401, "text": "who are you?"}})
    got, err = collect(tp.search_stac(f"{api.url}/search", storage=net(headers=HEADERS)))
    assert got == ["a"]
    assert isinstance(err, STACSearchError)
    assert "never sent to" in str(err)
    assert "origin" in str(err)


def test_search_credentials_never_reach_asset_reads(
    api: HostileServer, other: HostileServer, files: Path
) -> None:
    rasterio = pytest.importorskip("rasterio")
    from tests.stac.stac_helpers import mini_item, scene_data, write_cog

    root = files
    write_cog(root / "red.tif", scene_data(1))
    record = mini_item("s1", 1, bands=("red",))
    record["assets"]["red"]["href"] = f"{other.url}/files/red.tif"
    api.route({"/search": {"json": {"type": "FeatureCollection", "features": [record], "links": []}}})
    url = f"{api.url}/search?api_key={SECRET}"
    (cube,) = tp.search_stac(url, storage=net(headers=HEADERS)).stack_stac(bands=["red"])
    values = cube.values
    with rasterio.open(root / "red.tif") as src:
        assert int(values.max()) == int(src.read(1).max())
    assert any(e["path"] == "/files/red.tif" for e in other.log())
    assert _leaked(other) == []


# -- 5. what errors show --------------------------------------------------------------------------------------
def test_errors_show_scheme_host_path_and_never_echoed_secrets(api: HostileServer) -> None:
    api.route({"/search": {"status": 400, "text": f"bad key {SECRET} (api_key={SECRET}, Bearer {SECRET})"}})
    _got, err = collect(
        tp.search_stac(f"{api.url}/search?api_key={SECRET}&tier=gold", storage=net(headers=HEADERS))
    )
    assert isinstance(err, STACSearchError)
    text = str(err) + repr(err.__cause__)
    assert SECRET not in text
    assert f"{api.url}/search:" in text
    assert "tier=gold" not in text.split("[query:")[0]
    assert "HTTP 400" in text


def test_a_sas_signed_catalog_error_shows_its_path_and_garbles_nothing(api: HostileServer) -> None:
    signature = "k3yS1gnedValue%2Bxyz%3D"
    url = f"{api.url}/stac/catalog.json?sv=2023-11-03&sp=r&sr=b&se=2030-01-01&sig={signature}"
    echoed = f"AuthenticationFailed: sig={urllib.parse.unquote(signature)} for sp=r sr=b"
    api.route({"/stac/catalog.json": {"status": 403, "text": echoed}})
    _, err = collect(tp.search_stac(url, **FAST))
    assert isinstance(err, STACSearchError)
    message = str(err)
    assert f"{api.url}/stac/catalog.json:" in message
    assert "k3yS1gnedValue" not in message
    assert "sv=" not in message
    assert "?" not in message
    assert "for sp=r sr=b" in message  # short values are never masked on their own
    assert "access denied; check the credentials" in message  # no letter of the message masked


# -- 6. malformed answers are named errors ---------------------------------------------------------------------
MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "json-list": ({"json": [1, 2]}, "a JSON list, not an object"),
    "features-dict": ({"json": {"type": "FeatureCollection", "features": {}}}, "'features' is a dict"),
    "features-missing": ({"json": {"type": "FeatureCollection"}}, "'features' is missing"),
    "next-without-href": (
        {"json": {"features": [item("a")], "links": [{"rel": "next"}]}},
        "'next' link without an href",
    ),
    "next-href-number": (
        {"json": {"features": [item("a")], "links": [{"rel": "next", "href": 5}]}},
        "'next' link without an href",
    ),
    "next-method": (
        {"json": {"features": [item("a")], "links": [{"rel": "next", "href": "/p", "method": "DELETE"}]}},
        "only GET and POST",
    ),
    "next-body-list": (
        {
            "json": {
                "features": [item("a")],
                "links": [{"rel": "next", "href": "/p", "method": "POST", "body": [1]}],
            }
        },
        "not an object",
    ),
    "next-not-http": (
        {"json": {"features": [item("a")], "links": [{"rel": "next", "href": "file:///etc/passwd"}]}},
        "not an HTTP(S) URL",
    ),
    "links-string": ({"json": {"features": [item("a")], "links": "next"}}, "'links' is a str"),
    "html": (
        {"text": "<html>Login</html>", "content_type": "text/html"},
        "not JSON (Content-Type 'text/html'",
    ),
    "not-utf8": ({"base64": base64.b64encode(b'{"features": ["\xff\xfe"]}').decode()}, "not UTF-8"),
    "empty": ({"text": ""}, "not JSON"),
    "too-deep": ({"text": "[" * 100_000 + "]" * 100_000}, "nested too deeply"),
    "huge-int": ({"text": '{"features": [], "n": ' + "7" * 20_000 + "}"}, "number Python refuses"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_api_answers_are_named_errors(api: HostileServer, name: str) -> None:
    spec, expected = MALFORMED[name]
    api.route({"/search": spec})
    _, err = collect(tp.search_stac(f"{api.url}/search", **FAST))
    assert isinstance(err, STACSearchError), repr(err)
    assert expected in str(err)


def test_items_that_are_not_objects_are_named_and_skippable(api: HostileServer) -> None:
    api.route({"/search": {"json": {"features": [1, "x", None, item("ok"), {"id": "half"}], "links": []}}})
    _, err = collect(tp.search_stac(f"{api.url}/search", **FAST))
    assert isinstance(err, STACSearchError)
    assert "malformed STAC item" in str(err)
    pipe = tp.search_stac(f"{api.url}/search", on_error="skip", **FAST)
    got, err = collect(pipe)
    assert err is None
    assert got == ["ok"]
    assert pipe.stats.skipped == 4


def test_a_landing_page_whose_links_are_not_a_list(api: HostileServer) -> None:
    api.route({"/": {"json": {"type": "Catalog", "links": 7}}})
    _, err = collect(tp.search_stac(api.url, **FAST))
    assert isinstance(err, STACSearchError)
    assert "'links' is a int" in str(err)


def test_malformed_static_catalogs_are_named_errors(tmp_path: Path) -> None:
    cases = {
        "links-number": (_catalog([]) | {"links": 3}, "'links' is a int"),
        "child-without-href": (_catalog([{"rel": "child"}]), "'child' link without an href"),
        "a-list": ([1, 2], "is not a STAC catalog"),
    }
    for name, (document, expected) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(document))
        _, err = collect(tp.search_stac(path))
        assert isinstance(err, STACSearchError), (name, err)
        assert expected in str(err), (name, str(err))
    # items whose fields cannot be tested against the query: named, and skippable one by one
    bad = [item("p") | {"properties": "x"}, item("g") | {"geometry": {"type": "Nope"}}, item("ok")]
    links = []
    for record in bad:
        (tmp_path / f"{record['id']}.json").write_text(json.dumps(record))
        links.append({"rel": "item", "href": f"./{record['id']}.json"})
    (tmp_path / "catalog.json").write_text(json.dumps(_catalog(links)))
    _, err = collect(tp.search_stac(tmp_path / "catalog.json", bbox=[5, 44, 7, 46], datetime="2024"))
    assert isinstance(err, STACSearchError)
    assert "malformed STAC item 'p'" in str(err)
    pipe = tp.search_stac(tmp_path / "catalog.json", bbox=[5, 44, 7, 46], on_error="skip")
    got, err = collect(pipe)
    assert err is None
    assert got == ["ok"]
    assert pipe.stats.skipped == 2
