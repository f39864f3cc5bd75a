"""The search tests against stac-fastapi-pgstac, plus what rustac's memory backend cannot do: filter, query, sortby."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from terrapipe.core.state import check_resume
from terrapipe.datasets import SampleWorld
from terrapipe.stac import search_stac, stack_items
from tests.stac.stac_helpers import IdsOf, ids, queries

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def static_items(world: SampleWorld) -> list[Any]:
    return list(search_stac(world.catalog))


def test_pgstac_agrees_with_the_static_catalog(pgstac_api: str, world: SampleWorld) -> None:
    for query in queries(world):
        assert sorted(ids(search_stac(pgstac_api, **query))) == sorted(
            ids(search_stac(world.catalog, **query))
        ), query


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_filter_cql2_json(pgstac_api: str, static_items: list[Any], method: str) -> None:
    cql2 = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "platform"}, "sentinel-2a"]},
            {"op": "<", "args": [{"property": "eo:cloud_cover"}, 50]},
        ],
    }
    expected = sorted(
        i.id
        for i in static_items
        if i.properties.get("platform") == "sentinel-2a" and i.properties["eo:cloud_cover"] < 50
    )
    assert expected
    assert sorted(ids(search_stac(pgstac_api, filter=cql2, method=method))) == expected


def test_filter_cql2_text_by_get(pgstac_api: str, static_items: list[Any]) -> None:
    expected = sorted(i.id for i in static_items if i.properties.get("platform") == "sentinel-2b")
    got = search_stac(pgstac_api, filter="platform = 'sentinel-2b'", filter_lang="cql2-text", method="GET")
    assert sorted(ids(got)) == expected


def test_query_extension(pgstac_api: str, static_items: list[Any]) -> None:
    threshold = float(
        np.median([i.properties["eo:cloud_cover"] for i in static_items if "eo:cloud_cover" in i.properties])
    )
    expected = sorted(i.id for i in static_items if i.properties.get("eo:cloud_cover", 1e9) < threshold)
    got = search_stac(pgstac_api, collections=["demo-s2"], query={"eo:cloud_cover": {"lt": threshold}})
    assert sorted(ids(got)) == expected


@pytest.mark.parametrize("direction", ["+", "-"])
def test_sortby(pgstac_api: str, static_items: list[Any], direction: str) -> None:
    s2 = [i for i in static_items if i.collection_id == "demo-s2"]
    expected = [i.id for i in sorted(s2, key=lambda i: (i.datetime, i.id), reverse=direction == "-")]
    got = ids(
        search_stac(pgstac_api, collections=["demo-s2"], sortby=f"{direction}properties.datetime", limit=2)
    )
    assert got == expected


def test_token_paging_resumes_everywhere(pgstac_api: str) -> None:
    def make() -> IdsOf:
        return IdsOf(search_stac(pgstac_api, collections=["demo-s2"], sortby="properties.datetime", limit=2))

    full = check_resume(make, stop_after=0)
    assert len(full) == 6
    for stop in range(1, 7):
        check_resume(make, stop_after=stop)
    pipe = search_stac(pgstac_api, collections=["demo-s2"], limit=2)
    it = iter(pipe)
    next(it), next(it)
    assert "token" in pipe.state_dict()["page"]["body"]  # pgstac's next link: POST with a token


def test_cube_from_pgstac_equals_cube_from_the_catalog(pgstac_api: str, world: SampleWorld) -> None:
    query = {"collections": ["demo-s2"], "bbox": [5.93, 45.72, 5.95, 45.74]}
    from_api = sorted(search_stac(pgstac_api, **query), key=lambda i: i.datetime)
    from_catalog = sorted(search_stac(world.catalog, **query), key=lambda i: i.datetime)
    bbox = (5.93, 45.72, 5.95, 45.74)
    np.testing.assert_array_equal(
        stack_items(from_api, bands=["red"], bbox=bbox).values,
        stack_items(from_catalog, bands=["red"], bbox=bbox).values,
    )
