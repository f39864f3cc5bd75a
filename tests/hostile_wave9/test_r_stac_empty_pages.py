"""A STAC API page with no items but a ``next`` link never silently ends a search the API says goes on.

An API that filters each page after reading it (or pages by an underlying
index) can send an empty page in the middle of a search, with a ``next``
link and ``numberMatched`` saying more items match. The search ended there,
dropping every later item without a word (pystac-client does the same).
Now such a link is followed while ``numberMatched`` (or ``context.matched``)
says more items match than were sent; a chain of empty pages is bounded
(``MAX_EMPTY_PAGES``, then a named error). Without ``numberMatched``, or
once it is reached, an empty page still ends the search (APIs that put a
``next`` link on their empty last page), with no further request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import STACSearchError
from terrapipe.stac.paged_search import MAX_EMPTY_PAGES
from tests.servers.hostile_stac import HostileServer, start_hostile_server

pytest.importorskip("pystac")


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    started = start_hostile_server()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def api(server: HostileServer) -> HostileServer:
    server.reset()
    return server


def item(ident: str) -> dict[str, Any]:
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


def page(ids: list[str], following: str | None = None, **extra: Any) -> dict[str, Any]:
    links = [{"rel": "next", "href": following}] if following else []
    return {
        "json": {"type": "FeatureCollection", "features": [item(i) for i in ids], "links": links, **extra}
    }


def search(api: HostileServer, **options: Any) -> Any:
    storage = tp.Storage(retries=0, timeout=5.0)
    return tp.search_stac(f"{api.url}/search", collections=["c"], method="GET", storage=storage, **options)


def requests(api: HostileServer) -> int:
    return sum(1 for entry in api.log() if entry["path"] == "/search")


@pytest.mark.parametrize(
    "stated",
    [{"numberMatched": 4}, {"context": {"returned": 0, "limit": 2, "matched": 4}}],
    ids=["numberMatched", "context"],
)
def test_an_empty_middle_page_is_followed_while_the_api_says_more_match(
    api: HostileServer, stated: dict[str, Any]
) -> None:
    u = f"{api.url}/search"
    api.route(
        {
            "/search": page(["a", "b"], f"{u}?page=2", **stated),
            "/search?page=2": page([], f"{u}?page=3", **stated),
            "/search?page=3": page(["c", "d"], **stated),
        }
    )
    assert [found.id for found in search(api)] == ["a", "b", "c", "d"]


def test_a_saved_position_before_the_empty_page_resumes_after_it(api: HostileServer) -> None:
    u = f"{api.url}/search"
    api.route(
        {
            "/search": page(["a", "b"], f"{u}?page=2", numberMatched=3),
            "/search?page=2": page([], f"{u}?page=3", numberMatched=3),
            "/search?page=3": page(["c"], numberMatched=3),
        }
    )
    pipe = search(api)
    seen = []
    for found in pipe:
        seen.append(found.id)
        if found.id == "b":
            state = pipe.state_dict()
            break
    resumed = search(api)
    resumed.load_state_dict(state)
    assert seen + [found.id for found in resumed] == ["a", "b", "c"]


@pytest.mark.parametrize("stated", [{}, {"numberMatched": 2}], ids=["unstated", "reached"])
def test_an_empty_page_ends_the_search_without_numbermatched_or_once_reached(
    api: HostileServer, stated: dict[str, Any]
) -> None:
    u = f"{api.url}/search"
    api.route(
        {
            "/search": page(["a", "b"], f"{u}?page=2", **stated),
            "/search?page=2": page([], f"{u}?page=3", **stated),
            "/search?page=3": page(["never"]),
        }
    )
    assert [found.id for found in search(api)] == ["a", "b"]
    assert requests(api) == 2  # page 3 never asked for


def test_endless_empty_pages_under_a_lying_numbermatched_are_a_named_error(api: HostileServer) -> None:
    u = f"{api.url}/search"
    routes = {"/search": page(["a"], f"{u}?page=1", numberMatched=1000)}
    for n in range(1, MAX_EMPTY_PAGES + 5):
        routes[f"/search?page={n}"] = page([], f"{u}?page={n + 1}", numberMatched=1000)
    api.route(routes)
    got: list[str] = []
    pipe = search(api)
    with pytest.raises(STACSearchError, match=r"empty pages in a row .* after 1 items, while it says 1000"):
        got.extend(found.id for found in pipe)
    assert got == ["a"]
    assert requests(api) == MAX_EMPTY_PAGES + 2  # bounded: the first page and the empty ones
    # skipped with on_error="skip": the search ends with what it had, counted
    api.reset()
    api.route(routes)
    pipe = search(api, on_error="skip")
    assert [found.id for found in pipe] == ["a"]
    assert pipe.stats.skipped == 1


def test_an_empty_page_that_names_itself_is_a_loop_not_a_hang(api: HostileServer) -> None:
    u = f"{api.url}/search"
    api.route(
        {
            "/search": page(["a"], f"{u}?page=2", numberMatched=5),
            "/search?page=2": page([], f"{u}?page=2", numberMatched=5),
        }
    )
    with pytest.raises(STACSearchError, match="pages in a loop"):
        list(search(api))
