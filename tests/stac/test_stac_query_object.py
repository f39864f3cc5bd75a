"""The search split in three (#21 item 5): where (``catalog``), what (:class:`STACQuery`), how (``storage=``).

``SearchSTAC(source, catalog, stac_query, ...)`` takes the upstream pipe as
``source`` like every other stage; ``search_stac(catalog, stac_query, **params)``
builds that stage instead of repeating its signature; the old keywords keep
working for one release and warn with ``TerrapipeDeprecationWarning``.
"""

from __future__ import annotations

import inspect
import json
import pickle
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError, TerrapipeDeprecationWarning
from terrapipe.recipes import load_recipe
from terrapipe.stac.list_items import ListSTACItems
from terrapipe.stac.query import SEARCH_KEYS, STACQuery
from terrapipe.stac.read_item import ReadSTACItem
from terrapipe.stac.search import SearchSTAC, search_stac


@pytest.fixture(scope="module")
def world() -> Any:
    return tp.datasets.sample_world()


def _ids(pipe: Any) -> list[str]:
    return sorted(item.id for item in pipe)


# -- STACQuery, the value ---------------------------------------------------------------------------------


def test_a_query_is_checked_once_when_made() -> None:
    for bad in ({"bbox": [1, 2, 3]}, {"datetime": "not a date"}, {"max_items": -1}, {"limit": 0}):
        with pytest.raises(InvalidArgumentError, match=r"max_items|limit|bbox|invalid search"):
            STACQuery(**bad)
    with pytest.raises(InvalidArgumentError, match="unknown STAC search parameters"):
        STACQuery.of({"colections": ["a"]})
    with pytest.raises(InvalidArgumentError, match="a STAC search query is"):
        STACQuery.of(["collections", "a"])  # type: ignore[arg-type]


def test_a_query_is_a_frozen_hashable_value() -> None:
    box = [5.9, 45.7, 6.0, 45.8]
    shape = {"type": "Point", "coordinates": [5.95, 45.75]}
    q = STACQuery(bbox=box, intersects=shape, collections=["demo-s2"], query={"eo:cloud_cover": {"lt": 10}})
    box.append(99.0)  # the caller's list changes: the query does not
    shape["coordinates"][0] = 0.0  # type: ignore[index]
    assert q.bbox == [5.9, 45.7, 6.0, 45.8]
    assert q.intersects == {"type": "Point", "coordinates": [5.95, 45.75]}
    with pytest.raises(AttributeError):
        q.bbox = None  # type: ignore[misc]
    same = STACQuery(**q.to_dict())
    assert same == q
    assert hash(same) == hash(q)
    assert len({q, same}) == 1
    assert q.replace(max_items=2) != q
    assert q.replace(max_items=2).max_items == 2
    assert q.replace(bbox=None).bbox is None
    assert STACQuery.of(None) == STACQuery()
    assert STACQuery.of(q) is q
    assert list(q.to_dict()) == [k for k in SEARCH_KEYS if k in q.to_dict()]
    assert pickle.loads(pickle.dumps(q)) == q  # goes to loader workers with its stage


def test_a_querys_repr_shows_what_is_set_and_abbreviates_geometries() -> None:
    polygon = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    text = repr(STACQuery(intersects=polygon, ids=["a"], filter="x" * 500))
    assert text.startswith("STACQuery(intersects=<Polygon>, ids=['a'], filter='xxx")
    assert "coordinates" not in text
    assert len(text) < 300


# -- SearchSTAC / search_stac: the new forms ------------------------------------------------------------


def test_search_stac_takes_a_query_value_a_mapping_or_keywords(world: Any) -> None:
    by_keywords = _ids(search_stac(world.catalog, collections=["demo-s2"], datetime="2024-06"))
    query = STACQuery(collections=["demo-s2"], datetime="2024-06")
    assert _ids(search_stac(world.catalog, query)) == by_keywords
    assert _ids(search_stac(world.catalog, stac_query=query.to_dict())) == by_keywords
    assert _ids(search_stac(catalog=world.catalog, stac_query=query)) == by_keywords
    assert (
        _ids(search_stac(world.catalog, STACQuery(collections=["demo-s2"]), datetime="2024-06"))
        == by_keywords
    )
    assert len(by_keywords) == 2


