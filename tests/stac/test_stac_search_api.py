"""search_stac and list_stac_items against a real STAC API (rustac serve) on 127.0.0.1."""

from __future__ import annotations

import os
from typing import Any

import pytest

import terrapipe as tp
import terrapipe.stac
from terrapipe.core.errors import InvalidArgumentError, STACSearchError
from terrapipe.core.state import check_resume
from terrapipe.datasets import SampleWorld
from terrapipe.stac import search_stac
from tests.stac.fault_proxy import FaultProxy
from tests.stac.stac_helpers import FAR_AWAY, IdsOf, ids, queries

pystac_client = pytest.importorskip("pystac_client")


def _searches(proxy: FaultProxy) -> list[dict[str, Any]]:
    return [entry for entry in proxy.log() if entry["path"].endswith("/search")]


def test_api_static_and_geoparquet_agree(world: SampleWorld, stac_api: str) -> None:
    """The server's answers are the reference for the client-side searches."""
    for query in queries(world):
        from_api = sorted(ids(search_stac(stac_api, **query)))
        assert sorted(ids(search_stac(world.catalog, **query))) == from_api, query
        assert sorted(ids(search_stac(world.items_parquet, **query))) == from_api, query
    assert ids(search_stac(stac_api, collections=["demo-s2"])) == list(world.s2_item_ids)
    assert ids(search_stac(stac_api, bbox=[5.95, 45.72, 5.99, 45.74], datetime="2024-06")) == [
        world.item_id(date=1, tile=0)
    ]


def test_paging_is_lazy_and_follows_next_links(stac_api: str, proxy: FaultProxy, world: SampleWorld) -> None:
    pipe = search_stac(proxy.url, collections=["demo-s2"], limit=2)
    first = next(iter(pipe))
    assert first.id == world.s2_item_ids[0]
    assert len(_searches(proxy)) == 1  # one page fetched for one item
    proxy.clear()
    assert ids(pipe) == list(world.s2_item_ids)
    searches = _searches(proxy)
    assert [s["body"].get("skip", 0) for s in searches] == [0, 2, 4]
    assert all(s["body"]["limit"] == 2 for s in searches)
    assert pipe.stats.elements == 7
    assert pipe.stats.bytes_read > 0


def test_get_searches_page_too(stac_api: str, proxy: FaultProxy) -> None:
    got = ids(search_stac(proxy.url, method="GET", limit=3))
    assert got == ids(search_stac(stac_api, limit=100))
    methods = {s["method"] for s in _searches(proxy)}
    assert methods == {"GET"}
    assert len(_searches(proxy)) == 3


def test_max_items_stops_early(proxy: FaultProxy) -> None:
    assert len(ids(search_stac(proxy.url, collections=["demo-s2"], limit=2, max_items=3))) == 3
    assert len(_searches(proxy)) == 2
    assert ids(search_stac(proxy.url, max_items=0)) == []


@pytest.mark.parametrize("stop", range(7))
def test_resume_at_every_item(stac_api: str, stop: int) -> None:
    check_resume(lambda: IdsOf(search_stac(stac_api, collections=["demo-s2"], limit=2)), stop_after=stop)


def test_state_holds_the_page_cursor(stac_api: str, proxy: FaultProxy, world: SampleWorld) -> None:
    pipe = search_stac(proxy.url, collections=["demo-s2"], limit=2)
    it = iter(pipe)
    next(it), next(it)
    state = pipe.state_dict()
    assert state["page"]["method"] == "POST"
    assert state["page"]["body"]["skip"] == 2  # the next page's request, from the server's next link
    assert state["offset"] == 0
    next(it)
    state = pipe.state_dict()
    assert state["page"]["body"]["skip"] == 2
    assert state["offset"] == 1
    assert state["count"] == 3
    proxy.clear()
    resumed = search_stac(proxy.url, collections=["demo-s2"], limit=2)
    resumed.load_state_dict(state)
    assert ids(resumed) == list(world.s2_item_ids[3:])
    assert [s["body"]["skip"] for s in _searches(proxy)] == [2, 4]  # no page before the saved one


def test_functional_form_runs_one_search_per_query(stac_api: str, world: SampleWorld) -> None:
    def make() -> Any:
        queries = tp.from_items([{"ids": [world.item_id(date=0, tile=0)]}, {"collections": ["demo-dem"]}, {}])
        return queries.search_stac(stac_api, collections=["demo-s2"], limit=2)

    assert ids(make()) == [world.item_id(date=0, tile=0), "demo-dem-30m", *world.s2_item_ids]
    for stop in range(9):
        check_resume(lambda: IdsOf(make()), stop_after=stop)


def test_empty_search_is_an_empty_pipe(stac_api: str) -> None:
    pipe = search_stac(stac_api, bbox=FAR_AWAY)
    assert list(pipe) == []
    assert list(pipe.stack_stac(bands=["red"])) == []


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ({"filter": {"op": "=", "args": [{"property": "platform"}, "sentinel-2a"]}}, "filter"),
        ({"query": {"eo:cloud_cover": {"lt": 10}}}, "query"),
        ({"sortby": "-properties.datetime"}, "sortby"),
    ],
)
def test_parameters_the_api_does_not_declare_are_refused(
    stac_api: str, option: dict[str, Any], name: str
) -> None:
    """rustac's memory backend would return nothing for filter/query and ignore sortby: refuse instead."""
    with pytest.raises(STACSearchError, match=f"does not support \\['{name}'\\]") as info:
        list(search_stac(stac_api, **option))
    assert stac_api in str(info.value)


def test_bad_parameters_fail_before_any_request(stac_api: str) -> None:
    with pytest.raises(InvalidArgumentError, match="bbox"):
        search_stac(stac_api, bbox=[1, 2])
    with pytest.raises(InvalidArgumentError, match="kind must be one of"):
        search_stac(stac_api, kind="wfs")  # type: ignore[arg-type]
    bad_element = tp.from_items([{"colections": ["demo-s2"]}]).search_stac(stac_api)
    with pytest.raises(InvalidArgumentError, match="colections"):
        list(bad_element)


def test_pystac_client_client_and_list_stac_items(
    stac_api: str, proxy: FaultProxy, world: SampleWorld
) -> None:
    client = pystac_client.Client.open(proxy.url, headers={"X-Api-Key": "k-123"})
    assert ids(search_stac(client, collections=["demo-s2"], limit=4)) == list(world.s2_item_ids)
    searches = [
        client.search(collections=["demo-s2"], max_items=3, limit=2),
        client.search(ids=["demo-dem-30m"]),
    ]
    listed = tp.from_items(searches).list_stac_items()
    assert ids(listed) == [*world.s2_item_ids[:3], "demo-dem-30m"]
    assert all(s["headers"].get("x-api-key") == "k-123" for s in _searches(proxy))
    for stop in range(4):
        check_resume(lambda: IdsOf(tp.from_items(searches).list_stac_items()), stop_after=stop)
    with pytest.raises(InvalidArgumentError, match="ItemSearch"):
        list(tp.from_items([{"collections": ["demo-s2"]}]).list_stac_items())


def test_headers_and_modifiers_are_applied(proxy: FaultProxy) -> None:
    def sign_request(request: Any) -> None:
        request.headers["X-Signed"] = "yes"

    def sign_item(item: Any) -> None:
        item.properties["signed"] = True

    items = list(
        search_stac(
            proxy.url,
            collections=["demo-dem"],
            storage=tp.Storage(headers={"Authorization": "Bearer s3cr3t"}, request_modifier=sign_request),
            modifier=sign_item,
        )
    )
    assert [item.properties["signed"] for item in items] == [True]
    for entry in proxy.log():
        assert entry["headers"]["authorization"] == "Bearer s3cr3t"
        assert entry["headers"]["x-signed"] == "yes"


def test_search_endpoint_given_directly(proxy: FaultProxy, world: SampleWorld) -> None:
    assert ids(search_stac(f"{proxy.url}/search", collections=["demo-s2"], limit=3)) == list(
        world.s2_item_ids
    )
    assert all(entry["path"] == "/search" for entry in proxy.log())  # no landing page read


def test_items_keep_projection_v2(stac_api: str) -> None:
    (item,) = search_stac(stac_api, ids=["demo-dem-30m"])
    assert item.properties["proj:code"] == "EPSG:4326"
    assert item.assets["data"].href.endswith("dem.tif")


def test_serve_stac_starts_and_stops(world: SampleWorld) -> None:
    with terrapipe.stac.serve_stac(world) as server:
        pid = server.process.pid
        assert ids(search_stac(server.url, ids=["demo-dem-30m"])) == ["demo-dem-30m"]
    assert server.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