def test_a_parameter_given_twice_or_unknown_is_refused(world: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"\['collections'\] given both"):
        search_stac(world.catalog, STACQuery(collections=["a"]), collections=["b"])
    with pytest.raises(InvalidArgumentError, match=r"\['collections'\] given both"):
        search_stac(world.catalog, {"collections": ["a"]}, collections=["b"])
    with pytest.raises(InvalidArgumentError, match="a STAC search query is"):
        search_stac(world.catalog, ["demo-s2"], ids=["a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="unknown keywords \\['colour'\\]"):
        search_stac(world.catalog, colour="red")
    with pytest.raises(InvalidArgumentError, match="needs catalog="):
        search_stac(collections=["demo-s2"])
    with pytest.raises(InvalidArgumentError, match="source pipe"):
        SearchSTAC(None, world.catalog)


def test_the_stage_takes_its_pipe_as_source_and_queries_as_values(world: Any) -> None:
    queries = tp.from_items([STACQuery(ids=["demo-dem-30m"]), {"datetime": "2024-04"}])
    shared = STACQuery(collections=["demo-dem", "demo-s2"])
    expected = ["S2B_31TGL_20240415_0_L2A", "S2B_32TKR_20240415_0_L2A", "demo-dem-30m"]
    assert _ids(SearchSTAC(queries, world.catalog, shared)) == expected
    assert _ids(SearchSTAC(source=queries, catalog=world.catalog, stac_query=shared)) == expected
    assert _ids(queries.search_stac(world.catalog, shared)) == expected
    assert _ids(queries.search_stac(world.catalog, collections=["demo-dem", "demo-s2"])) == expected
    stage = SearchSTAC(queries, world.catalog, shared)
    assert stage.source is queries
    assert stage.query == shared
    # the description behind cache keys and fingerprints is what it was: the shared parameters as given
    assert stage.cache_config()["defaults"] == {"collections": ["demo-dem", "demo-s2"]}


def test_the_query_extension_keeps_its_name(world: Any) -> None:
    # ``query=`` is the STAC API Query Extension's parameter, not the query value.
    stage = search_stac("http://127.0.0.1:9/stac", query={"eo:cloud_cover": {"lt": 10}})
    assert stage.query == STACQuery(query={"eo:cloud_cover": {"lt": 10}})


# -- the old forms, one release -------------------------------------------------------------------------


def _warns(fn: Any, *names: str) -> Any:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = fn()
    messages = [str(w.message) for w in seen if issubclass(w.category, TerrapipeDeprecationWarning)]
    for name in names:
        assert any(f"({name}=...) is deprecated" in m for m in messages), (name, messages)
    assert all(w.filename == __file__ for w in seen), [w.filename for w in seen]  # points at the caller
    return result


def test_old_keywords_still_work_and_warn(world: Any) -> None:
    queries = tp.from_items([{}])
    expected = _ids(search_stac(world.catalog, collections=["demo-s2"], datetime="2024-06"))
    old = _warns(
        lambda: search_stac(source=world.catalog, collections=["demo-s2"], datetime="2024-06"), "source"
    )
    assert _ids(old) == expected
    stage = _warns(
        lambda: SearchSTAC(source_dp=queries, source=world.catalog, collections=["demo-s2"]),
        "source_dp",
        "source",
    )
    assert stage.source is queries
    assert len(_ids(stage)) == 6
    stage = _warns(lambda: SearchSTAC(queries, source=world.catalog, ids=["demo-dem-30m"]), "source")
    assert _ids(stage) == ["demo-dem-30m"]
    stage = _warns(lambda: queries.search_stac(source=world.catalog, ids=["demo-dem-30m"]), "source")
    assert _ids(stage) == ["demo-dem-30m"]
    stage = _warns(lambda: search_stac(world.catalog, timeout=3, retries=1), "timeout", "retries")
    assert stage.backend.storage.timeout == 3.0
    assert stage.backend.storage.retries == 1


def test_read_and_list_stages_take_source_and_warn_on_old_keywords(world: Any) -> None:
    href = Path(world.root) / "stac" / "demo-dem" / "demo-dem-30m" / "demo-dem-30m.json"
    hrefs = tp.from_items([href])
    assert [i.id for i in ReadSTACItem(source=hrefs)] == ["demo-dem-30m"]
    old = _warns(lambda: ReadSTACItem(source_dp=hrefs, timeout=4), "source_dp", "timeout")
    assert old.source is hrefs
    assert old.storage.timeout == 4.0
    assert [i.id for i in old] == ["demo-dem-30m"]
    listed = _warns(lambda: ListSTACItems(source_dp=tp.from_items([]), deadline=5), "source_dp", "deadline")
    assert listed.storage.deadline == 5.0
    for cls, name in ((ReadSTACItem, "read_stac_item"), (ListSTACItems, "list_stac_items")):
        with pytest.raises(InvalidArgumentError, match=f"{name} got an unknown keyword 'colour'"):
            cls(hrefs, colour="red")
        with pytest.raises(InvalidArgumentError, match="needs its source pipe"):
            cls()


def test_a_recipe_with_the_old_source_key_still_loads_and_warns(world: Any) -> None:
    def recipe(key: str) -> str:
        return textwrap.dedent(
            f"""
            version: 1
            name: s
            inputs:
              main:
                source: {{search_stac: {{{key}: {json.dumps(str(world.catalog))}, collections: [demo-s2]}}}}
            """
        ).lstrip()

    expected = _ids(load_recipe(text=recipe("catalog")).build())
    with pytest.warns(TerrapipeDeprecationWarning, match="source: is deprecated; its new name is catalog:"):
        old = load_recipe(text=recipe("source"))
    assert _ids(old.build()) == expected
    assert len(expected) == 6


# -- the widths (for #21's closing note) ----------------------------------------------------------------


def _named(fn: Any) -> list[str]:
    skip = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    return [n for n, p in inspect.signature(fn).parameters.items() if p.kind not in skip and n != "self"]


def test_the_stages_are_narrow() -> None:
    # before: SearchSTAC 27, search_stac 26, ListSTACItems 9, ReadSTACItem 9 named parameters
    assert _named(SearchSTAC.__init__) == [
        "source",
        "catalog",
        "stac_query",
        "kind",
        "method",
        "modifier",
        "on_error",
        "storage",
    ]
    assert _named(search_stac) == [
        "catalog",
        "stac_query",
        "kind",
        "method",
        "modifier",
        "on_error",
        "storage",
    ]
    assert _named(ListSTACItems.__init__) == ["source", "storage", "on_error"]
    assert _named(ReadSTACItem.__init__) == ["source", "storage", "modifier", "on_error"]
